"""What a local Python interpreter knows: its version, its stdlib, its installed distributions.

Auto-detection (spec §5.3) pins requirements to the versions installed in the *submitter's*
interpreter. By default that is the one running Atoll; ``Interpreter.inspect(path)`` asks
another one (a project venv) by running a short script in it.
"""

from __future__ import annotations

import functools
import inspect
import json
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atoll.errors import Invalid


def _collect() -> dict[str, Any]:
    """Runs inside the inspected interpreter too (as source): only the stdlib of Python >= 3.10."""
    import importlib.metadata as md
    import sys

    dists = {}
    for top, names in md.packages_distributions().items():
        found = []
        for name in dict.fromkeys(names):
            try:
                found.append([name, md.version(name)])
            except Exception:  # noqa: S112 -- a broken dist-info: skip it, as pip would
                continue
        dists[top] = found
    return {
        "version": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "stdlib": sorted(sys.stdlib_module_names),
        "builtins": sorted(sys.builtin_module_names),
        "distributions": dists,
    }


_SCRIPT = (
    "from __future__ import annotations\n"
    + textwrap.dedent(inspect.getsource(_collect))
    + "\nimport json\nprint(json.dumps(_collect()))\n"
)


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter as detection sees it."""

    version: str  # major.minor
    stdlib: frozenset[str]  # top-level names of the standard library, builtins included
    # top-level import name -> ((distribution name, version), ...), e.g. "yaml" -> (("PyYAML", "6.0.2"),)
    distributions: Mapping[str, tuple[tuple[str, str], ...]]

    @staticmethod
    def _from_json(data: dict[str, Any]) -> Interpreter:
        dists = data["distributions"]
        return Interpreter(
            version=str(data["version"]),
            stdlib=frozenset(data["stdlib"]) | frozenset(data["builtins"]),
            distributions={k: tuple((str(n), str(v)) for n, v in pairs) for k, pairs in dists.items()},
        )

    @staticmethod
    @functools.cache
    def current() -> Interpreter:
        """The interpreter running this process (computed once)."""
        return Interpreter._from_json(_collect())

    @staticmethod
    def inspect(python: str) -> Interpreter:
        """Ask the interpreter at ``python`` (e.g. a project's ``.venv/bin/python``); needs Python >= 3.10."""
        try:
            proc = subprocess.run(
                [python, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Invalid(
                f"env.python: cannot run the Python interpreter {python}: {e}", field="env.python"
            ) from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise Invalid(
                f"env.python: cannot inspect the interpreter {python} (Python >= 3.10 is needed): {last}",
                field="env.python",
            )
        return Interpreter._from_json(json.loads(proc.stdout))

    def is_stdlib(self, top: str) -> bool:
        """Whether ``top`` is a standard-library (or builtin) top-level module."""
        return top in self.stdlib or top in ("__main__", "__future__")


def current_version() -> str:
    """major.minor of the running interpreter."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"
