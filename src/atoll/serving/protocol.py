"""Open Inference Protocol v2 inference requests and responses, JSON and binary.

Binary tensor data extension (Triton): the JSON header is followed by raw tensor bytes; header
`Inference-Header-Content-Length` gives the JSON's length, `parameters.binary_data_size` each
tensor's size, in input/output order. Data is little-endian, row-major; BOOL is one byte; a BYTES
element is a 4-byte little-endian length and its bytes. BYTES inputs reach models as `str`
(UTF-8); `str`/`bytes` outputs go out as BYTES.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from atoll.serving.signature import NUMPY_DTYPES

DTYPES = {name: np.dtype(code) for name, code in NUMPY_DTYPES.items()}
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_decode = json.JSONDecoder().decode
_NO_BYTES = memoryview(b"")
_U32 = struct.Struct("<I")


class RequestError(Exception):
    """A request the server refuses; `status` is the HTTP status, the message names the field."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Stats:
    """Triton's per-model counters (nv_inference_*); durations in microseconds."""

    __slots__ = ("compute_us", "count", "exec_count", "failure", "request_us", "success")

    def __init__(self) -> None:
        self.success = self.failure = self.count = self.exec_count = 0
        self.request_us = self.compute_us = 0


class ServedModel:
    """One model of the server: its signature from meta.json and, once loaded, how to run it."""

    def __init__(self, name: str, version: str, meta: dict[str, Any], platform: str) -> None:
        self.name, self.version, self.meta, self.platform = name, version, meta, platform
        self.inputs: list[dict[str, Any]] = meta["inputs"]
        self.outputs: list[dict[str, Any]] = meta["outputs"]
        self.input_index = {spec["name"]: i for i, spec in enumerate(self.inputs)}
        self.output_index = {spec["name"]: i for i, spec in enumerate(self.outputs)}
        self.all_outputs: list[tuple[int, bool]] = [(i, False) for i in range(len(self.outputs))]
        self.all_outputs_binary: list[tuple[int, bool]] = [(i, True) for i in range(len(self.outputs))]
        self.run: Callable[[list[Any]], list[Any]] | None = None
        self.stats = Stats()

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": self.inputs,
            "outputs": self.outputs,
        }


def _element_count(shape: Any, expected: list[int], name: str) -> int:
    """Elements in `shape`, checked against the signature's (-1: any size)."""
    if type(shape) is not list:
        raise RequestError(f"input '{name}': 'shape' must be a list of non-negative integers, got {shape!r}")
    count = 1
    for d in shape:
        if type(d) is not int or d < 0:
            raise RequestError(
                f"input '{name}': 'shape' must be a list of non-negative integers, got {shape!r}"
            )
        count *= d
    if len(shape) != len(expected) or any(e != -1 and e != d for d, e in zip(shape, expected)):  # noqa: B905
        raise RequestError(f"input '{name}' has shape {shape}, the model expects {expected} (-1: any size)")
    return count


def _bytes_elements(chunk: memoryview, name: str) -> list[str]:
    items, pos, end = [], 0, len(chunk)
    try:
        while pos < end:
            (n,) = _U32.unpack_from(chunk, pos)
            pos += 4
            if pos + n > end:
                raise RequestError(f"input '{name}': a BYTES element runs past binary_data_size")
            items.append(str(chunk[pos : pos + n], "utf-8"))
            pos += n
    except struct.error:
        raise RequestError(f"input '{name}': truncated BYTES length prefix in its binary data") from None
    except UnicodeDecodeError:
        raise RequestError(f"input '{name}': BYTES elements must be UTF-8 text") from None
    return items


def _object_array(items: list[Any]) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


def _decode_input(
    t: dict[str, Any], spec: dict[str, Any], binary: memoryview, offset: int
) -> tuple[Any, int]:
    """The array of one request input, and the offset of the next binary tensor."""
    name, datatype = spec["name"], spec["datatype"]
    if t.get("datatype") != datatype:
        raise RequestError(f"input '{name}' has datatype {t.get('datatype')!r}, the model expects {datatype}")
    shape = t.get("shape")
    count = _element_count(shape, spec["shape"], name)
    params = t.get("parameters")
    size = None
    if params:
        if type(params) is not dict:
            raise RequestError(f"input '{name}': 'parameters' must be an object")
        if "shared_memory_region" in params:
            raise RequestError(f"input '{name}': shared memory is not supported by this server")
        size = params.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0:
            raise RequestError(f"input '{name}': parameters.binary_data_size must be a non-negative integer")
        if offset + size > len(binary):
            raise RequestError(
                f"input '{name}': binary_data_size {size} runs past the end of the body "
                f"({len(binary) - offset} binary bytes left)"
            )
        chunk = binary[offset : offset + size]
        offset += size
        if datatype == "BYTES":
            items: Any = _bytes_elements(chunk, name)
            n = len(items)
            arr = _object_array(items) if n == count else None
        else:
            dtype = DTYPES[datatype]
            n = size // dtype.itemsize if size % dtype.itemsize == 0 else -1
            arr = np.frombuffer(chunk, dtype=dtype) if n == count else None
    else:
        if "data" not in t:
            raise RequestError(f"input '{name}' has neither 'data' nor parameters.binary_data_size")
        try:
            if datatype == "BYTES":
                arr = np.array(t["data"], dtype=object).ravel()
                if not all(isinstance(x, str) for x in arr):
                    raise ValueError("BYTES data must be strings")
            else:
                arr = np.asarray(t["data"], dtype=DTYPES[datatype]).ravel()
        except (ValueError, TypeError, OverflowError) as e:
            raise RequestError(f"input '{name}': 'data' is not a {datatype} array ({e})") from None
        n = arr.size
    if arr is None or n != count:
        raise RequestError(f"input '{name}' has {n} elements but its shape {shape} needs {count}")
    return arr.reshape(shape), offset


def parse_infer(body: bytes, header_length: int | None, model: ServedModel) -> tuple[Any, list[Any], Any]:
    """(request id or None, input arrays in signature order, [(output index, binary?)])."""
    if header_length is None:
        header, binary = body, _NO_BYTES
    elif 0 <= header_length <= len(body):
        header, binary = body[:header_length], memoryview(body)[header_length:]
    else:
        raise RequestError(
            f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes"
        )
    try:
        req = _decode(header.decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"the request is not valid JSON: {e}") from None
    if type(req) is not dict:
        raise RequestError("the request must be a JSON object with 'inputs'")
    return read_request(req, binary, model)


def read_request(req: dict[str, Any], binary: memoryview, model: ServedModel) -> tuple[Any, list[Any], Any]:
    """`parse_infer` past the JSON: the request as a dict and the binary tensor data after it.

    The gRPC face (grpcproto.py) brings its messages to this same form, so both faces check
    requests alike and refuse them with the same messages."""
    request_id = req.get("id")
    if request_id is not None and type(request_id) is not str:
        raise RequestError("'id' must be a string")

    inputs = req.get("inputs")
    if type(inputs) is not list:
        raise RequestError("'inputs' must be a list of tensors ({'name', 'shape', 'datatype', 'data'})")
    if len(inputs) != len(model.inputs):
        names = [s["name"] for s in model.inputs]
        raise RequestError(
            f"model '{model.name}' takes {len(names)} inputs {names}, the request has {len(inputs)}"
        )
    arrays: list[Any] = [None] * len(inputs)
    offset = 0
    for t in inputs:
        if type(t) is not dict:
            raise RequestError("'inputs' must be a list of tensors ({'name', 'shape', 'datatype', 'data'})")
        name = t.get("name")
        index = model.input_index.get(name) if type(name) is str else None
        if index is None:
            names = [s["name"] for s in model.inputs]
            raise RequestError(
                f"unexpected input {t.get('name')!r} for model '{model.name}'; its inputs are {names}"
            )
        if arrays[index] is not None:
            raise RequestError(f"input '{t['name']}' is given twice")
        arrays[index], offset = _decode_input(t, model.inputs[index], binary, offset)
    if offset != len(binary):
        raise RequestError(
            f"the body has {len(binary)} bytes after the JSON header, "
            f"but the inputs' binary_data_size add up to {offset}"
        )

    params = req.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise RequestError("'parameters' must be an object")
    binary_default = bool(params and params.get("binary_data_output"))
    requested = req.get("outputs")
    if requested is None:
        return request_id, arrays, model.all_outputs_binary if binary_default else model.all_outputs
    if type(requested) is not list:
        raise RequestError("'outputs' must be a list of {'name', 'parameters'} objects")
    selected = []
    for o in requested:
        if type(o) is not dict:
            raise RequestError("'outputs' must be a list of {'name', 'parameters'} objects")
        name = o.get("name")
        index = model.output_index.get(name) if type(name) is str else None
        if index is None:
            names = [s["name"] for s in model.outputs]
            raise RequestError(
                f"unexpected output {o.get('name')!r} for model '{model.name}'; its outputs are {names}"
            )
        p = o.get("parameters") or {}
        if not isinstance(p, dict):
            raise RequestError(f"output '{o['name']}': 'parameters' must be an object")
        if "classification" in p or "shared_memory_region" in p:
            raise RequestError(f"output '{o['name']}': classification and shared memory are not supported")
        selected.append((index, bool(p.get("binary_data", binary_default))))
    return request_id, arrays, selected


def pack_bytes(items: Any) -> bytes:
    """BYTES elements in the binary tensor data layout: each a 4-byte length, then its bytes."""
    return b"".join(_U32.pack(len(b)) + b for b in items)


def _as_bytes_list(arr: np.ndarray) -> list[bytes]:
    return [x if isinstance(x, bytes) else str(x).encode() for x in arr.ravel().tolist()]


def output_tensors(
    model: ServedModel, results: list[Any], selected: list[tuple[int, bool]]
) -> list[tuple[dict[str, Any], bytes | None]]:
    """The selected outputs, each as its response entry ({"name", "datatype", "shape"}, and
    "data" when not binary) and its raw bytes when binary (the binary tensor data layout)."""
    if len(results) != len(model.outputs):
        raise TypeError(f"the model returned {len(results)} outputs, its signature has {len(model.outputs)}")
    tensors: list[tuple[dict[str, Any], bytes | None]] = []
    for index, binary in selected:
        spec = model.outputs[index]
        datatype = spec["datatype"]
        arr = np.asarray(results[index])
        entry: dict[str, Any] = {"name": spec["name"], "datatype": datatype, "shape": list(arr.shape)}
        if datatype == "BYTES":
            items = _as_bytes_list(arr)
            if binary:
                raw = pack_bytes(items)
            else:
                entry["data"] = [b.decode("utf-8", "replace") for b in items]
        else:
            dtype = DTYPES[datatype]
            if arr.dtype is not dtype and arr.dtype != dtype:
                try:
                    arr = arr.astype(dtype)
                except (ValueError, TypeError) as e:
                    raise TypeError(f"output '{spec['name']}' ({arr.dtype}) is not {datatype}: {e}") from None
            if binary:
                raw = arr.tobytes()
            else:
                entry["data"] = arr.ravel().tolist()
        tensors.append((entry, raw if binary else None))
    return tensors


def encode_infer(
    model: ServedModel, request_id: Any, results: list[Any], selected: list[tuple[int, bool]]
) -> tuple[bytes, int | None]:
    """Response body, and the JSON header's length when binary tensors follow it (else None)."""
    outputs = []
    chunks: list[bytes] = []
    for entry, raw in output_tensors(model, results, selected):
        if raw is not None:
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        outputs.append(entry)
    response: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = outputs
    header = _dumps(response).encode()
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)
