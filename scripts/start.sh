#!/usr/bin/env bash
# Install everything into ./.venv and start aiport on embedded defaults
# (SQLite, in-process jobs, the embedded Gemma 3 270M model) with a demo organization.
# Extra arguments go to `aiport serve` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "aiport needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1)). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating virtual environment in .venv"
  "$PYTHON" -m venv .venv
fi
echo "==> installing aiport and the embedded model (first run takes a minute)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
echo "==> starting aiport"
exec .venv/bin/aiport serve "$@"
