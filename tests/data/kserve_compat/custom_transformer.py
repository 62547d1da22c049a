# KServe's python/custom_transformer/model.py, with the import lines changed to modelplane's compat package and the
# image decoding replaced by base64 float32 "pixels" (no PIL): V1 and V2 in, the predictor's protocol out.
import argparse
import base64
from typing import Dict, Union

import numpy

from modelplane.compat.kserve import InferInput, InferRequest, InferResponse, Model, ModelServer, logging, model_server
from modelplane.compat.kserve.model import PredictorProtocol


def image_transform(model_name, data):
    return numpy.frombuffer(base64.b64decode(data), dtype=numpy.float32)


class ImageTransformer(Model):
    def __init__(self, name: str):
        super().__init__(name, return_response_headers=True)
        self.ready = True

    def preprocess(self, payload: Union[Dict, InferRequest], headers: Dict[str, str] = None) -> Union[Dict, InferRequest]:
        if isinstance(payload, InferRequest):
            input_tensors = [image_transform(self.name, instance) for instance in payload.inputs[0].data]
        else:
            headers["request-type"] = "v1"
            input_tensors = [image_transform(self.name, instance["image"]["b64"]) for instance in payload["instances"]]
        input_tensors = numpy.asarray(input_tensors)
        infer_inputs = [
            InferInput(name="x", datatype="FP32", shape=list(input_tensors.shape), data=input_tensors)
        ]
        infer_request = InferRequest(model_name=self.name, infer_inputs=infer_inputs)
        if self.predictor_config.predictor_protocol == PredictorProtocol.REST_V1.value:
            inputs = [input_tensor.tolist() for input_tensor in input_tensors]
            return {"instances": inputs}
        return infer_request

    def postprocess(self, infer_response: Union[Dict, InferResponse], headers: Dict[str, str] = None,
                    response_headers: Dict[str, str] = None) -> Union[Dict, InferResponse]:
        response_headers["x-transformed-by"] = self.name
        if "request-type" in headers and headers["request-type"] == "v1":
            if self.predictor_config.predictor_protocol == PredictorProtocol.REST_V1.value:
                return infer_response
            return {"predictions": infer_response.outputs[0].as_numpy().tolist()}
        return infer_response


parser = argparse.ArgumentParser(parents=[model_server.parser])
args, _ = parser.parse_known_args()

if __name__ == "__main__":
    if args.configure_logging:
        logging.configure_logging(args.log_config_file)
    model = ImageTransformer(args.model_name)
    ModelServer().start([model])
