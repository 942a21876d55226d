"""Resource limits and usage: cgroups where this machine has them, and the rlimit fallback."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from atoll.runtime.base import Workload, WorkloadState
from atoll.runtime.local import cgroups
from atoll.runtime.local.limits import LimitSupport
from atoll.runtime.local.runtime import LocalRuntime
from tests.runtime.conftest import py, read_all, wait_finished, wait_for, wait_log

Build = Callable[..., Workload]
MIB = 1 << 20
RLIMIT_ONLY = LimitSupport("rlimit", "forced by the test", cpu=False, memory=True, pids=False)


@pytest.fixture
def cgroup_rt(rt: LocalRuntime) -> LocalRuntime:
    """The detected runtime, skipping where this machine offers no writable cgroup."""
    if rt.layout is None:
        pytest.skip(f"no writable cgroup here ({rt.limits.detail})")
    return rt


def _cgroup_of(pid: int, controller: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(",") or (ctrls == "" and controller == "unified"):
            return path
    return ""


def test_cgroup_limits_are_written_and_the_process_is_inside(
    cgroup_rt: LocalRuntime, workload: Build
) -> None:
    rt = cgroup_rt
    sleeper = py("import time; print('up', flush=True); time.sleep(600)")
    st = rt.start(workload("limited", sleeper, cpus=0.5, memory_mb=200, max_pids=64))
    wait_log(rt, "limited", b"up")
    assert st.pid
    info = rt.enforcement("limited")
    dirs = {c: Path(d) for c, d in info["cgroups"].items()}
    assert info["mechanism"] == rt.limits.mechanism and info["enforced"]
    for d in dirs.values():
        assert str(st.pid) in (d / "cgroup.procs").read_text().split()
        assert d.name.endswith("-limited")
    if rt.layout and rt.layout.version == 1:
        assert int((dirs["memory"] / "memory.limit_in_bytes").read_text()) == 200 * MIB
        assert int((dirs["cpu"] / "cpu.cfs_quota_us").read_text()) == 50_000
        assert int((dirs["cpu"] / "cpu.cfs_period_us").read_text()) == 100_000
        if "pids" in dirs:
            assert (dirs["pids"] / "pids.max").read_text().strip() == "64"
        assert _cgroup_of(st.pid, "memory").endswith("/" + dirs["memory"].name)
        assert _cgroup_of(st.pid, "cpu").endswith("/" + dirs["cpu"].name)
    else:
        assert (dirs["memory"] / "memory.max").read_text().strip() == str(200 * MIB)
        assert (dirs["cpu"] / "cpu.max").read_text().split() == ["50000", "100000"]
    assert rt.limits.mechanism.startswith("cgroup")
    assert info["rlimits"] == {}  # memory is the cgroup's job here

    rt.stop("limited", signal.SIGKILL, grace=0)
    rt.forget("limited")
    assert not any(d.exists() for d in dirs.values())  # forget removes the groups


def test_memory_limit_is_enforced_by_cgroup(cgroup_rt: LocalRuntime, workload: Build) -> None:
    rt = cgroup_rt
    hog = "x = bytearray(512 * 1024 * 1024)\nx[::4096] = b'y' * len(x[::4096])\nprint('survived')"
    rt.start(workload("hog", py(hog), memory_mb=64))
    st = wait_finished(rt, "hog")
    assert st.state == WorkloadState.FAILED and st.signal == signal.SIGKILL
    assert "memory limit of 64 MB exceeded" in st.detail
    assert b"survived" not in read_all(rt, "hog")


def test_pids_limit_is_enforced_by_cgroup(cgroup_rt: LocalRuntime, workload: Build) -> None:
    rt = cgroup_rt
    if not rt.limits.pids:
        pytest.skip("no pids controller")
    code = (
        "import threading, time\nn = 0\ntry:\n"
        "    for _ in range(100):\n"
        "        threading.Thread(target=time.sleep, args=(30,), daemon=True).start(); n += 1\n"
        "except RuntimeError:\n    pass\nprint(n)\nimport os; os._exit(0)"
    )
    rt.start(workload("threads", py(code), max_pids=16))
    wait_finished(rt, "threads")
    assert 0 < int(read_all(rt, "threads")) < 16


def test_memory_limit_falls_back_to_rlimit(
    make_runtime: Callable[..., LocalRuntime], workload: Build
) -> None:
    rt = make_runtime(RLIMIT_ONLY)
    assert rt.layout is None
    code = (
        "import resource\nprint(resource.getrlimit(resource.RLIMIT_AS)[0], flush=True)\n"
        "x = bytearray(2048 * 1024 * 1024)\nprint('survived')"
    )
    rt.start(workload("rl", py(code), memory_mb=64))
    st = wait_finished(rt, "rl")
    out = read_all(rt, "rl")
    assert int(out.split()[0]) == 2 * 64 * MIB + 512 * MIB
    assert b"survived" not in out and b"MemoryError" in read_all(rt, "rl", "stderr")
    assert st.state == WorkloadState.FAILED and st.exit_code == 1
    assert rt.enforcement("rl")["cgroups"] == {}


@pytest.mark.parametrize("mode", ["detected", "rlimit"])
def test_usage_counts_cpu_of_a_busy_loop(
    make_runtime: Callable[..., LocalRuntime], workload: Build, mode: str
) -> None:
    rt = make_runtime(RLIMIT_ONLY if mode == "rlimit" else None)
    st = rt.start(workload(f"busy-{mode}", py("print('go', flush=True)\nwhile True: pass"), cpus=0.5))
    wait_log(rt, st.id, b"go")
    wait_for(lambda: rt.usage(st.id).cpu_seconds > 0.05, what="cpu seconds to grow")
    u = rt.usage(st.id)
    assert u.memory_bytes > 0 and u.max_memory_bytes >= u.memory_bytes and u.pids >= 1
    end = rt.stop(st.id, grace=5)
    assert end.state.finished
    assert rt.usage(st.id).cpu_seconds > 0.05  # still known after the end (until forget)


def test_detected_mechanism_is_reported(rt: LocalRuntime) -> None:
    assert rt.limits.mechanism in ("cgroup-v2", "cgroup-v1", "rlimit")
    assert (rt.layout is None) == (rt.limits.mechanism == "rlimit")
    if (
        os.geteuid() == 0
        and os.access("/sys/fs/cgroup/memory", os.W_OK)
        and not rt.limits.mechanism.endswith("v2")
    ):
        # This is the case on the development machines (see MACHINE-NOTES.md).
        assert rt.limits.mechanism == "cgroup-v1" and rt.limits.memory and rt.limits.cpu


def test_a_command_never_runs_without_its_limits(
    make_runtime: Callable[..., LocalRuntime], workload: Build, tmp_path: Path
) -> None:
    # A "cgroup tree" that is a plain directory: limits can be written, but joining fails.
    fake = tmp_path / "not-cgroupfs"
    fake.mkdir()
    limits = LimitSupport("cgroup-v1", "plain dir", True, False, False, cgroups.Layout(1, {"cpu": fake}))
    rt = make_runtime(limits)
    marker = tmp_path / "ran"
    rt.start(workload("unlimited", py(f"open({str(marker)!r}, 'w')")))
    st = wait_finished(rt, "unlimited")
    assert st.state == WorkloadState.FAILED and "could not start" in st.detail
    assert b"could not apply limits" in read_all(rt, "unlimited", "system")
    assert not marker.exists()
