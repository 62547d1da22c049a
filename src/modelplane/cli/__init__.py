"""CLI: the `modelplane` command (typer); parses argv only when invoked."""
