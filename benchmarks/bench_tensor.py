"""Benchmark: tensor models over V2 binary REST and gRPC — modelplane's onnx / pytorch runtimes vs a bare floor
(floor_tensor.py: uvicorn ASGI or grpc.aio plus the runtime's own session call; "floor-h1" / "floor-h2": the same
bare app on modelplane's own HTTP/1.1 / HTTP/2 server, so that only the framework's work separates it from
modelplane; "modelplane-uvicorn" / "modelplane-grpcio": modelplane on the other front ends) vs KServe 0.21's
Python server with a minimal custom model making the same call (peer_kserve_tensor.py) vs Triton's own server with
a Python backend model making the same ONNX call (peer_triton_tensor.py; ONNX only). An ONNX MLP (4 → 256 → 3) and
a TorchScript MLP (4 → 8 → 3), 8 rows a request, one intra-op thread everywhere, one process each. Every server's
answer is checked against the model's own before it is timed. Rounds interleave the servers; medians reported.

Then, for the issue's floor targets, a paired run: modelplane and the floor alternate in short runs (`--pair-seconds`,
`--pairs` of them per model, protocol and concurrency, the order flipping every pair), and each pair gives a ratio.
A round above measures the two servers a minute or more apart, and at c=1 the machine's neighbours move the CPU cost
of a request by ±20% on that scale (bench_ab's CPU time per request); a pair measures them seconds apart, so the
median of the pairs' ratios moves far less with the noise than the ratio of the rounds' medians.

    python benchmarks/bench_tensor.py [--duration 8] [--repeats 3] [--concurrency 1 16] [--pairs 10] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from bench_peers import RESULTS, VENVS, Server, ensure_tools, lua_post, run_h2load, run_wrk, sh  # noqa: E402
from floor_tensor import runner  # noqa: E402
from peer_triton_tensor import triton_server  # noqa: E402
from support import tensor_models as tm  # noqa: E402

ROWS = 8
PEERS = ("floor", "floor-h1", "floor-h2", "kserve", "triton", "modelplane-uvicorn", "modelplane-grpcio")
X = np.random.default_rng(11).random((ROWS, 4), dtype=np.float32)
MP_PORTS = ["--http-port", "9300", "--grpc-port", "9301", "--host", "127.0.0.1"]
# the same server on the other front ends: uvicorn for REST, grpcio for gRPC (what modelplane's own servers gain)
UV_PORTS = ["--http-port", "9302", "--grpc-port", "9303", "--host", "127.0.0.1", "--http-server", "uvicorn"]
UV_PORTS += ["--grpc-server", "grpcio"]
MODELS = {"mlp-onnx": ("model.onnx", "x"), "mlp-pt": ("model.pt", "input-0")}  # name -> (file, input name)


def kserve_venv() -> Path:
    """KServe 0.21 with onnxruntime and the same torch (pip first: it takes the machine's CPU build)."""
    path = VENVS / "kserve-tensor"
    py = path / "bin" / "python"
    if not py.exists():
        sh([sys.executable, "-m", "venv", str(path)])
    if subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0:
        sh([str(py), "-m", "pip", "install", "--quiet", "torch==2.13.0"])
    uv = str(ROOT / ".venv" / "bin" / "uv")
    sh([uv, "pip", "install", "--quiet", "--python", str(py), "kserve==0.21.0", "onnxruntime", "torch==2.13.0"])
    return py


def binary_body(model: str) -> tuple[bytes, int]:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": MODELS[model][1],
                    "shape": [ROWS, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": X.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return head + X.tobytes(), len(head)


def grpc_body(model: str) -> bytes:
    from modelplane.grpcproto import inference_pb2 as pb

    req = pb.ModelInferRequest(model_name=model, raw_input_contents=[X.tobytes()])
    req.inputs.add(name=MODELS[model][1], datatype="FP32", shape=[ROWS, 4])
    msg = req.SerializeToString()
    return b"\x00" + struct.pack(">I", len(msg)) + msg


def check_rest(url: str, model: str, expected: np.ndarray) -> None:
    body, n = binary_body(model)
    req = urllib.request.Request(url, data=body, method="POST", headers={"Inference-Header-Content-Length": str(n)})
    with urllib.request.urlopen(req, timeout=30) as r:
        size = int(r.headers["Inference-Header-Content-Length"])
        raw = r.read()
    got = np.frombuffer(raw[size:], dtype="<f4").reshape(expected.shape)
    assert np.allclose(got, expected, atol=1e-4), (url, got, expected)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--pairs", type=int, default=10, help="paired modelplane/floor runs per case (0: none)")
    ap.add_argument("--pair-seconds", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "tensor.json"))
    args = ap.parse_args()
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    ensure_tools()
    repo = RESULTS / "tensor-repo"
    files = {
        "mlp-onnx": tm.onnx_mlp(repo / "mlp-onnx", hidden=256),
        "mlp-pt": tm.torchscript_mlp(repo / "mlp-pt"),
    }
    expected = {m: np.asarray(runner(str(f))[1](X)) for m, f in files.items()}
    ks = kserve_venv()
    py = sys.executable  # the project's venv: modelplane with its onnx and torch extras
    servers: dict[str, Server] = {
        "modelplane": Server(
            "modelplane",
            [py, "-m", "modelplane", "serve", "--model-dir", str(repo), "--intra_op_threads", "1", *MP_PORTS],
            "http://127.0.0.1:9300/v2/health/ready",
        ),
        "modelplane-uvicorn": Server(  # the same server on uvicorn (--http-server uvicorn): what h1 gains
            "modelplane-uvicorn",
            [py, "-m", "modelplane", "serve", "--model-dir", str(repo), "--intra_op_threads", "1", *UV_PORTS],
            "http://127.0.0.1:9302/v2/health/ready",
        ),
    }
    ports = {"mlp-onnx": 9310, "mlp-pt": 9320}
    for model, base in ports.items():
        servers[f"floor-rest {model}"] = Server(
            f"floor-rest-{model}",
            [py, str(HERE / "floor_tensor.py"), "rest", str(base), str(files[model])],
            f"http://127.0.0.1:{base}/",
        )
        servers[f"floor-h1 {model}"] = Server(  # the same bare app on modelplane's own HTTP server
            f"floor-h1-{model}",
            [py, str(HERE / "floor_tensor.py"), "rest-h1", str(base + 4), str(files[model])],
            f"http://127.0.0.1:{base + 4}/",
        )
        servers[f"floor-h2 {model}"] = Server(  # the same bare method on modelplane's own HTTP/2
            f"floor-h2-{model}",
            [py, str(HERE / "floor_tensor.py"), "grpc-h2", str(base + 5), str(files[model])],
            None,
            port=base + 5,
        )
        servers[f"floor-grpc {model}"] = Server(
            f"floor-grpc-{model}",
            [py, str(HERE / "floor_tensor.py"), "grpc", str(base + 1), str(files[model])],
            None,
            port=base + 1,
        )
        servers[f"kserve {model}"] = Server(
            f"kserve-{model}",
            [
                str(ks),
                str(HERE / "peer_kserve_tensor.py"),
                "--model_name",
                model,
                "--model_file",
                str(files[model]),
                "--http_port",
                str(base + 2),
                "--grpc_port",
                str(base + 3),
            ],
            f"http://127.0.0.1:{base + 2}/v2/health/ready",
        )
    triton = triton_server("mlp-onnx", files["mlp-onnx"], RESULTS / "triton-repo", 9330, 9331)
    if triton is not None:
        servers["triton mlp-onnx"] = triton
    rest: list[tuple[str, str, str]] = []  # (server, model, url)
    grpc: list[tuple[str, str, str]] = []
    for model, base in ports.items():
        rest += [
            ("modelplane", model, f"http://127.0.0.1:9300/v2/models/{model}/infer"),
            ("modelplane-uvicorn", model, f"http://127.0.0.1:9302/v2/models/{model}/infer"),
            ("floor", model, f"http://127.0.0.1:{base}/"),
            ("floor-h1", model, f"http://127.0.0.1:{base + 4}/"),
            ("kserve", model, f"http://127.0.0.1:{base + 2}/v2/models/{model}/infer"),
        ]
        grpc += [
            ("modelplane", model, "http://127.0.0.1:9301"),
            ("modelplane-grpcio", model, "http://127.0.0.1:9303"),
            ("floor", model, f"http://127.0.0.1:{base + 1}"),
            ("floor-h2", model, f"http://127.0.0.1:{base + 5}"),
            ("kserve", model, f"http://127.0.0.1:{base + 3}"),
        ]
    if triton is not None:  # ONNX only: that Triton build has no PyTorch (or ONNX) backend
        rest.append(("triton", "mlp-onnx", "http://127.0.0.1:9330/v2/models/mlp-onnx/infer"))
        grpc.append(("triton", "mlp-onnx", "http://127.0.0.1:9331"))
    scripts, bodies = {}, {}
    for model in MODELS:
        body, n = binary_body(model)
        (RESULTS / f"{model}.bin").write_bytes(body)
        scripts[model] = lua_post(RESULTS / f"{model}.lua", body_file=RESULTS / f"{model}.bin", ihcl=n, json_type=False)
        bodies[model] = RESULTS / f"{model}.grpc"
        bodies[model].write_bytes(grpc_body(model))
    results: dict[str, list[dict]] = {}
    pairs: dict[str, dict] = {}
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait()
        for _, model, url in rest:
            check_rest(url, model, expected[model])
        for _ in range(args.repeats):
            for c in args.concurrency:
                for name, model, url in rest:
                    key = f"rest-binary {model} {name} c={c}"
                    results.setdefault(key, []).append(run_wrk(url, scripts[model], c, args.duration))
                    print(key, results[key][-1]["rps"], flush=True)
                for name, model, url in grpc:
                    key = f"grpc {model} {name} c={c}"
                    results.setdefault(key, []).append(run_h2load(url, bodies[model], c, args.duration))
                    print(key, results[key][-1]["rps"], flush=True)
        pairs = paired_runs(rest, grpc, scripts, bodies, args)
    finally:
        for s in servers.values():
            s.stop()
    summary = {}
    for key, runs in results.items():
        summary[key] = {
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "rounds": [r["rps"] for r in runs],
        }
    ratios = {}
    for key in summary:
        if " modelplane " in key:
            for peer in PEERS:
                other = key.replace(" modelplane ", f" {peer} ")
                if other in summary and summary[other]["rps"]:
                    ratios[f"{key} / {peer}"] = round(summary[key]["rps"] / summary[other]["rps"], 2)
    out = {"duration": args.duration, "repeats": args.repeats, "rows": ROWS, "summary": summary, "ratios": ratios}
    out["paired"] = pairs
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(ratios, indent=2))
    for key, row in pairs.items():
        print(f"paired {key}: median ratio {row['median_ratio']:.2f} (pairs {row['ratios']})")


def paired_runs(
    rest: list[tuple[str, str, str]],
    grpc: list[tuple[str, str, str]],
    scripts: dict[str, Path],
    bodies: dict[str, Path],
    args: argparse.Namespace,
) -> dict[str, dict]:
    """modelplane against the floor in alternating short runs: per model, protocol and concurrency, each pair's
    ratio of requests per second and their median."""
    out: dict[str, dict] = {}
    for protocol, targets in (("rest-binary", rest), ("grpc", grpc)):
        urls = {(name, model): url for name, model, url in targets}
        for model in MODELS:
            for c in args.concurrency:
                ours, floor = urls[("modelplane", model)], urls[("floor", model)]
                ratios = []
                for i in range(args.pairs):
                    order = [ours, floor] if i % 2 == 0 else [floor, ours]
                    rps = {}
                    for url in order:
                        if protocol == "grpc":
                            rps[url] = run_h2load(url, bodies[model], c, args.pair_seconds)["rps"]
                        else:
                            rps[url] = run_wrk(url, scripts[model], c, args.pair_seconds)["rps"]
                    ratios.append(round(rps[ours] / rps[floor], 3))
                key = f"{protocol} {model} modelplane/floor c={c}"
                out[key] = {"median_ratio": statistics.median(ratios), "ratios": ratios}
                print("paired", key, out[key]["median_ratio"], flush=True)
    return out


if __name__ == "__main__":
    main()
