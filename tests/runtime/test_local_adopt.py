"""Server restarts: a new LocalRuntime over the same state dir adopts what the old one started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from atoll.runtime.base import Workload, WorkloadState
from atoll.runtime.local.runtime import LocalRuntime
from tests.runtime.conftest import pid_alive, py, read_all, wait_for, wait_log

Build = Callable[..., Workload]


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def test_running_workload_is_adopted_and_stopped_by_the_new_server(
    make_runtime: Callable[..., LocalRuntime], workload: Build
) -> None:
    old = make_runtime()
    st = old.start(workload("long", py("import time; print('up', flush=True); time.sleep(600)")))
    wait_log(old, "long", b"up")

    new = make_runtime()  # the restarted server
    adopted = {s.id: s for s in new.adopt()}
    assert adopted["long"].state == WorkloadState.RUNNING and adopted["long"].pid == st.pid
    assert new.status("long").started_at == st.started_at
    end = new.stop("long", grace=10)
    assert end.state == WorkloadState.FAILED and end.signal == signal.SIGTERM
    assert not pid_alive(st.pid or 0)
    # The output written before and after the restart is one log.
    assert new.logs("long").data == b"up\n" and new.logs("long").eof


def test_workload_outlives_its_server_process_and_finishes_while_it_is_down(
    make_runtime: Callable[..., LocalRuntime], tmp_path: Path
) -> None:
    # A real server process starts the workload and exits: the workload must not notice.
    go = tmp_path / "go"
    code = (
        f"import os, sys, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
        "print('done'); sys.exit(7)"
    )
    server = (
        "import sys\nfrom pathlib import Path\n"
        "from atoll.runtime.base import Resources, Workload\n"
        "from atoll.runtime.local.runtime import LocalRuntime\nfrom atoll.storage.logs import LogStore\n"
        "t = Path(sys.argv[1])\n"
        "rt = LocalRuntime(t / 'state', LogStore(t / 'logs'))\n"
        "cmd = [sys.executable, '-c', sys.argv[2]]\n"
        "st = rt.start(Workload('offline', cmd, Resources(1, 256), t / 'w'))\n"
        "print(st.pid, st.state)"
    )
    done = subprocess.run(
        [sys.executable, "-c", server, str(tmp_path), code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pid_s, state = done.stdout.split()
    pid = int(pid_s)
    assert state == "running" and pid_alive(pid)
    shim = _ppid(pid)

    new = make_runtime()  # the restarted server
    [adopted] = new.adopt()
    assert (adopted.id, adopted.state, adopted.pid) == ("offline", WorkloadState.RUNNING, pid)
    del new  # ... and down again while the workload ends
    go.touch()
    wait_for(lambda: not pid_alive(shim), what="the supervisor to record the exit and end")

    again = make_runtime()
    [adopted] = again.adopt()
    assert (adopted.id, adopted.state, adopted.exit_code) == ("offline", WorkloadState.FAILED, 7)
    assert read_all(again, "offline") == b"done\n"


def test_killed_supervisor_makes_the_workload_lost_and_its_group_is_killed(
    make_runtime: Callable[..., LocalRuntime], workload: Build
) -> None:
    code = (
        "import subprocess, sys, time\n"
        "a = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(a.pid, flush=True)\ntime.sleep(600)"
    )
    old = make_runtime()
    st = old.start(workload("orphan", py(code)))
    grandchild = int(wait_log(old, "orphan", b"\n"))
    shim = _ppid(st.pid or 0)
    assert shim != os.getpid()
    os.kill(shim, signal.SIGKILL)  # the supervisor dies without recording anything
    wait_for(lambda: not pid_alive(shim), what="the supervisor to die")

    new = make_runtime()
    [adopted] = new.adopt()
    assert adopted.state == WorkloadState.LOST and "supervisor" in adopted.detail
    wait_for(lambda: not pid_alive(grandchild), what="the orphaned group to be killed")
    assert not pid_alive(st.pid or 0)
    assert new.status("orphan").state == WorkloadState.LOST  # recorded: stays LOST
    assert b"lost" in read_all(new, "orphan", "system")


def test_sigterm_to_the_supervisor_acts_as_a_stop(rt: LocalRuntime, workload: Build) -> None:
    st = rt.start(workload("termed", py("import time; print('up', flush=True); time.sleep(600)")))
    wait_log(rt, "termed", b"up")
    os.kill(_ppid(st.pid or 0), signal.SIGTERM)
    wait_for(lambda: rt.status("termed").state.finished, what="the workload to end")
    end = rt.status("termed")
    assert end.state == WorkloadState.FAILED and end.signal == signal.SIGTERM
