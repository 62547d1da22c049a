#!/usr/bin/env bash
# Creates .venv (Python >= 3.11) and installs modelplane with its test and runtime extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "modelplane needs Python >= 3.11"'
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
fi
# uv resolves and installs in seconds; pip would take minutes on a fresh machine.
.venv/bin/uv pip install --quiet --python .venv/bin/python -e ".[${EXTRAS:-dev}]"
# Azurite (Azure Storage's own emulator, from npm) for the Azure Blob storage tests.
AZURITE_VERSION=3.37.0
if command -v npm >/dev/null && [ ! -x .cache/azurite/node_modules/.bin/azurite-blob ]; then
  npm install --silent --no-audit --no-fund --prefix .cache/azurite "azurite@${AZURITE_VERSION}" >/dev/null
fi
