"""The control plane with a big store: 100,000 jobs and 10,000 workloads, on SQLite and PostgreSQL.

For each database, in one run:

1. **Seed** — ``atoll up`` once over an empty store (migrations, the admin, a project), stopped;
   then 100,000 finished jobs of that one project and 10,000 finished workloads are inserted in
   bulk (one SQL statement per 5,000 rows), as months of use would leave them.
2. **Job list** — ``atoll up`` again (default settings, controllers on); ``--requests`` times each:
   the project's first page of jobs (``GET /api/v1/projects/{id}/jobs?pageSize=100``), a page in the
   middle of the history (its ``pageToken``). p50 and p99 against the target of 50 ms.
3. **Followers** — ``--jobs`` real jobs print a timestamped line every second for 10 s, while
   ``--followers`` clients follow them, each on the job's event stream (``GET
   /api/v1/jobs/{id}/events``, one request for the whole run), spread evenly over the jobs. Each
   line's delay is when a follower got it minus when the job wrote it; p50, p99 and max against
   the target of 0.5 s, and how many lines reached every follower.
4. **Scheduler** — in this process: ``schedule()`` deciding for 10,000 queued workloads on a
   cluster where 2,000 fit (admissions per second, target ≥ 500/s).
5. **Controller ticks** — in this process, over the seeded store with the server stopped: each
   controller's ``tick()`` (and metering) timed ``--ticks`` times; the slowest against 100 ms.

The baseline is the target each line prints beside it (there is no peer that stores DataSphere
jobs). Everything binds to 127.0.0.1; servers run in their own session and are stopped by process
group; the PostgreSQL server is the test suite's throwaway one (``tests/support/postgres.py``),
stopped at the end.

Run: ``.venv/bin/python bench/control_plane.py [--db sqlite|postgresql|both] [--jobs-total N] [--keep]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from procs import BenchError, Process, free_port, remove_networks, wait_healthy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support: the throwaway PostgreSQL

from sqlalchemy import insert, select

from atoll.store.db import Database
from atoll.store.tables import Job, Project, WorkloadRow

LIST_TARGET_S = 0.050
FOLLOW_TARGET_S = 0.5
ADMIT_TARGET = 500.0
TICK_TARGET_S = 0.100
BATCH = 5000
LINES, LINE_EVERY_S = 10, 1.0  # each followed job prints a timestamp a second for 10 s


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Server:
    """`atoll up` over a data dir and database, on free loopback ports."""

    def __init__(self, workdir: Path, database_url: str) -> None:
        self.workdir = workdir
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ATOLL_DATA_DIR": str(workdir / "data"),
            "ATOLL_DATABASE_URL": database_url,
            "ATOLL_PORT": str(self.port),
            "ATOLL_GATEWAY_PORT": "0",  # no deploy gateway (its data plane would outlive the server)
            "ATOLL_HOST": "127.0.0.1",
            "ATOLL_ADMIN_PASSWORD": self.password,
            "ATOLL_LOG_LEVEL": "warning",
            # A virtual pool big enough for the followers' jobs to run at once.
            "ATOLL_POOL_CPUS": "64",
            "ATOLL_POOL_MEMORY_GB": "256",
        }
        self.proc: Process | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[httpx.Client]:
        atoll = str(Path(sys.executable).with_name("atoll"))
        self.proc = Process([atoll, "up"], self.env, self.workdir / "atoll.log").start()
        try:
            wait_healthy(self.proc, self.url, 180)
            with httpx.Client(base_url=self.url, timeout=60, trust_env=False) as c:
                r = c.post(
                    "/api/v1/auth/tokens", json={"username": "admin", "password": self.password, "name": "b"}
                )
                r.raise_for_status()
                c.headers["Authorization"] = f"Bearer {r.json()['token']}"
                yield c
        finally:
            self.proc.stop()


def create_project(c: httpx.Client) -> str:
    org = c.get("/api/v1/organizations").json()["items"][0]["id"]
    r = c.post("/api/v1/communities", json={"organizationId": org, "name": "big"})
    r.raise_for_status()
    r = c.post("/api/v1/projects", json={"communityId": r.json()["id"], "name": "big"})
    r.raise_for_status()
    return str(r.json()["id"])


def seed(database_url: str, project_id: str, jobs: int, workloads: int) -> float:
    """Bulk-insert finished jobs and workloads; the seconds it took."""
    db = Database(database_url)
    t0 = time.perf_counter()
    start = datetime.now(UTC) - timedelta(days=180)

    def job(i: int) -> dict[str, Any]:
        at = start + timedelta(seconds=i * 150)
        return {
            "id": f"job-seed{i:011d}",
            "project_id": project_id,
            "name": f"run-{i}",
            "config_yaml": "cmd: python train.py\n",
            "config": {"cmd": "python train.py"},
            "status": "SUCCESS",
            "created_at": at,
            "started_at": at,
            "finished_at": at + timedelta(seconds=60),
            "return_code": 0,
            "data_ttl_days": None,
        }

    def workload(i: int) -> dict[str, Any]:
        at = start + timedelta(seconds=i * 1500)
        return {
            "id": f"wl-seed{i:011d}",
            "kind": "job",
            "owner_id": f"job-seed{i:011d}",
            "project_id": project_id,
            "community_id": community_id,
            "configurations": ["s1.1"],
            "configuration": "s1.1",
            "state": "EXITED",
            "exit_code": 0,
            "created_at": at,
            "started_at": at,
            "finished_at": at + timedelta(seconds=60),
        }

    try:
        with db.transaction() as s:
            community_id = s.scalar(select(Project.community_id).where(Project.id == project_id))
        for table, count, row in ((Job, jobs, job), (WorkloadRow, workloads, workload)):
            for base in range(0, count, BATCH):
                with db.transaction() as s:
                    s.execute(insert(table), [row(i) for i in range(base, min(count, base + BATCH))])
        # Statistics, as PostgreSQL's autovacuum (or SQLite's `PRAGMA optimize`) keeps them in a
        # store that grew over months: without them a planner may sort 100,000 rows per page.
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    finally:
        db.dispose()
    return time.perf_counter() - t0


def time_requests(c: httpx.Client, path: str, n: int, params: dict[str, Any] | None = None) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = c.get(path, params=params)
        times.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise BenchError(f"GET {path} → {r.status_code}: {r.text[:300]}")
    return times


def list_pages(c: httpx.Client, project_id: str, n: int) -> dict[str, list[float]]:
    api = f"/api/v1/projects/{project_id}/jobs"
    # A token from the middle of the history: walk there with big pages once (untimed).
    token = None
    for _ in range(50):
        body = c.get(api, params={"pageSize": 1000, **({"pageToken": token} if token else {})}).json()
        token = body.get("nextPageToken")
    if not token:
        raise BenchError("no page token after 50,000 jobs: the seed did not land")
    return {
        "API first page (100)": time_requests(c, api, n, {"pageSize": 100}),
        "API middle page (100)": time_requests(c, api, n, {"pageSize": 100, "pageToken": token}),
    }


async def followers(url: str, token: str, project_id: str, n_jobs: int, n_followers: int) -> dict[str, Any]:
    """Real jobs print timestamps; followers long-poll them; each line's delivery delay."""
    h = {"Authorization": f"Bearer {token}"}
    cmd = f"bash -c 'for i in $(seq {LINES}); do date +%s.%N; sleep {LINE_EVERY_S}; done'"
    limits = httpx.Limits(max_connections=n_followers + 20, max_keepalive_connections=n_followers + 20)
    async with httpx.AsyncClient(base_url=url, headers=h, timeout=120, limits=limits, trust_env=False) as c:
        job_ids = []
        for i in range(n_jobs):
            cfg = f"name: talk-{i}\ncmd: {cmd}\n"
            r = await c.post(f"/api/v1/projects/{project_id}/jobs", json={"config": cfg})
            r.raise_for_status()
            job_ids.append(r.json()["job"]["id"])
        delays: list[float] = []
        lines_seen: list[int] = []

        ready = asyncio.Event()
        connected = [0]

        async def follow(job_id: str) -> None:
            """One follower: the job's event stream (GET /jobs/{id}/events) until its end."""
            got, first = 0, True
            async with c.stream("GET", f"/api/v1/jobs/{job_id}/events") as r:
                r.raise_for_status()
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    news = json.loads(line.removeprefix("data: "))
                    now = time.time()
                    if first:  # the stream's first event: the job as it is (not yet started)
                        first, connected[0] = False, connected[0] + 1
                        if connected[0] == n_followers:
                            ready.set()
                    for chunk in news["chunks"]:
                        if chunk["stream"] != "stdout":
                            continue
                        for stamp in chunk["data"].split():
                            with contextlib.suppress(ValueError):
                                delays.append(now - float(stamp))
                                got += 1
                    if news["eof"]:
                        break
            lines_seen.append(got)

        tasks = [asyncio.create_task(follow(job_ids[i % n_jobs])) for i in range(n_followers)]
        # Every follower has its stream open before the jobs start: connecting is not following.
        await asyncio.wait_for(ready.wait(), timeout=300)
        for job_id in job_ids:
            (await c.post(f"/api/v1/jobs/{job_id}/execute")).raise_for_status()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=600)
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return {"delays": delays, "lines": lines_seen, "errors": errors}


def scheduler_rate() -> tuple[int, float]:
    from atoll.controllers.scheduler import Cluster, ConfigInfo, Pool, ProjectState, Request, schedule

    catalog = {"s1.1": ConfigInfo("s1.1", 1, 1)}
    now = datetime.now(UTC)
    queue = [
        Request(f"wl-{i}", f"prj-{i % 100}", f"com-{i % 10}", ("s1.1",), now + timedelta(microseconds=i))
        for i in range(10_000)
    ]
    cluster = Cluster([Pool(cpus=200, memory_gb=200, host=f"m{k}") for k in range(10)])
    projects = {f"prj-{i}": ProjectState() for i in range(100)}
    t0 = time.perf_counter()
    decisions = schedule(queue, cluster, catalog, projects, {})
    took = time.perf_counter() - t0
    started = sum(1 for d in decisions if d.action == "start")
    return started, took


def controller_ticks(data_dir: Path, database_url: str, n: int) -> dict[str, list[float]]:
    from atoll.controllers.metering import meter
    from atoll.domain.secrets import SecretBox
    from atoll.runtime import inventory
    from atoll.services import Services
    from atoll.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=database_url)  # type: ignore[call-arg]
    db = Database(database_url)
    services = Services(
        settings,
        db,
        SecretBox(settings.secret_key),
        lambda: inventory.cached(settings.pool_cpus, settings.pool_memory_gb, settings.gpus_override),
        data_plane=False,
    )
    out: dict[str, list[float]] = {}
    try:
        for c in services.controllers:
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                c.tick()
                times.append(time.perf_counter() - t0)
            out[c.name] = times
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            with db.transaction() as s:
                meter(s, datetime.now(UTC))
            times.append(time.perf_counter() - t0)
        out["metering"] = times
    finally:
        for c in services.controllers:
            c.close()
        db.dispose()
    return out


def bench_db(kind: str, database_url: str, workdir: Path, args: argparse.Namespace) -> list[str]:
    lines = [f"== {kind}: {args.jobs_total:,} jobs, {args.workloads_total:,} workloads =="]
    srv = Server(workdir, database_url)
    with srv.running() as c:
        project_id = create_project(c)
    took = seed(database_url, project_id, args.jobs_total, args.workloads_total)
    lines.append(f"seeded in {took:.1f} s")
    with srv.running() as c:
        token = c.headers["Authorization"].removeprefix("Bearer ")
        for name, times in list_pages(c, project_id, args.requests).items():
            p50, p99 = statistics.median(times), pct(times, 99)
            met = "met" if p99 <= LIST_TARGET_S else "NOT met"
            lines.append(
                f"{name:<24} p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  (target p99 ≤ 50 ms: {met})"
            )
        got = asyncio.run(followers(srv.url, token, project_id, args.jobs, args.followers))
        d = got["delays"]
        if not d:
            raise BenchError("the followers saw no line")
        full = sum(1 for n in got["lines"] if n == LINES)
        met = "met" if pct(d, 99) <= FOLLOW_TARGET_S else "NOT met"
        lines.append(
            f"{args.followers} followers of {args.jobs} jobs: line delay p50 {statistics.median(d):.3f} s, "
            f"p99 {pct(d, 99):.3f} s, max {max(d):.3f} s (target p99 ≤ 0.5 s: {met}); "
            f"{full}/{args.followers} followers got all {LINES} lines"
            + (f"; {len(got['errors'])} failed, e.g. {got['errors'][0]}" if got["errors"] else "")
        )
    for name, times in controller_ticks(workdir / "data", database_url, args.ticks).items():
        worst = max(times)
        met = "met" if worst <= TICK_TARGET_S else "NOT met"
        lines.append(
            f"tick {name:<12} median {statistics.median(times) * 1000:7.1f} ms  max {worst * 1000:7.1f} ms  "
            f"(target ≤ 100 ms: {met})"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--jobs-total", type=int, default=100_000)
    parser.add_argument("--workloads-total", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per list page kind")
    parser.add_argument("--jobs", type=int, default=10, help="running jobs the followers follow")
    parser.add_argument("--followers", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.jobs_total < 60_000:
        parser.error("--jobs-total must be at least 60,000 (a page token from the middle is taken at 50,000)")
    report: list[str] = []
    sched_started, sched_took = scheduler_rate()
    rate = sched_started / sched_took
    met = "met" if rate >= ADMIT_TARGET else "NOT met"
    report.append(
        f"scheduler: {sched_started:,} of 10,000 queued admitted in {sched_took * 1000:.0f} ms = "
        f"{rate:,.0f}/s (target ≥ 500/s: {met})"
    )
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for kind in kinds:
        workdir = Path(tempfile.mkdtemp(prefix=f"atoll-bench-cp-{kind}-"))
        try:
            if kind == "sqlite":
                report += bench_db(kind, f"sqlite:///{workdir}/atoll.db", workdir, args)
            else:
                from tests.support.postgres import create_database, running_postgres

                with running_postgres() as admin_url:
                    report += bench_db(kind, create_database(admin_url, "atoll_bench"), workdir, args)
        except BenchError as e:
            report.append(f"{kind}: FAILED: {e}")
        finally:
            remove_networks(workdir)  # the servers are stopped: their project networks go too
            if args.keep:
                print(f"work dir kept: {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        print("\n".join(report), flush=True)
    print()
    print("\n".join(report))
    return 0 if not any("FAILED" in line for line in report) else 1


if __name__ == "__main__":
    sys.exit(main())
