#!/usr/bin/env bash
# Create bench/.venv-litellm with LiteLLM's proxy, kept apart from aiport's own venv
# so its pinned dependencies never disturb aiport's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-litellm"
python="${PYTHON:-python3}"
if [[ ! -x "$venv/bin/litellm" ]]; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "litellm[proxy]==${LITELLM_VERSION:-1.106.12}"
fi
"$venv/bin/python" -c 'import importlib.metadata as m; print("litellm", m.version("litellm"))'
