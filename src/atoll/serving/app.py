"""The model server's routes: OIP v2 (health, metadata, infer), Triton-style errors and metrics.

`ModelServer.handle` is what `atoll.serving.httpserver` calls for each complete request. It is
synchronous on purpose: models run inline, so a request costs one routing split, one JSON parse
and one JSON dump on top of the model call.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from atoll import __version__
from atoll.serving.httpserver import Headers, Reply, error_body
from atoll.serving.protocol import RequestError, ServedModel, encode_infer, parse_infer

log = logging.getLogger("atoll.serving")
T = TypeVar("T")
# A parsed inference request: (request id or None, input arrays, [(output index, binary?)]).
Parsed = tuple[Any, list[Any], list[tuple[int, bool]]]

MAX_BODY = 16 * 1024 * 1024
EXTENSIONS = ["binary_tensor_data", "model_configuration"]
JSON = b"application/json"
OCTETS = b"application/octet-stream"
PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"

_METRICS = [
    ("nv_inference_request_success", "success", "Number of successful inference requests, all batch sizes"),
    ("nv_inference_request_failure", "failure", "Number of failed inference requests, all batch sizes"),
    ("nv_inference_count", "count", "Number of inferences performed (does not include cached requests)"),
    ("nv_inference_exec_count", "exec_count", "Number of model executions performed"),
    ("nv_inference_request_duration_us", "request_us", "Cumulative inference request duration in µs"),
    ("nv_inference_compute_infer_duration_us", "compute_us", "Cumulative compute inference duration in µs"),
]
_CONFIG_TYPES = {"FP16": "TYPE_FP16", "FP32": "TYPE_FP32", "FP64": "TYPE_FP64", "BYTES": "TYPE_STRING"}


class ModelServer:
    """All the server's routes. `models` are known (signatures) from the start; `ready` once loaded."""

    def __init__(self, models: list[ServedModel], max_body: int = MAX_BODY) -> None:
        self.models = {m.name: m for m in models}
        self.max_body = max_body
        self.ready = False
        self.server_meta = {"name": "atoll", "version": __version__, "extensions": EXTENSIONS}
        self._server_meta = json.dumps(self.server_meta).encode()
        self._model_meta = {m.name: json.dumps(m.metadata()).encode() for m in models}
        self._model_config = {m.name: json.dumps(config(m)).encode() for m in models}

    def handle(self, method: str, path: str, headers: Headers, body: bytes) -> Reply:
        try:
            if path.startswith("/v2/models/"):
                return self._model_route(path[11:].split("/"), method, path, headers, body)
            if path == "/v2/health/live":
                return _get(method, 200, b"")
            if path == "/v2/health/ready":
                return _get(method, 200 if self.ready else 503, b"")
            if path in ("/v2", "/v2/"):
                return _get(method, 200, self._server_meta)
            if path == "/metrics":
                return _get(method, 200, self.metrics().encode(), PROMETHEUS)
            raise RequestError(f"no route for {method} {path}", 404)
        except RequestError as e:
            return e.status, error_body(str(e)), JSON, []

    def find(self, name: str, version: str | None = None) -> ServedModel:
        """The model `name` (at `version`, when given), or a 404 naming what is unknown."""
        model = self.models.get(name)
        if model is None:
            raise RequestError(f"Request for unknown model: '{name}' is not found", 404)
        if version is not None and version != model.version:
            raise RequestError(
                f"Request for unknown model: '{model.name}' version {version} is not found", 404
            )
        return model

    def _model_route(self, parts: list[str], method: str, path: str, headers: Headers, body: bytes) -> Reply:
        rest = parts[1:]
        if len(rest) >= 2 and rest[0] == "versions":
            model = self.find(parts[0], rest[1])
            rest = rest[2:]
        else:
            model = self.find(parts[0])
        action = rest[0] if len(rest) == 1 else "" if not rest else None
        if action == "infer":
            if method != "POST":
                raise RequestError(f"method {method} is not allowed here; use POST", 405)
            return self._infer(model, headers, body)
        if action == "":
            return _get(method, 200, self._model_meta[model.name])
        if action == "ready":
            return _get(method, 200 if model.run is not None else 503, b"")
        if action == "config":
            return _get(method, 200, self._model_config[model.name])
        raise RequestError(f"no route for {method} {path}", 404)

    def _inflate(self, body: bytes, encoding: bytes) -> bytes:
        if encoding not in (b"gzip", b"deflate"):
            name = encoding.decode(errors="replace")
            raise RequestError(f"Content-Encoding {name!r} is not supported (use gzip or deflate)", 415)
        inflater = zlib.decompressobj(31 if encoding == b"gzip" else 15)
        try:
            out = inflater.decompress(body, self.max_body + 1)
        except zlib.error as e:
            raise RequestError(f"the {encoding.decode()} request body does not decompress: {e}") from None
        if len(out) > self.max_body:
            raise RequestError(
                f"the decompressed request body is over the limit of {self.max_body} bytes", 413
            )
        return out

    def infer(
        self, model: ServedModel, parse: Callable[[], Parsed], encode: Callable[[Any, list[Any], Any], T]
    ) -> T:
        """One inference, whichever face it came by: `parse` reads the request (once the model is
        loaded), `encode` writes the model's results. Counts it in the model's stats; refuses with
        RequestError (400 for what the model rejects, 500 for a model that fails)."""
        started = time.perf_counter_ns()
        stats = model.stats
        try:
            run = model.run
            if run is None:
                raise RequestError(f"model '{model.name}' is still loading", 503)
            request_id, arrays, selected = parse()
            computing = time.perf_counter_ns()
            try:
                results = run(arrays)
            except (ValueError, TypeError) as e:
                raise RequestError(f"model '{model.name}' rejected the input: {e}") from None
            computed = time.perf_counter_ns()
            out = encode(request_id, results, selected)
        except RequestError:
            stats.failure += 1
            raise
        except Exception as e:
            stats.failure += 1
            log.exception("model '%s': inference failed", model.name)
            raise RequestError(f"model '{model.name}' failed: {type(e).__name__}: {e}", 500) from None
        stats.success += 1
        stats.exec_count += 1
        stats.count += len(arrays[0]) if arrays and arrays[0].ndim else 1
        stats.compute_us += (computed - computing) // 1000
        stats.request_us += (time.perf_counter_ns() - started) // 1000
        return out

    def _infer(self, model: ServedModel, headers: Headers, body: bytes) -> Reply:
        def parse() -> Parsed:
            header_length = headers.get(b"inference-header-content-length")
            if header_length is not None and not header_length.strip().isdigit():
                raise RequestError("Inference-Header-Content-Length must be a non-negative integer")
            encoding = headers.get(b"content-encoding", b"").strip().lower()
            data = self._inflate(body, encoding) if encoding and encoding != b"identity" else body
            return parse_infer(data, None if header_length is None else int(header_length), model)

        def encode(request_id: Any, results: list[Any], selected: Any) -> tuple[bytes, int | None]:
            return encode_infer(model, request_id, results, selected)

        out, json_length = self.infer(model, parse, encode)
        extra = []
        if json_length is not None:
            extra.append((b"inference-header-content-length", b"%d" % json_length))
        accept = headers.get(b"accept-encoding")
        if accept and (b"gzip" in accept or b"deflate" in accept):
            gzip = b"gzip" in accept
            deflater = zlib.compressobj(6, zlib.DEFLATED, 31 if gzip else 15)
            out = deflater.compress(out) + deflater.flush()
            extra.append((b"content-encoding", b"gzip" if gzip else b"deflate"))
        return 200, out, JSON if json_length is None else OCTETS, extra

    def metrics(self) -> str:
        """Prometheus text exposition of Triton's inference counters, labelled model and version."""
        lines = []
        for metric, field, help_text in _METRICS:
            lines.append(f"# HELP {metric} {help_text}\n# TYPE {metric} counter")
            for m in self.models.values():
                lines.append(f'{metric}{{model="{m.name}",version="{m.version}"}} {getattr(m.stats, field)}')
        return "\n".join(lines) + "\n"


def _get(method: str, status: int, body: bytes, content_type: bytes = JSON) -> Reply:
    if method != "GET":
        raise RequestError(f"method {method} is not allowed here; use GET", 405)
    return status, body, content_type, []


def config(model: ServedModel) -> dict[str, Any]:
    """A Triton-style model configuration (GET .../config), for clients that ask for it."""

    def tensors(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "name": s["name"],
                "data_type": _CONFIG_TYPES.get(s["datatype"], "TYPE_" + s["datatype"]),
                "dims": s["shape"],
            }
            for s in specs
        ]

    return {
        "name": model.name,
        "platform": model.platform,
        "backend": "atoll",
        "max_batch_size": 0,
        "input": tensors(model.inputs),
        "output": tensors(model.outputs),
    }
