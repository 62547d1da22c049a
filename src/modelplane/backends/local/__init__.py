"""Local backend: replica processes, an embedded gateway, and the controller loop that drives them."""
