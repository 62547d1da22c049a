"""Control plane: KServe-compatible API objects, defaulting, validation, runtime selection and the pure reconciler."""
