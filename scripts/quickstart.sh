#!/usr/bin/env bash
# README command 1: install modelplane into .venv, then serve the iris sample model on :8080 (REST) and :8081 (gRPC).
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${EXTRAS:-sklearn}" bash scripts/setup.sh
exec .venv/bin/modelplane quickstart "$@"
