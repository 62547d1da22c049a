"""Benchmark peer: KServe 0.21's Python server with a minimal custom model making the same session call as the
floor (runs in KServe's venv; KServe has no ONNX or TorchScript runtime of its own in Python).

Usage: python peer_kserve_tensor.py --model_name NAME --model_file FILE --http_port P --grpc_port Q
"""

import logging
import sys

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


class TensorModel(Model):
    def __init__(self, name, path):
        super().__init__(name)
        self.path = path
        self.load()

    def load(self):
        if self.path.endswith(".onnx"):
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            self.call = lambda x: session.run(None, {name: x})[0]
        else:
            import torch

            torch.set_num_threads(1)
            module = torch.jit.load(self.path).eval()

            def call(x):
                with torch.inference_mode():
                    return module(torch.from_numpy(x)).numpy()

            self.call = call
        self.ready = True
        return True

    def predict(self, payload: InferRequest, headers=None):
        y = np.ascontiguousarray(self.call(payload.inputs[0].as_numpy()), dtype=np.float32)
        out = InferOutput("output-0", list(y.shape), "FP32")
        out.set_data_from_numpy(y, binary_data=True)
        return InferResponse(payload.id, self.name, [out], use_binary_outputs=True)


if __name__ == "__main__":
    logging.getLogger("uvicorn.access").disabled = True
    for flag in ("--model_file",):  # KServe parses argv itself and refuses flags it does not know
        i = sys.argv.index(flag)
        path = sys.argv[i + 1]
        del sys.argv[i : i + 2]
    ModelServer().start([TensorModel(arg("--model_name", "model"), path)])
