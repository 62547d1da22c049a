"""Local backend: CPU time and resident memory of process groups, from /proc (what the HPA's metrics come from)."""

from __future__ import annotations

import os
import re

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)([a-zA-Z]*)$")
_SUFFIX = {"": 1, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_SUFFIX |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value: object) -> float:
    """A Kubernetes resource quantity ("500m", "1", "2Gi", "100M") as a number (cores or bytes)."""
    m = _QUANTITY.match(str(value).strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"invalid resource quantity {value!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def group_usage(groups: set[int]) -> dict[int, tuple[float, int]]:
    """{process group: (CPU seconds used so far, resident bytes)} summed over every process in each group."""
    out: dict[int, tuple[float, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        group = int(fields[2])  # after the command: state ppid pgrp ...
        if group not in groups:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        rss = int(fields[21]) * PAGE
        before = out.get(group, (0.0, 0))
        out[group] = (before[0] + cpu, before[1] + rss)
    return out
