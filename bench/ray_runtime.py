"""Start latency on the Ray runtime: a job and a notebook on Atoll's ray runtime, on its local runtime
and on plain Ray, on the same machine in the same run.

What is timed is what a user waits for:

- **job: first output** — from ``POST /api/v1/jobs/{id}/execute`` (the job, ``cmd: echo hello-N`` on
  configuration ``s1.1``, created just before, untimed) until ``GET /api/v1/jobs/{id}/logs`` shows
  the line; **job: finished** — until ``GET /api/v1/jobs/{id}`` says ``SUCCESS``. Both are polled
  every 50 ms over HTTP, as ``atoll job execute`` follows a job.
- **notebook: first cell** — from ``POST /api/v1/projects/{id}/notebook/open`` until a first cell
  (``1+1``) executed through the gateway (``/nb/{id}/``) returns its result; the same client code
  as ``bench/notebooks.py`` (imported from it), then the notebook is stopped (untimed).

Contenders, all at once, on one Ray cluster (``atoll.runtime.ray.cluster.LocalRayCluster``: one
head node at 127.0.0.2 with 2 CPUs and 8 GB of Ray memory):

1. **local runtime** — ``atoll up`` with default settings (workloads run on this machine).
2. **ray runtime** — a second ``atoll up`` with ``ATOLL_RUNTIME=ray`` on that cluster (each
   workload on the head node's warm actor host, or on an actor of its own when none is idle; its
   logs copied into Atoll by long polls).
3. **plain Ray** — core Ray 2.60 only (no dashboard, so no Ray Jobs HTTP API): a Ray driver
   connected once (as Atoll's server is), that per job creates an actor with the same resources
   (1 CPU, 2 GB), runs ``bash -c "echo hello-N"`` in a subprocess there (as Ray Jobs runs its
   entrypoint from a supervisor actor) and kills the actor. First output: the line reaching the
   driver through Ray's ``log_to_driver``; finished: ``ray.get`` of the call returns. The driver
   sees both as they happen (no polling). Also measured, as a reference line: the same command as
   a Ray *task* (a pooled worker, no actor to create). Ray has no notebook service: its notebook
   is an actor that starts the same ``jupyter lab`` as Atoll (Atoll's notebook environment and
   flags, listening on the node's address), the first cell going straight to its port.

Every contender does one warm-up job and notebook (not counted), then ``--runs`` rounds; each round
runs one job on every contender in turn, then one notebook on each, each run after the cluster's
CPUs are all free again. Medians and minimums are printed, with the ratios ray/local and
ray/plain Ray.

Everything binds to loopback (the servers to 127.0.0.1, Ray to 127.0.0.2). Every process started
here runs in its own session and is stopped by its process group or pid, the Ray cluster by its own
``stop()`` (never ``ray stop``, which would stop every Ray on the machine), also on failure; last,
any process still carrying this run's marker variable is killed by pid.

Run: ``.venv/bin/python bench/ray_runtime.py [--runs N] [--keep]`` (from the repository root).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import io
import json
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from procs import BenchError, Process, cmdline, remove_networks, with_marker

from atoll.envs.build import EnvironmentBuilder
from atoll.notebooks.server import jupyter_command, notebook_environment
from atoll.runtime.ray.cluster import LocalRayCluster, free_port, reap, release
from notebooks import (
    CONFIGURATION,
    POLL_S,
    atoll_executable,
    atoll_open,
    atoll_project,
    atoll_stop,
    first_cell,
    poll_until,
)

GB = 1024**3
HEAD = "127.0.0.2"
HEAD_CPUS = 2
HEAD_MEMORY = 8 * GB
S11_CPUS, S11_MEMORY = 1, 2 * GB  # configuration s1.1, which the plain Ray actors ask for too
MARKER_VAR = "ATOLL_BENCH_RAY_RUNTIME"  # in every process this run starts: the last-resort sweep

JOB_TIMEOUT_S = 120.0
NB_TIMEOUT_S = 120.0
WARMUP_TIMEOUT_S = 900.0  # a first start may build an environment
SETTLE_S = 0.3  # after a run, before the next contender's: let the last one's exit finish

LOCAL, RAY, PLAIN, TASK = "local runtime", "ray runtime", "plain Ray", "plain Ray task"
STATUSES = ("CREATING", "PREPARING", "EXECUTING", "UPLOADING_OUTPUT", "SUCCESS")
ROWS = (("job", "job: first output"), ("done", "job: finished"), ("nb", "notebook: first cell"))


# -- the plain-Ray driver --------------------------------------------------------------------------

DRIVER = r'''
"""The plain-Ray contender of bench/ray_runtime.py: one Ray driver, connected once. Requests come
as JSON lines on stdin, answers go as JSON lines to the original stdout; times are
time.monotonic() (CLOCK_MONOTONIC: comparable with the bench's own clock)."""
import json, logging, os, re, signal, subprocess, sys, threading, time

reply = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # fd 1 → the log: nothing but answers reaches the bench

import ray

address, node_ip, cpus, memory = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
WORD = re.compile(r"hello-\d+")


class Watch:
    """This driver's sys.stdout: Ray's log_to_driver prints its workers' lines here."""

    def __init__(self, sink):
        self.sink, self.seen, self.cond = sink, {}, threading.Condition()

    def write(self, s):
        now = time.monotonic()
        with self.cond:
            for word in WORD.findall(s):
                self.seen.setdefault(word, now)
            self.cond.notify_all()
        return self.sink.write(s)

    def flush(self):
        self.sink.flush()

    def wait(self, word, timeout):
        with self.cond:
            self.cond.wait_for(lambda: word in self.seen, timeout)
            return self.seen.get(word)


watch = Watch(sys.stderr)
sys.stdout = watch
ray.init(address=address, _node_ip_address=node_ip, log_to_driver=True, logging_level=logging.WARNING)


@ray.remote
class Job:
    def run(self, cmd):
        return subprocess.run(["bash", "-c", cmd]).returncode  # its output: this worker's stdout


@ray.remote
def job_task(cmd):
    return subprocess.run(["bash", "-c", cmd]).returncode


@ray.remote
class Lab:
    """A jupyter lab on this actor's node, in a session of its own, listening on the node's address."""

    def __init__(self, argv, env, cwd, log):
        env = {**env, "HOST": ray.util.get_node_ip_address()}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def pid(self):
        return self.proc.pid

    def stop(self):
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                pass


def idle(timeout):
    """Until every CPU and byte of memory of the cluster is free again; seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        free = ray.available_resources()
        if free.get("CPU", 0) >= cpus and free.get("memory", 0) >= memory:
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


labs = {}
res = {"cpus": cpus, "memory": memory}
reply.write(json.dumps({"ready": True}) + "\n")
for line in sys.stdin:
    req = json.loads(line)
    op = req["op"]
    try:
        if op == "job":
            actor = Job.options(num_cpus=req["cpus"], memory=req["memory"]).remote()
            rc = ray.get(actor.run.remote(req["cmd"]))
            done = time.monotonic()
            first = watch.wait(req["word"], 30)
            ray.kill(actor)
            out = {"rc": rc, "done": done, "first": first}
        elif op == "task":
            rc = ray.get(job_task.options(num_cpus=req["cpus"], memory=req["memory"]).remote(req["cmd"]))
            done = time.monotonic()
            out = {"rc": rc, "done": done, "first": watch.wait(req["word"], 30)}
        elif op == "lab-start":
            actor = Lab.options(num_cpus=req["cpus"], memory=req["memory"]).remote(
                req["argv"], req["env"], req["cwd"], req["log"]
            )
            labs[req["id"]] = actor
            out = {"pid": ray.get(actor.pid.remote())}
        elif op == "lab-stop":
            actor = labs.pop(req["id"])
            ray.get(actor.stop.remote(), timeout=60)
            ray.kill(actor)
            out = {}
        elif op == "idle":
            out = {"waited": idle(req["timeout"])}
        else:
            out = {"error": f"unknown op {op}"}
    except Exception as e:
        out = {"error": f"{type(e).__name__}: {e}"}
    reply.write(json.dumps(out) + "\n")

for actor in labs.values():  # the bench is stopping: what a failed run left
    try:
        ray.get(actor.stop.remote(), timeout=60)
    finally:
        ray.kill(actor)
ray.shutdown()
'''


@dataclass
class Driver:
    """The plain-Ray driver (``DRIVER``), a subprocess in its own session talking JSON lines."""

    workdir: Path
    cluster: LocalRayCluster
    proc: asyncio.subprocess.Process | None = None
    labs: int = 0

    async def start(self) -> None:
        script = self.workdir / "plain_ray_driver.py"
        script.write_text(DRIVER)
        log = (self.workdir / "plain-ray-driver.log").open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(script),
                self.cluster.address,
                HEAD,
                str(HEAD_CPUS),
                str(HEAD_MEMORY),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env={**os.environ, "RAY_DEDUP_LOGS": "0"},
                start_new_session=True,
            )
        finally:
            log.close()
        await self._answer(120)

    def log_tail(self, lines: int = 30) -> str:
        text = (self.workdir / "plain-ray-driver.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    async def _answer(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise BenchError(f"the plain Ray driver did not answer in {timeout:.0f} s") from None
        if not line:
            raise BenchError(f"the plain Ray driver exited:\n{self.log_tail()}")
        got: dict[str, Any] = json.loads(line)
        if "error" in got:
            raise BenchError(f"plain Ray: {got['error']}\n{self.log_tail()}")
        return got

    async def call(self, wait_s: float = 120, **req: Any) -> dict[str, Any]:
        """Send one request; its answer within ``wait_s`` seconds."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._answer(wait_s)

    async def idle(self) -> None:
        """Untimed, before each run: the cluster's CPUs all free (nothing left from the last run)."""
        got = await self.call(op="idle", timeout=30, wait_s=40)
        if got["waited"] is None:
            print("  (the cluster still had resources held after 30 s: going on)", flush=True)

    async def job(self, n: int, op: str) -> tuple[float, float]:
        word = f"hello-{n}"
        t0 = time.monotonic()
        got = await self.call(op=op, cmd=f"echo {word}", word=word, cpus=S11_CPUS, memory=S11_MEMORY)
        if got["rc"] != 0 or got["first"] is None:
            raise BenchError(
                f"plain Ray {op}: exit code {got['rc']}, output seen: {got['first'] is not None}"
            )
        return got["first"] - t0, got["done"] - t0

    async def notebook(
        self, client: httpx.AsyncClient, python: Path, env: dict[str, str], timeout: float
    ) -> tuple[float, float]:
        """An actor starts jupyter lab (Atoll's environment and flags) on the node; first cell direct."""
        port, token = free_port(HEAD), secrets.token_urlsafe(24)
        root = self.workdir / "plain-root"
        root.mkdir(exist_ok=True)
        argv, jenv = jupyter_command(python, port, "/", root, token, self.workdir / "plain-state")
        lab_env = env | jenv | {"ATOLL_KERNEL_ZYGOTE": "0"}  # plain: Jupyter's own kernel start
        base, headers = f"http://{HEAD}:{port}/", {"Authorization": f"token {token}"}
        self.labs += 1
        lab_id = str(self.labs)
        log = str(self.workdir / "plain-jupyter.log")
        t0 = time.monotonic()
        await self.call(
            op="lab-start", id=lab_id, argv=argv, env=lab_env, cwd=str(root), log=log, cpus=S11_CPUS,
            memory=S11_MEMORY, wait_s=timeout,
        )  # fmt: skip
        try:

            async def ready() -> bool:
                try:
                    return (await client.get(base + "api/status", headers=headers)).status_code == 200
                except httpx.HTTPError:
                    return False

            await poll_until(ready, timeout, "jupyter lab on Ray")
            answered = time.monotonic() - t0
            await first_cell(client, base, headers, time.monotonic() + timeout)
            return time.monotonic() - t0, answered
        finally:
            await self.call(op="lab-stop", id=lab_id, wait_s=90)

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None and self.proc.stdin is not None:
            self.proc.stdin.close()  # the driver stops what is left and disconnects
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 90)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.returncode is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 10)


# -- an Atoll server -------------------------------------------------------------------------------


@dataclass
class Atoll:
    """A real ``atoll up`` on free ports with its own data dir, a project, and a client."""

    name: str
    workdir: Path
    settings: dict[str, str]
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    project_id: str = ""
    server: Process | None = None
    client: httpx.AsyncClient | None = None
    notebook_open: bool = False
    seen: dict[str, float] = field(default_factory=dict)  # the last job: status → first seen at (s)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def check_alive(self) -> None:
        if self.server is not None:
            self.server.check_alive(f"atoll up ({self.name})")

    def log_tail(self) -> str:
        return self.server.log_tail() if self.server else ""

    async def start(self) -> None:
        port, password = free_port(), secrets.token_urlsafe(16)
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "ATOLL_DATA_DIR": str(self.data_dir),
            "ATOLL_PORT": str(port),
            "ATOLL_HOST": "127.0.0.1",
            "ATOLL_GATEWAY_PORT": "0",  # no deploy gateway: notebooks go through /nb/ on the API port
            "ATOLL_ADMIN_PASSWORD": password,
            "ATOLL_LOG_LEVEL": "warning",
            **self.settings,
        }
        self.server = Process([atoll_executable(), "up"], env, self.workdir / "atoll.log").start()
        self.client = client = httpx.AsyncClient(base_url=self.url, timeout=30, trust_env=False)

        async def healthy() -> bool:
            try:
                return (await client.get("/healthz", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        await poll_until(healthy, 120, f"atoll up ({self.name})", self.check_alive)
        resp = await client.post(
            "/api/v1/auth/tokens", json={"username": "admin", "password": password, "name": "bench"}
        )
        resp.raise_for_status()
        self.headers = {"Authorization": f"Bearer {resp.json()['token']}"}
        self.project_id = await atoll_project(client, self.headers)

    async def job(self, n: int, timeout: float) -> tuple[float, float]:
        """execute → the line in the job's logs, and → SUCCESS (seconds). The first time each
        status was seen goes to ``self.statuses`` (the job's timeline as the client sees it)."""
        assert self.client is not None
        c, h, word = self.client, self.headers, f"hello-{n}"
        config = f"cmd: echo {word}\ncloud-instance-types: [{CONFIGURATION}]\n"
        r = await c.post(f"/api/v1/projects/{self.project_id}/jobs", headers=h, json={"config": config})
        if r.status_code != 201:
            raise BenchError(f"{self.name}: creating a job → HTTP {r.status_code}: {r.text[:300]}")
        job_id = r.json()["job"]["id"]
        t0 = time.monotonic()
        r = await c.post(f"/api/v1/jobs/{job_id}/execute", headers=h)
        if r.status_code >= 400:
            raise BenchError(f"{self.name}: execute → HTTP {r.status_code}: {r.text[:300]}")
        first = done = None
        self.seen = {}
        while first is None or done is None:
            if first is None:
                r = await c.get(f"/api/v1/jobs/{job_id}/logs", headers=h)
                r.raise_for_status()
                if word in r.json()["data"]:
                    first = time.monotonic() - t0
            if done is None:
                r = await c.get(f"/api/v1/jobs/{job_id}", headers=h)
                r.raise_for_status()
                job = r.json()
                self.seen.setdefault(job["status"], time.monotonic() - t0)
                if job["status"] == "SUCCESS":
                    done = time.monotonic() - t0
                elif job["status"] in ("ERROR", "CANCELLED"):
                    raise BenchError(
                        f"{self.name}: job {job_id} ended {job['status']}: {job.get('statusDetails')}\n"
                        f"{self.log_tail()}"
                    )
            if first is None or done is None:
                if time.monotonic() - t0 > timeout:
                    raise BenchError(
                        f"{self.name}: job {job_id} not done after {timeout:.0f} s "
                        f"(output seen: {first is not None}, status {job['status']})\n{self.log_tail()}"
                    )
                self.check_alive()
                await asyncio.sleep(POLL_S)
        return first, done

    async def notebook(self, timeout: float) -> tuple[float, float]:
        """open → the first cell's result through the gateway; then stopped (untimed)."""
        assert self.client is not None
        c, h = self.client, self.headers
        api = f"/api/v1/projects/{self.project_id}/notebook"
        t0 = time.monotonic()
        self.notebook_open = True  # from here on, a failure stops it (see stop())
        await atoll_open(c, h, api, timeout, self.log_tail, self.check_alive)
        answered = time.monotonic() - t0
        await first_cell(c, f"{self.url}/nb/{self.project_id}/", h, time.monotonic() + timeout)
        elapsed = time.monotonic() - t0
        await atoll_stop(c, h, api)
        self.notebook_open = False
        return elapsed, answered

    async def stop(self) -> None:
        if self.client is not None:
            if self.notebook_open and self.server is not None and self.server.alive():
                with contextlib.suppress(httpx.HTTPError, BenchError):
                    await atoll_stop(
                        self.client, self.headers, f"/api/v1/projects/{self.project_id}/notebook"
                    )
            await self.client.aclose()
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Samples:
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, contender: str, row: str, seconds: float) -> None:
        self.values.setdefault(contender, {}).setdefault(row, []).append(seconds)

    def get(self, contender: str, row: str) -> list[float]:
        return self.values.get(contender, {}).get(row, [])


def secs(x: float) -> str:
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3f}"


def cell(xs: list[float]) -> str:
    return f"{secs(statistics.median(xs))} (min {secs(min(xs))})" if xs else "—"


def ratio(a: list[float], b: list[float]) -> str:
    return f"{statistics.median(a) / statistics.median(b):.2f}×" if a and b else "—"


def report(samples: Samples, runs: int) -> None:
    ray_version = importlib.metadata.version("ray")
    print()
    print(
        f"setup: {os.cpu_count()} cores, Ray {ray_version}, one LocalRayCluster head node ({HEAD}, "
        f"{HEAD_CPUS} CPUs, {HEAD_MEMORY // GB} GB) used by the ray runtime and plain Ray; configuration "
        f"{CONFIGURATION} ({S11_CPUS} CPU, {S11_MEMORY // GB} GB); {runs} rounds after one warm-up, "
        "contenders interleaved."
    )
    print(
        "  Atoll: default settings but ATOLL_GATEWAY_PORT=0 (no deploy gateway) and one ATOLL_ENVS_DIR; "
        "REST API polled every 50 ms (jobs: execute → line in /logs, → SUCCESS; notebook: "
        "open → READY → 1+1 through the gateway)."
    )
    print(
        "  plain Ray = core Ray, no dashboard/Jobs API: a driver connected once; per job a new actor "
        f"(num_cpus={S11_CPUS}, memory={S11_MEMORY // GB} GB) runs `bash -c 'echo hello-N'` in a subprocess, "
        "first output = the line reaching the driver via log_to_driver, finished = ray.get returns; "
        "notebook = an actor starting the same `jupyter lab` (Atoll's env and flags) on the node, "
        "first cell straight to its port (Ray has no notebook service)."
    )
    print()
    cols = (LOCAL, RAY, PLAIN)
    head = f"{'seconds, median (min)':<22}" + "".join(f"{c:>20}" for c in cols)
    print(head + f"{'ray / local':>13}{'ray / plain Ray':>17}")
    for key, label in ROWS:
        line = f"{label:<22}" + "".join(f"{cell(samples.get(c, key)):>20}" for c in cols)
        rl = ratio(samples.get(RAY, key), samples.get(LOCAL, key))
        rp = ratio(samples.get(RAY, key), samples.get(PLAIN, key))
        print(line + f"{rl:>13}{rp:>17}")
    first, done = samples.get(TASK, "job"), samples.get(TASK, "done")
    if first:
        print(
            f"\nreference, plain Ray with a task instead of an actor (a pooled worker): first output "
            f"{cell(first)}, finished {cell(done)}"
        )
    for c in (LOCAL, RAY):
        seen = [(k.removeprefix("status "), v) for k, v in samples.values.get(c, {}).items()]
        steps = sorted(
            ((k, statistics.median(v)) for k, v in seen if k != "job" and k in STATUSES), key=lambda kv: kv[1]
        )
        if steps:
            shown = ", ".join(f"{k} {v:.2f}" for k, v in steps)
            print(f"{c} job statuses, first seen after execute (median s): {shown}")
    answered = {c: samples.get(c, "nb-answered") for c in cols}
    if any(answered.values()):
        parts = ", ".join(f"{c} {statistics.median(v):.2f}" for c, v in answered.items() if v)
        print(f"notebook server first answered (median s): {parts}")


async def bench(args: argparse.Namespace, workdir: Path, samples: Samples) -> None:
    envs = workdir / "envs"  # shared by both servers and plain Ray: one notebook environment
    print(f"notebook environment in {envs} (built once per run) …", flush=True)
    t = time.monotonic()
    environment = await asyncio.to_thread(notebook_environment, EnvironmentBuilder(envs))
    print(f"  ready in {time.monotonic() - t:.1f} s", flush=True)
    plain_env = environment.activate(os.environ)

    cluster = LocalRayCluster(workdir / "cluster", head_cpus=HEAD_CPUS, head_memory_bytes=HEAD_MEMORY)
    node_dir = workdir / "ray-node"
    namespace = "bench-" + secrets.token_hex(4)
    common = {"ATOLL_ENVS_DIR": str(envs)}
    ray_settings = {
        **common,
        "ATOLL_RUNTIME": "ray",
        "ATOLL_RAY_NODE_IP": HEAD,
        "ATOLL_RAY_NODE_DIR": str(node_dir),
        "ATOLL_RAY_NAMESPACE": namespace,
    }
    servers: list[Atoll] = []
    driver = Driver(workdir, cluster)
    try:
        print("Ray cluster (head at 127.0.0.2) …", flush=True)
        await asyncio.to_thread(cluster.start)
        ray_settings["ATOLL_RAY_ADDRESS"] = cluster.address
        for name, settings in ((LOCAL, common), (RAY, ray_settings)):
            sub = workdir / name.replace(" ", "-")
            sub.mkdir(mode=0o755)
            servers.append(Atoll(name, sub, settings))
            print(f"atoll up ({name}) …", flush=True)
            await servers[-1].start()
        print("plain Ray driver …", flush=True)
        await driver.start()
        local, ray = servers

        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:

            async def job_on(name: str, n: int, timeout: float) -> tuple[float, float]:
                await driver.idle()
                if name == LOCAL:
                    got = await local.job(n, timeout)
                elif name == RAY:
                    got = await ray.job(n, timeout)
                else:
                    got = await driver.job(n, "job" if name == PLAIN else "task")
                await asyncio.sleep(SETTLE_S)
                return got

            async def notebook_on(name: str, timeout: float) -> tuple[float, float]:
                await driver.idle()
                if name == LOCAL:
                    got = await local.notebook(timeout)
                elif name == RAY:
                    got = await ray.notebook(timeout)
                else:
                    got = await driver.notebook(client, environment.python, plain_env, timeout)
                await asyncio.sleep(SETTLE_S)
                return got

            n = 0
            for name in (LOCAL, RAY, PLAIN, TASK):
                n += 1
                first, done = await job_on(name, n, WARMUP_TIMEOUT_S)
                print(f"[{name}] warm-up job: first output {secs(first)} s, finished {secs(done)} s")
            for name in (LOCAL, RAY, PLAIN):
                took, _ = await notebook_on(name, WARMUP_TIMEOUT_S)
                print(f"[{name}] warm-up notebook: {took:.2f} s (not counted)", flush=True)
            for i in range(args.runs):
                for name in (LOCAL, RAY, PLAIN, TASK):
                    n += 1
                    first, done = await job_on(name, n, JOB_TIMEOUT_S)
                    samples.add(name, "job", first)
                    samples.add(name, "done", done)
                    for server in servers:
                        if server.name == name:
                            for status, at in server.seen.items():
                                samples.add(name, f"status {status}", at)
                    print(f"[{name}] run {i + 1}: job first output {secs(first)} s, finished {secs(done)} s")
                for name in (LOCAL, RAY, PLAIN):
                    took, answered = await notebook_on(name, NB_TIMEOUT_S)
                    samples.add(name, "nb", took)
                    samples.add(name, "nb-answered", answered)
                    print(
                        f"[{name}] run {i + 1}: notebook first cell {took:.2f} s (answered {answered:.2f} s)"
                    )
                sys.stdout.flush()
    finally:
        print("stopping …", flush=True)
        for server in reversed(servers):
            with contextlib.suppress(Exception):
                await server.stop()
        with contextlib.suppress(Exception):  # the ray server's actors, if any are left
            await asyncio.to_thread(release, cluster.address, namespace, HEAD)
        await driver.stop()
        await asyncio.to_thread(cluster.stop)
        for root in (node_dir, *(s.data_dir for s in servers)):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(reap, root)


def sweep(marker: str) -> list[str]:
    """Kill, by pid, whatever still runs with this run's marker in its environment."""
    left = []
    for pid in with_marker(f"{MARKER_VAR}={marker}"):
        left.append(f"{pid} {' '.join(cmdline(pid))[:100]}")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs) instead of deleting it")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress lines as they come, also into a pipe
    marker = secrets.token_hex(8)
    os.environ[MARKER_VAR] = marker  # inherited by every process started from here
    workdir = Path(tempfile.mkdtemp(prefix="atoll-bench-ray-", dir="/tmp"))
    workdir.chmod(0o755)  # Atoll may run a project's workloads as the project's own uid
    samples = Samples()
    error = ""
    try:
        asyncio.run(bench(args, workdir, samples))
    except BenchError as exc:
        error = str(exc)
    except (httpx.HTTPError, OSError, TimeoutError, RuntimeError, websockets.WebSocketException) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        left = sweep(marker)
        if left:
            print(f"killed {len(left)} leftover process(es) of this run:", *left, sep="\n  ", file=sys.stderr)
        remove_networks(workdir)  # the servers are stopped: their project networks go too
        if args.keep or error:
            print(f"\nlogs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if samples.values:
        report(samples, args.runs)
    if error:
        print(f"\nFAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
