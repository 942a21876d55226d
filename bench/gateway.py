"""The deploy gateway: throughput and latency through an Atoll alias vs the instance called directly
vs Ray Serve, and a zero-downtime switch under constant load.

Targets (issue: deploy data plane): through an alias, at least 0.70× the direct throughput and at
most +1 ms on the median latency; at least 10× Ray Serve's throughput; no failed request while an
alias switches 100/0 → 50/50 → 0/100, the new node is replaced by a rolling update and the old one
is deleted.

1. A real ``atoll up`` on free ports with its own data dir (node environments built once under
   ``~/.cache/atoll-bench/envs``). A "noop" model (the built-in model server echoes its input) is
   registered through the project's model outbox, as ``atoll.models.save`` would, deployed as the
   node ``noop-v1`` (configuration s1.1, one instance) and published as the private alias ``bench``.
2. wrk (``-t1 -c<connections> -d<duration>s``, the same OIP v2 infer body and settings for all)
   against: **direct** — the instance's own port (``python -m atoll.serving``); **Atoll alias** —
   the gateway with ``x-node-alias: bench`` and an Atoll API token (the gateway caches the token
   check); **Ray Serve** — a one-replica no-op deployment with the same JSON answer (see
   bench/gateway_ray.py). As a reference, not a contender, a **TCP relay**: a bare uvloop byte
   copier in front of the same instance (bench/gateway_relay.py), the floor of any Python proxy
   here. ``--rounds`` interleaved rounds each, after an uncounted warm-up; the medians are
   reported, with the CPU seconds per request of wrk, the gateway (user and system), the model
   server and ``atoll up`` (from /proc), the cores busy on the path and on the whole machine
   (others' work shows as the difference), and a one-connection run (latency without queueing).
   ``--profile`` adds a second gateway process (same code and store) under cProfile, loaded the
   same way, and prints its hot functions per request.
3. The switch run: ``noop-v2`` beside ``noop-v1``; while wrk keeps the alias busy, weights go
   100/0 → 50/50 → 0/100 a few seconds apart, then ``noop-v2`` is updated (a rolling replacement of
   its instance), then ``noop-v1`` is deleted. wrk counts every response's status.

Everything binds to 127.0.0.1, runs in its own session and is stopped by its process group (and
Ray's leftovers by pid), also on failure and Ctrl-C.

Run: ``.venv/bin/python bench/gateway.py [--connections 16] [--duration 10] [--rounds 3]
[--skip-ray] [--skip-switch] [--profile] [--keep]``. Exit status 0 when everything was measured
and the switch run failed no request (the throughput targets are reported, not enforced), 1 when a
step failed or a request did, 2 when wrk is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from gateway_procs import (
    BenchError,
    Process,
    children,
    cmdline,
    cpu_seconds,
    cpu_split,
    free_port,
    group_cpu_seconds,
    kill_group,
    machine_busy_seconds,
)
from gateway_ray import RayServe
from gateway_wrk import Wrk, WrkResult, lua_script, run, warm_up, wrk_executable

from atoll.envs.build import usable_by_others
from atoll.runtime.shim import is_same_process, read_json

BENCH_DIR = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "atoll-bench"
ENVS = CACHE / "envs"
CONFIGURATION = "s1.1"
ALIAS = "bench"
BODY = '{"inputs": [{"name": "input__0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}'
PATH = "/v2/models/noop/infer"
NOOP_META = {
    "name": "noop",
    "format": "noop",
    "description": "no-op model for bench/gateway.py",
    "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [{"name": "output__0", "datatype": "FP32", "shape": [-1, 4]}],
}
# The rolling update needs room for one more instance than run (2 nodes + 1): admission would
# otherwise hold it on this 2-core machine. Nothing else is changed from the defaults.
ATOLL_ENV = {"ATOLL_POOL_CPUS": "8", "ATOLL_POOL_MEMORY_GB": "16"}


def atoll_settings() -> dict[str, str]:
    """The settings this run changes: the shared envs cache, room for the rolling update, and,
    where the cache is not reachable by other users (a home dir of mode 0700), node instances run
    as the server's own user instead of the project's uid (the data path is the same)."""
    settings = {"ATOLL_ENVS_DIR": str(ENVS), **ATOLL_ENV}
    ENVS.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and not usable_by_others(ENVS):
        settings["ATOLL_WORKLOAD_UID_BASE"] = "0"
    return settings


THROUGHPUT_TARGET = 0.70
P50_TARGET_MS = 1.0
RAY_TARGET = 10.0


def log(msg: str) -> None:
    print(msg, flush=True)


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# -- Atoll -----------------------------------------------------------------------------------------


def atoll_executable() -> str:
    near = Path(sys.executable).with_name("atoll")
    if near.exists():
        return str(near)
    found = shutil.which("atoll")
    if not found:
        raise BenchError("no `atoll` executable next to this Python or on PATH (run `uv sync` first)")
    return found


@dataclass
class Atoll:
    """A running ``atoll up`` with a project, the noop model, nodes and the alias."""

    workdir: Path
    proc: Process | None = None
    url: str = ""
    gateway_url: str = ""
    token: str = ""
    project_id: str = ""
    nodes: dict[str, str] = field(default_factory=dict)  # name → id
    settings: dict[str, str] = field(default_factory=atoll_settings)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
            trust_env=False,
        )

    def start(self) -> None:
        port, gw_port, password = free_port(), free_port(), secrets.token_urlsafe(16)
        self.url, self.gateway_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{gw_port}"
        env = {
            **os.environ,
            "ATOLL_DATA_DIR": str(self.data_dir),
            "ATOLL_PORT": str(port),
            "ATOLL_GATEWAY_PORT": str(gw_port),
            "ATOLL_HOST": "127.0.0.1",
            "ATOLL_ADMIN_PASSWORD": password,
            "ATOLL_LOG_LEVEL": "warning",
            **self.settings,
        }
        self.env = env
        self.proc = Process([atoll_executable(), "up"], env, self.workdir / "atoll.log").start()
        for what, url in (("atoll up", self.url), ("the gateway", self.gateway_url)):

            def up(url: str = url) -> bool:
                assert self.proc is not None
                self.proc.check_alive("atoll up")
                try:
                    return httpx.get(url + "/healthz", timeout=1, trust_env=False).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(what, up, 60, 0.1)
        r = httpx.post(
            self.url + "/api/v1/auth/tokens",
            json={"username": "admin", "password": password, "name": "bench"},
            trust_env=False,
        )
        r.raise_for_status()
        self.token = r.json()["token"]

    def gateway_pid(self) -> int:
        assert self.proc is not None
        for pid in children(self.proc.pid):
            if "atoll.gateway" in cmdline(pid):
                return pid
        raise BenchError("no gateway process under `atoll up`")

    def create_project(self) -> None:
        with self.api() as api:
            org = api.get("/organizations").json()["items"][0]["id"]
            com = api.post("/communities", json={"organizationId": org, "name": "bench-com"})
            check(com, 201)
            body = {"communityId": com.json()["id"], "name": "bench", "settings": {}}
            r = api.post("/projects", json=body)
            check(r, 201)
            self.project_id = r.json()["id"]

    def register_noop_model(self) -> str:
        """Write the noop model into the project's outbox, as ``atoll.models.save`` does."""
        box = self.data_dir / "projects" / self.project_id / "model-outbox" / "bench"
        box.mkdir(parents=True, exist_ok=True)
        name = str(uuid.uuid4())
        tmp = box / f".{name}.tmp"
        tmp.mkdir()
        (tmp / "meta.json").write_text(json.dumps(NOOP_META))
        tmp.rename(box / name)
        result = box / f"{name}.result.json"
        wait_for("the noop model to be registered", result.exists, 30, 0.1)
        got = json.loads(result.read_text())
        if "error" in got:
            raise BenchError(f"the noop model was refused: {got['error']}")
        return str(got["id"])

    def node(self, ref: str) -> dict[str, Any]:
        with self.api() as api:
            r = api.get(f"/projects/{self.project_id}/nodes/{ref}")
            check(r, 200)
            return dict(r.json())

    def create_node(self, name: str) -> str:
        with self.api() as api:
            body = {"name": name, "models": ["noop"], "configuration": CONFIGURATION}
            r = api.post(f"/projects/{self.project_id}/nodes", json=body)
            check(r, 201)
            self.nodes[name] = r.json()["id"]
        return self.nodes[name]

    def wait_healthy(self, name: str, revision: int | None = None, timeout: float = 600) -> dict[str, Any]:
        """Until the node is Healthy with one instance, all of ``revision`` (when given)."""

        def ready() -> dict[str, Any] | None:
            assert self.proc is not None
            self.proc.check_alive("atoll up")
            n = self.node(self.nodes[name])
            insts = n["instances"]
            if any(i["restarts"] >= 3 for i in insts):
                raise BenchError(f"node {name} keeps failing: {n['detail']} {[i['detail'] for i in insts]}")
            if n["status"] != "Healthy" or not insts or any(i["status"] != "Healthy" for i in insts):
                return None
            if revision is not None and (
                n["revision"] < revision or any(i["revision"] != n["revision"] for i in insts)
            ):
                return None
            return n

        return dict(wait_for(f"node {name} Healthy", ready, timeout, 0.2))

    def set_alias(self, weights: dict[str, int], create: bool = False) -> None:
        body = {"nodes": [{"nodeId": self.nodes[k], "weight": v} for k, v in weights.items()]}
        with self.api() as api:
            if create:
                r = api.post(
                    f"/projects/{self.project_id}/aliases", json={"name": ALIAS, "public": False, **body}
                )
                check(r, 201)
            else:
                check(api.patch(f"/projects/{self.project_id}/aliases/{ALIAS}", json=body), 200)

    def update_node_env(self, name: str, env: dict[str, str]) -> int:
        """Start a rolling replacement; returns the node's new revision."""
        with self.api() as api:
            r = api.patch(f"/projects/{self.project_id}/nodes/{self.nodes[name]}", json={"env": env})
            check(r, 200, 202)
            return int(r.json()["revision"])

    def delete_node(self, name: str) -> None:
        with self.api() as api:
            check(api.delete(f"/projects/{self.project_id}/nodes/{self.nodes[name]}"), 202, 204)

        def gone() -> bool:
            with self.api() as api:
                return api.get(f"/projects/{self.project_id}/nodes/{self.nodes[name]}").status_code == 404

        wait_for(f"node {name} deleted", gone, 60, 0.2)

    def alias_headers(self) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "x-node-alias": ALIAS,
            "authorization": f"Bearer {self.token}",
        }

    def node_requests(self) -> dict[str, float]:
        """The gateway's ``node_requests`` counters, by node name."""
        text = httpx.get(self.gateway_url + "/metrics", timeout=5, trust_env=False).text
        out: dict[str, float] = {}
        for m in re.finditer(r'^node_requests_total\{[^}]*node_name="([^"]+)"[^}]*\} (\S+)$', text, re.M):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
        return out

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()  # atoll up and its gateway (same process group)
        # Node instances run in sessions of their own and outlive a stopped server by design:
        # stop the ones this run's server started (its runtime state), checked by start time.
        for state in sorted((self.data_dir / "runtime").glob("*/*.json")):
            if state.name not in ("shim.json", "started.json"):
                continue
            info = read_json(state) or {}
            pid = info.get("pid")
            if isinstance(pid, int) and is_same_process(pid, info.get("start_time")):
                kill_group(pid, signal.SIGTERM)
        time.sleep(1)
        for state in (self.data_dir / "runtime").glob("*/*.json"):
            info = read_json(state) or {}
            pid = info.get("pid")
            if state.name in ("shim.json", "started.json") and isinstance(pid, int):
                if is_same_process(pid, info.get("start_time")):
                    kill_group(pid, signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        r = httpx.post(url, content=BODY, headers={"content-type": "application/json"}, trust_env=False)
        return r.status_code == 200
    except httpx.HTTPError:
        return False


def check(r: httpx.Response, *ok: int) -> None:
    if r.status_code not in ok:
        raise BenchError(f"{r.request.method} {r.request.url} → HTTP {r.status_code}: {r.text[:500]}")


def instance_pgid(atoll: Atoll, node: dict[str, Any]) -> int:
    """The model server's process group (the local runtime's started.json: pid = process group)."""
    wid = node["instances"][0]["workloadId"]
    info = read_json(atoll.data_dir / "runtime" / wid / "started.json") or {}
    return int(info["pid"])


# -- throughput ------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    script: Path
    cpu: Callable[[], dict[str, float]]  # CPU seconds of the processes on its path
    runs: list[WrkResult] = field(default_factory=list)
    single: list[WrkResult] = field(default_factory=list)  # one connection
    note: str = ""

    def median(self, attr: str, runs: list[WrkResult] | None = None) -> float:
        return statistics.median(getattr(r, attr) for r in (self.runs if runs is None else runs))

    def cores(self) -> tuple[float, float]:
        """Cores busy during the runs: (the processes on this path, wrk included; the machine)."""
        wall = sum(r.duration_s for r in self.runs)
        ours = sum(sum(r.cpu_s.values()) for r in self.runs)
        return ours / wall, sum(r.machine_s for r in self.runs) / wall

    def cpu_us_per_request(self, who: str) -> float:
        spent = sum(r.cpu_s.get(who, 0.0) for r in self.runs)
        n = sum(r.requests for r in self.runs)
        return spent / n * 1e6 if n else 0.0


def measure(t: Target, connections: int, duration: int, workdir: Path, single: bool = False) -> WrkResult:
    before, busy = t.cpu(), machine_busy_seconds()
    res = run(t.name, t.url, t.script, connections, duration, workdir / "wrk.log")
    after = t.cpu()
    res.machine_s = machine_busy_seconds() - busy
    for k, v in after.items():
        res.cpu_s[k] = v - before.get(k, 0.0)
    (t.single if single else t.runs).append(res)
    log(
        f"  [{t.name}] c{connections}: {res.rps:8.0f} req/s  p50 {res.p50_ms:6.2f} ms  "
        f"p99 {res.p99_ms:6.2f} ms  errors {res.errors}"
        + ("" if single else "  cpu " + ", ".join(f"{k} {v:.1f}s" for k, v in res.cpu_s.items() if v >= 0.05))
    )
    return res


def throughput(targets: list[Target], args: argparse.Namespace, workdir: Path) -> None:
    for t in targets:
        warm_up(t.url, t.script, args.connections, workdir / "wrk.log")
    for i in range(args.rounds):
        log(f"round {i + 1}/{args.rounds}")
        order = targets if i % 2 == 0 else targets[::-1]  # alternate, so no one always goes first
        for t in order:
            measure(t, args.connections, args.duration, workdir)
    for t in targets:
        measure(t, 1, max(args.duration // 2, 3), workdir, single=True)


# -- switch run ------------------------------------------------------------------------------------


@dataclass
class SwitchResult:
    load: WrkResult
    events: list[tuple[float, str]]
    served: dict[str, float]


def switch_run(atoll: Atoll, args: argparse.Namespace, workdir: Path) -> SwitchResult:
    log("\nswitch run: noop-v2 beside noop-v1 …")
    atoll.create_node("noop-v2")
    atoll.wait_healthy("noop-v2")
    atoll.set_alias({"noop-v1": 100, "noop-v2": 0})
    time.sleep(1.0)  # the gateway reads the table four times a second
    script = lua_script(workdir / "switch.lua", BODY, atoll.alias_headers(), count_codes=True)
    served_before = atoll.node_requests()
    step = args.switch_step
    w = Wrk("switch", atoll.gateway_url + PATH, script, args.connections, 600, workdir / "wrk-switch.log")
    events: list[tuple[float, str]] = []
    t0 = time.monotonic()

    def event(what: str) -> None:
        events.append((time.monotonic() - t0, what))
        log(f"  {events[-1][0]:5.1f} s  {what}")

    w.start()
    try:
        event("wrk started, weights v1/v2 = 100/0")
        time.sleep(step)
        atoll.set_alias({"noop-v1": 50, "noop-v2": 50})
        event("weights 50/50")
        time.sleep(step)
        atoll.set_alias({"noop-v1": 0, "noop-v2": 100})
        event("weights 0/100")
        time.sleep(step)
        revision = atoll.update_node_env("noop-v2", {"V": "2"})
        event(f"noop-v2 updated (env V=2): rolling replacement to revision {revision}")
        atoll.wait_healthy("noop-v2", revision=revision, timeout=300)
        event("noop-v2 replaced: its new instance is Healthy, the old one gone")
        time.sleep(step)
        atoll.delete_node("noop-v1")
        event("noop-v1 deleted")
        time.sleep(step)
        w.interrupt()
        event("wrk stopped")
        load = w.wait()
    finally:
        w.stop()
    served_after = atoll.node_requests()
    served = {k: served_after.get(k, 0.0) - served_before.get(k, 0.0) for k in served_after}
    return SwitchResult(load, events, served)


# -- profile ---------------------------------------------------------------------------------------


def profile_gateway(atoll: Atoll, args: argparse.Namespace, workdir: Path) -> list[str]:
    """A second gateway (same code, same store) under cProfile, loaded like the alias run; the
    functions that take its time, per request. cProfile slows it down, so compare the rows with
    each other, not with the throughput table."""
    port = free_port()
    stats = workdir / "gateway.pstats"
    env = {**atoll.env, "ATOLL_GATEWAY_PORT": str(port)}
    argv = [sys.executable, str(BENCH_DIR / "gateway_profile.py"), str(stats)]
    proc = Process(argv, env, workdir / "gateway-profile.log").start()
    url = f"http://127.0.0.1:{port}{PATH}"
    try:

        def routed() -> bool:
            proc.check_alive("the profiled gateway")
            try:
                r = httpx.post(url, content=BODY, headers=atoll.alias_headers(), trust_env=False)
                return r.status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the profiled gateway", routed, 30)
        script = lua_script(workdir / "profile.lua", BODY, atoll.alias_headers())
        res = run("profiled alias", url, script, args.connections, args.duration, workdir / "wrk.log")
    finally:
        proc.stop()
    if not stats.exists():
        raise BenchError(f"the profiled gateway wrote no statistics:\n{proc.log_tail()}")
    st = pstats.Stats(str(stats))
    table: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    # One call of dataplane._response per answer (a coroutine such as Gateway.handle counts a call
    # per resumption, so it cannot be the denominator).
    n = next((v[1] for k, v in table.items() if k[2] == "_response" and "dataplane" in k[0]), 0)
    n = n or res.requests
    rows = sorted(table.items(), key=lambda kv: kv[1][2], reverse=True)[:25]
    out = [
        f"gateway under cProfile: {res.rps:.0f} req/s (profiled), {n} responses; "
        f"total {st.total_tt / n * 1e6:.0f} µs per request",  # type: ignore[attr-defined]
        f"{'own µs/req':>10} {'incl µs/req':>11} {'calls/req':>9}  function",
    ]
    for (file, line, func), (_cc, calls, tt, ct, _callers) in rows:
        where = f"{Path(file).name}:{line}" if line else file
        out.append(f"{tt / n * 1e6:>10.1f} {ct / n * 1e6:>11.1f} {calls / n:>9.2f}  {func} ({where})")
    return out


# -- report ----------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(
    targets: list[Target], switch: SwitchResult | None, profile: list[str], args: argparse.Namespace
) -> bool:
    ok = True
    log(
        f"\nwrk -t1 -c{args.connections} -d{args.duration}s, medians of {args.rounds} rounds "
        f"(POST {PATH}, {len(BODY)}-byte JSON body); machine: {os.cpu_count()} cores, shared"
    )
    log(
        f"{'contender':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  {'cores':>11}"
        "  CPU µs per request"
    )
    for t in targets:
        if not t.runs:
            continue
        per = {k: t.cpu_us_per_request(k) for k in t.runs[0].cpu_s}
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in per.items() if v >= 3)  # leave out the idle ones
        errors = sum(r.errors for r in t.runs)
        ours, machine = t.cores()
        log(
            f"{t.name:<14} {t.median('rps'):>8.0f} {t.median('p50_ms'):>8.2f} {t.median('p99_ms'):>8.2f} "
            f"{errors:>7}  {ours:>4.2f} / {machine:>4.2f}  {cpu}"
        )
    log(
        "(cores: CPU busy during the runs, the processes on the path incl. wrk / the whole machine "
        f"of {os.cpu_count()}; the difference is other work on the machine)"
    )
    log(f"\none connection (-c1, {max(args.duration // 2, 3)} s): latency without queueing")
    for t in targets:
        if t.single:
            s = t.single
            log(
                f"{t.name:<14} {t.median('rps', s):>8.0f} {t.median('p50_ms', s):>8.3f} "
                f"{t.median('p99_ms', s):>8.3f} {sum(r.errors for r in s):>7}"
            )
    for t in targets:
        if t.note:
            log(f"{t.name}: {t.note}")
    by = {t.name: t for t in targets if t.runs}
    direct, alias, ray = by.get("direct"), by.get("Atoll alias"), by.get("Ray Serve")
    log("\nratios and targets (medians):")
    if direct and alias:
        ratio = alias.median("rps") / direct.median("rps")
        extra = alias.median("p50_ms") - direct.median("p50_ms")
        met = verdict(ratio >= THROUGHPUT_TARGET)
        log(f"  alias / direct throughput   {ratio:6.2f}×    target ≥ {THROUGHPUT_TARGET:.2f}: {met}")
        met = verdict(extra <= P50_TARGET_MS)
        log(f"  alias − direct p50        {extra:+7.2f} ms  target ≤ {P50_TARGET_MS:.0f} ms: {met}")
        if direct.single and alias.single:
            one = alias.median("p50_ms", alias.single) - direct.median("p50_ms", direct.single)
            log(f"  alias − direct p50 at -c1 {one:+7.3f} ms  (the gateway's own per-request latency)")
    if alias and ray:
        r = alias.median("rps") / ray.median("rps")
        met = verdict(r >= RAY_TARGET)
        log(f"  alias / Ray Serve throughput {r:6.1f}×   target ≥ {RAY_TARGET:.0f}×: {met}")
    if profile:
        log("")
        for line in profile:
            log(line)
    if switch is not None:
        load = switch.load
        failed = load.errors
        non2xx = sum(v for k, v in load.codes.items() if not 200 <= k < 300)
        log(
            f"\nswitch run ({load.duration_s:.0f} s, c{args.connections}): {load.requests} requests, "
            f"{non2xx} non-2xx, socket errors {load.socket_errors} "
            f"({', '.join(f'{k} {v}' for k, v in load.socket.items())}); "
            f"status codes {dict(sorted(load.codes.items()))}; {load.rps:.0f} req/s, "
            f"p99 {load.p99_ms:.1f} ms, max {load.max_ms:.0f} ms"
        )
        log(
            "  served by node (gateway metrics): "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(switch.served.items()))
        )
        log(f"  target 0 failed: {verdict(failed == 0 and non2xx == 0)}")
        ok = ok and failed == 0 and non2xx == 0
    return ok


# -- main ------------------------------------------------------------------------------------------


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per contender (default 3)")
    parser.add_argument("--skip-ray", action="store_true", help="leave Ray Serve out")
    parser.add_argument("--skip-switch", action="store_true", help="leave the switch run out")
    parser.add_argument("--switch-step", type=float, default=4.0, help="seconds between switch steps (4)")
    parser.add_argument(
        "--ray-max-ongoing", type=int, default=100, help="Ray Serve max_ongoing_requests (default 100)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run a second gateway under cProfile and show its hot spots",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs) and print where")
    args = parser.parse_args()
    if args.connections < 1 or args.duration < 1 or args.rounds < 1:
        parser.error("--connections, --duration and --rounds must be at least 1")
    try:
        wrk_executable()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, _sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="atoll-bench-gw-"))
    workdir.chmod(0o755)
    atoll = Atoll(workdir)
    ray: RayServe | None = None
    stoppers: list[Callable[[], None]] = []
    targets: list[Target] = []
    switch: SwitchResult | None = None
    profile: list[str] = []
    failed = ""
    try:
        settings = ", ".join(f"{k}={v}" for k, v in atoll.settings.items())
        log(f"atoll up (data dir {atoll.data_dir}; {settings}) …")
        atoll.start()
        atoll.create_project()
        atoll.register_noop_model()
        atoll.create_node("noop-v1")
        log("node noop-v1 (the first start may build the model server's environment) …")
        node = atoll.wait_healthy("noop-v1")
        atoll.set_alias({"noop-v1": 100}, create=True)
        node_port = int(node["instances"][0]["port"])
        direct_url = f"http://127.0.0.1:{node_port}{PATH}"
        alias_url = atoll.gateway_url + PATH

        def routed() -> bool:
            r = httpx.post(alias_url, content=BODY, headers=atoll.alias_headers(), trust_env=False)
            return r.status_code == 200

        wait_for("the gateway to route the alias", routed, 10)
        answer = httpx.post(direct_url, content=BODY, headers={"content-type": "application/json"}).json()
        log(f"noop answers: {json.dumps(answer)}")
        gw_pid, inst = atoll.gateway_pid(), instance_pgid(atoll, node)
        assert atoll.proc is not None
        atoll_pid = atoll.proc.pid

        relay_port = free_port()
        relay = Process(
            [sys.executable, str(BENCH_DIR / "gateway_relay.py"), str(relay_port), str(node_port)],
            dict(os.environ),
            workdir / "relay.log",
        ).start()
        stoppers.append(relay.stop)

        def atoll_cpu() -> dict[str, float]:
            gw_user, gw_sys = cpu_split(gw_pid)
            relay_user, relay_sys = cpu_split(relay.pid)
            return {
                "gateway user": gw_user,
                "gateway sys": gw_sys,
                "relay user": relay_user,
                "relay sys": relay_sys,
                "model server": group_cpu_seconds(inst),
                "atoll up": cpu_seconds(atoll_pid),
            }

        plain = lua_script(workdir / "direct.lua", BODY, {"content-type": "application/json"})
        with_alias = lua_script(workdir / "alias.lua", BODY, atoll.alias_headers())
        relay_url = f"http://127.0.0.1:{relay_port}{PATH}"
        wait_for("the TCP relay", lambda: _answers(relay_url), 10, 0.1)
        targets = [
            Target("direct", direct_url, plain, atoll_cpu, note="the node's instance port, no gateway"),
            Target(
                "TCP relay", relay_url, plain, atoll_cpu,
                note="a reference, not a contender: a bare uvloop byte relay (bench/gateway_relay.py)",
            ),
            Target(
                "Atoll alias", alias_url, with_alias, atoll_cpu, note="gateway, private alias, bearer token"
            ),
        ]  # fmt: skip
        log(f"\nthroughput: direct, TCP relay and alias, {args.rounds} rounds of {args.duration} s")
        throughput(targets, args, workdir)
        if not args.skip_ray:
            ray = RayServe(workdir, ENVS, args.ray_max_ongoing)
            log("\nRay Serve: venv (built once), head, deployment …")
            ray.start(BODY)
            rs = ray

            def ray_cpu() -> dict[str, float]:
                return {"ray (all)": rs.cpu_seconds()}

            t = Target("Ray Serve", ray.url, plain, ray_cpu, note=ray.setup)
            targets.append(t)
            throughput([t], args, workdir)
            t0 = time.monotonic()
            ray.stop()
            ray = None
            log(f"Ray stopped ({time.monotonic() - t0:.1f} s)")
        if args.profile:
            log("\nthe gateway under cProfile …")
            profile = profile_gateway(atoll, args, workdir)
        if not args.skip_switch:
            switch = switch_run(atoll, args, workdir)
    except BenchError as e:
        failed = str(e)
    except KeyboardInterrupt:
        failed = "interrupted"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if ray is not None:
            ray.stop()
        for stop in stoppers:
            stop()
        atoll.stop()
        if args.keep:
            log(f"\nwork dir and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    ok = report(targets, switch, profile, args) if targets else False
    if failed:
        tail = atoll.proc.log_tail() if atoll.proc and failed != "interrupted" else ""
        print(f"\nerror: {failed}\n{tail}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
