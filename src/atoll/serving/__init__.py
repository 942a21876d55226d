"""Atoll's built-in model server and the model directory format it reads.

`python -m atoll.serving --model NAME=DIR ...` serves model directories (see `atoll.models`) over
the Open Inference Protocol v2 (HTTP/REST, as Triton and KServe speak it), so that
`tritonclient.http` works unchanged, and with `--grpc-port` over its gRPC protocol too (KServe v2 /
Triton's `inference.GRPCInferenceService`), for `tritonclient.grpc`.

This package runs inside users' environments, which do not have Atoll's dependencies: it imports
only the standard library, numpy and the packages in `SERVING_REQUIREMENTS` (this file: only the
standard library). ML libraries are imported when a model of their format is loaded.
"""

from __future__ import annotations

import re
from typing import Any

# What an environment needs, on top of the model's own libraries (meta.json "libraries"), to run
# `python -m atoll.serving` (uvloop: optional, faster; the server runs on Linux). The gRPC face
# (--grpc-port, which Atoll's model nodes always get) takes grpcio, the standard health service,
# and the generated KServe v2 / Triton stubs shipped in tritonclient[grpc].
SERVING_REQUIREMENTS: list[str] = [
    "numpy",
    "httptools",
    "uvloop",
    "grpcio",
    "grpcio-health-checking",
    "tritonclient[grpc]>=2.50",
]

# What each format needs in the server, whatever the environment that saved it had: each entry
# lists alternative distributions of one module; the first is installed when the model's
# "libraries" name none of them.
FORMAT_PACKAGES: dict[str, list[tuple[str, ...]]] = {
    "sklearn": [("scikit-learn",), ("joblib",)],
    "onnx": [("onnxruntime", "onnxruntime-gpu")],
    "xgboost": [("xgboost", "xgboost-cpu")],
    "lightgbm": [("lightgbm",)],
    "catboost": [("catboost",)],
    "torchscript": [("torch",)],
    "noop": [],
}


def requirements(metas: list[dict[str, Any]]) -> list[str]:
    """Pip requirements of a server for these models' meta.json: SERVING_REQUIREMENTS, each
    model's "libraries" pinned to the versions that saved it, and its format's runtime."""
    pinned: dict[str, str] = {}
    for meta in metas:
        libraries = {_canonical(n): str(v) for n, v in (meta.get("libraries") or {}).items()}
        for name, version in libraries.items():
            pinned[name] = f"{name}=={version}" if version else name
        for alternatives in FORMAT_PACKAGES.get(str(meta.get("format")), []):
            if not any(_canonical(a) in pinned for a in alternatives):
                pinned[alternatives[0]] = alternatives[0]
    return [*SERVING_REQUIREMENTS, *(pinned[k] for k in sorted(pinned))]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
