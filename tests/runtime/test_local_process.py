"""LocalRuntime with real processes: logs, exit status, stop, process trees, env, secrets, mounts."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from atoll.runtime.base import Mount, Runtime, UnknownWorkload, Workload, WorkloadExists, WorkloadState
from atoll.runtime.local.runtime import LocalRuntime
from tests.runtime.conftest import pid_alive, py, read_all, wait_finished, wait_for, wait_log

Build = Callable[..., Workload]


def test_is_a_runtime(rt: LocalRuntime) -> None:
    assert isinstance(rt, Runtime) and rt.name == "local"


def test_stdout_and_stderr_with_offsets_and_resume(rt: LocalRuntime, workload: Build) -> None:
    code = "import sys\nfor i in range(200): print(f'line {i}')\nprint('to stderr', file=sys.stderr)"
    st = rt.start(workload("logs", py(code)))
    assert st.state in (WorkloadState.RUNNING, WorkloadState.EXITED) and st.pid
    assert wait_finished(rt, "logs").state == WorkloadState.EXITED

    # Read in chunks, resuming from each next offset, as `attach` does.
    got, offset = b"", 0
    while True:
        chunk = rt.logs("logs", "stdout", offset, limit=100)
        got += chunk.data
        assert chunk.offset == offset + len(chunk.data)
        offset = chunk.offset
        if chunk.eof:
            break
    assert got == b"".join(f"line {i}\n".encode() for i in range(200))
    assert rt.logs("logs", "stdout", 7, 5).data == got[7:12]
    assert rt.logs("logs", "stderr").data == b"to stderr\n"
    system = rt.logs("logs", "system").data
    assert b"started pid" in system and b"exited with code 0" in system
    with pytest.raises(ValueError):
        rt.logs("logs", "journal")


def test_following_a_live_workload(rt: LocalRuntime, workload: Build, tmp_path: Path) -> None:
    go = tmp_path / "go"
    code = (
        "import os, time\nprint('first')\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\nprint('second')"
    )
    rt.start(workload("follow", py(code)))
    wait_log(rt, "follow", b"first\n")
    chunk = rt.logs("follow", "stdout", 0)
    assert chunk.data == b"first\n" and not chunk.eof  # still running: more may come
    go.touch()
    wait_finished(rt, "follow")
    rest = rt.logs("follow", "stdout", chunk.offset)
    assert rest.data == b"second\n" and rest.eof


def test_exit_codes_and_signals(rt: LocalRuntime, workload: Build) -> None:
    rt.start(workload("ok", py("pass")))
    rt.start(workload("three", py("import sys; sys.exit(3)")))
    rt.start(workload("usr1", py("import os, signal; os.kill(os.getpid(), signal.SIGUSR1)")))
    rt.start(workload("missing", ["/nonexistent/program"]))

    ok = wait_finished(rt, "ok")
    assert (ok.state, ok.exit_code, ok.signal) == (WorkloadState.EXITED, 0, None)
    assert ok.started_at and ok.finished_at and ok.finished_at >= ok.started_at
    three = wait_finished(rt, "three")
    assert (three.state, three.exit_code, three.signal) == (WorkloadState.FAILED, 3, None)
    assert three.detail == "exited with code 3"
    usr1 = wait_finished(rt, "usr1")
    assert (usr1.state, usr1.exit_code, usr1.signal) == (WorkloadState.FAILED, None, signal.SIGUSR1)
    assert "SIGUSR1" in usr1.detail
    missing = wait_finished(rt, "missing")
    assert missing.state == WorkloadState.FAILED and missing.pid is None
    assert "could not start" in missing.detail and "/nonexistent/program" in missing.detail


def test_stop_honoured_within_grace(rt: LocalRuntime, workload: Build) -> None:
    code = (
        "import signal, sys, time\n"
        "def bye(*_):\n    print('bye'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\nprint('ready')\n"
        "while True: time.sleep(0.1)"
    )
    rt.start(workload("polite", py(code)))
    wait_log(rt, "polite", b"ready")
    st = rt.stop("polite", grace=30)
    assert (st.state, st.exit_code, st.signal) == (WorkloadState.EXITED, 0, None)
    assert "stopped on request (SIGTERM)" in st.detail
    assert read_all(rt, "polite") == b"ready\nbye\n"
    assert b"stop requested: SIGTERM" in read_all(rt, "polite", "system")
    assert rt.stop("polite") == st  # idempotent


def test_stop_kills_after_grace_when_sigterm_is_ignored(rt: LocalRuntime, workload: Build) -> None:
    code = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready')\ntime.sleep(600)"
    )
    st = rt.start(workload("stubborn", py(code)))
    wait_log(rt, "stubborn", b"ready")
    assert st.pid
    end = rt.stop("stubborn", grace=0.3)
    assert (end.state, end.signal) == (WorkloadState.FAILED, signal.SIGKILL)
    assert not pid_alive(st.pid)


def test_stop_kills_the_whole_process_tree(rt: LocalRuntime, workload: Build) -> None:
    # The command forks a child in its group, and (with cgroups) one that escapes into a session
    # of its own; a stop must take both down.
    code = (
        "import subprocess, sys, time\n"
        "a = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "b = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],\n"
        "                     start_new_session=True)\n"
        "print(a.pid, b.pid, flush=True)\ntime.sleep(600)"
    )
    st = rt.start(workload("tree", py(code)))
    out = wait_log(rt, "tree", b"\n")
    child, escaped = (int(x) for x in out.split())
    assert pid_alive(child) and pid_alive(escaped)
    assert os.getpgid(child) == st.pid  # the workload's group is its command's pid

    end = rt.stop("tree", grace=5)
    assert end.state == WorkloadState.FAILED and end.signal == signal.SIGTERM
    wait_for(lambda: not pid_alive(child), what="the forked child to be gone")
    if rt.layout is not None:
        wait_for(lambda: not pid_alive(escaped), what="the escaped child to be gone")
    else:
        os.kill(escaped, signal.SIGKILL)  # rlimit-only machine: nothing can find it but its pid


def test_leftovers_are_killed_when_the_command_exits(rt: LocalRuntime, workload: Build) -> None:
    # The background child keeps the stdout pipe open; the workload still finishes, and the child
    # does not outlive it.
    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(p.pid)"
    )
    rt.start(workload("leaver", py(code)))
    assert wait_finished(rt, "leaver").exit_code == 0
    child = int(read_all(rt, "leaver"))
    wait_for(lambda: not pid_alive(child), what="the leftover child to be gone")


def test_environment(rt: LocalRuntime, workload: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOLL_SERVER_ONLY", "must-not-leak")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    dump = py("import json, os; print(json.dumps(dict(os.environ)))")
    rt.start(workload("env0", dump, env={"FOO": "bar", "CUDA_VISIBLE_DEVICES": "7"}, ports=(18080, 18081)))
    rt.start(workload("env2", dump, gpu_ids=(0, 1)))
    wait_finished(rt, "env0")
    wait_finished(rt, "env2")
    env0, env2 = json.loads(read_all(rt, "env0")), json.loads(read_all(rt, "env2"))

    assert "ATOLL_SERVER_ONLY" not in env0
    assert env0["FOO"] == "bar"
    assert env0["CUDA_VISIBLE_DEVICES"] == ""  # no GPU leaks in, whatever env says
    assert env2["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert env0["HOME"] == str(workload("env0", []).workdir)
    assert (env0["PORT"], env0["PORT_0"], env0["PORT_1"]) == ("18080", "18080", "18081")
    assert "PORT" not in env2
    assert env0["ATOLL_WORKLOAD_ID"] == "env0"
    assert env0["PATH"] and env0["LANG"]


def test_secrets_are_redacted_from_logs(rt: LocalRuntime, workload: Build) -> None:
    secret = "tok-5ecr3t-XYZ"
    code = (
        "import os, sys, time\n"
        "s = os.environ['API_TOKEN']\n"
        "print('whole', s, flush=True)\n"
        # Split across separate writes (and reads on the pump side), with a pause between.
        "os.write(1, b'split ' + s[:6].encode()); time.sleep(0.2); os.write(1, s[6:].encode() + b'\\n')\n"
        "for c in s: os.write(2, c.encode())\n"
        "os.write(2, b'\\n')\n"
    )
    rt.start(workload("secret", [*py(code), secret], secret_env={"API_TOKEN": secret}))
    assert wait_finished(rt, "secret").exit_code == 0
    out, err, system = (read_all(rt, "secret", s) for s in ("stdout", "stderr", "system"))
    for stream in (out, err, system):
        assert secret.encode() not in stream and b"tok-5e" not in stream
    assert out == b"whole ***\nsplit ***\n"
    assert err == b"***\n"
    assert b"***" in system  # the secret given on the command line is hidden there too


def test_mounts_are_links_in_the_workdir(rt: LocalRuntime, workload: Build, tmp_path: Path) -> None:
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "x.txt").write_text("mounted")
    w = workload(
        "mounts", py("print(open('inputs/data/x.txt').read())"), mounts=(Mount(data, "inputs/data"),)
    )
    rt.start(w)
    assert wait_finished(rt, "mounts").exit_code == 0
    assert read_all(rt, "mounts") == b"mounted\n"
    bad = workload("badmount", py("pass"), mounts=(Mount(data, "../escape"),))
    with pytest.raises(ValueError):
        rt.start(bad)
    with pytest.raises(UnknownWorkload):
        rt.status("badmount")  # a refused start leaves nothing behind


def test_ids_unknowns_forget_and_system_log(rt: LocalRuntime, workload: Build) -> None:
    with pytest.raises(ValueError):
        rt.start(workload("Bad_ID", py("pass")))
    with pytest.raises(UnknownWorkload):
        rt.status("nope")
    with pytest.raises(UnknownWorkload):
        rt.logs("nope")
    rt.forget("nope")  # no-op

    rt.start(workload("once", py("print('out')")))
    with pytest.raises(WorkloadExists):
        rt.start(workload("once", py("pass")))
    wait_finished(rt, "once")
    rt.append_system_log("once", "stopped: project balance is insufficient")
    rt.forget("once")
    with pytest.raises(UnknownWorkload):
        rt.status("once")
    # Logs outlive the runtime state.
    assert rt.logs("once").data == b"out\n" and rt.logs("once").eof
    assert b"project balance is insufficient" in rt.logs("once", "system").data
    assert rt.adopt() == []
