"""A warm process: `python warm.py MODULE…`, started by a parked shim (see shim.park()).

It imports the modules named (the slow part of starting a program such as JupyterLab), says so
on its stdout (the shim makes it claimable then), then blocks on stdin. The shim claims it for a
workload by first putting it into the workload's cgroups and rlimits, then writing one JSON
object and closing stdin:

    {"argv": [python, "-m", module, args…], "env": {…}, "cwd": "…", "run_as": [uid, gid] | null}

This process then becomes that workload: the user switch comes first (it ran as the server's
user only to import code from a shared environment; nothing of the workload ran before), then
the working dir, the environment and argv, and ``python -m module`` runs here as it would in a
fresh interpreter. ``argv[0]`` (the workload's own interpreter, e.g. a project's venv layered
on the template's environment) becomes ``sys.executable`` and its site dir joins ``sys.path``,
so child processes (kernels, ``pip``) and imports see the same environment as a fresh start.

Standard library only: it runs on the template's interpreter, where Atoll is not installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import runpy
import site
import sys
from pathlib import Path
from typing import Any


def _venv_site(python: str) -> Path | None:
    """site-packages of the venv that ``python`` belongs to (None if it is not a venv)."""
    root = Path(python).parent.parent
    if not (root / "pyvenv.cfg").is_file():
        return None
    return root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _load_sandbox() -> Any:
    """runtime/local/sandbox.py, loaded by path: Atoll itself is not importable here."""
    spec = importlib.util.spec_from_file_location("atoll_sandbox", Path(__file__).with_name("sandbox.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOADED = b"atoll-warm: loaded\n"  # shim.WARM_LOADED: the shim makes it claimable on this line


def main() -> int:
    for name in sys.argv[1:]:
        importlib.import_module(name)
    sys.stdout.buffer.write(LOADED)
    sys.stdout.buffer.flush()
    raw = sys.stdin.buffer.read()  # blocks until the claim (or EOF: the shim went away)
    if not raw:
        return 0
    claim = json.loads(raw)
    argv: list[str] = claim["argv"]
    if len(argv) < 3 or argv[1] != "-m":
        print(f"warm.py: can only run `python -m MODULE …`, not {argv[:3]}", file=sys.stderr)
        return 2
    os.umask(0o077)  # as in a fresh start (see shim.py): the workload's files are its own
    box = claim.get("sandbox")
    if box:  # before the user switch, which drops the right to make mounts
        sandbox = _load_sandbox()
        sandbox.enter(sandbox.libc(), box.get("tmp"), box.get("files"))
        if box.get("netns"):
            sandbox.join_netns(sandbox.libc(), box["netns"])
    run_as = claim.get("run_as")
    if run_as:
        uid, gid = run_as
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    os.chdir(claim["cwd"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = open(0, closefd=False)  # fd 0 now reads /dev/null
    os.environ.clear()
    os.environ.update(claim["env"])
    sys.executable = argv[0]
    layer = _venv_site(argv[0])
    if layer is not None and layer.is_dir():
        site.addsitedir(str(layer))  # the project's own packages (and its .pth files)
        share = layer.parents[2] / "share" / "jupyter"
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            p for p in (str(share), os.environ.get("JUPYTER_PATH", "")) if p
        )
    # As `python -m` would have it: the working dir first, then PYTHONPATH, on sys.path.
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[0:0] = [os.getcwd(), *extra]
    sys.argv = [argv[0], *argv[3:]]
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
