"""Samples: small models trained on the fly (iris) for the quickstart, tests and benchmarks."""
