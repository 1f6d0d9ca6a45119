#!/usr/bin/env bash
# py-spy for `bench/run_gateway.py --profile`, in its own venv (not a project dependency).
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv-tools/bin/python ] || python3 -m venv .venv-tools
.venv-tools/bin/python -m pip install --quiet --disable-pip-version-check py-spy
.venv-tools/bin/py-spy --version
