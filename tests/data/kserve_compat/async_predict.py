# KServe's "async predict" custom model pattern (an `async def predict` awaiting I/O, returning an InferResponse built
# with InferOutput.set_data_from_numpy), with the import lines changed to modelplane's compat package.
import argparse
import asyncio

import numpy as np

from modelplane.compat.kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from modelplane.compat.kserve.utils.utils import get_predict_input, get_predict_response


class AsyncDoubler(Model):
    def __init__(self, name: str):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None):
        await asyncio.sleep(0.01)  # a call to another service
        data = get_predict_input(payload)
        if isinstance(payload, InferRequest):
            result = np.asarray(data, dtype=np.float32) * 2
            out = InferOutput(name="doubled", shape=list(result.shape), datatype="FP32")
            out.set_data_from_numpy(result, binary_data=False)
            return InferResponse(response_id=payload.id, model_name=self.name, infer_outputs=[out])
        return get_predict_response(payload, np.asarray(data) * 2, self.name)


parser = argparse.ArgumentParser(parents=[model_server.parser])
args, _ = parser.parse_known_args()

if __name__ == "__main__":
    ModelServer().start([AsyncDoubler(args.model_name)])
