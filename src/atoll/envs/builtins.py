"""The installation's built-in environments: locked package sets every project shares.

Each is pinned in the repository (``locks/<name>.txt``, made from ``locks/<name>.in`` by
``./dev lock-envs``) and built by EnvironmentBuilder like any other environment: one directory
per content key, built once per machine, read-only to workloads, bytecode compiled. The default
one is also what JupyterLab runs in (it holds Atoll's notebook layer: JupyterLab, ipykernel,
terminals, the Git extension, widgets), so a notebook's kernel has the whole stack at no cost.
What a project ``%pip install``s goes into its own layer over it (EnvironmentBuilder.overlay).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from atoll.envs.build import Environment, EnvironmentBuilder, environment_key
from atoll.envs.interpreter import current_version
from atoll.jobspec.requirements import requirement_name

LOCKS = Path(__file__).with_name("locks")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[A-Za-z0-9._,-]+\])?)==([^\s;#]+)\s*$")

# Left out of every built-in environment although a package asks for it:
# - rfc3987-syntax: jupyter-events' jsonschema[format-nongpl] wants it; it builds ~35 Lark parsers
#   at import (≈0.9 s of a 1.7 s JupyterLab start here) for the "iri" string format, which no
#   Jupyter schema uses (jupyter_server#1559). `%pip install rfc3987-syntax` brings it back.
# - nvidia-nccl-cu12: xgboost's multi-GPU collective library (≈200 MB), of no use without GPUs;
#   xgboost trains on CPUs (and on one GPU) without it.
EXCLUDES: tuple[str, ...] = ("rfc3987-syntax", "nvidia-nccl-cu12")


@dataclass(frozen=True)
class BuiltinEnvironment:
    """One locked environment of the installation (see the module docstring)."""

    name: str
    title: str
    description: str
    # Built when `atoll up` starts; else when first wanted (a project chooses it, an admin builds it).
    prebuild: bool = True

    @property
    def lock_file(self) -> Path:
        return LOCKS / f"{self.name}.txt"

    def requirements(self) -> list[str]:
        """The lock file's pins (``name==version``), in its order."""
        return list(_pins(self.lock_file))

    def version_of(self, package: str) -> str:
        """The version the lock file pins ``package`` to (KeyError if it pins none)."""
        wanted = requirement_name(package)
        for pin in self.requirements():
            if requirement_name(pin) == wanted:
                return pin.split("==", 1)[1]
        raise KeyError(f"{self.name} pins no {package}")

    def key(self) -> str:
        """The content key this environment is (or will be) built under."""
        return environment_key(current_version(), self.requirements(), None, EXCLUDES)

    def lookup(self, builder: EnvironmentBuilder) -> Environment | None:
        """The built environment, if it is built."""
        return builder.lookup(self.key())

    def build(self, builder: EnvironmentBuilder) -> Environment:
        """Built now, or at once when it is (one build per machine; concurrent callers wait)."""
        return builder.build(current_version(), self.requirements(), excludes=EXCLUDES)


@functools.cache
def _pins(lock_file: Path) -> tuple[str, ...]:
    """A lock file's pins (read once: it is part of the installed package)."""
    pins = []
    for raw in lock_file.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _PIN.match(line)
        if m is None:
            raise ValueError(f"{lock_file.name}: not a pin: {line!r} (run ./dev lock-envs)")
        pins.append(f"{m.group(1)}=={m.group(2)}")
    return tuple(pins)


DATASCIENCE = BuiltinEnvironment(
    name="datascience",
    title="Data science",
    description=(
        "JupyterLab, pandas, SciPy, scikit-learn, statsmodels, Matplotlib, seaborn, Plotly, XGBoost, "
        "LightGBM, CatBoost, PyArrow, Polars, SQLAlchemy, psycopg, boto3, s3fs, OpenCV, Pillow, NLTK, "
        "TensorBoard, ipywidgets"
    ),
)
DEEPLEARNING = BuiltinEnvironment(
    name="deeplearning",
    title="Deep learning",
    description=(
        "The data-science stack plus PyTorch and torchvision (PyPI's CUDA build, which runs on CPUs too), "
        "Hugging Face Transformers, Tokenizers, Datasets and Accelerate"
    ),
    prebuild=False,  # 8 GB: built for the first project that chooses it
)
BUILTINS: dict[str, BuiltinEnvironment] = {DATASCIENCE.name: DATASCIENCE, DEEPLEARNING.name: DEEPLEARNING}
DEFAULT = DATASCIENCE
