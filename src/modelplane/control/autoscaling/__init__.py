"""Control plane: autoscaling — Knative's pod autoscaler (serverless mode) and HPA semantics (raw mode), pure."""
