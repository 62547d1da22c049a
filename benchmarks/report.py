"""Render bench_peers.py results as the markdown tables in docs/benchmarks.md.

Usage: python report.py [RESULTS.json [GRPC_RESULTS.json]] — the second file, if given (a `--only grpc` run),
supplies the gRPC section.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "peers.json")
    data = json.loads(path.read_text())
    grpc_data = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else data
    s = {**data["summary"], **{k: v for k, v in grpc_data["summary"].items() if k.startswith("grpc ")}}
    cs = data["args"]["concurrency"]

    def get(key: str) -> dict | None:
        return s.get(key)

    def row(label: str, prefix: str) -> str:
        cells = []
        for c in cs:
            r = get(f"{prefix} c={c}")
            cells.append(f"{r['rps']:,.0f} / {r['p50_ms']:.2f} / {r['p99_ms']:.2f}" if r else "-")
        return f"| {label} | " + " | ".join(cells) + " |"

    head = "| server | " + " | ".join(f"c={c}: req/s / p50 ms / p99 ms" for c in cs) + " |"
    sep = "|---|" + "---|" * len(cs)
    print("### REST (wrk -t1, JSON bodies)\n")
    print(head)
    print(sep)
    for label, prefix in [
        ("modelplane V2", "rest v2 modelplane"),
        ("modelplane V1", "rest v1 modelplane"),
        ("KServe V2, defaults", "rest v2 kserve-default"),
        ("KServe V2, logs off", "rest v2 kserve-nolog"),
        ("KServe V1, defaults", "rest v1 kserve-default"),
        ("KServe V1, logs off", "rest v1 kserve-nolog"),
        ("MLServer V2, defaults", "rest v2 mlserver-default"),
        ("MLServer V2, logs off", "rest v2 mlserver-nolog"),
        ("floor: bare ASGI + predict", "rest v2 floor-predict"),
        ("floor: bare ASGI, fixed body", "rest v2 floor-fixed"),
    ]:
        print(row(label, prefix))

    def best(prefixes: list[str], c: int) -> float:
        return max(s[f"{p} c={c}"]["rps"] for p in prefixes if f"{p} c={c}" in s)

    print("\nRatios (modelplane req/s ÷ the peer's best configuration, same run):\n")
    print("| ratio | " + " | ".join(f"c={c}" for c in cs) + " |")
    print(sep)
    ks_v2, ks_v1 = (
        ["rest v2 kserve-default", "rest v2 kserve-nolog"],
        ["rest v1 kserve-default", "rest v1 kserve-nolog"],
    )
    ml = ["rest v2 mlserver-default", "rest v2 mlserver-nolog"]
    for label, ours, peer in [
        ("V2 vs KServe V2", "rest v2 modelplane", ks_v2),
        ("V2 vs MLServer V2", "rest v2 modelplane", ml),
        ("V1 vs KServe V1", "rest v1 modelplane", ks_v1),
        ("V1 vs KServe best (V1 or V2)", "rest v1 modelplane", ks_v1 + ks_v2),
        ("V1 vs MLServer V2", "rest v1 modelplane", ml),
        ("V2 vs predict floor", "rest v2 modelplane", ["rest v2 floor-predict"]),
        ("V1 vs predict floor", "rest v1 modelplane", ["rest v2 floor-predict"]),
    ]:
        print(f"| {label} | " + " | ".join(f"{s[f'{ours} c={c}']['rps'] / best(peer, c):.2f}x" for c in cs) + " |")

    print("\n### gRPC (h2load, one HTTP/2 connection, c concurrent streams, raw contents)\n")
    print(head)
    print(sep)
    for label, prefix in [
        ("modelplane", "grpc modelplane"),
        ("KServe, defaults", "grpc kserve-default"),
        ("KServe, logs off", "grpc kserve-nolog"),
        ("MLServer, defaults", "grpc mlserver-default"),
        ("MLServer, logs off", "grpc mlserver-nolog"),
        ("floor: bare grpc.aio + predict", "grpc grpc-floor-predict"),
        ("floor: bare grpc.aio, fixed reply", "grpc grpc-floor-fixed"),
    ]:
        print(row(label, prefix))
    print("\n| ratio | " + " | ".join(f"c={c}" for c in cs) + " |")
    print(sep)
    for label, peer in [
        ("vs KServe best", ["grpc kserve-default", "grpc kserve-nolog"]),
        ("vs MLServer best", ["grpc mlserver-default", "grpc mlserver-nolog"]),
        ("vs bare grpc.aio + predict floor", ["grpc grpc-floor-predict"]),
        ("KServe best vs the same floor", None),
    ]:
        if peer is None:
            ks = ["grpc kserve-default", "grpc kserve-nolog"]
            if all(f"grpc grpc-floor-predict c={c}" in s for c in cs):
                print(
                    f"| {label} | "
                    + " | ".join(f"{best(ks, c) / s[f'grpc grpc-floor-predict c={c}']['rps']:.2f}x" for c in cs)
                    + " |"
                )
            continue
        if not all(f"{p} c={c}" in s for p in peer[:1] for c in cs):
            continue
        print(
            f"| {label} | "
            + " | ".join(f"{s[f'grpc modelplane c={c}']['rps'] / best(peer, c):.2f}x" for c in cs)
            + " |"
        )

    mb = data["args"]["binary_mb"]
    print(f"\n### {mb} MB FP32 tensor through the binary extension (echo model, c=1)\n")
    print("| server | req/s | p50 ms | p99 ms | errors | peak RSS growth MiB |")
    print("|---|---|---|---|---|---|")
    for label, name in [("modelplane", "modelplane-echo"), ("KServe", "kserve-echo"), ("floor", "floor-binary")]:
        r = s.get(f"binary{mb}MB {name} c=1")
        if r:
            print(
                f"| {label} | {r['rps']:.2f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | "
                f"{r['rss_growth_mib']:.0f} |"
            )
    ours, ks = s.get(f"binary{mb}MB modelplane-echo c=1"), s.get(f"binary{mb}MB kserve-echo c=1")
    if ours and ks and ks["rps"]:
        print(
            f"\nmodelplane ÷ KServe: {ours['rps'] / ks['rps']:.1f}x; "
            f"RSS growth ÷ payload: {ours['rss_growth_mib'] / mb:.2f}x"
        )
    print(
        f"\nErrors across all runs: {sum(r['errors'] for r in s.values())}; runs per cell: "
        f"{data['args']['repeats']} x {data['args']['duration']} s (medians)."
    )


if __name__ == "__main__":
    main()
