"""Server REST transport: a plain ASGI app mapping V1/V2 HTTP onto the DataPlane."""
