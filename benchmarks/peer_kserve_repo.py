"""Benchmark peer: KServe 0.21's ModelServer with a ModelRepository that loads scikit-learn models by name, as
KServe's sklearnserver's SKLearnModelRepository does (runs in KServe's venv; that class is not on PyPI).

Usage: python peer_kserve_repo.py --model_dir DIR --http_port P --grpc_port Q
"""

import logging
import os
import sys

from kserve import ModelRepository, ModelServer
from peer_kserve import SKLearnIris  # the same model class as the single-model peer: loads in its constructor


class SKLearnRepository(ModelRepository):
    def load(self, name):
        model = SKLearnIris(name, os.path.join(self.models_dir, name))
        self.update(model)
        return model.ready


if __name__ == "__main__":
    models_dir = sys.argv[sys.argv.index("--model_dir") + 1]
    logging.getLogger("uvicorn.access").disabled = True
    ModelServer(registered_models=SKLearnRepository(models_dir)).start([])
