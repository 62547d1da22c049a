"""Protocol core: the OIP datatype table and conversions between datatypes and numpy dtypes."""

from __future__ import annotations

import numpy as np

from modelplane.protocol.errors import InvalidInput

# datatype -> little-endian numpy dtype used on the wire (BYTES is variable-size and BF16 has no numpy type).
_WIRE_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),  # carried as raw 16-bit words, widened to float32 for models
}
DATATYPES: frozenset[str] = frozenset([*_WIRE_DTYPES, "BYTES"])
BINARY_ONLY: frozenset[str] = frozenset({"FP16", "BF16"})

_FROM_KIND: dict[tuple[str, int], str] = {
    ("b", 1): "BOOL",
    ("u", 1): "UINT8",
    ("u", 2): "UINT16",
    ("u", 4): "UINT32",
    ("u", 8): "UINT64",
    ("i", 1): "INT8",
    ("i", 2): "INT16",
    ("i", 4): "INT32",
    ("i", 8): "INT64",
    ("f", 2): "FP16",
    ("f", 4): "FP32",
    ("f", 8): "FP64",
}


def check_datatype(datatype: object, where: str) -> str:
    if not isinstance(datatype, str) or datatype.upper() not in DATATYPES:
        raise InvalidInput(f"invalid datatype {datatype!r} in {where}")
    return datatype.upper()


def wire_dtype(datatype: str) -> np.dtype:
    """numpy dtype of one element on the wire; raises KeyError for BYTES."""
    return _WIRE_DTYPES[datatype]


def element_size(datatype: str) -> int:
    return _WIRE_DTYPES[datatype].itemsize


def datatype_of(array: np.ndarray) -> str:
    """OIP datatype for a numpy array (strings, bytes and objects are BYTES)."""
    kind = array.dtype.kind
    if kind in "OSUM":
        return "BYTES"
    try:
        return _FROM_KIND[(kind, array.dtype.itemsize)]
    except KeyError:
        raise InvalidInput(f"numpy dtype {array.dtype} has no Open Inference Protocol datatype") from None


def bf16_to_float32(words: np.ndarray) -> np.ndarray:
    """Widen BF16 words (the upper halves of float32 values) to float32."""
    return (words.astype("<u4") << 16).view("<f4")


def float32_to_bf16(values: np.ndarray) -> np.ndarray:
    """Truncate float32 to BF16 words, as tritonclient does."""
    return (np.ascontiguousarray(values, dtype="<f4").view("<u4") >> 16).astype("<u2")


MAX_DIMS = 32  # numpy allows 64; no model takes more than a handful
MAX_ELEMENTS = 2**32  # far beyond any request body a server accepts; bounds the arithmetic that follows


def shape_size(shape: object, where: str) -> int:
    """Validate a shape (at most MAX_DIMS non-negative ints below 2**63, at most MAX_ELEMENTS elements) and return
    its element count. Callers still check the count against the bytes actually present before allocating."""
    if not isinstance(shape, (list, tuple)):
        raise InvalidInput(f"shape of {where} must be a list of integers")
    if len(shape) > MAX_DIMS:
        raise InvalidInput(f"shape of {where} has {len(shape)} dimensions; at most {MAX_DIMS} are supported")
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0 or dim >= 2**63:
            raise InvalidInput(f"shape of {where} has an invalid dimension {dim!r}")
        count *= dim
    if count > MAX_ELEMENTS:
        raise InvalidInput(f"shape {list(shape)[:8]} of {where} has {count} elements; at most {MAX_ELEMENTS}")
    return count
