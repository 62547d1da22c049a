"""Protocol core: raw little-endian tensor bytes (shared by the REST binary extension and gRPC raw contents)."""

from __future__ import annotations

import struct

import numpy as np

from modelplane.protocol.datatypes import bf16_to_float32, float32_to_bf16, wire_dtype
from modelplane.protocol.errors import InvalidInput

_LEN = struct.Struct("<I")


def encode_bytes_elements(values: np.ndarray) -> bytes:
    """BYTES elements, each as a 4-byte little-endian length followed by the raw bytes."""
    parts: list[bytes] = []
    for item in values.reshape(-1):
        raw = item.encode() if isinstance(item, str) else bytes(item)
        parts.append(_LEN.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def decode_bytes_elements(buf: memoryview | bytes, count: int, where: str) -> np.ndarray:
    """Parse `count` length-prefixed elements that must fill `buf` exactly; returns an object array of bytes."""
    view = memoryview(buf)
    if count * 4 > len(view):  # each element has a 4-byte length: refuse before allocating `count` slots
        raise InvalidInput(f"BYTES data of {where} has {len(view)} bytes, too few for {count} elements")
    out = np.empty(count, dtype=object)
    pos, end = 0, len(view)
    for i in range(count):
        if pos + 4 > end:
            raise InvalidInput(f"BYTES data of {where} is truncated: expected {count} elements")
        (size,) = _LEN.unpack_from(view, pos)
        pos += 4
        if pos + size > end:
            raise InvalidInput(f"BYTES element {i} of {where} runs past the end of its data")
        out[i] = bytes(view[pos : pos + size])
        pos += size
    if pos != end:
        raise InvalidInput(f"BYTES data of {where} has {end - pos} unexpected trailing bytes")
    return out


def tensor_from_raw(buf: memoryview | bytes, datatype: str, shape: list[int], count: int, where: str) -> np.ndarray:
    """Zero-copy view of raw tensor bytes (BF16 is widened to float32, BYTES parsed into objects)."""
    if datatype == "BYTES":
        return reshape(decode_bytes_elements(buf, count, where), shape, where)
    dtype = wire_dtype(datatype)
    expected = count * dtype.itemsize
    if len(buf) != expected:
        raise InvalidInput(f"{where} has {len(buf)} bytes of data but shape {shape} of {datatype} needs {expected}")
    array = reshape(np.frombuffer(buf, dtype=dtype), shape, where)
    if datatype == "BF16":
        return bf16_to_float32(array)
    return array


def reshape(array: np.ndarray, shape: list[int], where: str) -> np.ndarray:
    """`array` in `shape`; numpy's refusals (too many dimensions, a dimension too big) are the client's error."""
    try:
        return array.reshape(shape)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"shape {shape[:8]} of {where} cannot be used: {exc}") from None


def tensor_to_raw(data: np.ndarray, datatype: str) -> memoryview | bytes:
    """Raw bytes of a tensor; a view of the array's own memory whenever it is already contiguous."""
    if datatype == "BYTES":
        return encode_bytes_elements(data)
    if datatype == "BF16":
        arr = float32_to_bf16(data) if data.dtype != np.dtype("<u2") else np.ascontiguousarray(data)
    else:
        arr = np.ascontiguousarray(data, dtype=wire_dtype(datatype))
    if arr.size == 0:
        return b""
    return memoryview(arr).cast("B")
