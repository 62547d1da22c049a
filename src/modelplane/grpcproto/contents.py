"""Open Inference Protocol gRPC: typed InferTensorContents ⇄ numpy, shared by the server codec and clients."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplane.protocol.datatypes import BINARY_ONLY, wire_dtype
from modelplane.protocol.errors import InvalidInput

# datatype -> InferTensorContents field
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def typed_contents(contents: Any, datatype: str, shape: list[int], count: int, where: str) -> np.ndarray:
    if datatype in BINARY_ONLY:
        raise InvalidInput(f"{datatype} {where} must be sent in raw_input_contents")
    values = getattr(contents, CONTENTS_FIELD[datatype])
    if len(values) != count:
        raise InvalidInput(f"{where} has {len(values)} elements in contents but shape {shape} needs {count}")
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
    else:
        try:
            array = np.array(values, dtype=wire_dtype(datatype))
        except (OverflowError, ValueError) as exc:
            raise InvalidInput(f"contents of {where} do not fit {datatype}: {exc}") from None
    try:
        return array.reshape(shape)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"shape {shape[:8]} of {where} cannot be used: {exc}") from None
