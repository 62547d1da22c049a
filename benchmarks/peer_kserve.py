"""Benchmark peer: KServe 0.21 serving the iris SVC the way its sklearnserver does (runs in KServe's venv).

Usage: python peer_kserve.py --model_dir DIR --model_name NAME --http_port P --grpc_port Q
       [--enable_latency_logging false] [--no_access_log] [--echo]
KServe parses its own flags from argv at import; --no_access_log and --echo are read here.
"""

import logging
import sys
from pathlib import Path

import joblib
import kserve
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnIris(Model):
    def __init__(self, name, model_dir):
        super().__init__(name)
        self.model_dir = model_dir
        self.load()

    def load(self):
        self.model = joblib.load(next(Path(self.model_dir).glob("*.joblib")))
        self.ready = True
        return True

    def predict(self, payload, headers=None):
        return get_predict_response(payload, self.model.predict(get_predict_input(payload)), self.name)


class Echo(Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    def predict(self, payload: InferRequest, headers=None):
        arr = payload.inputs[0].as_numpy()
        out = InferOutput("output-0", list(arr.shape), payload.inputs[0].datatype)
        out.set_data_from_numpy(arr, binary_data=True)
        return InferResponse(payload.id, self.name, [out], use_binary_outputs=True)


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


if __name__ == "__main__":
    name = arg("--model_name", "model")
    model = Echo(name) if "--echo" in sys.argv else SKLearnIris(name, arg("--model_dir"))
    server = ModelServer()
    if "--no_access_log" in sys.argv:
        logging.getLogger("uvicorn.access").disabled = True
    print("kserve", kserve.__version__ if hasattr(kserve, "__version__") else "", flush=True)
    server.start([model])
