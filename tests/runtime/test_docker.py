"""The Docker runtime against a real, private dockerd (tests/support/docker.py) and a real image.

Skipped, with the reason, where Docker cannot run (no dockerd or debootstrap, not root, ...).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import httpx
import pytest

from atoll.runtime.base import (
    Mount,
    PythonEnv,
    Resources,
    Runtime,
    UnknownWorkload,
    Workload,
    WorkloadExists,
    WorkloadState,
)
from atoll.runtime.docker.runtime import LABEL, DockerRuntime, ImageNotAvailable
from atoll.storage.logs import LogStore
from tests.runtime.conftest import wait_for
from tests.support.docker import Dockerd, dockerd_or_skip
from tests.support.postgres import free_port

SECRET = "hunter2-s3cr3t"


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    with dockerd_or_skip() as d:
        yield d


@pytest.fixture
def make_runtime(dockerd: Dockerd, tmp_path: Path) -> Iterator[Callable[[], DockerRuntime]]:
    """DockerRuntimes over one LogStore (several = a server restart); every container is removed after."""
    made: list[DockerRuntime] = []

    def make() -> DockerRuntime:
        made.append(DockerRuntime(LogStore(tmp_path / "logs"), base_url=dockerd.url))
        return made[-1]

    yield make
    last = made[-1] if made else make()
    for c in last.client.containers.list(all=True, filters={"label": LABEL}):
        last.forget(c.labels[LABEL])
    for rt in made:
        rt.close()


@pytest.fixture
def rt(make_runtime: Callable[[], DockerRuntime]) -> DockerRuntime:
    return make_runtime()


@pytest.fixture
def workload(dockerd: Dockerd, tmp_path: Path) -> Callable[..., Workload]:
    def build(wid: str, code: str, memory_mb: int = 256, cpus: float = 1.0, **kw: object) -> Workload:
        kw.setdefault("workdir", tmp_path / "work" / wid)
        kw.setdefault("image", dockerd.image)
        return Workload(
            id=wid,
            command=["python3", "-c", code],
            resources=Resources(cpus=cpus, memory_mb=memory_mb),
            **kw,  # type: ignore[arg-type]
        )

    return build


def read(rt: DockerRuntime, wid: str, stream: str = "stdout") -> bytes:
    return rt.logs(wid, stream, 0, 1 << 30).data


def wait_finished(rt: DockerRuntime, wid: str, timeout: float = 30.0) -> None:
    wait_for(lambda: rt.status(wid).state.finished, timeout, f"{wid} to finish")


def test_exit_codes_logs_env_mounts_and_redaction(
    rt: DockerRuntime, workload: Callable[..., Workload], tmp_path: Path
) -> None:
    assert isinstance(rt, Runtime) and rt.name == "docker"
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("from the host")
    code = (
        "import os, sys; print('out', os.environ['API_KEY'], os.environ['PORT'], os.environ['MODE']); "
        "print('err', os.environ['API_KEY'], file=sys.stderr); print(os.getcwd() == os.environ['HOME']); "
        "print(open('inputs/in.txt').read()); print('uid', os.getuid(), os.getgid()); "
        "open('made.txt', 'w').write(os.environ['ATOLL_WORKLOAD_ID']); sys.exit(3)"
    )
    port = free_port()
    w = workload(
        "fails",
        code,
        env={"MODE": "test"},
        secret_env={"API_KEY": SECRET},
        ports=(port,),
        mounts=(Mount(data, "inputs"),),
        run_as=(4321, 4321),
    )
    rt.start(w)
    rt.start(workload("ok", "print('fine')"))
    wait_finished(rt, "fails")
    st = rt.status("fails")
    assert st.state is WorkloadState.FAILED and st.exit_code == 3 and st.detail == "exited with code 3"
    assert st.started_at and st.finished_at and st.finished_at >= st.started_at
    out, err = read(rt, "fails"), read(rt, "fails", "stderr")
    assert out.splitlines() == [f"out *** {port} test".encode(), b"True", b"from the host", b"uid 4321 4321"]
    assert err == b"err ***\n" and SECRET.encode() not in out + err
    assert (w.workdir / "made.txt").read_text() == "fails"
    system = read(rt, "fails", "system").decode()
    assert "started container" in system and f"from {w.image}" in system and "memory 256 MB" in system
    assert system.count("exited with code 3 (container") == 1
    assert rt.logs("fails", "stdout", len(out)).eof
    wait_finished(rt, "ok")
    st = rt.status("ok")
    assert st.state is WorkloadState.EXITED and st.exit_code == 0 and read(rt, "ok") == b"fine\n"
    # A command that is not in the image: the init reports it, the workload fails with 127.
    rt.start(Workload("nocmd", ["no-such-program"], Resources(1, 64), tmp_path / "w3", image=w.image))
    wait_finished(rt, "nocmd")
    assert rt.status("nocmd").exit_code == 127 and b"no-such-program" in read(rt, "nocmd", "stderr")


def test_http_server_on_loopback_and_stop(
    rt: DockerRuntime, workload: Callable[..., Workload], dockerd: Dockerd, tmp_path: Path
) -> None:
    port = free_port()
    w = Workload(
        "web",
        ["python3", "-m", "http.server", str(port), "--bind", "0.0.0.0"],
        Resources(1, 128),
        tmp_path / "web",
        ports=(port,),
        image=dockerd.image,
    )
    rt.start(w)
    ok = lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200  # noqa: E731
    wait_for(lambda: _quiet(ok), 20, "the server to answer")
    bindings = rt.client.containers.get("atoll-web").attrs["HostConfig"]["PortBindings"]
    assert bindings == {f"{port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    st = rt.stop("web", grace=5)
    assert st.state is WorkloadState.FAILED and st.signal == signal.SIGTERM
    assert st.detail == "stopped on request (SIGTERM): killed by signal 15 (SIGTERM)"
    assert not _quiet(ok)
    assert rt.stop("web").detail == st.detail  # idempotent
    # A command that ignores SIGTERM is killed after the grace period.
    rt.start(
        workload(
            "stubborn",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up'); time.sleep(60)",
        )
    )
    wait_for(lambda: read(rt, "stubborn") == b"up\n", 20, "stubborn to start")
    t0 = time.monotonic()
    st = rt.stop("stubborn", grace=1.0)
    assert 1.0 <= time.monotonic() - t0 < 8 and st.signal == signal.SIGKILL, st
    assert "stop requested: SIGTERM, then SIGKILL after 1 s" in read(rt, "stubborn", "system").decode()


def _quiet(f: Callable[[], bool]) -> bool:
    try:
        return f()
    except httpx.HTTPError:
        return False


def test_limits_memory_cpu_and_usage(rt: DockerRuntime, workload: Callable[..., Workload]) -> None:
    rt.start(workload("hog", "x = b'x' * (300 << 20); print('survived')", memory_mb=64))
    burn = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass\nprint('burnt', flush=True)\n"
    burn += "time.sleep(60)"
    rt.start(workload("burn", burn, cpus=0.5, memory_mb=128))
    host = rt.client.containers.get("atoll-burn").attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 128 << 20 and host["PidsLimit"] == 4096
    wait_finished(rt, "hog")
    st = rt.status("hog")
    assert st.state is WorkloadState.FAILED and "memory limit of 64 MB exceeded" in st.detail, st
    assert b"survived" not in read(rt, "hog")
    wait_for(lambda: b"burnt" in read(rt, "burn"), 20, "the burn to end")
    u = rt.usage("burn")
    # 1.5 s of busy wall time at half a core: about 0.75 CPU seconds, never the full 1.5.
    assert 0.3 < u.cpu_seconds < 1.2 and u.memory_bytes > 0 and u.max_memory_bytes >= u.memory_bytes, u
    assert u.pids >= 1


def test_adopt_after_restart_resumes_logs(
    make_runtime: Callable[[], DockerRuntime], workload: Callable[..., Workload], dockerd: Dockerd
) -> None:
    rt1 = make_runtime()
    ticker = (
        "import os, time\ni = 0\nwhile not os.path.exists('stop'):\n"
        "    print('tick', i, os.environ['API_KEY'], flush=True); i += 1; time.sleep(0.05)\nprint('bye')"
    )
    a = workload("ticker", ticker, secret_env={"API_KEY": SECRET})
    b = workload("ends-while-down", ticker, secret_env={"API_KEY": SECRET})
    rt1.start(a)
    rt1.start(b)
    wait_for(
        lambda: b"tick 5 " in read(rt1, "ticker") and b"tick 5 " in read(rt1, "ends-while-down"), 20, "ticks"
    )
    rt1.close()  # the server goes away; the containers run on
    (b.workdir / "stop").touch()
    c = dockerd.client()
    try:
        c.containers.get("atoll-ends-while-down").wait(timeout=20)
    finally:
        c.close()
    rt2 = make_runtime()
    found = {st.id: st for st in rt2.adopt()}
    assert found["ticker"].state is WorkloadState.RUNNING
    assert found["ends-while-down"].state is WorkloadState.EXITED
    size = len(read(rt2, "ticker"))
    wait_for(lambda: len(read(rt2, "ticker")) > size + 50, 20, "new ticks after adoption")
    (a.workdir / "stop").touch()
    wait_finished(rt2, "ticker")
    for wid in ("ticker", "ends-while-down"):
        lines = read(rt2, wid).decode().splitlines()
        # Every tick once, in order, none lost or doubled across the restart, all redacted.
        assert lines[-1] == "bye" and lines[:-1] == [f"tick {i} ***" for i in range(len(lines) - 1)], wid
        assert read(rt2, wid, "system").decode().count("exited with code 0 (container") == 1


def test_forget_missing_image_and_duplicates(
    rt: DockerRuntime, workload: Callable[..., Workload], dockerd: Dockerd
) -> None:
    rt.start(workload("gone", "import time; print('hello', flush=True); time.sleep(60)"))
    with pytest.raises(WorkloadExists):
        rt.start(workload("gone", "print(1)"))
    wait_for(lambda: read(rt, "gone") == b"hello\n", 20, "hello")
    rt.forget("gone")
    with pytest.raises(docker.errors.NotFound):
        rt.client.containers.get("atoll-gone")
    with pytest.raises(UnknownWorkload):
        rt.status("gone")
    chunk = rt.logs("gone")
    assert chunk.data == b"hello\n" and chunk.eof  # logs outlive the container
    rt.forget("gone")  # a no-op now
    with pytest.raises(
        ImageNotAvailable, match=r"'atoll-test:missing' is not on the Docker daemon.*built or loaded"
    ):
        rt.start(workload("noimage", "print(1)", image="atoll-test:missing"))
    with pytest.raises(ValueError, match="needs an image"):
        rt.start(workload("noimage", "print(1)", image=None))
    with pytest.raises(UnknownWorkload):
        rt.status("noimage")


def test_python_env_cwd_and_host_env_in_a_container(
    rt: DockerRuntime, workload: Callable[..., Workload], tmp_path: Path
) -> None:
    # The environment is bound read-only and its packages put on the image's python3's path; env
    # naming the server's own files stays out; the command starts in its cwd.
    prefix = tmp_path / "env"
    site = prefix / "lib" / "python3.99" / "site-packages"
    site.mkdir(parents=True)
    (site / "shapes_mod.py").write_text("VALUE = 'from the env'\n")
    code = (
        "import os, shapes_mod; print(shapes_mod.VALUE, os.getcwd().endswith('/work'), "
        "os.environ.get('ATOLL_MODELS_DIR'), os.environ.get('VIRTUAL_ENV'))\n"
        "try:\n    open(os.path.join(os.path.dirname(shapes_mod.__file__), 'w'), 'w')\n"
        "except OSError as e:\n    print('read-only', e.errno)\n"
    )
    w = workload(
        "pyenv", code, cwd="work", python=PythonEnv(prefix), host_env={"ATOLL_MODELS_DIR": "/srv/models"}
    )
    (w.workdir / "work").mkdir(parents=True)
    rt.start(w)
    wait_for(lambda: rt.status("pyenv").state.finished, 60, "the container")
    assert rt.status("pyenv").exit_code == 0, read(rt, "pyenv", "stderr")
    assert read(rt, "pyenv") == b"from the env True None None\nread-only 30\n"
    system = read(rt, "pyenv", "system")
    assert b"the image's python3 must be 3.99" in system and b"running in a container of image" in system
