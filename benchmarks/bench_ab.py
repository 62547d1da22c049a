"""Benchmark: the hot path of this tree against another git ref, in the same run — the model server (REST V2 JSON at
c=16 with wrk, gRPC ModelInfer with h2load), the platform gateway (REST V1 and, as case `gateway-grpc`, gRPC
ModelInfer through the gateway at c=16) and, as case `tensor`, V2 binary REST to an ONNX MLP at c=1 (bench_tensor's
model: where a few microseconds per request show).

Both sides run from the project's venv, the other ref's source put first on PYTHONPATH (the editable install points
at this tree). Rounds alternate the order of the sides; medians and the ratio this/other are reported, since the
machine is shared and noisy — with the CPU time the measured process spent per request, which moves far less with
the other load on the machine than throughput does. Usage:

    python benchmarks/bench_ab.py --ref HEAD~1 [--duration 10] [--repeats 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_peers import IRIS_V1, IRIS_V2, RESULTS, ROOT, Server, grpc_body, iris_setup, lua_post, run_h2load, run_wrk

IRIS_ARGS = ["--model-name", "sklearn-iris", "--model-dir"]
CONNECTIONS = {"tensor": 1}  # cases measured at their own concurrency, not --connections


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (the throughput of a shared 2-core machine is noisy; the CPU a
    process spends per request is what a few microseconds of extra checks would change)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def source_tree(ref: str) -> Path:
    """`ref`'s src/ in a temporary directory (git archive: no work tree of ours is touched)."""
    out = Path(tempfile.mkdtemp(prefix="mp-ab-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "src"


def env_for(src: Path | None, home: Path | None = None) -> dict[str, str]:
    env = {"PYTHONPATH": str(src)} if src else {}
    if home is not None:
        env["MODELPLANE_HOME"] = str(home)
    return env


def model_server(name: str, py: str, model_args: list[str], src: Path | None) -> tuple[Server, int, int]:
    http, grpc = free_port(), free_port()
    cmd = [py, "-m", "modelplane", "serve", *model_args]
    cmd += ["--http-port", str(http), "--grpc-port", str(grpc), "--host", "127.0.0.1"]
    server = Server(name, cmd, f"http://127.0.0.1:{http}/v2/health/ready", env_for(src))
    server.start()
    server.wait()
    return server, http, grpc


def _api(port: int, method: str, path: str, token: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def start_platform(
    name: str, py: str, iris: Path, src: Path | None, predictor: dict | None = None
) -> tuple[Server, Path, int, int]:
    """A platform serving the iris model as `sklearn-iris` (extra predictor fields from `predictor`), Ready:
    (server, home, gateway port, gateway gRPC port)."""
    home = Path(tempfile.mkdtemp(prefix=f"mp-ab-{name}-"))
    model = home / "models" / "iris"  # inside the home: allowed by every version's defaults
    model.mkdir(parents=True)
    (model / "model.joblib").write_bytes((iris / "model.joblib").read_bytes())
    token = secrets.token_urlsafe(24)
    (home / "token").write_text(token)
    (home / "token").chmod(0o600)
    gw, api, grpc = free_port(), free_port(), free_port()
    cmd = [py, "-m", "modelplane", "up", "--port", str(gw), "--api-port", str(api), "--grpc-port", str(grpc)]
    server = Server(name, cmd, f"http://127.0.0.1:{api}/healthz", env_for(src, home))
    server.start()
    server.wait()
    spec = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": str(model)}, **(predictor or {})}
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "sklearn-iris"},
        "spec": {"predictor": spec},
    }
    path = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
    _api(api, "POST", f"{path}?apply=true", token, isvc)
    deadline = time.time() + 120
    while time.time() < deadline:
        status = _api(api, "GET", f"{path}/sklearn-iris", token).get("status") or {}
        if any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])):
            return server, home, gw, grpc
        time.sleep(0.2)
    raise RuntimeError(f"{name}: the isvc did not become Ready")


def grpc_route(url: str, body: Path, streams: int, duration: int) -> dict:
    """h2load through the gateway's gRPC side, routed to the iris InferenceService by metadata."""
    return run_h2load(url, body, streams, duration, ("x-modelplane-route: /serving/default/sklearn-iris",))


def tensor_setup() -> tuple[Path, Path]:
    """bench_tensor's ONNX MLP in a repository of its own, and wrk's script posting its V2 binary body."""
    from bench_tensor import binary_body
    from support import tensor_models as tm

    repo = RESULTS / "ab-tensor-repo"
    tm.onnx_mlp(repo / "mlp-onnx", hidden=256)
    body, n = binary_body("mlp-onnx")
    (RESULTS / "ab-tensor.bin").write_bytes(body)
    return repo, lua_post(RESULTS / "ab-tensor.lua", body_file=RESULTS / "ab-tensor.bin", ihcl=n, json_type=False)


CASES = {"rest": run_wrk, "grpc": run_h2load, "gateway": run_wrk, "gateway-grpc": grpc_route, "tensor": run_wrk}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="HEAD~1", help="the git ref to compare against")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--out", default=str(RESULTS / "ab.json"))
    ap.add_argument("--cases", default=",".join(CASES), help="a comma-separated subset of the cases")
    args = ap.parse_args()
    py, iris = iris_setup()
    py = str(ROOT / ".venv" / "bin" / "python")  # the editable install of this tree; PYTHONPATH picks the other
    sides = {"this": None, "other": source_tree(args.ref)}
    v2 = lua_post(RESULTS / "ab-v2.lua", json.dumps(IRIS_V2).encode())
    v1 = lua_post(RESULTS / "ab-v1.lua", json.dumps(IRIS_V1).encode())
    grpc_file = RESULTS / "ab-grpc.bin"
    grpc_file.write_bytes(grpc_body("sklearn-iris"))
    running: list[Server] = []
    cases = [c for c in CASES if c in args.cases.split(",")]
    rows: dict[str, dict[str, list[dict]]] = {case: {"this": [], "other": []} for case in cases}
    try:
        targets = {}
        tensor_repo, tensor_script = tensor_setup() if "tensor" in cases else (None, None)
        for side, src in sides.items():
            targets[side] = {}  # case -> (url, body, the process whose CPU the case measures)
            if "rest" in cases or "grpc" in cases:
                server, http, grpc = model_server(f"ab-server-{side}", py, [*IRIS_ARGS, str(iris)], src)
                running.append(server)
                targets[side]["rest"] = (f"http://127.0.0.1:{http}/v2/models/sklearn-iris/infer", v2, server.proc.pid)
                targets[side]["grpc"] = (f"http://127.0.0.1:{grpc}", grpc_file, server.proc.pid)
            if "gateway" in cases or "gateway-grpc" in cases:
                plat, _, gw, gw_grpc = start_platform(f"ab-platform-{side}", py, iris, src)
                running.append(plat)
                targets[side]["gateway"] = (
                    f"http://127.0.0.1:{gw}/serving/default/sklearn-iris/v1/models/sklearn-iris:predict",
                    v1,
                    plat.proc.pid,  # the platform process: the gateway's own cost, not the replica's
                )
                targets[side]["gateway-grpc"] = (f"http://127.0.0.1:{gw_grpc}", grpc_file, plat.proc.pid)
            if tensor_repo is not None:
                tensor_args = ["--model-dir", str(tensor_repo), "--intra_op_threads", "1"]
                server, http, _ = model_server(f"ab-tensor-{side}", py, tensor_args, src)
                running.append(server)
                targets[side]["tensor"] = (
                    f"http://127.0.0.1:{http}/v2/models/mlp-onnx/infer",
                    tensor_script,
                    server.proc.pid,
                )
        for side in sides:  # warm-up
            for case, (url, body, _) in targets[side].items():
                if case in cases:
                    CASES[case](url, body, CONNECTIONS.get(case, args.connections), 2)
        for r in range(args.repeats):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for case in rows:
                for side in order:
                    url, body, pid = targets[side][case]
                    before = cpu_seconds(pid)
                    row = CASES[case](url, body, CONNECTIONS.get(case, args.connections), args.duration)
                    row["cpu_us_per_request"] = (cpu_seconds(pid) - before) / (row["rps"] * args.duration) * 1e6
                    rows[case][side].append(row)
                    time.sleep(0.5)
    finally:
        for server in running:
            server.stop()
    summary = {}
    for case, by_side in rows.items():
        med = {side: statistics.median(x["rps"] for x in runs) for side, runs in by_side.items()}
        cpu = {side: statistics.median(x["cpu_us_per_request"] for x in runs) for side, runs in by_side.items()}
        summary[case] = {
            "this_rps": med["this"],
            "other_rps": med["other"],
            "ratio": med["this"] / med["other"],
            "this_cpu_us": cpu["this"],
            "other_cpu_us": cpu["other"],
        }
        print(
            f"{case:8s} this {med['this']:9.0f} req/s {cpu['this']:6.0f} us CPU   {args.ref} {med['other']:9.0f} req/s "
            f"{cpu['other']:6.0f} us CPU   ratio {med['this'] / med['other']:.3f}"
        )
    Path(args.out).write_text(json.dumps({"ref": args.ref, "args": vars(args), "summary": summary, "rows": rows}))


if __name__ == "__main__":
    main()
