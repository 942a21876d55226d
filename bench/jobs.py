"""The everyday job loop, "run it, see output": Atoll's CLI and SDK against a plain subprocess, in
one run on one machine, and how fast the `atoll` command itself starts.

Timed, for the same trivial job (``cmd: echo hi``, and ``python main.py`` printing ``hi`` with
``env.python: auto``, whose uv environment the warm-up builds and later runs reuse):

- **atoll CLI** — ``atoll job execute -p P -c config.yaml`` as a user types it (a fresh process
  each time, ATOLL_URL/ATOLL_TOKEN set). *wall*: the whole command; *first line*: from the
  process start until ``hi`` appears on its stdout; *sent → first line*: from the moment the CLI
  says ``created job …`` on stderr (the execute call follows at once) until ``hi``.
- **atoll SDK** — in this process: ``SDK.execute`` (untimed client set-up), then the job followed
  with the SDK's follower. *sent → first line*: from just before ``execute`` until the follower
  hands over ``hi``; *sent → SUCCESS*: until it reports the job ended.
- **Ray Jobs** (bench/jobs_ray.py) — ``ray job submit`` and Ray's job SDK, on a one-node Ray
  cluster with its dashboard, the same measures (``--skip-ray-jobs`` leaves them out).
- **subprocess** — ``bash -c "echo hi"`` / ``python3 main.py`` spawned here: the floor.
- **CLI start** — ``atoll --help``, ``atoll version`` and ``atoll job list -p P --format json``
  against ``python -c pass`` (the interpreter alone), each the median of ``--starts`` runs.

Every contender does one warm-up (not counted), then ``--runs`` rounds, one run of each contender
in turn per round. Medians (min–max) are printed with the ratios to the subprocess and the issue's
targets (first line ≤ 0.3 s after the CLI sends the job, whole command ≤ 1 s, CLI start ≤ 0.15 s).

The Atoll server runs with default settings on a free port of 127.0.0.1 with its own data dir; it is
started in its own session and stopped by its process group, also on failure.

Run: ``.venv/bin/python bench/jobs.py [--runs N] [--starts N] [--skip-ray-jobs] [--keep]`` (from the
repository root).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from jobs_ray import RayJobs
from procs import BenchError, Process, free_port, remove_networks, wait_healthy

from atoll.jobclient import Follower
from atoll.sdk import SDK

FIRST_LINE_TARGET_S = 0.3
WALL_TARGET_S = 1.0
START_TARGET_S = 0.15
JOB_TIMEOUT_S = 600.0  # the warm-up may build the Python environment
CONFIGS = {
    "echo": "cmd: echo hi\n",
    "python": "cmd: python main.py\nenv:\n  python: auto\n",
}


@dataclass
class Series:
    name: str
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, **measured: float) -> None:
        for key, value in measured.items():
            self.values.setdefault(key, []).append(value)

    def median(self, key: str) -> float | None:
        got = self.values.get(key)
        return statistics.median(got) if got else None

    def show(self, key: str) -> str:
        got = self.values.get(key)
        if not got:
            return "-"
        return f"{statistics.median(got):.3f} ({min(got):.3f}–{max(got):.3f})"


# -- contenders --------------------------------------------------------------------------------------


def _timed_lines(proc: subprocess.Popen[bytes], t0: float) -> tuple[dict[str, float], threading.Thread]:
    """Read the process's stdout and stderr in threads; when the marks first appeared."""
    marks: dict[str, float] = {}

    def read(stream: Any, name: str) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").strip()
            now = time.perf_counter() - t0
            if name == "stdout" and line == "hi":
                marks.setdefault("hi", now)
            if name == "stderr" and line.startswith("created job"):
                marks.setdefault("sent", now)

    threads = [
        threading.Thread(target=read, args=(proc.stdout, "stdout"), daemon=True),
        threading.Thread(target=read, args=(proc.stderr, "stderr"), daemon=True),
    ]
    for t in threads:
        t.start()
    return marks, threads[1]


def run_cli(atoll: str, project: str, config: Path, env: Mapping[str, str]) -> dict[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [atoll, "job", "execute", "-p", project, "-c", config.name],
        cwd=config.parent,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    marks, _ = _timed_lines(proc, t0)
    try:
        code = proc.wait(timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise BenchError(f"atoll job execute did not end within {JOB_TIMEOUT_S:.0f} s") from None
    wall = time.perf_counter() - t0
    time.sleep(0.05)  # the reader threads see the pipes close
    if code != 0 or "hi" not in marks or "sent" not in marks:
        raise BenchError(f"atoll job execute: exit {code}, marks {marks}")
    return {"wall": wall, "first line": marks["hi"], "sent → first line": marks["hi"] - marks["sent"]}


class _Clock:
    """A follower's sink that notes when ``hi`` arrives."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.first: float | None = None

    def stdout(self, text: str) -> None:
        if self.first is None and "hi" in text.split():
            self.first = time.perf_counter() - self.t0

    def stderr(self, text: str) -> None:
        pass

    def system(self, text: str) -> None:
        pass

    def progress(self, progress: Mapping[str, Any]) -> None:
        pass

    def status(self, status: str, details: str) -> None:
        pass


def run_sdk(sdk: SDK, project: str, config: Path) -> dict[str, float]:
    old = Path.cwd()
    os.chdir(config.parent)  # the config's paths are relative to the working directory, as for the CLI
    try:
        t0 = time.perf_counter()
        job = sdk.execute(project, config.name)
        clock = _Clock(t0)
        follower = Follower(sdk.jobs, job.id, clock)
        final = follower.run()
        done = time.perf_counter() - t0
        follower.close()
    finally:
        os.chdir(old)
    if final is None or final["status"] != "SUCCESS" or clock.first is None:
        raise BenchError(f"SDK job {job.id}: {final and final['status']}, first line {clock.first}")
    return {"sent → first line": clock.first, "sent → SUCCESS": done}


def run_subprocess(argv: list[str], cwd: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    marks, _ = _timed_lines(proc, t0)
    proc.wait(timeout=60)
    wall = time.perf_counter() - t0
    time.sleep(0.05)
    if "hi" not in marks:
        raise BenchError(f"{argv}: no output")
    return {"wall": wall, "first line": marks["hi"]}


def start_times(argv: list[str], env: Mapping[str, str], n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return times


# -- the run -----------------------------------------------------------------------------------------


def server(workdir: Path) -> tuple[Process, str, str]:
    port, password = free_port(), secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "ATOLL_DATA_DIR": str(workdir / "data"),
        "ATOLL_PORT": str(port),
        "ATOLL_GATEWAY_PORT": "0",  # no deploy gateway (its data plane would outlive the server)
        "ATOLL_HOST": "127.0.0.1",
        "ATOLL_ADMIN_PASSWORD": password,
        "ATOLL_LOG_LEVEL": "warning",
    }
    atoll = str(Path(sys.executable).with_name("atoll"))
    proc = Process([atoll, "up"], env, workdir / "atoll.log").start()
    url = f"http://127.0.0.1:{port}"
    wait_healthy(proc, url, 120)
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as c:
        r = c.post("/api/v1/auth/tokens", json={"username": "admin", "password": password, "name": "bench"})
        r.raise_for_status()
        token = r.json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        org = c.get("/api/v1/organizations", headers=h).json()["items"][0]["id"]
        r = c.post("/api/v1/communities", headers=h, json={"organizationId": org, "name": "bench-jobs"})
        r.raise_for_status()
        r = c.post(
            "/api/v1/projects",
            headers=h,
            json={
                "communityId": r.json()["id"],
                "name": "bench-jobs",
                "settings": {"defaultConfiguration": "s1.1"},
            },
        )
        r.raise_for_status()
    return proc, url, token


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--starts", type=int, default=10, help="CLI starts timed per command (default 10)")
    parser.add_argument(
        "--skip-ray-jobs", action="store_true", help="leave Ray Jobs out (no cluster, no venv)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work dir (server log) instead of deleting it"
    )
    args = parser.parse_args()
    if args.runs < 1 or args.starts < 1:
        parser.error("--runs and --starts must be at least 1")
    workdir = Path(tempfile.mkdtemp(prefix="atoll-bench-jobs-"))
    atoll = str(Path(sys.executable).with_name("atoll"))
    proc: Process | None = None
    ray_jobs: RayJobs | None = None
    series: dict[str, Series] = {}
    try:
        proc, url, token = server(workdir)
        env = {**os.environ, "ATOLL_URL": url, "ATOLL_TOKEN": token, "HOME": str(workdir / "home")}
        dirs: dict[str, Path] = {}
        for kind, text in CONFIGS.items():
            d = workdir / kind
            d.mkdir()
            (d / "config.yaml").write_text(text)
            (d / "main.py").write_text("print('hi')\n")
            dirs[kind] = d
        contenders: dict[str, Callable[[], dict[str, float]]] = {}
        sdk = SDK(url=url, token=token)
        for kind, d in dirs.items():
            cfg = d / "config.yaml"
            contenders[f"atoll CLI, {kind}"] = lambda cfg=cfg: run_cli(atoll, "bench-jobs", cfg, env)
            contenders[f"atoll SDK, {kind}"] = lambda cfg=cfg: run_sdk(sdk, "bench-jobs", cfg)
        contenders["subprocess, echo"] = lambda: run_subprocess(["bash", "-c", "echo hi"], workdir)
        if not args.skip_ray_jobs:
            ray_jobs = RayJobs(workdir)  # assigned first: stopped in finally even if start() fails
            peer = ray_jobs.start()
            for kind, d in dirs.items():
                contenders[f"Ray Jobs CLI, {kind}"] = lambda kind=kind, d=d: peer.cli(kind, d)
                contenders[f"Ray Jobs SDK, {kind}"] = lambda kind=kind, d=d: peer.sdk_run(kind, d)
        contenders["subprocess, python"] = lambda: run_subprocess(["python3", "main.py"], dirs["python"])
        for name, fn in contenders.items():
            print(f"[{name}] warm-up …", flush=True)
            fn()
        for i in range(args.runs):
            for name, fn in contenders.items():
                measured = fn()
                series.setdefault(name, Series(name)).add(**measured)
            print(f"round {i + 1}/{args.runs} done", flush=True)
        sdk.close()
        if ray_jobs is not None:  # the CLI starts are timed on an otherwise idle machine
            ray_jobs.stop()
            ray_jobs = None
        starts = {
            "python -c pass": start_times([sys.executable, "-c", "pass"], env, args.starts),
            "atoll --help": start_times([atoll, "--help"], env, args.starts),
            "atoll version": start_times([atoll, "version"], env, args.starts),
            "atoll job list": start_times(
                [atoll, "job", "list", "-p", "bench-jobs", "--format", "json"], env, args.starts
            ),
        }
        report(series, starts)
    except BenchError as e:
        print(f"failed: {e}\n{proc.log_tail() if proc else ''}", file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            proc.stop()
        if ray_jobs is not None:
            ray_jobs.stop()
        remove_networks(workdir)  # the servers are stopped: their project networks go too
        if args.keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(series: dict[str, Series], starts: dict[str, list[float]]) -> None:
    keys = ["wall", "first line", "sent → first line", "sent → SUCCESS"]
    print()
    print(f"{'contender':<22}" + "".join(f"{k:>24}" for k in keys) + "   (s, median (min–max))")
    for name, s in series.items():
        print(f"{name:<22}" + "".join(f"{s.show(k):>24}" for k in keys))
    print()
    for kind in CONFIGS:
        for peer, key in (
            ("subprocess", "wall"),
            ("Ray Jobs CLI", "wall"),
            ("Ray Jobs CLI", "first line"),
            ("Ray Jobs CLI", "sent → first line"),
        ):
            cli, base = series.get(f"atoll CLI, {kind}"), series.get(f"{peer}, {kind}")
            a, b = (cli.median(key), base.median(key)) if cli and base else (None, None)
            if a is not None and b:
                print(f"atoll CLI / {peer}, {kind}, {key}: {a / b:.2f}× ({a - b:+.3f} s)")
        sdk, peer_sdk = series.get(f"atoll SDK, {kind}"), series.get(f"Ray Jobs SDK, {kind}")
        for key in ("sent → first line", "sent → SUCCESS"):
            a, b = (sdk.median(key), peer_sdk.median(key)) if sdk and peer_sdk else (None, None)
            if a is not None and b:
                print(f"atoll SDK / Ray Jobs SDK, {kind}, {key}: {a / b:.2f}× ({a - b:+.3f} s)")
    print()
    floor = statistics.median(starts["python -c pass"])
    print(f"{'start':<22}{'median':>10}{'min':>10}   (s; ratio to python -c pass)")
    for name, times in starts.items():
        med = statistics.median(times)
        print(f"{name:<22}{med:>10.3f}{min(times):>10.3f}   {med / floor:.1f}×")
    print()
    print("Targets (issue 18), on the median:")
    cli = series.get("atoll CLI, echo")
    if cli:
        first, wall = cli.median("sent → first line"), cli.median("wall")
        assert first is not None and wall is not None
        print(
            f"  echo hi, first line ≤ {FIRST_LINE_TARGET_S} s after the CLI sends it → {first:.3f} s, "
            f"{'met' if first <= FIRST_LINE_TARGET_S else 'NOT met'}"
        )
        met = "met" if wall <= WALL_TARGET_S else "NOT met"
        print(f"  echo hi, whole command ≤ {WALL_TARGET_S} s → {wall:.3f} s, {met}")
    for name in ("atoll --help", "atoll job list"):
        med = statistics.median(starts[name])
        met = "met" if med <= START_TARGET_S else "NOT met"
        print(f"  {name} starts in ≤ {START_TARGET_S} s → {med:.3f} s, {met}")


if __name__ == "__main__":
    sys.exit(main())
