#!/usr/bin/env bash
# Creates .venv and installs stream_lis with its test dependencies. Idempotent: reinstalls
# only when pyproject.toml changed since the last successful install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-python3}"
VENV="${STREAM_LIS_VENV:-.venv}"
STAMP="$VENV/.installed"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup: creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
if [[ ! -f "$STAMP" || pyproject.toml -nt "$STAMP" ]]; then
  echo "setup: installing stream_lis and its dependencies into $VENV (pip; takes about a minute the first time)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # setuptools' notice that an editable install of a flat layout prefers same-named folders of
  # the working directory: expected here (the checkout is the package), noise to a new user.
  PYTHONWARNINGS="ignore:Editable installation" "$VENV/bin/python" -m pip install --quiet -e '.[test]'
  touch "$STAMP"
fi
