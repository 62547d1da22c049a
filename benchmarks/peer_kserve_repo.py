"""Benchmark peer: KServe 0.21's ModelServer with a ModelRepository that loads scikit-learn models by name, as
KServe's sklearnserver's SKLearnModelRepository does (runs in KServe's venv; that class is not on PyPI).

Usage: python peer_kserve_repo.py --model_dir DIR --http_port P --grpc_port Q
"""

import logging
import os
import sys
from pathlib import Path

import joblib
from kserve import Model, ModelRepository, ModelServer
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(Model):
    def __init__(self, name, model_dir):
        super().__init__(name)
        self.model_dir = model_dir

    def load(self):
        self.model = joblib.load(next(Path(self.model_dir).glob("*.joblib")))
        self.ready = True
        return True

    def predict(self, payload, headers=None):
        return get_predict_response(payload, self.model.predict(get_predict_input(payload)), self.name)


class SKLearnRepository(ModelRepository):
    def load(self, name):
        model = SKLearnModel(name, os.path.join(self.models_dir, name))
        if model.load():
            self.update(model)
        return model.ready


if __name__ == "__main__":
    models_dir = sys.argv[sys.argv.index("--model_dir") + 1]
    logging.getLogger("uvicorn.access").disabled = True
    ModelServer(registered_models=SKLearnRepository(models_dir)).start([])
