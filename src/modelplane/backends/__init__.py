"""Backends: make the world match the control plane's desired state (local processes today; Kubernetes later)."""
