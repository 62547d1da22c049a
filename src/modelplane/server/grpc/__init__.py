"""Server gRPC transport: the inference.GRPCInferenceService servicer over the DataPlane."""
