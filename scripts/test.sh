#!/usr/bin/env bash
# Installs everything from the project's own files, then runs lint, the layering contract and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/kube-test-cluster.sh build  # once per machine (~7-9 min), cached: the operator tests' API server
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/lint-imports
exec .venv/bin/pytest "$@"
