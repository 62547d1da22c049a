"""Server: the protocol-neutral data plane, model registry, and the REST/gRPC transports around them."""
