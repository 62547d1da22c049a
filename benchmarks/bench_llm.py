"""Benchmark: generative serving on the CPU — output tokens/s and time to first token (p50/p95) at c=1, 8 and 32
for modelplane's continuous-batching engine vs the same server one sequence at a time (`--max_num_seqs 1`) vs
`transformers serve` (Hugging Face's own OpenAI-compatible server, the same transformers version) with and without
its continuous batching. One random-weight Llama (4 layers, hidden 256, ~10 MB) built here, streamed chat
completions of up to 64 tokens from the OpenAI routes, 4 x c requests a case (at least 16), after one warm-up
case per server; rounds interleave the servers; medians reported. Tokens are the server's own usage counts when
it reports them, else the streamed text re-tokenized with the model's tokenizer (the same for every server).

    python benchmarks/bench_llm.py [--rounds 2] [--concurrency 1 8 32] [--max-tokens 64] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from bench_peers import RESULTS, VENVS, Server, sh  # noqa: E402
from support import llm_models  # noqa: E402

TRANSFORMERS = "5.24.0"  # the project venv's version: the peer runs the same code paths
SENTENCES = [s for s in dict.fromkeys(llm_models.CORPUS)]


def transformers_venv() -> Path:
    """`transformers serve` needs fastapi and accelerate, which the project does not: a venv of its own, torch from
    the machine's CPU build (pip first)."""
    path = VENVS / "transformers-serve"
    py = path / "bin" / "python"
    if not py.exists():
        sh([sys.executable, "-m", "venv", str(path)])
    if subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0:
        sh([str(py), "-m", "pip", "install", "--quiet", "torch==2.13.0"])
    uv = str(ROOT / ".venv" / "bin" / "uv")
    sh([uv, "pip", "install", "--quiet", "--python", str(py), f"transformers[serving]=={TRANSFORMERS}", "accelerate"])
    return path / "bin" / "transformers"


def prompts(count: int) -> list[str]:
    out = []
    for i in range(count):
        picked = [SENTENCES[(i + k) % len(SENTENCES)] for k in range(1 + i % 3)]
        out.append(f"Request {i}: " + " ".join(picked))
    return out


async def one(client: httpx.AsyncClient, url: str, model: str, prompt: str, max_tokens: int) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = None
    text, usage = [], None
    async with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            doc = json.loads(line[6:])
            if doc.get("usage"):
                usage = doc["usage"]
            for choice in doc.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    if first is None:
                        first = time.perf_counter() - start
                    text.append(piece)
    return {"ttft": first if first is not None else time.perf_counter() - start, "text": "".join(text),
            "usage": usage, "elapsed": time.perf_counter() - start}  # fmt: skip


async def case(url: str, model: str, concurrency: int, max_tokens: int, tokenizer) -> dict:
    work = prompts(max(16, 4 * concurrency))
    results: list[dict] = []
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency + 4)) as client:

        async def worker() -> None:
            while work:
                results.append(await one(client, url, model, work.pop(), max_tokens))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    tokens = 0
    counted = "usage"
    for r in results:
        if r["usage"] and r["usage"].get("completion_tokens"):
            tokens += r["usage"]["completion_tokens"]
        else:
            counted = "retokenized"
            tokens += len(tokenizer(r["text"], add_special_tokens=False)["input_ids"])
    ttfts = sorted(r["ttft"] for r in results)
    return {
        "requests": len(results),
        "tokens": tokens,
        "tokens_per_s": tokens / wall,
        "ttft_p50_ms": 1000 * statistics.median(ttfts),
        "ttft_p95_ms": 1000 * ttfts[min(len(ttfts) - 1, int(0.95 * len(ttfts)))],
        "wall_s": wall,
        "counted": counted,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--out", default=str(RESULTS / "llm.json"))
    args = ap.parse_args()
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    model_dir = RESULTS / "llm-model"
    if not (model_dir / "config.json").exists():
        llm_models.causal_lm(model_dir, arch="llama", layers=4, hidden=256, context=1024)
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    ts = transformers_venv()
    py = sys.executable
    env = {"HF_HUB_OFFLINE": "1"}
    served = [str(model_dir), "--model-name", "tiny"]
    servers = {
        "modelplane": (Server("llm-modelplane", [py, "-m", "modelplane", "serve", "--model-dir", *served,
                                                 "--http-port", "9600", "--grpc-port", "9601"],
                              "http://127.0.0.1:9600/v2/health/ready", env), "http://127.0.0.1:9600", "tiny"),
        "one at a time": (Server("llm-one", [py, "-m", "modelplane", "serve", "--model-dir", *served,
                                             "--max_num_seqs", "1", "--http-port", "9610", "--grpc-port", "9611"],
                                 "http://127.0.0.1:9610/v2/health/ready", env), "http://127.0.0.1:9610", "tiny"),
        "transformers serve": (Server("llm-transformers", [str(ts), "serve", str(model_dir), "--device", "cpu",
                                                           "--dtype", "float32", "--port", "9620"],
                                      "http://127.0.0.1:9620/health", env), "http://127.0.0.1:9620", str(model_dir)),
        "transformers serve --continuous-batching": (
            Server("llm-transformers-cb", [str(ts), "serve", str(model_dir), "--device", "cpu", "--dtype", "float32",
                                           "--continuous-batching", "--port", "9630"],
                   "http://127.0.0.1:9630/health", env), "http://127.0.0.1:9630", str(model_dir)),
    }  # fmt: skip
    results: dict[str, list[dict]] = {}
    try:
        for server, _, _ in servers.values():
            server.start()
        for server, _, _ in servers.values():
            server.wait(300)
        for _, base, model in servers.values():  # warm-up: first forwards, allocators, any compilation
            asyncio.run(case(base + "/v1/chat/completions", model, 8, args.max_tokens, tokenizer))
        for _ in range(args.rounds):
            for c in args.concurrency:
                for name, (_, base, model) in servers.items():
                    key = f"{name} c={c}"
                    try:
                        got = asyncio.run(case(base + "/v1/chat/completions", model, c, args.max_tokens, tokenizer))
                    except (RuntimeError, httpx.HTTPError) as exc:
                        got = {"error": str(exc)[:300]}
                    results.setdefault(key, []).append(got)
                    print(key, {k: round(v, 1) if isinstance(v, float) else v for k, v in got.items()}, flush=True)
    finally:
        for server, _, _ in servers.values():
            server.stop()
    summary = {}
    for key, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            summary[key] = {"error": runs[-1]["error"]}
            continue
        summary[key] = {f: statistics.median(r[f] for r in ok) for f in ("tokens_per_s", "ttft_p50_ms", "ttft_p95_ms")}
        summary[key] |= {"rounds": [round(r["tokens_per_s"], 1) for r in ok], "counted": ok[-1]["counted"]}
    ratios = {}
    for c in args.concurrency:
        mine = summary.get(f"modelplane c={c}", {})
        for peer in ("one at a time", "transformers serve", "transformers serve --continuous-batching"):
            other = summary.get(f"{peer} c={c}", {})
            if "tokens_per_s" in mine and "tokens_per_s" in other:
                ratios[f"c={c} vs {peer}"] = round(mine["tokens_per_s"] / other["tokens_per_s"], 2)
    out = {"rounds": args.rounds, "max_tokens": args.max_tokens, "summary": summary, "ratios": ratios}
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    main()
