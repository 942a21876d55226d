"""Model signatures: tensor specs with Open Inference Protocol v2 datatypes, and the libraries a
model needs. Standard library only at import; numpy is imported by the functions that need it."""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Iterable
from typing import Any

# OIP v2 datatype → numpy dtype string, little-endian as the binary tensor extension sends data.
NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "|b1",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BYTES": "|O",
}

_BY_KIND = {
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


def datatype_of(dtype: Any) -> str:
    """The OIP datatype of a numpy dtype (strings and objects are BYTES)."""
    if dtype.kind in "USO":
        return "BYTES"
    found = _BY_KIND.get((dtype.kind, dtype.itemsize))
    if found is None:
        raise ValueError(f"numpy dtype {dtype} has no Open Inference Protocol datatype")
    return found


def tensor(name: str, datatype: str, shape: Iterable[int]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [int(d) for d in shape]}


def check_specs(specs: Any, what: str) -> list[dict[str, Any]]:
    """Validate user-given `inputs=`/`outputs=`: a non-empty list of {name, datatype, shape}."""
    hint = f"{what} must be a non-empty list of {{'name': str, 'datatype': str, 'shape': [int, ...]}}"
    if not isinstance(specs, list | tuple) or not specs:
        raise ValueError(f"{hint}, got {specs!r}")
    checked: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise ValueError(f"{what}[{i}]: {hint}, got {spec!r}")
        name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what}[{i}].name must be a non-empty string, got {name!r}")
        if any(c["name"] == name for c in checked):
            raise ValueError(f"{what}[{i}].name {name!r} is used twice")
        if datatype not in NUMPY_DTYPES:
            raise ValueError(
                f"{what}[{i}].datatype must be one of {', '.join(NUMPY_DTYPES)}; got {datatype!r}"
            )
        if not isinstance(shape, list | tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape
        ):
            raise ValueError(f"{what}[{i}].shape must be a list of ints (-1 for any size), got {shape!r}")
        unknown = set(spec) - {"name", "datatype", "shape"}
        if unknown:
            raise ValueError(f"{what}[{i}] has unknown keys {sorted(unknown)}; use name, datatype and shape")
        checked.append(tensor(name, datatype, shape))
    return checked


def sample_inputs(inputs: list[dict[str, Any]]) -> list[Any]:
    """Zero-filled arrays matching a signature (each -1 dimension as 1), to probe a model's outputs."""
    import numpy as np

    arrays = []
    for spec in inputs:
        shape = tuple(1 if d < 0 else d for d in spec["shape"])
        if spec["datatype"] == "BYTES":
            arrays.append(np.full(shape, "", dtype=object))
        else:
            arrays.append(np.zeros(shape, dtype=NUMPY_DTYPES[spec["datatype"]]))
    return arrays


def outputs_from_sample(results: list[Any]) -> list[dict[str, Any]]:
    """Output specs from what a model returned for `sample_inputs`: first dimension is the batch."""
    import numpy as np

    specs = []
    for i, result in enumerate(results):
        arr = np.asarray(result)
        shape = [-1, *arr.shape[1:]] if arr.ndim else [-1]
        specs.append(tensor(f"output__{i}", datatype_of(arr.dtype), shape))
    return specs


def distribution_versions(modules: Iterable[str]) -> dict[str, str]:
    """Installed PyPI distributions (name → version) providing these top-level modules.

    The standard library and modules no distribution provides are left out. A module defined in a
    notebook (`__main__`) cannot be imported by a server: refuse it with the fix.
    """
    tops = {m.partition(".")[0] for m in modules}
    if "__main__" in tops:
        raise ValueError(
            "the model uses a class defined in the notebook or script itself (__main__), which a model "
            "server cannot import; move the class into a module or save a standard estimator"
        )
    providers = importlib.metadata.packages_distributions()
    found: dict[str, str] = {}
    for top in sorted(tops):
        if top in sys.stdlib_module_names or top == "builtins":
            continue
        for dist in providers.get(top, []):
            version = _version(dist)
            if version:
                found.setdefault(dist, version)
    return found


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
