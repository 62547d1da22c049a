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
# torch first, with pip and pinned: pip takes a CPU build the machine holds (its find-links), where uv would download
# a multi-GB CUDA build. Elsewhere point pip at a CPU index (PIP_EXTRA_INDEX_URL) before running this.
case ",${EXTRAS:-dev}," in
  *,dev,*|*,all,*|*,torch,*)
    .venv/bin/python -c 'import torch' 2>/dev/null ||
      .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" ;;
esac
# uv resolves and installs the rest in seconds; pip would take minutes on a fresh machine.
.venv/bin/uv pip install --quiet --python .venv/bin/python -e ".[${EXTRAS:-dev}]"
# Storage servers from npm for the tests: Azurite (Azure Storage's own emulator) and s3rver (an S3 server that
# checks access keys, unlike moto). Each goes into .cache/<name>.
install_node_tool() {  # name version binary
  if command -v npm >/dev/null && [ ! -x ".cache/$1/node_modules/.bin/$3" ]; then
    npm install --silent --no-audit --no-fund --prefix ".cache/$1" "$1@$2" >/dev/null
  fi
}
install_node_tool azurite 3.37.0 azurite-blob
install_node_tool s3rver 3.7.1 s3rver
# TorchServe for the ServingRuntime tests, in a venv of its own (it brings its own pins): a Java server that runs
# .mar archives; its workers need torch, taken from the same local CPU build.
if command -v java >/dev/null && [ ! -x .cache/torchserve/bin/torchserve ]; then
  "$PY" -m venv .cache/torchserve
  .cache/torchserve/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
  .cache/torchserve/bin/python -m pip install --quiet --disable-pip-version-check \
    "torchserve==0.12.0" "torch-model-archiver==0.12.0" pyyaml numpy pillow packaging
fi
# Triton's own server for the ServingRuntime test: nvidia-pytriton bundles a tritonserver binary (Python backend
# only) and pins numpy<2, so it too gets a venv of its own; its Python backend needs the stub beside it.
if [ ! -x .cache/pytriton/bin/python ] || [ ! -e .cache/pytriton/.ready ]; then
  "$PY" -m venv .cache/pytriton
  if .cache/pytriton/bin/python -m pip install --quiet --disable-pip-version-check "nvidia-pytriton==0.7.0"; then
    ts_root=$(.cache/pytriton/bin/python -c 'import pytriton, os; print(os.path.dirname(pytriton.__file__))')/tritonserver
    py_minor=$(.cache/pytriton/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    cp "$ts_root/python_backend_stubs/$py_minor/triton_python_backend_stub" "$ts_root/backends/python/"
    touch .cache/pytriton/.ready
  fi
fi
# llama.cpp for the llama.cpp ServingRuntime test: llama-cpp-python compiles llama.cpp on install (cmake and a C++
# compiler), so it is built once per machine into ~/.cache/modelplane (like the test API server); llama.cpp's
# HF-to-GGUF converter comes from the same sdist. Without cmake or a compiler the test is skipped.
LLAMA_CPP_VERSION=0.3.36
LLAMA_CPP="${MODELPLANE_LLAMA_CPP_CACHE:-$HOME/.cache/modelplane/llama-cpp-$LLAMA_CPP_VERSION}"
if command -v cmake >/dev/null && command -v c++ >/dev/null && [ ! -e "$LLAMA_CPP/.ready" ]; then
  "$PY" -m venv "$LLAMA_CPP"
  if CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$LLAMA_CPP/bin/python" -m pip install --quiet --disable-pip-version-check \
      "llama-cpp-python[server]==$LLAMA_CPP_VERSION" &&
    "$LLAMA_CPP/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
      "llama-cpp-python==$LLAMA_CPP_VERSION" -d "$LLAMA_CPP/sdist" &&
    tar xzf "$LLAMA_CPP/sdist/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz" -C "$LLAMA_CPP/sdist" --wildcards \
      '*/vendor/llama.cpp/convert_hf_to_gguf.py' '*/vendor/llama.cpp/conversion/*' '*/vendor/llama.cpp/gguf-py/*'
  then
    touch "$LLAMA_CPP/.ready"
  fi
fi
