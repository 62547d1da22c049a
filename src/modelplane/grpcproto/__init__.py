"""Open Inference Protocol gRPC messages, generated from inference.proto into a private descriptor pool; used by the
server and by clients (transformers)."""
