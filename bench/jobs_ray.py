"""Ray Jobs, the peer contender of bench/jobs.py: the same trivial jobs through ``ray job submit``
and Ray's job SDK (``JobSubmissionClient``), on a one-node Ray cluster with its dashboard (Ray
Jobs' server), on this machine.

Ray Jobs needs ``ray[default]`` (the dashboard and its aiohttp stack), which Atoll's lock does not
include: the venv is built here with uv, once, under ``~/.cache/atoll-bench/envs`` (the same Ray
version as Atoll's, 2.60.0), as bench/notebooks.py builds JupyterHub's. The cluster
(``LocalRayCluster`` with that venv's ``ray``: a head at 127.0.0.2 with 2 CPUs and the dashboard on
a free port) runs in its own session and is stopped by its process group.

- **Ray Jobs CLI** — ``ray job submit --address <dashboard> -- echo hi`` (``--working-dir`` and
  ``python3 main.py`` for the Python job), a fresh process each time, as a user types it: *wall*,
  *first line* (``hi`` on its output) and *sent → first line* (from its "submitted successfully").
- **Ray Jobs SDK** — a driver process in that venv, started once: ``submit_job`` then
  ``tail_job_logs`` (Ray's way of following a job; it ends when the job does) and
  ``get_job_status``: *sent → first line* and *sent → SUCCESS* (SUCCEEDED).

The Python job runs the node's ``python3`` (Ray Jobs has no per-job environment without a
runtime_env, which would build one per job); Atoll's runs its cached ``env.python: auto``
environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from procs import BenchError, wait_answer

from atoll.envs.build import EnvironmentBuilder
from atoll.envs.interpreter import current_version
from atoll.runtime.ray.cluster import LocalRayCluster, free_port

RAY_JOBS_REQUIREMENT = "ray[default]==2.60.0"  # Atoll's Ray pin, with the dashboard
CACHE = Path.home() / ".cache" / "atoll-bench"
TIMEOUT_S = 120.0
ENTRYPOINTS = {"echo": ["echo", "hi"], "python": ["python3", "main.py"]}

SDK_DRIVER = r'''
"""Ray Jobs' SDK, timed: one JSON request per line on stdin, one JSON answer per line on stdout."""
import asyncio, json, sys, time
from ray.job_submission import JobStatus, JobSubmissionClient

client = JobSubmissionClient(sys.argv[1])
for raw in sys.stdin:
    req = json.loads(raw)
    env = {"working_dir": req["cwd"]} if req.get("cwd") else None
    t0 = time.perf_counter()
    job = client.submit_job(entrypoint=req["entrypoint"], runtime_env=env)
    first = None

    async def follow():
        global first
        async for chunk in client.tail_job_logs(job):
            if first is None and "hi" in chunk.split():
                first = time.perf_counter() - t0

    asyncio.run(follow())
    status = client.get_job_status(job)
    done = time.perf_counter() - t0
    print(json.dumps({"first": first, "done": done, "status": str(status)}), flush=True)
'''


def ray_jobs_bin() -> Path:
    """The bin dir of a venv with ray[default], built with uv once (cached by content)."""
    print("[Ray Jobs] ray[default] venv (built once, cached) …", flush=True)
    return EnvironmentBuilder(CACHE / "envs").build(current_version(), [RAY_JOBS_REQUIREMENT]).bin_dir


class RayJobs:
    """A one-node Ray cluster with its dashboard, and the two Ray Jobs contenders on it."""

    def __init__(self, workdir: Path) -> None:
        self.bin = ray_jobs_bin()
        self.workdir = workdir
        self.cluster = LocalRayCluster(
            workdir / "ray-jobs", head_cpus=2, ray=str(self.bin / "ray"), dashboard_port=free_port()
        )
        self.sdk: subprocess.Popen[str] | None = None

    def start(self) -> RayJobs:
        print("[Ray Jobs] starting a Ray head with its dashboard …", flush=True)
        self.cluster.start(timeout=120)
        # Ray Jobs' API answers once the dashboard has loaded its job module.
        wait_answer(
            f"{self.cluster.dashboard_url}/api/version", 120, f"Ray's dashboard (see {self.cluster.root})"
        )
        self.sdk = subprocess.Popen(
            [str(self.bin / "python"), "-c", SDK_DRIVER, self.cluster.dashboard_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(self.workdir / "ray-jobs-sdk.log").open("ab"),
            text=True,
            start_new_session=True,
        )
        return self

    def cli(self, kind: str, cwd: Path) -> dict[str, float]:
        argv = [str(self.bin / "ray"), "job", "submit", "--address", self.cluster.dashboard_url]
        if kind == "python":
            argv += ["--working-dir", "."]
        argv += ["--", *ENTRYPOINTS[kind]]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, "RAY_ADDRESS": self.cluster.dashboard_url},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        marks: dict[str, float] = {}

        def read() -> None:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode(errors="replace").strip()
                now = time.perf_counter() - t0
                if line == "hi":
                    marks.setdefault("hi", now)
                elif "submitted successfully" in line:
                    marks.setdefault("sent", now)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            raise BenchError(f"ray job submit did not end within {TIMEOUT_S:.0f} s") from None
        wall = time.perf_counter() - t0
        reader.join(timeout=5)
        if code != 0 or "hi" not in marks or "sent" not in marks:
            raise BenchError(f"ray job submit: exit {code}, marks {marks}")
        return {"wall": wall, "first line": marks["hi"], "sent → first line": marks["hi"] - marks["sent"]}

    def sdk_run(self, kind: str, cwd: Path) -> dict[str, float]:
        assert self.sdk is not None and self.sdk.stdin is not None and self.sdk.stdout is not None
        req: dict[str, Any] = {"entrypoint": " ".join(ENTRYPOINTS[kind])}
        if kind == "python":
            req["cwd"] = str(cwd)
        self.sdk.stdin.write(json.dumps(req) + "\n")
        self.sdk.stdin.flush()
        line = self.sdk.stdout.readline()
        if not line:
            raise BenchError(f"the Ray Jobs SDK driver ended (see {self.workdir / 'ray-jobs-sdk.log'})")
        got = json.loads(line)
        if got["first"] is None or "SUCCEEDED" not in got["status"]:
            raise BenchError(f"Ray Jobs SDK: {got}")
        return {"sent → first line": float(got["first"]), "sent → SUCCESS": float(got["done"])}

    def stop(self) -> None:
        if self.sdk is not None:
            if self.sdk.stdin is not None:
                self.sdk.stdin.close()
            try:
                self.sdk.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.sdk.pid, 9)
                self.sdk.wait()
        self.cluster.stop()
