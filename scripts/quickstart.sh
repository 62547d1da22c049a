#!/usr/bin/env bash
# README command 1: install modelplane into .venv, then serve the iris sample model on :8080 (REST) and :8081 (gRPC).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "[1/3] installing modelplane and scikit-learn into .venv (about a minute the first time)"
EXTRAS="${EXTRAS:-sklearn}" bash scripts/setup.sh
echo "[2/3] bringing up the platform (gateway :8080, gRPC :8081, API :8090) and training the iris sample"
echo "[3/3] applying KServe's sklearn-iris InferenceService and sending it a request"
exec .venv/bin/modelplane quickstart "$@"
