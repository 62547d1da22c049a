"""Benchmark peer: Triton's own server (the `tritonserver` binary nvidia-pytriton 0.7 ships, the one the Triton
ServingRuntime test runs) serving the ONNX MLP. That build has only the Python backend, so the model is a Python
backend model making the same ONNX Runtime session call (one intra-op thread) — Triton's HTTP/gRPC front end,
request scheduling and its Python-backend IPC, around the same call. ONNX Runtime is added to the venv
scripts/setup.sh makes for that server (.cache/pytriton)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench_peers import Server

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".cache" / "pytriton"
BINARY = VENV / "lib" / "python3.11" / "site-packages" / "pytriton" / "tritonserver"
CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "x", data_type: TYPE_FP32, dims: [ -1, 4 ] }} ]
output [ {{ name: "scores", data_type: TYPE_FP32, dims: [ -1, 3 ] }} ]
instance_group [ {{ count: 1, kind: KIND_CPU }} ]
"""
MODEL = """
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession({path!r}, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            y = self.session.run(None, {{"x": x}})[0]
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("scores", y)]))
        return responses
"""


def triton_server(name: str, onnx_file: Path, repo: Path, http_port: int, grpc_port: int) -> Server | None:
    """The Triton server for `name`, or None (and why, printed) when the pytriton venv is not there."""
    if not (VENV / ".ready").exists() or not (BINARY / "bin" / "tritonserver").exists():
        print("no Triton row: scripts/setup.sh did not make .cache/pytriton here", flush=True)
        return None
    uv = str(ROOT / ".venv" / "bin" / "uv")
    python = str(VENV / "bin" / "python")
    subprocess.run([uv, "pip", "install", "--quiet", "--python", python, "onnxruntime", "numpy<2"], check=True)
    (repo / name / "1").mkdir(parents=True, exist_ok=True)
    (repo / name / "config.pbtxt").write_text(CONFIG.format(name=name))
    (repo / name / "1" / "model.py").write_text(MODEL.format(path=str(onnx_file.resolve())))
    cmd = [
        str(BINARY / "bin" / "tritonserver"),
        f"--model-repository={repo}",
        f"--backend-directory={BINARY / 'backends'}",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=false",
    ]
    env = {"PATH": f"{VENV / 'bin'}:/usr/bin:/bin"}  # the Python backend's interpreter
    return Server(f"triton-{name}", cmd, f"http://127.0.0.1:{http_port}/v2/health/ready", env=env)
