"""Save and load models from an Atoll notebook or job.

    from sklearn.linear_model import LogisticRegression
    import atoll.models

    clf = LogisticRegression().fit(X, y)
    atoll.models.save(clf, "churn", "logistic regression on the March data")
    # -> {"id": "mdl-…", "name": "churn", "version": 1}

    clf = atoll.models.load("churn")              # the latest version
    old = atoll.models.load("churn", version=1)
    atoll.models.list()                           # meta of the latest version of each model

Supported: scikit-learn and any joblib-picklable estimator with predict(), ONNX ModelProto,
XGBoost, LightGBM and CatBoost models (their native files) and TorchScript (signature by hand).
The input/output signature is detected where the model tells it; `inputs=`/`outputs=` set it
(both or neither). A saved model can be deployed to Atoll's model server (`atoll.serving`),
which speaks Triton's HTTP protocol. See docs/models.md.

Only the standard library is imported here: a notebook without the ML library of a format
can still use the others.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from atoll.serving.formats import META_FILE, read_meta
from atoll.serving.formats import deserialize as deserialize
from atoll.serving.formats import serialize as serialize

__all__ = ["deserialize", "list", "load", "save", "serialize"]

OUTBOX_ENV = "ATOLL_MODEL_OUTBOX"
MODELS_ENV = "ATOLL_MODELS_DIR"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9\-_.]{0,62}")
POLL_SECONDS = 0.1


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError(
            f"name {name!r} is not a valid model name: use 1-63 characters, lowercase letters, digits, "
            "'-', '_' and '.', starting with a letter or a digit"
        )
    return name


def save(
    obj: Any,
    name: str,
    description: str = "",
    *,
    inputs: builtins.list[dict[str, Any]] | None = None,
    outputs: builtins.list[dict[str, Any]] | None = None,
    wait: float = 60.0,
) -> dict[str, Any]:
    """Save `obj` as a new version of the project's model `name`.

    Returns Atoll's answer, e.g. {"id": "mdl-…", "name": "churn", "version": 3}; with `wait=0`,
    {"name": …, "queued": "<uuid>"} at once. `inputs`/`outputs` set the signature by hand: lists
    of {"name", "datatype", "shape"} with Open Inference Protocol datatypes ("FP32", "INT64",
    "BYTES", …) and -1 for a dimension of any size.
    """
    check_name(name)
    if not isinstance(description, str):
        raise ValueError(f"description must be a string, got {type(description).__name__}")
    outbox = os.environ.get(OUTBOX_ENV)
    if not outbox:
        raise RuntimeError(
            f"atoll.models.save works inside an Atoll notebook or job ({OUTBOX_ENV} is not set)"
        )
    key = str(uuid.uuid4())
    staging = Path(outbox) / f".tmp-{key}"
    try:
        meta = serialize(obj, staging, inputs=inputs, outputs=outputs)
        meta.update(name=name, description=description, source=_source())
        (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        # The rename publishes the whole directory at once: Atoll never sees half a model.
        os.rename(staging, Path(outbox) / key)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if wait <= 0:
        return {"name": name, "queued": key}
    result = Path(outbox) / f"{key}.result.json"
    deadline = time.monotonic() + wait
    while True:
        answer = _read_result(result)
        if answer is not None:
            result.unlink(missing_ok=True)  # read once: the outbox need not keep it
            if "error" in answer:
                raise RuntimeError(f"Atoll did not register model {name!r}: {answer['error']}")
            return answer
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"model {name!r} is queued ({key}) but Atoll has not picked it up in {wait:g} s; "
                "it will appear in the project's models when Atoll does"
            )
        time.sleep(POLL_SECONDS)


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        answer = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # being written: read it again on the next poll
    return answer if isinstance(answer, dict) else {"error": f"unexpected answer {answer!r}"}


def _source() -> str:
    """Where the model comes from: the notebook's path or the job; "" lets Atoll name it."""
    if os.environ.get("JPY_SESSION_NAME"):  # set by Jupyter for a notebook's kernel
        return os.environ["JPY_SESSION_NAME"]
    if os.environ.get("ATOLL_JOB_ID"):
        return f"job {os.environ['ATOLL_JOB_ID']}"
    import sys

    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "" if "ipykernel" in program else program


def _models_dir() -> Path:
    root = os.environ.get(MODELS_ENV)
    if not root:
        raise RuntimeError(
            f"atoll.models.load works inside an Atoll notebook or job ({MODELS_ENV} is not set)"
        )
    return Path(root)


def _versions(model_dir: Path) -> builtins.list[int]:
    try:
        return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and p.is_dir())
    except FileNotFoundError:
        return []


def _names(root: Path) -> builtins.list[str]:
    try:
        return sorted(p.name for p in root.iterdir() if p.is_dir() and _versions(p))
    except FileNotFoundError:
        return []


def _version_dir(name: str, version: int | None) -> Path:
    root = _models_dir()
    versions = _versions(root / name)
    if not versions:
        known = ", ".join(_names(root)) or "none"
        raise LookupError(f"model {name!r} not found; the models here are: {known}")
    if version is None:
        version = versions[-1]
    elif version not in versions:
        raise LookupError(f"model {name!r} has no version {version}; its versions are {versions}")
    return root / name / str(version)


def load(name: str, version: int | None = None) -> Any:
    """The model object of `name` (the latest version, or `version`)."""
    return deserialize(_version_dir(name, version))


def list() -> builtins.list[dict[str, Any]]:
    """meta.json of the latest version of each model, with "name" and "version" filled in."""
    root = _models_dir()
    found = []
    for name in _names(root):
        version = _versions(root / name)[-1]
        meta = read_meta(root / name / str(version))
        found.append({**meta, "name": meta.get("name") or name, "version": version})
    return found
