"""CPU and memory of process groups from /proc, and Kubernetes resource quantities (what the HPA's numbers use)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from modelplane.backends.local.procstat import group_usage, quantity


def test_quantities() -> None:
    assert quantity("500m") == 0.5
    assert quantity("1") == 1.0
    assert quantity("2Gi") == 2 * 2**30
    assert quantity("100M") == 100e6
    with pytest.raises(ValueError, match="invalid resource quantity"):
        quantity("lots")


def test_group_usage_counts_a_busy_process_group() -> None:
    busy = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", busy], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        cpu = 0.0
        while time.monotonic() < deadline:
            cpu, rss = group_usage({proc.pid}).get(proc.pid, (0.0, 0))
            if cpu >= 0.35:
                break
            time.sleep(0.05)
        assert cpu >= 0.35 and rss > 1_000_000
        assert proc.pid not in group_usage({-1})  # other groups are not counted
    finally:
        proc.kill()
        proc.wait()
