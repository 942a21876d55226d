"""Model directories: `meta.json` + one model file, written from a model object and read back.

    <model dir>/meta.json   {"format", "file", "class", "libraries", "inputs", "outputs", ...}
    <model dir>/model.<ext>

This is a contract with Atoll's control plane (docs/models.md). Formats: scikit-learn and any
joblib-picklable estimator with `predict` ("sklearn"), ONNX ("onnx"), XGBoost, LightGBM, CatBoost
and TorchScript (`atoll.serving.boosting`), and "noop" (no file: echoes its first input, for
benchmarks). Standard library only at import: each format imports its library when used, and
says which one is missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from atoll.serving.boosting import BOOSTING_FORMATS
from atoll.serving.format_base import META_FILE, Format, Run, class_path, in_modules, n_features_input, need
from atoll.serving.signature import (
    check_specs,
    distribution_versions,
    outputs_from_sample,
    sample_inputs,
    tensor,
)


class Sklearn(Format):
    name, platform, file = "sklearn", "sklearn_joblib", "model.joblib"
    probe_original = True

    def owns(self, obj: Any) -> bool:
        return callable(getattr(obj, "predict", None))

    def detect_inputs(self, obj: Any) -> list[dict[str, Any]] | None:
        # scikit-learn computes in float64 unless told otherwise.
        return n_features_input(obj, "FP64")

    def write(self, obj: Any, path: Path) -> None:
        need("joblib", "joblib", "saving a scikit-learn model").dump(obj, path)

    def libraries(self, obj: Any) -> dict[str, str]:
        modules = {type(obj).__module__, "numpy", "joblib"}
        get_params = getattr(obj, "get_params", None)
        values = list(vars(obj).values()) if hasattr(obj, "__dict__") else []
        if callable(get_params):
            try:
                values += list(get_params(deep=True).values())
            except Exception:  # noqa: S110 - a best effort: the class's own module is already there
                pass
        for value in values:
            modules.add(type(value).__module__)
            if hasattr(value, "__dict__"):
                modules.update(type(v).__module__ for v in vars(value).values())
        return distribution_versions(modules)

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        return need("joblib", "joblib", "loading a scikit-learn model").load(path)

    def runner(self, model: Any, meta: dict[str, Any]) -> Run:
        predict = model.predict
        return lambda xs: [predict(xs[0])]


_ONNX_TYPES = {
    1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "BYTES",
    9: "BOOL", 10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64",
}  # fmt: skip


def _onnx_specs(values: Any) -> list[dict[str, Any]]:
    """Tensor-typed graph values as specs; sequences and maps (e.g. skl2onnx's ZipMap) are left out."""
    specs = []
    for value in values:
        if not value.type.HasField("tensor_type"):
            continue
        t = value.type.tensor_type
        datatype = _ONNX_TYPES.get(t.elem_type)
        if datatype is None:
            raise ValueError(f"ONNX tensor {value.name!r} has element type {t.elem_type}, not served here")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        specs.append(tensor(value.name, datatype, dims))
    return specs


class Onnx(Format):
    name, platform, file = "onnx", "onnxruntime_onnx", "model.onnx"
    single_io = False

    def owns(self, obj: Any) -> bool:
        return type(obj).__name__ == "ModelProto" and in_modules(obj, "onnx")

    def detect_inputs(self, obj: Any) -> list[dict[str, Any]] | None:
        initializers = {i.name for i in obj.graph.initializer}
        return _onnx_specs(i for i in obj.graph.input if i.name not in initializers) or None

    def detect_outputs(self, obj: Any) -> list[dict[str, Any]] | None:
        specs = _onnx_specs(obj.graph.output)
        if not specs:
            raise ValueError("the ONNX graph has no tensor outputs (sequences and maps are not served)")
        return specs

    def write(self, obj: Any, path: Path) -> None:
        path.write_bytes(obj.SerializeToString())

    def libraries(self, obj: Any) -> dict[str, str]:
        return distribution_versions({"onnxruntime", "numpy"})

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        return need("onnx", "onnx", "loading an ONNX model").load(str(path))

    def serve(self, path: Path, meta: dict[str, Any], threads: int) -> Run:
        ort = need("onnxruntime", "onnxruntime", "serving an ONNX model")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return self.runner(session, meta)

    def runner(self, model: Any, meta: dict[str, Any]) -> Run:
        in_names = [i["name"] for i in meta["inputs"]]
        out_names = [o["name"] for o in meta["outputs"]]
        run = model.run
        return lambda xs: run(out_names, dict(zip(in_names, xs, strict=True)))


class Noop(Format):
    """No model: echoes input 0 as output 0 (signature from meta.json). For benchmarks."""

    name, platform, file = "noop", "atoll_noop", ""

    def owns(self, obj: Any) -> bool:
        return False

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        raise ValueError("a noop model has nothing to load; it exists only in the model server")

    def serve(self, path: Path, meta: dict[str, Any], threads: int) -> Run:
        return lambda xs: [xs[0]]


def _formats() -> list[Format]:
    # Order matters: boosting estimators also have predict(), so they go before "sklearn".
    return [*BOOSTING_FORMATS, Onnx(), Sklearn(), Noop()]


def format_named(name: Any) -> Format:
    for fmt in _formats():
        if fmt.name == name:
            return fmt
    known = ", ".join(f.name for f in _formats())
    raise ValueError(f"unknown model format {name!r} in {META_FILE}; known formats: {known}")


def format_of(obj: Any) -> Format:
    for fmt in _formats():
        if fmt.owns(obj):
            return fmt
    raise TypeError(
        f"cannot save a {class_path(obj)}: supported are scikit-learn-style estimators (predict), ONNX "
        "ModelProto, XGBoost, LightGBM and CatBoost models, and TorchScript/torch modules"
    )


def serialize(
    obj: Any,
    directory: str | os.PathLike[str],
    *,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write `obj` into `directory` (model file + meta.json) and return the meta.

    The signature is detected where the model tells it; `inputs=` and `outputs=` (lists of
    {"name", "datatype", "shape"} with OIP datatypes, -1 for any size) set it by hand, both or neither.
    """
    if (inputs is None) != (outputs is None):
        given, missing = ("inputs", "outputs") if outputs is None else ("outputs", "inputs")
        raise ValueError(
            f"{given}= was given without {missing}=: if you set the {given} manually, also set the {missing}"
        )
    fmt = format_of(obj)
    ins = check_specs(inputs, "inputs") if inputs is not None else fmt.detect_inputs(obj)
    if ins is None:
        raise ValueError(
            f"cannot detect the input signature of a {class_path(obj)}; "
            "pass inputs=[{'name': ..., 'datatype': ..., 'shape': [...]}] and outputs=[...]"
        )
    outs = check_specs(outputs, "outputs") if outputs is not None else fmt.detect_outputs(obj)
    if fmt.single_io and (len(ins) != 1 or (outs is not None and len(outs) != 1)):
        raise ValueError(f"a {fmt.name} model takes exactly one input and gives one output (predict)")
    if fmt.name == "onnx" and inputs is not None:
        graph = {i["name"] for i in fmt.detect_inputs(obj) or []}
        stray = [i["name"] for i in ins if i["name"] not in graph]
        if stray:
            raise ValueError(f"inputs {stray} are not inputs of the ONNX graph ({sorted(graph)})")

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / fmt.file
    fmt.write(obj, path)
    meta: dict[str, Any] = {
        "format": fmt.name,
        "file": fmt.file,
        "class": class_path(obj),
        "libraries": fmt.libraries(obj),
        "inputs": ins,
        "outputs": outs,
    }
    if outs is None:
        run = fmt.runner(obj, meta) if fmt.probe_original else fmt.serve(path, meta, 1)
        try:
            results = run(sample_inputs(ins))
        except Exception as e:
            raise ValueError(
                f"cannot detect the outputs of a {class_path(obj)}: predicting on zeros of the input "
                f"signature failed ({type(e).__name__}: {e}); pass inputs=[...] and outputs=[...]"
            ) from e
        meta["outputs"] = outputs_from_sample(results)
    meta["size"] = path.stat().st_size
    write_meta(directory, meta)
    return meta


def write_meta(directory: Path, meta: dict[str, Any]) -> None:
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """meta.json of a model directory, checked enough that a server can rely on it."""
    path = Path(directory) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: {directory} is not a model directory") from None
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} must hold a JSON object")
    format_named(meta.get("format"))
    meta["inputs"] = check_specs(meta.get("inputs"), f"{path}: inputs")
    meta["outputs"] = check_specs(meta.get("outputs"), f"{path}: outputs")
    return meta


def deserialize(directory: str | os.PathLike[str]) -> Any:
    """The model object saved in `directory` by `serialize`."""
    meta = read_meta(directory)
    return format_named(meta["format"]).load(Path(directory) / str(meta.get("file", "")), meta)


def load_for_serving(directory: str | os.PathLike[str], meta: dict[str, Any], threads: int = 1) -> Run:
    """The model in `directory` as a callable: input arrays in, output arrays out (signature order)."""
    return format_named(meta["format"]).serve(Path(directory) / str(meta.get("file", "")), meta, threads)
