"""Entry point for `python -m modelplane` (same as the `modelplane` console script)."""

from __future__ import annotations

from modelplane.cli.main import main
from modelplane.proctitle import title_from_env

if __name__ == "__main__":
    title_from_env()
    main()
