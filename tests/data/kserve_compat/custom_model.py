# KServe's python/custom_model/model_grpc.py, with the import lines changed to modelplane's compat package and
# AlexNet replaced by a fixed linear scorer (no downloads): V1 dicts and V2 InferRequests, preprocess -> predict.
import argparse
from typing import Dict

import numpy as np

from modelplane.compat.kserve import InferRequest, Model, ModelServer, logging, model_server
from modelplane.compat.kserve.utils.utils import generate_uuid

WEIGHTS = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.5, -1.0]], dtype=np.float32)


class ScorerModel(Model):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name
        self.load()
        self.model = None
        self.ready = False

    def load(self):
        self.model = lambda x: x @ WEIGHTS
        self.ready = True

    def preprocess(self, payload, headers: Dict[str, str] = None) -> np.ndarray:
        if isinstance(payload, InferRequest):
            req = payload.inputs[0]
            if req.datatype == "FP32":
                return payload.inputs[0].as_numpy()
            raise ValueError(f"unsupported datatype {req.datatype}")
        return np.asarray(payload["instances"], dtype=np.float32)

    def predict(self, input_tensor: np.ndarray, headers: Dict[str, str] = None) -> Dict:
        output = self.model(input_tensor)
        return {
            "id": generate_uuid(),
            "model_name": self.name,
            "outputs": [
                {"data": output.flatten().tolist(), "datatype": "FP32", "name": "output-0", "shape": list(output.shape)}
            ],
        }


parser = argparse.ArgumentParser(parents=[model_server.parser])
args, _ = parser.parse_known_args()

if __name__ == "__main__":
    if args.configure_logging:
        logging.configure_logging(args.log_config_file)
    model = ScorerModel(args.model_name)
    model.load()
    ModelServer().start([model])
