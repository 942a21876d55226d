"""The runtime-neutral parts of a Workload as the local runtime realizes them: the cwd under the
workdir, the Python environment activated, host-only env, and mounts made as links without
following one the workload planted."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from atoll.runtime.base import Mount, PythonEnv, UnknownWorkload, Workload
from atoll.runtime.local.runtime import LocalRuntime
from tests.runtime.conftest import py, read_all, wait_finished

Build = Callable[..., Workload]

SHOW = (
    "import json, os; print(json.dumps({'cwd': os.getcwd(), 'home': os.environ['HOME'], "
    "'path': os.environ['PATH'], 'venv': os.environ.get('VIRTUAL_ENV'), "
    "'model': os.environ.get('ATOLL_MODELS_DIR'), 'data': open('../datasets/d/x.txt').read()}))"
)


def test_cwd_python_env_host_env_and_mounts(rt: LocalRuntime, workload: Build, tmp_path: Path) -> None:
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "x.txt").write_text("sealed")
    prefix = tmp_path / "env"
    (prefix / "bin").mkdir(parents=True)
    w = workload(
        "shapes",
        py(SHOW),
        cwd="work",
        python=PythonEnv(prefix),
        host_env={"ATOLL_MODELS_DIR": "/srv/models"},
        env={"PATH": "/usr/bin:/bin"},
        mounts=(Mount(data, "datasets/d", read_only=True),),
    )
    (w.workdir / "work").mkdir(parents=True)
    rt.start(w)
    assert wait_finished(rt, "shapes").exit_code == 0, read_all(rt, "shapes", "stderr")
    seen = json.loads(read_all(rt, "shapes"))
    assert seen["cwd"] == str(w.workdir / "work") and seen["home"] == str(w.workdir)
    assert seen["path"] == f"{prefix / 'bin'}:/usr/bin:/bin" and seen["venv"] == str(prefix)
    assert seen["model"] == "/srv/models" and seen["data"] == "sealed"
    assert os.readlink(w.workdir / "datasets" / "d") == str(data)


def test_a_plain_interpreter_gets_no_virtual_env() -> None:
    env = PythonEnv(Path(sys.base_prefix), venv=False).activate({"VIRTUAL_ENV": "/srv/atoll/.venv"})
    assert "VIRTUAL_ENV" not in env and env["PATH"].startswith(f"{sys.base_prefix}/bin")


@pytest.mark.parametrize("cwd", ["/tmp", "../up", "a/../../b"])
def test_a_cwd_outside_the_workdir_is_refused(rt: LocalRuntime, workload: Build, cwd: str) -> None:
    with pytest.raises(ValueError, match="cwd"):
        rt.start(workload("badcwd", py("pass"), cwd=cwd))
    with pytest.raises(UnknownWorkload):
        rt.status("badcwd")


def test_mounts_never_follow_a_planted_link(rt: LocalRuntime, workload: Build, tmp_path: Path) -> None:
    # The workload's tree is its own: a link where a mount's parent should be must not make
    # Atoll create the mount (a link it owns) elsewhere.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data = tmp_path / "dataset"
    data.mkdir()
    w = workload("planted", py("pass"), mounts=(Mount(data, "datasets/d"),))
    w.workdir.mkdir(parents=True)
    (w.workdir / "datasets").symlink_to(elsewhere)
    with pytest.raises(OSError):
        rt.start(w)
    assert list(elsewhere.iterdir()) == []
    # A file where the mount goes is refused too, and left as it was.
    (w.workdir / "datasets").unlink()
    (w.workdir / "datasets").mkdir()
    (w.workdir / "datasets" / "d").write_text("mine")
    with pytest.raises(ValueError, match="already exists"):
        rt.start(workload("planted2", py("pass"), workdir=w.workdir, mounts=(Mount(data, "datasets/d"),)))
    assert (w.workdir / "datasets" / "d").read_text() == "mine"
