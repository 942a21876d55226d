"""What every model format shares: the ``Format`` interface, the loaded-model call (``Run``), and
importing a format's library only when it is used. formats.py and boosting.py both build on it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atoll.serving.signature import tensor

META_FILE = "meta.json"

# A loaded model as the server calls it: arrays in signature order in, arrays in signature order out.
Run = Callable[[list[Any]], list[Any]]


def need(module: str, dist: str, what: str) -> Any:
    """Import a library a format needs, or fail naming the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{what} needs the {dist!r} package, which is not installed here: pip install {dist}"
        ) from e


def class_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def in_modules(obj: Any, *prefixes: str) -> bool:
    return any(c.__module__.partition(".")[0] in prefixes for c in type(obj).__mro__)


class Format:
    """One serialization format. Subclasses write, read and run one kind of model object."""

    name = ""
    platform = ""
    file = ""
    # Estimator-style formats: predict() takes one 2-D array and returns one array.
    single_io = True
    # Probe the outputs on the object being saved (True) or on the model read back from its file.
    probe_original = False

    def owns(self, obj: Any) -> bool:
        raise NotImplementedError

    def detect_inputs(self, obj: Any) -> list[dict[str, Any]] | None:
        """The input signature, when the object tells it."""
        return None

    def detect_outputs(self, obj: Any) -> list[dict[str, Any]] | None:
        """The output signature without running the model (ONNX graphs); None → probe it."""
        return None

    def write(self, obj: Any, path: Path) -> None:
        raise NotImplementedError

    def libraries(self, obj: Any) -> dict[str, str]:
        raise NotImplementedError

    def load(self, path: Path, meta: dict[str, Any]) -> Any:
        """The model object, as a user gets it back from `atoll.models.load`."""
        raise NotImplementedError

    def runner(self, model: Any, meta: dict[str, Any]) -> Run:
        raise NotImplementedError

    def serve(self, path: Path, meta: dict[str, Any], threads: int) -> Run:
        """Load for serving with `threads` compute threads (where the library lets us choose)."""
        return self.runner(self.load(path, meta), meta)


def n_features_input(obj: Any, datatype: str) -> list[dict[str, Any]] | None:
    n = getattr(obj, "n_features_in_", None)
    if isinstance(n, int) and n > 0:
        return [tensor("input__0", datatype, [-1, n])]
    return None
