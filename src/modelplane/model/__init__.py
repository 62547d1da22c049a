"""Model API: the user-facing Model base class and payload helpers (depends only on the protocol core)."""
