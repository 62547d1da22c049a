"""A KServe-style iris transformer, run by the platform as the sample manifest's `python -m iris_transformer`.

Takes named features ({"instances": [{"sepal_length": ..., ...}]}), forwards rows to the predictor (V1 or V2) and
answers class names. Port from $HTTP_PORT / $GRPC_PORT (the local backend's replica ports).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

from modelplane import InferRequest, Tensor
from modelplane.model.transformer import Transformer
from modelplane.server.app import ModelServer
from modelplane.server.settings import ServerSettings

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
CLASSES = ("setosa", "versicolor", "virginica")


class IrisTransformer(Transformer):
    def preprocess(self, payload: Any, headers: Any = None) -> Any:
        rows = [[float(item[f]) for f in FEATURES] for item in payload["instances"]]
        if self.protocol in ("v2", "grpc-v2"):
            return InferRequest(self.name, [Tensor.from_numpy("input-0", np.asarray(rows, dtype=np.float32))])
        return {"instances": rows}

    def postprocess(self, result: Any, headers: Any = None) -> Any:
        classes = result["predictions"] if self.protocol == "v1" else result.outputs[0].data.reshape(-1).tolist()
        return {"predictions": [CLASSES[int(c)] for c in classes]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--predictor_host", required=True)
    parser.add_argument("--predictor_protocol", default="v1")
    args, _ = parser.parse_known_args()
    model = IrisTransformer(
        args.model_name, {"predictor_host": args.predictor_host, "predictor_protocol": args.predictor_protocol}
    )
    settings = ServerSettings(
        host="127.0.0.1", http_port=int(os.environ["HTTP_PORT"]), grpc_port=int(os.environ["GRPC_PORT"])
    )
    ModelServer(settings, [model]).run()


if __name__ == "__main__":
    main()
