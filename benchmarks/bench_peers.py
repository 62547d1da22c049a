"""Benchmark: modelplane vs KServe 0.21 vs MLServer 1.7.1 (and two bare-ASGI floors) on the same iris SVC.

Every server runs at once on loopback, one worker each, each peer from its own virtualenv built here with the
same scikit-learn. Runs are interleaved over `--repeats` rounds and medians reported, since the machine is
shared and noisy. REST load: wrk -t1 (Lua POST script); gRPC load: h2load on one HTTP/2 connection with C
concurrent streams sending a raw-contents ModelInferRequest. Usage:

    python benchmarks/bench_peers.py [--duration 15] [--repeats 3] [--concurrency 1 16 64] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = HERE / ".venvs"
RESULTS = HERE / "results"
SKLEARN = "scikit-learn==1.5.2"
IRIS_V2 = {
    "inputs": [
        {"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
    ]
}
IRIS_V1 = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
ENVS = {
    "modelplane": ["-e", f"{ROOT}[sklearn]", SKLEARN],
    "kserve": ["kserve==0.21.0", SKLEARN, "joblib"],
    "mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", SKLEARN],
}


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("wrk", "wrk"), ("h2load", "nghttp2-client")) if not shutil.which(tool)]
    if missing:
        sh(["apt-get", "update", "-qq"])
        sh(["apt-get", "install", "-y", "-qq", *missing])


def venv(name: str) -> Path:
    path = VENVS / name
    py = path / "bin" / "python"
    if not py.exists():
        sh([sys.executable, "-m", "venv", str(path)])
    uv = shutil.which("uv") or str(ROOT / ".venv" / "bin" / "uv")
    sh([uv, "pip", "install", "--quiet", "--python", str(py), *ENVS[name]])
    return py


def iris_setup() -> tuple[str, Path]:
    """Tools, the modelplane benchmark venv and the iris SVC model: (python, model dir)."""
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    ensure_tools()
    py = str(venv("modelplane"))
    iris = RESULTS / "iris"
    sh([py, "-m", "modelplane.samples.iris", "sklearn", str(iris)], stdout=subprocess.DEVNULL)
    return py, iris


def mlserver_dir(model_dir: Path, variant: str, port: int, debug: bool) -> Path:
    """An MLServer 1.7.1 model repository serving the iris model as `sklearn-iris` on `port` (gRPC port + 1)."""
    d = RESULTS / f"mlserver-{variant}"
    (d / "sklearn-iris").mkdir(parents=True, exist_ok=True)
    shutil.copy(model_dir / "model.joblib", d / "sklearn-iris" / "model.joblib")
    settings = {
        "http_port": port,
        "grpc_port": port + 1,
        "debug": debug,
        "parallel_workers": 0,
        "metrics_port": port + 2,
    }
    (d / "settings.json").write_text(json.dumps(settings))
    model = {
        "name": "sklearn-iris",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    (d / "sklearn-iris" / "model-settings.json").write_text(json.dumps(model))
    return d


@dataclass
class Server:
    name: str
    cmd: list[str]
    ready_url: str | None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    port: int = 0  # for servers without an HTTP readiness URL: wait until this port accepts
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = (RESULTS / "logs" / f"{self.name}.log").open("wb")
        self.proc = subprocess.Popen(
            self.cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd, env={**os.environ, **self.env}
        )

    def wait(self, timeout: float = 120) -> None:
        import urllib.request

        deadline = time.time() + timeout
        if self.ready_url is None:  # gRPC-only: wait for the port
            import socket

            while time.time() < deadline:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                        return
                time.sleep(0.2)
            raise RuntimeError(f"{self.name} not listening")
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {RESULTS / 'logs' / self.name}.log")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready")

    def rss_kib(self, key: str = "VmRSS") -> int:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"{key}:\s+(\d+)", text).group(1))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def lua_post(
    path: Path,
    body: bytes | None = None,
    body_file: Path | None = None,
    ihcl: int | None = None,
    json_type: bool = True,
) -> Path:
    lines = ['wrk.method = "POST"']
    if body_file:
        lines.append(f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*all"); f:close()')
    else:
        lines.append(f"wrk.body = {json.dumps(body.decode())}")
    if json_type:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    if ihcl is not None:
        lines.append(f'wrk.headers["Inference-Header-Content-Length"] = "{ihcl}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, script: Path, conns: int, duration: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(re.search(r"\n\s+50%\s+(\S+)", out).group(1)),
        "p99_ms": _ms(re.search(r"\n\s+99%\s+(\S+)", out).group(1)),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": sock.group(1) if sock else "",
    }


def run_h2load(url: str, body: Path, streams: int, duration: int, headers: tuple[str, ...] = ()) -> dict:
    """gRPC ModelInfer calls with `body` (a framed message) over one connection, `streams` at a time; `headers`
    are extra request headers ("name: value")."""
    log = RESULTS / "h2load.log"
    log.unlink(missing_ok=True)
    out = subprocess.run(
        [
            "h2load",
            "-c1",
            f"-m{streams}",
            "-D",
            str(duration),
            "--warm-up-time=1",
            "-d",
            str(body),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            *(arg for header in headers for arg in ("-H", header)),
            f"--log-file={log}",
            url + "/inference.GRPCInferenceService/ModelInfer",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lat = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines() if line.strip())
    ok = re.search(r"status codes: (\d+) 2xx", out)
    return {
        "rps": float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1)),
        "p50_ms": lat[len(lat) // 2] / 1000,
        "p99_ms": lat[int(len(lat) * 0.99)] / 1000,
        "errors": len(lat) - int(ok.group(1)) if ok else len(lat),
    }


def grpc_body(model: str) -> bytes:
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np

    from modelplane.grpcproto import inference_pb2 as pb

    data = np.asarray(IRIS_V2["inputs"][0]["data"], dtype="<f4")
    req = pb.ModelInferRequest(model_name=model, raw_input_contents=[data.tobytes()])
    req.inputs.add(name="input-0", datatype="FP32", shape=[2, 4])
    msg = req.SerializeToString()
    return b"\x00" + struct.pack(">I", len(msg)) + msg


def check_grpc(port: int, model: str) -> list:
    sys.path.insert(0, str(ROOT / "src"))
    import grpc
    import numpy as np

    from modelplane.grpcproto import inference_pb2 as pb
    from modelplane.grpcproto import inference_pb2_grpc as pb_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        res = pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(
            pb.ModelInferRequest.FromString(grpc_body(model)[5:]), timeout=10
        )
    return np.frombuffer(res.raw_output_contents[0], dtype=np.int64).tolist()


def check_binary(url: str, body_file: Path, ihcl: int, tensor) -> None:
    """The echo servers must send the tensor back bit for bit before their speed means anything."""
    import urllib.request

    import numpy as np

    req = urllib.request.Request(
        url, data=body_file.read_bytes(), method="POST", headers={"Inference-Header-Content-Length": str(ihcl)}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        n = int(r.headers["Inference-Header-Content-Length"])
        body = r.read()
    assert np.array_equal(np.frombuffer(body[n:], dtype="<f4"), tensor), url


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--binary-mb", type=int, default=16)
    ap.add_argument("--out", default=str(RESULTS / "peers.json"))
    ap.add_argument("--only", nargs="+", choices=["rest", "grpc", "binary"], default=["rest", "grpc", "binary"])
    ap.add_argument("--servers", nargs="+", help="run only cases of these servers (names as in the results)")
    args = ap.parse_args()
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    ensure_tools()
    py = {name: venv(name) for name in ENVS}
    model_dir = RESULTS / "iris"
    sh([str(py["modelplane"]), "-m", "modelplane.samples.iris", "sklearn", str(model_dir)], stdout=subprocess.DEVNULL)
    mls = {
        variant: mlserver_dir(model_dir, variant, port, debug)
        for variant, port, debug in (("default", 9130, True), ("nolog", 9140, False))
    }
    mp = [str(py["modelplane"]), "-m", "modelplane", "serve", "--host", "127.0.0.1"]
    ks = [str(py["kserve"]), str(HERE / "peer_kserve.py")]
    floor = [str(py["modelplane"]), str(HERE / "floor_app.py")]
    servers = {
        "modelplane": Server(
            "modelplane",
            [
                *mp,
                "--model-dir",
                str(model_dir),
                "--model-name",
                "sklearn-iris",
                "--http-port",
                "9100",
                "--grpc-port",
                "9101",
            ],
            "http://127.0.0.1:9100/v2/health/ready",
        ),
        "kserve-default": Server(
            "kserve-default",
            [
                *ks,
                "--model_name",
                "sklearn-iris",
                "--model_dir",
                str(model_dir),
                "--http_port",
                "9110",
                "--grpc_port",
                "9111",
            ],
            "http://127.0.0.1:9110/v2/health/ready",
        ),
        "kserve-nolog": Server(
            "kserve-nolog",
            [
                *ks,
                "--model_name",
                "sklearn-iris",
                "--model_dir",
                str(model_dir),
                "--http_port",
                "9120",
                "--grpc_port",
                "9121",
                "--enable_latency_logging",
                "false",
                "--no_access_log",
            ],
            "http://127.0.0.1:9120/v2/health/ready",
        ),
        "mlserver-default": Server(
            "mlserver-default",
            [str(py["mlserver"].parent / "mlserver"), "start", str(mls["default"])],
            "http://127.0.0.1:9130/v2/health/ready",
        ),
        "mlserver-nolog": Server(
            "mlserver-nolog",
            [str(py["mlserver"].parent / "mlserver"), "start", str(mls["nolog"])],
            "http://127.0.0.1:9140/v2/health/ready",
        ),
        "floor-predict": Server("floor-predict", [*floor, "predict", "9150", str(model_dir)], "http://127.0.0.1:9150/"),
        "floor-fixed": Server("floor-fixed", [*floor, "fixed", "9160"], "http://127.0.0.1:9160/"),
        "modelplane-echo": Server(
            "modelplane-echo",
            [
                *mp,
                "--model-class",
                "bench_models:Echo",
                "--model-name",
                "echo",
                "--http-port",
                "9170",
                "--grpc-port",
                "9171",
            ],
            "http://127.0.0.1:9170/v2/health/ready",
            env={"PYTHONPATH": str(HERE)},
        ),
        "kserve-echo": Server(
            "kserve-echo",
            [
                *ks,
                "--echo",
                "--model_name",
                "echo",
                "--http_port",
                "9180",
                "--grpc_port",
                "9181",
                "--enable_latency_logging",
                "false",
                "--no_access_log",
            ],
            "http://127.0.0.1:9180/v2/health/ready",
        ),
        "floor-binary": Server("floor-binary", [*floor, "binary", "9190"], "http://127.0.0.1:9190/"),
        # gRPC floors answer no HTTP: readiness is their port accepting connections
        "grpc-floor-predict": Server(
            "grpc-floor-predict",
            [str(py["modelplane"]), str(HERE / "floor_grpc.py"), "predict", "9201", str(model_dir)],
            None,
            port=9201,
        ),
        "grpc-floor-fixed": Server(
            "grpc-floor-fixed", [str(py["modelplane"]), str(HERE / "floor_grpc.py"), "fixed", "9211"], None, port=9211
        ),
    }
    v2 = json.dumps(IRIS_V2).encode()
    scripts = {"v2": lua_post(RESULTS / "v2.lua", v2), "v1": lua_post(RESULTS / "v1.lua", json.dumps(IRIS_V1).encode())}
    import numpy as np

    tensor = np.random.default_rng(0).random(args.binary_mb * 2**20 // 4, dtype=np.float32)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [tensor.size],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": tensor.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    (RESULTS / "binary.body").write_bytes(head + tensor.tobytes())
    scripts["binary"] = lua_post(
        RESULTS / "binary.lua", body_file=RESULTS / "binary.body", ihcl=len(head), json_type=False
    )
    (RESULTS / "grpc.body").write_bytes(grpc_body("sklearn-iris"))
    rest_cases = [
        ("modelplane", "v2", "http://127.0.0.1:9100/v2/models/sklearn-iris/infer"),
        ("modelplane", "v1", "http://127.0.0.1:9100/v1/models/sklearn-iris:predict"),
        ("kserve-default", "v2", "http://127.0.0.1:9110/v2/models/sklearn-iris/infer"),
        ("kserve-nolog", "v2", "http://127.0.0.1:9120/v2/models/sklearn-iris/infer"),
        ("kserve-default", "v1", "http://127.0.0.1:9110/v1/models/sklearn-iris:predict"),
        ("kserve-nolog", "v1", "http://127.0.0.1:9120/v1/models/sklearn-iris:predict"),
        ("mlserver-default", "v2", "http://127.0.0.1:9130/v2/models/sklearn-iris/infer"),
        ("mlserver-nolog", "v2", "http://127.0.0.1:9140/v2/models/sklearn-iris/infer"),
        ("floor-predict", "v2", "http://127.0.0.1:9150/"),
        ("floor-fixed", "v2", "http://127.0.0.1:9160/"),
    ]
    grpc_cases = [
        ("modelplane", 9101),
        ("kserve-default", 9111),
        ("kserve-nolog", 9121),
        ("mlserver-default", 9131),
        ("mlserver-nolog", 9141),
        ("grpc-floor-predict", 9201),
        ("grpc-floor-fixed", 9211),
    ]
    binary_cases = [
        ("modelplane-echo", "http://127.0.0.1:9170/v2/models/echo/infer"),
        ("kserve-echo", "http://127.0.0.1:9180/v2/models/echo/infer"),
        ("floor-binary", "http://127.0.0.1:9190/"),
    ]
    if args.servers:
        rest_cases = [c for c in rest_cases if c[0] in args.servers]
        grpc_cases = [c for c in grpc_cases if c[0] in args.servers]
        binary_cases = [c for c in binary_cases if c[0] in args.servers]
    rest_cases = rest_cases if "rest" in args.only else []
    grpc_cases = grpc_cases if "grpc" in args.only else []
    binary_cases = binary_cases if "binary" in args.only else []
    needed = {c[0] for c in rest_cases + grpc_cases + binary_cases}
    servers = {k: v for k, v in servers.items() if k in needed}
    raw: dict[str, list[dict]] = {}
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            s.wait()
        for name, port in grpc_cases:
            if name != "grpc-floor-fixed":
                assert check_grpc(port, "sklearn-iris") == [1, 1], name
        for _, url in binary_cases:
            check_binary(url, RESULTS / "binary.body", len(head), tensor)
        for rep in range(args.repeats):
            for name, proto, url in rest_cases:
                run_wrk(url, scripts[proto], 16, args.warmup)
                for c in args.concurrency:
                    key = f"rest {proto} {name} c={c}"
                    raw.setdefault(key, []).append(run_wrk(url, scripts[proto], c, args.duration))
                    print(rep, key, raw[key][-1], flush=True)
            for name, port in grpc_cases:
                for c in args.concurrency:
                    key = f"grpc {name} c={c}"
                    raw.setdefault(key, []).append(
                        run_h2load(f"http://127.0.0.1:{port}", RESULTS / "grpc.body", c, args.duration)
                    )
                    print(rep, key, raw[key][-1], flush=True)
            for name, url in binary_cases:
                before = servers[name].rss_kib()
                result = run_wrk(url, scripts["binary"], 1, args.duration)
                result["rss_growth_mib"] = (servers[name].rss_kib("VmHWM") - before) / 1024
                key = f"binary{args.binary_mb}MB {name} c=1"
                raw.setdefault(key, []).append(result)
                print(rep, key, result, flush=True)
    finally:
        for s in servers.values():
            s.stop()
    summary = {
        k: {m: statistics.median(r[m] for r in runs) for m in ("rps", "p50_ms", "p99_ms")}
        | {"errors": sum(r["errors"] for r in runs), "runs": len(runs)}
        | ({"rss_growth_mib": max(r["rss_growth_mib"] for r in runs)} if "rss_growth_mib" in runs[0] else {})
        for k, runs in raw.items()
    }
    Path(args.out).write_text(json.dumps({"args": vars(args), "summary": summary, "raw": raw}, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
