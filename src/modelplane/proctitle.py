"""Process titles for `ps` / `top` (modelplane platform, zygote, replica NS/REVISION/INDEX); outside the layers."""

from __future__ import annotations

import contextlib
import os

TITLE_ENV = "MODELPLANE_PROCESS_TITLE"  # the title a process started by `python -m modelplane` takes (then unset)


def set_title(title: str) -> None:
    """Set this process's title when setproctitle is installed (a dependency; optional for embedders)."""
    with contextlib.suppress(ImportError):
        import setproctitle

        setproctitle.setproctitle(title)


def title_from_env() -> None:
    """Take the title the starting process asked for in the environment (a replica started without the zygote)."""
    title = os.environ.pop(TITLE_ENV, None)
    if title:
        set_title(title)
