"""Process titles for `ps` / `top` (modelplane platform, zygote, replica NS/REVISION/INDEX); outside the layers."""

from __future__ import annotations

import contextlib


def set_title(title: str) -> None:
    """Set this process's title when setproctitle is installed (a dependency; optional for embedders)."""
    with contextlib.suppress(ImportError):
        import setproctitle

        setproctitle.setproctitle(title)
