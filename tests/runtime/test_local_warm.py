"""Warm starts: a workload runs on a parked process that had its modules imported beforehand,
with the same environment, working dir, limits, logs and stop as a fresh start."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from atoll.runtime.base import Workload, WorkloadState
from atoll.runtime.local.proc_files import read_json
from atoll.runtime.local.runtime import LocalRuntime
from tests.runtime.conftest import pid_alive, read_all, wait_finished, wait_for, wait_log
from tests.support.leaks import register_root

Build = Callable[..., Workload]
PYTHON = Path(sys.executable)

PROBE = """
import json, os, sys
print(json.dumps({
    "pid": os.getpid(),
    "cwd": os.getcwd(),
    "argv": sys.argv[1:],
    "executable": sys.executable,
    "foo": os.environ.get("FOO"),
    "home": os.environ.get("HOME"),
    "preloaded": "decimal" in sys.modules,
    "uid": os.getuid(),
    "gid": os.getgid(),
    "groups": os.getgroups(),
}), flush=True)
if sys.argv[1:] == ["wait"]:
    import time
    time.sleep(60)
"""


def _parked(rt: LocalRuntime, key: str) -> list[int]:
    root = rt.state_dir / ".warm" / key
    pids = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        info = read_json(d / "parked.json")
        if info is not None:
            pids.append(int(info["pid"]))
    return pids


def _warm_up(rt: LocalRuntime, key: str, modules: list[str], count: int = 1) -> list[int]:
    wait_for(lambda: rt.keep_warm(key, PYTHON, modules, count) == count, what=f"{count} warm {key}")
    return _parked(rt, key)


def _probe(workload: Build, tmp_path: Path, wid: str, *args: str, **kw: object) -> Workload:
    workdir = tmp_path / "work" / wid
    workdir.mkdir(parents=True)
    (workdir / "probe_mod.py").write_text(PROBE)
    return workload(wid, [str(PYTHON), "-m", "probe_mod", *args], workdir=workdir, **kw)


def test_a_warm_start_runs_the_workload_on_a_parked_process(
    rt: LocalRuntime, workload: Build, tmp_path: Path
) -> None:
    [parked_pid] = _warm_up(rt, "probe", ["decimal"])
    w = _probe(workload, tmp_path, "warm-1", "a1", "b2", env={"FOO": "bar"}, warm="probe")
    st = rt.start(w)
    assert st.pid == parked_pid  # the parked process became the workload
    done = wait_finished(rt, "warm-1")
    assert done.state == WorkloadState.EXITED, done.detail
    out = json.loads(read_all(rt, "warm-1").decode())
    for key in ("uid", "gid", "groups"):
        out.pop(key)
    assert out == {
        "pid": parked_pid,
        "cwd": str(w.workdir),
        "argv": ["a1", "b2"],
        "executable": str(PYTHON),
        "foo": "bar",
        "home": str(w.workdir),
        "preloaded": True,  # imported before the workload existed
    }
    assert b"started on a warm process" in read_all(rt, "warm-1", "system")
    # The pool refills: a new parked process, not the one that was used.
    [again] = _warm_up(rt, "probe", ["decimal"])
    assert again != parked_pid


def test_a_warm_workload_has_its_limits_and_stops_like_any(
    rt: LocalRuntime, workload: Build, tmp_path: Path
) -> None:
    [parked_pid] = _warm_up(rt, "probe", ["decimal"])
    st = rt.start(_probe(workload, tmp_path, "warm-2", "wait", warm="probe"))
    assert st.pid == parked_pid
    wait_log(rt, "warm-2", b'"preloaded": true')
    enforced = rt.enforcement("warm-2")
    if enforced["cgroups"]:  # the warm process was moved into the workload's groups
        for d in set(enforced["cgroups"].values()):
            assert str(parked_pid) in (Path(d) / "cgroup.procs").read_text().split()
    else:
        rlimit = int(enforced["rlimits"]["RLIMIT_AS"])
        limits = Path(f"/proc/{parked_pid}/limits").read_text().splitlines()
        line = next(ln for ln in limits if "address" in ln)
        assert str(rlimit) in line
    assert rt.usage("warm-2").pids >= 1
    rt.stop("warm-2", signal.SIGTERM, grace=5)
    done = wait_finished(rt, "warm-2")
    assert done.state == WorkloadState.FAILED and done.signal == signal.SIGTERM
    assert not pid_alive(parked_pid)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_a_warm_workload_runs_as_the_workloads_user(rt: LocalRuntime, workload: Build) -> None:
    # The warm process imported its modules as the server's user (root); the workload's own code
    # runs only after it became the workload's user, with no supplementary groups.
    base = Path(tempfile.mkdtemp(prefix="atoll-warm-", dir="/tmp"))
    register_root(base)
    try:
        base.chmod(0o755)  # pytest's tmp dirs are root-only: the workload's user could not enter
        workdir = base / "work"
        workdir.mkdir()
        (workdir / "probe_mod.py").write_text(PROBE)
        [parked_pid] = _warm_up(rt, "probe", ["decimal"])
        argv = [str(PYTHON), "-m", "probe_mod"]
        w = workload("warm-user", argv, workdir=workdir, run_as=(54321, 54322), warm="probe")
        assert rt.start(w).pid == parked_pid
        done = wait_finished(rt, "warm-user")
        assert done.state == WorkloadState.EXITED, (done.detail, read_all(rt, "warm-user", "stderr"))
        out = json.loads(read_all(rt, "warm-user").decode())
        assert (out["pid"], out["uid"], out["gid"], out["groups"]) == (parked_pid, 54321, 54322, [])
        assert out["preloaded"] is True
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_without_a_parked_process_the_start_is_fresh(
    rt: LocalRuntime, workload: Build, tmp_path: Path
) -> None:
    st = rt.start(_probe(workload, tmp_path, "cold-1", warm="nobody-parked"))
    done = wait_finished(rt, "cold-1")
    assert done.state == WorkloadState.EXITED
    out = json.loads(read_all(rt, "cold-1").decode())
    assert out["pid"] == st.pid and out["preloaded"] is False
    assert b"started on a warm process" not in read_all(rt, "cold-1", "system")


def test_a_template_that_cannot_load_is_reported_and_workloads_start_fresh(
    rt: LocalRuntime, workload: Build, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = ["no_such_module_for_atoll_tests"]
    wait_for(
        lambda: rt.keep_warm("broken", PYTHON, bad, 1) == 0 and "No module named" in caplog.text,
        what="the failure to be reported",
    )
    assert "a warm process of broken failed to load" in caplog.text
    assert rt.keep_warm("broken", PYTHON, ["no_such_module_for_atoll_tests"], 1) == 0  # not respawned at once
    assert _parked(rt, "broken") == []
    rt.start(_probe(workload, tmp_path, "cold-2", warm="broken"))
    assert wait_finished(rt, "cold-2").state == WorkloadState.EXITED


def test_close_warm_stops_every_parked_process(rt: LocalRuntime) -> None:
    pids = _warm_up(rt, "probe", ["decimal"], count=2)
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)
    rt.close_warm()
    wait_for(lambda: not any(pid_alive(p) for p in pids), what="parked processes to end")
    assert _parked(rt, "probe") == []


def test_bad_template_names_are_refused(rt: LocalRuntime) -> None:
    with pytest.raises(ValueError, match="warm template"):
        rt.keep_warm("../escape", PYTHON, [], 1)
