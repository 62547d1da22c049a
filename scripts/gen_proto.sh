#!/usr/bin/env bash
# Regenerates the committed protobuf/gRPC Python modules from inference.proto (needs grpcio-tools).
set -euo pipefail
cd "$(dirname "$0")/../src/modelplane/grpcproto"
python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. inference.proto
# grpc_tools emits an absolute import; make it package-relative.
sed -i 's/^import inference_pb2 as/from . import inference_pb2 as/' inference_pb2_grpc.py
# Register in a private descriptor pool: tritonclient and kserve ship their own `inference.*` messages,
# and the default pool rejects a second definition of the same symbols in one process.
sed -i 's/^DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile/DESCRIPTOR = _descriptor_pool.DescriptorPool().AddSerializedFile/' inference_pb2.py
