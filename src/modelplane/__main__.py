"""Entry point for `python -m modelplane` (same as the `modelplane` console script)."""

from __future__ import annotations

from modelplane.cli.main import main

if __name__ == "__main__":
    main()
