"""Kubernetes backend: the same InferenceService YAML on a cluster — rendering (pure), the CRDs, the operator."""
