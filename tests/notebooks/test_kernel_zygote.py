"""Python kernels forked from the notebook server's zygote (issue 18, item 4): they behave as kernels
Jupyter starts itself (own session, fresh random state, interrupt, restart, crash, shutdown), other
interpreters still start the usual way, and nothing outlives the server."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
from websockets.exceptions import WebSocketException

from atoll.runtime.local.proc_files import is_same_process, start_time
from tests.notebooks.conftest import Kernel, new_project, notebook_secret, open_and_wait, stop_and_wait
from tests.runtime.conftest import wait_for
from tests.support.server import RunningServer

# What a kernel says of itself: pid, parent, grandparent, whether it leads its own session, cwd.
WHO = (
    "import os, random, sys\n"
    "def _parent(p): return int(open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[1])\n"
    "print(os.getpid(), os.getppid(), _parent(os.getppid()), os.getsid(0) == os.getpid(),"
    " os.getcwd() == os.environ['DS_PROJECT_HOME'], random.random())"
)


def who(kernel: Kernel) -> tuple[int, int, int, bool, bool, float]:
    pid, parent, grand, leader, home, rnd = kernel.run(WHO).split()
    return int(pid), int(parent), int(grand), leader == "True", home == "True", float(rnd)


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def gone(pid: int, started: int | None) -> bool:
    return not is_same_process(pid, started)


def api(kernel: Kernel, method: str, path: str, **kw: object) -> httpx.Response:
    return httpx.request(method, f"{kernel.base}{path}", headers=kernel.headers, timeout=60, **kw)  # type: ignore[arg-type]


def answering(server: RunningServer, project: str, kernel_id: str) -> Kernel:
    """The kernel ``kernel_id`` once it answers again (Jupyter restarts a dead one within seconds)."""
    deadline = time.monotonic() + 60
    while True:
        kernel = Kernel(server, project, kernel_id=kernel_id)
        try:
            if kernel.run("print('back')", timeout=5).strip() == "back":
                return kernel
        except (TimeoutError, OSError, WebSocketException):
            pass
        kernel.close()
        assert time.monotonic() < deadline, "the restarted kernel never answered"
        time.sleep(0.2)


def test_kernels_fork_from_the_zygote_and_behave_as_fresh_ones(atoll: RunningServer) -> None:
    project = new_project(atoll, "nb-zygote")["id"]
    open_and_wait(atoll, project)
    first, second = Kernel(atoll, project), Kernel(atoll, project)
    pid, zygote, server, leader, home, rnd = who(first)
    pid2, zygote2, _, _, _, rnd2 = who(second)
    # Both were forked by one zygote, itself a fork of the JupyterLab server (same command line).
    assert zygote == zygote2 and zygote not in (server, pid)
    assert cmdline(zygote) == cmdline(server) and b"jupyterlab" in cmdline(server)
    # Each in its own session, in the notebook's directory, with its own random state.
    assert leader and home and rnd != rnd2 and pid != pid2
    # The server's secret, in the environment block it was started with, is not its kernels'.
    secret = notebook_secret(atoll, project).secret
    seen = first.run("print(open('/proc/self/environ', 'rb').read().decode(errors='replace'))")
    assert "ATOLL_NOTEBOOK_SECRET" in seen and secret not in seen
    # As `python -m ipykernel_launcher` has it: its argv, and the notebook's directory importable.
    code = "import sys; print(sys.argv[0].endswith('ipykernel_launcher.py'), '-f' in sys.argv)"
    assert first.run(code).split() == ["True", "True"]
    first.run("open('zygote_neighbour.py', 'w').write('VALUE = 7\\n')")
    assert second.run("import zygote_neighbour; print(zygote_neighbour.VALUE)").strip() == "7"

    # Interrupt (Jupyter signals the stand-in client, which signals the kernel's group).
    msg = first.send("import time; time.sleep(120)")
    wait_for(
        lambda: api(first, "GET", f"/api/kernels/{first.id}").json()["execution_state"] == "busy", 30, "busy"
    )
    assert api(first, "POST", f"/api/kernels/{first.id}/interrupt").status_code == 204
    _, reply = first.collect(msg, timeout=60)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    assert first.run("print(1 + 1)").strip() == "2"  # still the same kernel, still alive
    assert who(first)[0] == pid

    # A kernel that dies is restarted by Jupyter, forked again; the dead one is gone.
    first.close()
    started = start_time(pid)
    first.send("import os; os._exit(3)")
    first.close()
    wait_for(lambda: gone(pid, started), 30, "the crashed kernel gone")
    again = answering(atoll, project, first.id)
    new_pid, new_parent, *_ = who(again)
    assert new_pid != pid and new_parent == zygote
    again.close()

    # Shut down through the API: the kernel is gone.
    second_started = start_time(pid2)
    assert api(second, "DELETE", f"/api/kernels/{second.id}").status_code == 204
    second.close()
    wait_for(lambda: gone(pid2, second_started), 30, "the shut down kernel gone")

    # Packages installed (`%pip install` adds an entry to site-packages): what the zygote imported
    # may be stale, so the next kernel starts the usual way (Jupyter's own child), the ones it
    # forked run on.
    again = Kernel(atoll, project, kernel_id=first.id)
    site_packages = "sysconfig.get_paths()['purelib']"
    again.run(f"import os, sysconfig; os.mkdir(os.path.join({site_packages}, 'zygote_probe'))")
    again.close()
    fresh = Kernel(atoll, project)
    assert who(fresh)[1] == server
    fresh.close()
    assert not gone(zygote, start_time(zygote))
    running = Kernel(atoll, project, kernel_id=first.id)
    assert who(running)[0] == new_pid
    running.close()

    # Stopping the notebook server ends the zygote and every kernel.
    zygote_started, kernel_started = start_time(zygote), start_time(new_pid)
    stop_and_wait(atoll, project)
    wait_for(
        lambda: gone(zygote, zygote_started) and gone(new_pid, kernel_started), 30, "zygote and kernels gone"
    )


def test_other_interpreters_and_a_lost_zygote_start_kernels_the_usual_way(atoll: RunningServer) -> None:
    project = new_project(atoll, "nb-zygote-other")["id"]
    open_and_wait(atoll, project)
    kernel = Kernel(atoll, project)
    first_pid, zygote, server, *_ = who(kernel)
    first_started = start_time(first_pid)
    # A kernelspec of another path to the same interpreter (as every venv's python is): it must
    # get its own interpreter's start, not a fork of the server's sys.path.
    other_python = atoll.data_dir / "projects" / project / "notebook-env" / "bin" / "python-other"
    spec = {
        "argv": [str(other_python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Other",
        "language": "python",
    }
    out = kernel.run(
        "import json, os, sys\n"
        "d = os.path.join(sys.prefix, 'share', 'jupyter', 'kernels', 'other')\n"
        "os.makedirs(d, exist_ok=True)\n"
        f"open(os.path.join(d, 'kernel.json'), 'w').write(json.dumps({json.dumps(spec)}))\n"
        f"os.symlink(os.path.basename(sys.executable), {str(other_python)!r})\n"
        "print('ok')"
    )
    assert out.strip() == "ok"
    kernel.close()
    assert os.path.samefile(other_python, Path(other_python).with_name("python"))
    r = api(kernel, "POST", "/api/kernels", json={"name": "other"})
    assert r.status_code == 201, r.text
    other = Kernel(atoll, project, kernel_id=r.json()["id"])
    _, parent, *_ = who(other)
    assert parent == server  # started by Jupyter itself
    other.close()

    # The zygote killed: the kernels it forked end with it (as Jupyter's own end with their server),
    # and kernels still start, the usual way (the client runs the command).
    os.kill(zygote, signal.SIGKILL)
    wait_for(lambda: gone(first_pid, first_started), 30, "the zygote's kernel to end with it")
    fresh = Kernel(atoll, project)
    _, parent, *_ = who(fresh)
    assert parent == server
    fresh.close()
    stop_and_wait(atoll, project)
