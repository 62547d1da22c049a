"""Protocol core: transport-neutral inference types, datatypes, errors and wire codecs (no web or gRPC imports)."""
