"""Benchmark: what the security checks add to one request, each timed alone in-process (timeit, best of 7), so a
cost far below the noise of an end-to-end run (bench_ab.py) is still measured. Usage:

    python benchmarks/bench_checks.py [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import timeit
from pathlib import Path

from modelplane.backends.local.gateway import _UNSAFE_TARGET, _declared_length, _repository_mutation
from modelplane.backends.local.upstream import _buffered
from modelplane.protocol.datatypes import shape_size

RESULTS = Path(__file__).resolve().parent / "results"
PATH = b"/serving/default/sklearn-iris/v1/models/sklearn-iris:predict"
HEADERS = [
    (b"host", b"127.0.0.1:9890"),
    (b"user-agent", b"wrk"),
    (b"content-type", b"application/json"),
    (b"content-length", b"62"),
]


def head_check() -> None:
    """Upstream.request's validation of the head it built (two counts, a NUL and a space search)."""
    start = (
        b"POST /v1/models/sklearn-iris:predict HTTP/1.1\r\nhost: 127.0.0.1:40000\r\nuser-agent: wrk\r\n"
        b"content-type: application/json\r\ncontent-length: 62\r\n\r\n"
    )
    _ = start.count(b"\n") != 5 or start.count(b"\r") != 5 or b"\0" in start or b" " in b"/v1/models/x:predict"


def gateway_checks() -> None:
    _UNSAFE_TARGET.search(PATH)
    _UNSAFE_TARGET.search(b"")
    _repository_mutation("/v1/models/sklearn-iris:predict")
    _declared_length(HEADERS)


class _Conn:
    header_deadline: float | None = None


def guard_per_request(conn: _Conn = _Conn(), now: float = 1.0) -> None:  # noqa: B008 - one shared instance
    """The connection guard's per-request work: arm the header deadline, disarm it."""
    if conn.header_deadline is None:
        conn.header_deadline = now + 10.0
    conn.header_deadline = None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(RESULTS / "checks.json"))
    args = ap.parse_args()
    reader = asyncio.StreamReader()
    cases = {
        "gateway: target regex, repository check, declared length": gateway_checks,
        "upstream: head validation": head_check,
        "upstream: leftover-bytes check": lambda: _buffered(reader),
        "guard: header deadline arm + disarm": guard_per_request,
        "codec: shape bound (2 dims)": lambda: shape_size([2, 4], "input"),
    }
    out = {}
    for name, fn in cases.items():
        n = 200_000
        best = min(timeit.repeat(fn, number=n, repeat=7)) / n * 1e6
        out[name] = best
        print(f"{best * 1000:8.0f} ns  {name}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
