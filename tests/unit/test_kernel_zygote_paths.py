"""The kernel zygote forks only kernels that import what a fresh kernel would (kernel_zygote.py):
a loaded module that a fresh interpreter would take from another file (a project's upgrade, behind
a warm server's path) is found, and a fresh interpreter's path is read from one."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

from atoll.notebooks.kernel_zygote import fresh_path, shadowed


def loaded(name: str, origin: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, origin)
    assert spec is not None
    return importlib.util.module_from_spec(spec)


def test_a_module_the_path_would_take_from_elsewhere_is_named(tmp_path: Path) -> None:
    base, layer, config = tmp_path / "base", tmp_path / "layer", tmp_path / "config"
    for d in (base, layer, config):
        d.mkdir()
    (base / "tool.py").write_text("")
    (base / "pkg").mkdir()
    (base / "pkg" / "__init__.py").write_text("")
    (config / "atoll_thing.py").write_text("")
    (base / "vendored").mkdir()
    (base / "vendored" / "_inner.py").write_text("")
    modules = {
        "tool": loaded("tool", base / "tool.py"),
        "pkg": loaded("pkg", base / "pkg" / "__init__.py"),
        "pkg.sub": loaded("pkg.sub", base / "pkg" / "__init__.py"),  # submodules follow their package
        "atoll_thing": loaded("atoll_thing", config / "atoll_thing.py"),  # loaded by path: not checked
        "_inner": loaded("_inner", base / "vendored" / "_inner.py"),  # a dir a package added at run time
        "sys": sys,  # built-in
        "__main__": loaded("tool", base / "tool.py"),  # run as __main__: its spec names it otherwise
    }
    assert shadowed(modules, [str(layer), str(base)]) is None
    # The project's layer (first on a fresh path) gets its own copy: the loaded one is stale.
    (layer / "pkg").mkdir()
    (layer / "pkg" / "__init__.py").write_text("")
    assert shadowed(modules, [str(layer), str(base)]) == "pkg"
    assert shadowed(modules, [str(base), str(layer)]) is None  # behind the base: not imported
    (layer / "tool.py").write_text("")
    assert shadowed(modules, [str(layer), str(base)]) in ("tool", "pkg")


def test_a_fresh_interpreters_path_is_read_from_one() -> None:
    path = fresh_path()
    assert path is not None and path and "" not in path[:1]
    assert any(p.endswith("site-packages") for p in path)
    assert all(p in sys.path for p in path if p.endswith("site-packages"))
