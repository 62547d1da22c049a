"""Benchmark: prefix-aware routing across replicas — time to first token through the platform's gateway for chat
requests that share one of 16 long system prompts, sent to two InferenceServices of the same model with 2 replicas
each (one CPU each: one intra-op thread): one routed by prompt prefix (the default), one round robin
(`modelplane.io/prefix-routing: "false"`). Each replica's prefix cache holds about 10 of the 16 prompts, so a
replica that sees every prompt keeps evicting them while one that sees its share keeps them. Random-weight Llama
(4 layers, hidden 256, context 2048) built here; c=8, 8 new tokens per request, one warm-up pass over the prompts
per InferenceService, 2 interleaved rounds, medians.

    python benchmarks/bench_prefix.py [--requests 160] [--rounds 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from bench_peers import RESULTS  # noqa: E402
from support import llm_models  # noqa: E402
from support.observe import wait_for  # noqa: E402
from support.platform import applied  # noqa: E402

SYSTEMS = 16
NAMES = {"prefix-aware": "llm-prefix", "round robin": "llm-rr"}


def system_prompt(i: int) -> str:
    rng = random.Random(i)
    sentences = list(dict.fromkeys(llm_models.CORPUS))
    return f"You are assistant number {i}. " + " ".join(rng.choice(sentences) for _ in range(48))


def isvc(name: str, uri: Path, cache_tokens: int, prefix: bool) -> dict:
    annotations = {} if prefix else {"modelplane.io/prefix-routing": "false"}
    model = {
        "modelFormat": {"name": "huggingface"},
        "storageUri": str(uri),
        "args": [f"--prefix_cache_tokens={cache_tokens}"],
        "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}},
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "predictor": {
                "minReplicas": 2,
                "maxReplicas": 2,
                "model": model,
            }
        },
    }


async def one(client: httpx.AsyncClient, url: str, model: str, system: str, question: str) -> float:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        "max_tokens": 8,
        "temperature": 0,
        "stream": True,
    }
    start = time.perf_counter()
    async with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {(await response.aread())[:200]!r}")
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                return time.perf_counter() - start
    return time.perf_counter() - start


async def run(gateway: str, name: str, order: list[tuple[int, int]], systems: list[str], c: int) -> list[float]:
    url = f"{gateway}/serving/default/{name}/openai/v1/chat/completions"
    work = list(order)
    out: list[float] = []
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=c + 2)) as client:

        async def worker() -> None:
            while work:
                s, q = work.pop()
                out.append(await one(client, url, name, systems[s], f"Question {q}: what is item {q}?"))

        await asyncio.gather(*(worker() for _ in range(c)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=160)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--out", default=str(RESULTS / "prefix.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mp-bench-prefix-"))  # under the platform's file root
    model_dir = llm_models.causal_lm(work / "model", arch="llama", layers=4, hidden=256, context=2048)
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    systems = [system_prompt(i) for i in range(SYSTEMS)]
    prompt_tokens = statistics.mean(len(tokenizer(s)["input_ids"]) for s in systems)
    cache_tokens = int(prompt_tokens * 10)  # about 10 of the 16 prompts per replica
    rng = random.Random(7)
    results: dict[str, list[dict]] = {}
    docs = [
        isvc(NAMES["prefix-aware"], model_dir, cache_tokens, True),
        isvc(NAMES["round robin"], model_dir, cache_tokens, False),
    ]
    with applied(work, docs) as plat:
        wait_for(lambda: all(plat.ready(n) for n in NAMES.values()), "both InferenceServices Ready", timeout=300)
        for name in NAMES.values():  # warm-up: every prompt once
            asyncio.run(run(plat.gateway, name, [(s, 0) for s in range(SYSTEMS)], systems, args.concurrency))
        for _ in range(args.rounds):
            order = [(rng.randrange(SYSTEMS), q) for q in range(args.requests)]
            for label, name in NAMES.items():
                ttfts = sorted(asyncio.run(run(plat.gateway, name, order, systems, args.concurrency)))
                row = {
                    "ttft_p50_ms": 1000 * statistics.median(ttfts),
                    "ttft_p95_ms": 1000 * ttfts[int(0.95 * (len(ttfts) - 1))],
                    "requests": len(ttfts),
                }
                results.setdefault(label, []).append(row)
                print(label, {k: round(v, 1) for k, v in row.items()}, flush=True)
    summary = {
        label: {k: statistics.median(r[k] for r in rows) for k in ("ttft_p50_ms", "ttft_p95_ms")}
        for label, rows in results.items()
    }
    ratio = summary["round robin"]["ttft_p50_ms"] / summary["prefix-aware"]["ttft_p50_ms"]
    out = {
        "prompt_tokens": prompt_tokens,
        "cache_tokens": cache_tokens,
        "summary": summary,
        "ttft_p50_round_robin_over_prefix": round(ratio, 2),
        "rounds": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out["summary"], indent=2), "\nround robin / prefix-aware TTFT p50:", round(ratio, 2))


if __name__ == "__main__":
    main()
