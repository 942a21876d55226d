"""KServe v2 / Triton gRPC messages to and from the forms protocol.py works with.

A `ModelInferRequest` becomes the dict and binary tensor data of an HTTP request with the binary
tensor data extension (`raw_input_contents[i]` is input i's `binary_data_size` bytes), so
`protocol.read_request` checks it as it checks HTTP requests, with the same messages. Outputs go
back as `raw_output_contents`, as Triton sends them. The messages are the generated ones shipped
in `tritonclient.grpc` (Triton's grpc_service.proto), so nothing here encodes protobuf by hand.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2, service_pb2

from atoll.serving.protocol import DTYPES, RequestError, ServedModel, output_tensors, pack_bytes, read_request

# The InferTensorContents field that carries each datatype (FP16 and BF16 have none: raw only).
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}  # fmt: skip


def parameters(params: Any) -> dict[str, Any]:
    """A map<string, InferParameter> as plain values, as the HTTP face's "parameters" have them."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        out[key] = None if which is None else getattr(value, which)
    return out


def read_infer(request: Any, model: ServedModel) -> tuple[Any, list[Any], list[tuple[int, bool]]]:
    """`protocol.read_request` of a ModelInferRequest: (id or None, input arrays, selected outputs)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise RequestError(
            f"the request has {len(request.inputs)} inputs but {len(raw)} raw_input_contents: "
            "give every input's data there, or none"
        )
    inputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for i, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        params = parameters(tensor.parameters)
        if raw:
            chunk: bytes | None = raw[i]
        else:
            chunk = _from_contents(tensor, entry)
        if chunk is not None:
            params["binary_data_size"] = len(chunk)
            chunks.append(chunk)
        if params:
            entry["parameters"] = params
        inputs.append(entry)
    req: dict[str, Any] = {"inputs": inputs}
    if request.id:
        req["id"] = request.id
    if request.parameters:
        req["parameters"] = parameters(request.parameters)
    if request.outputs:
        req["outputs"] = [{"name": o.name, "parameters": parameters(o.parameters)} for o in request.outputs]
    binary = memoryview(chunks[0] if len(chunks) == 1 else b"".join(chunks))
    request_id, arrays, selected = read_request(req, binary, model)
    # gRPC answers carry every output as raw bytes, whatever binary_data an HTTP client would ask.
    return request_id, arrays, [(index, True) for index, _ in selected]


def _from_contents(tensor: Any, entry: dict[str, Any]) -> bytes | None:
    """Typed `contents` into the entry's "data"; BYTES elements into binary tensor data (returned),
    whose reading checks them as UTF-8 the same way for both faces."""
    field = _CONTENTS.get(tensor.datatype)
    if field is None:
        if tensor.datatype in DTYPES:
            raise RequestError(
                f"input '{tensor.name}': {tensor.datatype} data must come in raw_input_contents "
                "(InferTensorContents has no field for it)"
            )
        return None  # read_request names the datatype the model expects
    values = getattr(tensor.contents, field)
    if field == "bytes_contents":
        return pack_bytes(values)
    entry["data"] = list(values)
    return None


def infer_response(
    model: ServedModel, request_id: Any, results: list[Any], selected: list[tuple[int, bool]]
) -> Any:
    """The ModelInferResponse of the model's results: outputs' metadata and raw_output_contents."""
    response = service_pb2.ModelInferResponse(
        model_name=model.name, model_version=model.version, id=request_id or ""
    )
    for entry, raw in output_tensors(model, results, selected):
        out = response.outputs.add(name=entry["name"], datatype=entry["datatype"])
        out.shape.extend(entry["shape"])
        response.raw_output_contents.append(raw or b"")
    return response


def model_metadata(model: ServedModel) -> Any:
    """The ModelMetadataResponse: what GET /v2/models/NAME answers, as a message."""
    return json_format.ParseDict(
        model.metadata(), service_pb2.ModelMetadataResponse(), ignore_unknown_fields=True
    )


def model_config(config: dict[str, Any]) -> Any:
    """The ModelConfigResponse of app.config's Triton-style configuration."""
    return service_pb2.ModelConfigResponse(
        config=json_format.ParseDict(config, model_config_pb2.ModelConfig(), ignore_unknown_fields=True)
    )
