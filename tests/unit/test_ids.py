"""Request ids never repeat across forked processes (a zygote's replicas, pre-forked workers) or fresh ones."""

from __future__ import annotations

import os
import subprocess
import sys

from modelplane.protocol.ids import new_id


def _ids_in_children(n_children: int, per_child: int) -> list[str]:
    new_id()  # the parent has already drawn from its generator before forking, as a zygote has
    out: list[str] = []
    for _ in range(n_children):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: write its ids and leave at once
            os.close(read)
            os.write(write, "\n".join(new_id() for _ in range(per_child)).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as fh:
            out += fh.read().splitlines()
        os.waitpid(pid, 0)
    return out


def test_forked_children_never_share_ids():
    ids = _ids_in_children(4, 10) + [new_id() for _ in range(10)]
    assert len(ids) == 50 and len(set(ids)) == 50


def test_separate_processes_never_share_ids():
    code = "from modelplane.protocol.ids import new_id; print(new_id())"
    ids = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout for _ in range(3)]
    assert len(set(ids)) == 3 and all(len(i.strip()) == 36 for i in ids)
