"""Python environment detection for jobs (spec §5.3).

From the job's root modules (parsed out of ``cmd``, plus ``env.python.root-paths``) this finds
the **local modules** (project files reachable through imports) and the **pip requirements**
(third-party imports, pinned to the versions installed in the local interpreter).

DataSphere imports the root modules to look at their namespace; Atoll reads them with ``ast``
instead, so detection never runs user code. Imports anywhere in a file count (inside functions
and ``try`` blocks too): a module that may be imported must be installable.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import shlex
import shutil
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from atoll.envs.interpreter import Interpreter
from atoll.errors import Invalid
from atoll.jobspec.config import JobConfig, PipOptions
from atoll.jobspec.requirements import canonical_name, merge_pip_options, read_requirements_file

log = logging.getLogger(__name__)

ROOTS_NOT_FOUND = "Python root module(-s) was not found automatically or set in config"
ROOTS_FIELD = "env.python.root-paths"
# `python`, `python3`, `python3.11`, `python3.11d`, `python.exe` (PEP 3149 suffixes), by basename.
_PYTHON_NAME_RE = re.compile(r"python([23](\.\d{1,2})?[dmu]?)?(\.exe)?", re.IGNORECASE)
_ENV_ASSIGNMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")
# Interpreter options that take a value as the next argument (`-W ignore`, `-X dev`).
_OPTIONS_WITH_VALUE = frozenset("WX")
_LONG_OPTIONS_WITH_VALUE = frozenset({"--check-hash-based-pycs"})


@dataclass(frozen=True)
class PythonModule:
    """A root module: a file path relative to the project, or a module name given with ``-m``."""

    path: str
    is_name: bool = False


@dataclass(frozen=True)
class Exploration:
    """What the imports of the root modules reach."""

    local_modules: tuple[str, ...]  # top-level project files and package dirs to ship, relative, POSIX
    local_files: tuple[str, ...]  # every project .py file reached
    requirements: tuple[str, ...]  # "Dist==version", sorted by name
    messages: tuple[str, ...] = ()  # things the user may want to know (left-out imports, ...)


@dataclass(frozen=True)
class PythonEnvSpec:
    """A job's Python environment, ready to build: version, requirements, local modules, pip options."""

    version: str
    requirements: tuple[str, ...]
    local_modules: tuple[str, ...]
    pip: PipOptions
    root_modules: tuple[PythonModule, ...] = ()
    messages: tuple[str, ...] = field(default=())


# ------------------------------------------------------------------------------ root modules


def _is_python_name(arg: str) -> bool:
    return _PYTHON_NAME_RE.fullmatch(os.path.basename(arg)) is not None


def _has_python_shebang(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            first = f.readline(1024)  # a big binary must not be read whole
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    words = first[2:].decode("utf-8", "replace").split()
    # `#!/usr/bin/env python3`, `#!/usr/bin/env -S python3 -u`, `#!/venv/bin/python3.11`
    return any(_is_python_name(w) for w in words[:3])


def _after_interpreter(args: list[str]) -> PythonModule | None:
    """The module run by ``python [options] (script | -m module) ...``; None for ``-c`` or stdin."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg.startswith("--"):
            i += 2 if arg in _LONG_OPTIONS_WITH_VALUE else 1
            continue
        if arg.startswith("-") and arg != "-":
            # Short options may be bundled (`-uB`); `-m`/`-c` end the bundle and take the rest.
            for j, ch in enumerate(arg[1:], start=1):
                rest = arg[j + 1 :]
                if ch == "m":
                    name = rest or (args[i + 1] if i + 1 < len(args) else "")
                    return PythonModule(name, is_name=True) if name else None
                if ch == "c":
                    return None
                if ch in _OPTIONS_WITH_VALUE:
                    i += 0 if rest else 1  # the value is the next argument
                    break
            i += 1
            continue
        break
    if i >= len(args) or args[i] == "-":
        return None
    return PythonModule(args[i])


def main_module(cmd: str, base_dir: Path) -> PythonModule | None:
    """The Python main module of ``cmd``: ``python main.py``, ``python -m pkg.mod``, ``./run.py`` (shebang).

    Leading ``NAME=value`` assignments are skipped. None when ``cmd`` does not start a Python
    program (``bash run.sh``, a binary): give roots in ``root-paths`` then.
    """
    try:
        args = shlex.split(cmd)
    except ValueError:  # unbalanced quotes: let the shell complain later, detect what we can
        args = cmd.split()
    while args and _ENV_ASSIGNMENT_RE.fullmatch(args[0]):
        args = args[1:]
    if not args:
        return None
    first = args[0]
    if _is_python_name(first):
        return _after_interpreter(args[1:])
    # A script run directly must say it is Python in its shebang; a bare name may be on PATH
    # (a launcher such as `torchrun`, which then has an absolute path and is left out).
    local = base_dir / first
    candidate = local if local.is_file() else None
    if candidate is None and "/" not in first:
        found = shutil.which(first)
        candidate = Path(found) if found else None
    if candidate is not None and _has_python_shebang(candidate):
        return PythonModule(first if candidate == local else str(candidate))
    return None


def root_modules(
    cmd: str, root_paths: Sequence[str] | None, base_dir: Path, messages: list[str] | None = None
) -> list[PythonModule]:
    """The root modules: the main module of ``cmd`` plus ``root_paths``, without absolute paths.

    Absolute roots are dropped with an info message (they are launchers installed by pip, which
    come back with their package). Raises ``Invalid`` with DataSphere's message when none remain.
    """
    found: dict[PythonModule, None] = {}
    main = main_module(cmd, base_dir)
    if main is not None:
        found[main] = None
    for path in root_paths or ():
        found[PythonModule(path)] = None
    out = []
    for module in found:
        if not module.is_name and not os.path.isabs(module.path):
            module = PythonModule(Path(os.path.normpath(module.path)).as_posix())  # ./run.py -> run.py
        if not module.is_name and os.path.isabs(module.path):
            msg = (
                f"entry point with absolute path {module.path} is left out of the root modules: probably a "
                "launcher installed by a PyPI package; give your own scripts as relative paths in root-paths"
            )
            log.info(msg)
            if messages is not None:
                messages.append(msg)
            continue
        out.append(module)
    if not out:
        raise Invalid(ROOTS_NOT_FOUND, field=ROOTS_FIELD)
    return sorted(dict.fromkeys(out), key=lambda m: m.path)  # sorted: the same config detects the same way


# ----------------------------------------------------------------------------- import walking


def _imports(tree: ast.AST) -> Iterable[tuple[int, str | None, list[str]]]:
    """``(level, module, names)`` for each import; ``import a.b`` is ``(0, "a.b", [])``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module, [a.name for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call) and node.args:
            # importlib.import_module("x") / __import__("x") with a literal name
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            arg = node.args[0]
            if fname in ("import_module", "__import__") and isinstance(arg, ast.Constant):
                if isinstance(arg.value, str) and arg.value and not arg.value.startswith("."):
                    yield 0, arg.value, []


class _Walker:
    """One exploration: the project files reached so far, the third-party names, the work queue."""

    def __init__(self, base_dir: Path, search_dirs: list[Path], interpreter: Interpreter) -> None:
        self.base = base_dir.resolve()
        self.search = search_dirs
        self.interp = interpreter
        self.files: dict[Path, None] = {}  # reached local files, in order
        self.tops: dict[Path, None] = {}  # top-level local modules (file or package dir)
        self.third_party: dict[str, None] = {}
        self.messages: list[str] = []
        self.queue: deque[Path] = deque()
        self.roots: set[Path] = set()

    def _add_file(self, path: Path) -> None:
        path = path.resolve()
        if path not in self.files and path.is_relative_to(self.base):
            self.files[path] = None
            self.queue.append(path)

    def _find_top(self, name: str) -> Path | None:
        """Where a top-level module ``name`` lives in the project, if it does (sys.path order)."""
        for d in self.search:
            if (d / f"{name}.py").is_file():
                return d / f"{name}.py"
            if (d / name / "__init__.py").is_file():
                return d / name
        if self.interp.is_stdlib(name) or name in self.interp.distributions:
            return None
        for d in self.search:  # a namespace package: a plain directory with Python in it
            pkg = d / name
            if pkg.is_dir() and (any(pkg.glob("*.py")) or any(pkg.glob("*/__init__.py"))):
                return pkg
        return None

    def _descend(self, pkg: Path, parts: Sequence[str]) -> None:
        """Add ``pkg/__init__.py`` and the submodules along ``parts`` that exist."""
        cur = pkg
        if (cur / "__init__.py").is_file():
            self._add_file(cur / "__init__.py")
        for part in parts:
            if (cur / f"{part}.py").is_file():
                self._add_file(cur / f"{part}.py")
                return
            if not (cur / part).is_dir():
                return
            cur = cur / part
            if (cur / "__init__.py").is_file():
                self._add_file(cur / "__init__.py")

    def absolute(self, dotted: str, names: Sequence[str] = ()) -> None:
        """Follow ``import dotted`` / ``from dotted import names``."""
        top, *rest = dotted.split(".")
        if not top:
            return
        where = self._find_top(top)
        if where is None:
            if not self.interp.is_stdlib(top):
                self.third_party[top] = None
            return
        self.tops[where.resolve()] = None
        if where.is_file():
            self._add_file(where)
            return
        self._descend(where, rest)
        for name in names:  # `from pkg import sub` may name a submodule
            self._descend(where, [*rest, name])

    def relative(self, file: Path, level: int, module: str | None, names: Sequence[str]) -> None:
        """Follow ``from .module import names`` written in ``file``."""
        pkg = file.parent
        for _ in range(level - 1):
            pkg = pkg.parent
        parts = module.split(".") if module else []
        self._descend(pkg, parts)
        for name in names:
            self._descend(pkg, [*parts, name])

    def root(self, path: Path) -> None:
        """Start from a root file; unlike other files, one that does not parse is an error."""
        self.roots.add(path.resolve())
        self.tops[path.resolve()] = None
        self._add_file(path)

    def run(self) -> None:
        """Parse every queued file and follow its imports until nothing new is reached."""
        while self.queue:
            current = self.queue.popleft()
            rel = current.relative_to(self.base).as_posix()
            try:
                tree = ast.parse(current.read_bytes(), filename=rel)
            except (SyntaxError, ValueError) as e:
                lineno = getattr(e, "lineno", None)
                where = f", line {lineno}" if lineno else ""
                if current in self.roots:
                    raise Invalid(
                        f"env.python: {rel} is not valid Python 3{where}", field="env.python"
                    ) from None
                self.messages.append(f"{rel} is not valid Python 3{where}; its imports are not followed")
                continue
            for level, module, names in _imports(tree):
                if level:
                    self.relative(current, level, module, names)
                elif module:
                    self.absolute(module, names)


def _search_dirs(roots: Sequence[PythonModule], base_dir: Path) -> list[Path]:
    # sys.path[0] is the script's directory for `python dir/main.py` and the working directory
    # for `python -m`; the job runs in the project directory, so both are searched.
    dirs = [(base_dir / r.path).parent.resolve() for r in roots if not r.is_name]
    dirs.append(base_dir.resolve())
    return list(dict.fromkeys(dirs))


def _requirements(tops: Iterable[str], interp: Interpreter, messages: list[str]) -> tuple[str, ...]:
    pinned: dict[str, str] = {}
    for top in sorted(tops):
        dists = interp.distributions.get(top)
        if not dists:
            messages.append(
                f"module {top} is imported but no installed distribution provides it; "
                "it is left out of the requirements"
            )
            continue
        for name, version in dists:
            pinned.setdefault(canonical_name(name), f"{name}=={version}")
    return tuple(pinned[k] for k in sorted(pinned))


def explore(
    roots: Sequence[PythonModule], base_dir: Path, interpreter: Interpreter | None = None
) -> Exploration:
    """Walk the imports of ``roots`` through the project at ``base_dir``.

    Local modules are project files and packages the imports reach (transitively); every other
    non-stdlib import becomes a requirement pinned to the version installed in ``interpreter``
    (default: the running one). A ``-m`` root that is not in the project is itself a requirement.
    """
    interp = interpreter or Interpreter.current()
    walker = _Walker(base_dir, _search_dirs(roots, base_dir), interp)
    base = walker.base
    for root in roots:
        if root.is_name:
            walker.absolute(root.path)  # local package, or a library (`python -m torch.distributed.run`)
            continue
        path = (base / root.path).resolve()
        if not path.is_relative_to(base):
            raise Invalid(
                f"{ROOTS_FIELD}: root module {root.path} is outside the project directory", field=ROOTS_FIELD
            )
        if not path.is_file():
            raise Invalid(f"{ROOTS_FIELD}: Python root module {root.path} was not found", field=ROOTS_FIELD)
        walker.root(path)
    walker.run()

    # Ship whole top-level packages (submodules may be imported dynamically), plus any file
    # reached otherwise (a root in a subdirectory, a relative import); nothing nested twice.
    entries = [p for p in [*walker.tops, *walker.files] if p.is_relative_to(base)]
    shipped = {p for p in entries if not any(p != q and p.is_relative_to(q) for q in entries)}
    messages = list(walker.messages)
    requirements = _requirements(walker.third_party, interp, messages)
    return Exploration(
        local_modules=tuple(sorted(p.relative_to(base).as_posix() for p in shipped)),
        local_files=tuple(sorted(f.relative_to(base).as_posix() for f in walker.files)),
        requirements=requirements,
        messages=tuple(messages),
    )


# ---------------------------------------------------------------------------------- entry points


def generate_requirements(
    roots: Sequence[str | Path], base_dir: Path, *, interpreter: Interpreter | None = None
) -> list[str]:
    """Pinned requirements for the given root files (what ``atoll generate-requirements FILE...`` prints).

    A root is a Python file (relative to ``base_dir``, or absolute inside it) or a dotted module name.
    """
    base = base_dir.resolve()
    modules: list[PythonModule] = []
    for root in roots:
        path = Path(root)
        full = path if path.is_absolute() else base / path
        if full.is_file():
            if not full.resolve().is_relative_to(base):
                raise Invalid(f"{root}: root module is outside the project directory {base}", field="roots")
            modules.append(PythonModule(full.resolve().relative_to(base).as_posix()))
        elif re.fullmatch(r"[A-Za-z_][\w.]*", str(root)) and not str(root).endswith(".py"):
            modules.append(PythonModule(str(root), is_name=True))
        else:
            raise Invalid(f"{root}: no such Python file", field="roots")
    if not modules:
        raise Invalid(ROOTS_NOT_FOUND, field="roots")
    return list(explore(modules, base, interpreter).requirements)


def detect_python_env(
    cfg: JobConfig, base_dir: Path, *, interpreter: Interpreter | None = None
) -> PythonEnvSpec | None:
    """The Python environment of a job, or None for a plain environment (no ``env.python``).

    ``auto``: everything is detected. ``manual``: the version, requirements file and local paths
    that are given are taken as they are and the missing ones are detected; with all three given
    nothing local is inspected. Run on the submitter's machine, in the project directory.
    """
    py = cfg.env.python
    if py is None:
        return None
    messages: list[str] = []
    pip = py.pip or PipOptions()
    requirements: tuple[str, ...] | None = None
    if py.requirements_file is not None:
        req_file = read_requirements_file(base_dir / py.requirements_file, py.requirements_file)
        requirements = req_file.requirements
        pip = merge_pip_options(pip, req_file.pip)
    local_modules = py.local_paths
    roots: list[PythonModule] = []
    if requirements is None or local_modules is None:
        roots = root_modules(cfg.cmd, py.root_paths, base_dir, messages)
        interpreter = interpreter or Interpreter.current()
        found = explore(roots, base_dir, interpreter)
        messages += found.messages
        requirements = found.requirements if requirements is None else requirements
        local_modules = found.local_modules if local_modules is None else local_modules
    version = py.version or (interpreter or Interpreter.current()).version
    return PythonEnvSpec(
        version=version,
        requirements=requirements,
        local_modules=tuple(local_modules),
        pip=pip,
        root_modules=tuple(roots),
        messages=tuple(messages),
    )
