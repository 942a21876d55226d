"""The deploy gateway: throughput and latency through an Atoll alias vs the instance called directly
vs Ray Serve, and a zero-downtime switch under constant load.

Targets (issue: deploy data plane): through an alias, at least 0.70× the direct throughput and at
most +1 ms on the median latency; at least 10× Ray Serve's throughput; no failed request while an
alias switches 100/0 → 50/50 → 0/100, the new node is replaced by a rolling update and the old one
is deleted; (issue 16) the first event of a stream at most +5 ms through an alias, and no failed
request while `atoll up` is killed and started again.

1. A real ``atoll up`` on free ports with its own data dir (node environments built once under
   ``~/.cache/atoll-bench/envs``). A "noop" model (the built-in model server echoes its input) is
   registered through the project's model outbox, as ``atoll.models.save`` would, deployed as the
   node ``noop-v1`` (configuration s1.1, one instance) and published as the private alias ``bench``.
2. wrk (``-t1 -c<connections> -d<duration>s``, the same OIP v2 infer body and settings for all)
   against: **direct** — the instance's own port (``python -m atoll.serving``); **Atoll alias** —
   the gateway with ``x-node-alias: bench`` and an Atoll API token (HAProxy hashes it once per
   connection, and looks it up on every request); **Ray Serve** — a one-replica no-op deployment
   with the same JSON answer (see bench/gateway_ray.py). As references, not contenders, a **TCP
   relay**: a bare uvloop byte copier in front of the same instance (bench/gateway_relay.py), the
   floor of any Python proxy here; and a **bare HAProxy**: the data plane's binary, one thread,
   with no rules (what any proxy hop costs on this machine). ``--rounds`` interleaved rounds
   each, after an uncounted warm-up; the medians are reported, with the CPU seconds per request
   of wrk, the gateway (user and system), the model server and ``atoll up`` (from /proc), the
   cores busy on the path and on the whole machine (others' work shows as the difference), and a
   one-connection run (latency without queueing).
3. The switch run: ``noop-v2`` beside ``noop-v1``; while wrk keeps the alias busy, weights go
   100/0 → 50/50 → 0/100 a few seconds apart, then ``noop-v2`` is updated (a rolling replacement of
   its instance), then ``noop-v1`` is deleted. wrk counts every response's status.
4. The streaming run: Server-Sent Events from a command node, first-event latency directly and
   through an alias (bench/gateway_stream.py, which says how).
5. The control-plane kill run: `atoll up` killed with SIGKILL and started again on the same ports
   while wrk keeps the alias busy, against the same load with nothing killed (the same module).

Everything binds to 127.0.0.1, runs in its own session and is stopped by its process group (and
Ray's leftovers by pid), also on failure and Ctrl-C.

Run: ``.venv/bin/python bench/gateway.py [--connections 16] [--duration 10] [--rounds 3]
[--skip-ray] [--skip-switch] [--skip-stream] [--skip-kill] [--keep]``. Exit status 0
when everything was measured and the switch, streaming and kill runs failed no request (the
throughput and latency targets are reported, not enforced), 1 when a step failed or a request did,
2 when wrk is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gateway_stream as stream
import httpx
from gateway_atoll import BODY, ENVS, PATH, Atoll, answers, instance_pgid, wait_for
from gateway_ray import RayServe
from gateway_wrk import Timeline, Wrk, WrkResult, lua_script, run, warm_up, wrk_executable
from procs import (
    BenchError,
    Process,
    cpu_seconds,
    cpu_split,
    free_port,
    group_cpu_seconds,
    machine_busy_seconds,
    remove_networks,
)

from atoll.dataplane.proxy import haproxy_binary

BENCH_DIR = Path(__file__).resolve().parent
# Issue 16's targets for the HAProxy data plane on the 2-core machine.
# A reference contender: the same HAProxy as the data plane with none of Atoll's rules.
BARE_HAPROXY = """global
    nbthread 1
defaults
    mode http
    timeout client 60s
    timeout server 60s
    timeout connect 5s
frontend bare
    bind 127.0.0.1:{port}
    default_backend instance
backend instance
    server s1 127.0.0.1:{upstream}
"""
THROUGHPUT_TARGET = 0.85
P50_TARGET_MS = 0.1
RAY_TARGET = 50.0


def log(msg: str) -> None:
    print(msg, flush=True)


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
    event = Timeline()
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
    return SwitchResult(load, event.events, served)


# -- report ----------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(targets: list[Target], switch: SwitchResult | None, args: argparse.Namespace) -> bool:
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
        log(f"  alias − direct p50        {extra:+7.2f} ms  target ≤ {P50_TARGET_MS:g} ms: {met}")
        if direct.single and alias.single:
            one = alias.median("p50_ms", alias.single) - direct.median("p50_ms", direct.single)
            log(f"  alias − direct p50 at -c1 {one:+7.3f} ms  (the gateway's own per-request latency)")
        bare = by.get("bare HAProxy")
        if bare:
            r = bare.median("rps") / direct.median("rps")
            e = bare.median("p50_ms") - direct.median("p50_ms")
            log(f"  (bare HAProxy / direct      {r:6.2f}×, p50 {e:+.2f} ms: what any proxy hop costs here)")
    if alias and ray:
        r = alias.median("rps") / ray.median("rps")
        met = verdict(r >= RAY_TARGET)
        log(f"  alias / Ray Serve throughput {r:6.1f}×   target ≥ {RAY_TARGET:.0f}×: {met}")
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
    stream.add_arguments(parser)  # the streaming and kill runs' (bench/gateway_stream.py)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs) and print where")
    args = parser.parse_args()
    if min(args.connections, args.duration, args.rounds, args.streams, args.stream_parallel) < 1:
        parser.error("--connections, --duration, --rounds, --streams, --stream-parallel: at least 1")
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
    streams: list[stream.StreamStats] = []
    killed: stream.KillResult | None = None
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

        bare_port = free_port()
        (workdir / "bare-haproxy.cfg").write_text(BARE_HAPROXY.format(port=bare_port, upstream=node_port))
        bare_cfg = str(workdir / "bare-haproxy.cfg")
        bare = Process([haproxy_binary(), "-f", bare_cfg], dict(os.environ), workdir / "bare.log").start()
        stoppers.append(bare.stop)

        def atoll_cpu() -> dict[str, float]:
            gw_user, gw_sys = cpu_split(gw_pid)
            relay_user, relay_sys = cpu_split(relay.pid)
            bare_user, bare_sys = cpu_split(bare.pid)
            return {
                "gateway user": gw_user,
                "gateway sys": gw_sys,
                "relay user": relay_user,
                "relay sys": relay_sys,
                "bare HAProxy user": bare_user,
                "bare HAProxy sys": bare_sys,
                "model server": group_cpu_seconds(inst),
                "atoll up": cpu_seconds(atoll_pid),
            }

        plain = lua_script(workdir / "direct.lua", BODY, {"content-type": "application/json"})
        with_alias = lua_script(workdir / "alias.lua", BODY, atoll.alias_headers())
        relay_url = f"http://127.0.0.1:{relay_port}{PATH}"
        wait_for("the TCP relay", lambda: answers(relay_url), 10, 0.1)
        bare_url = f"http://127.0.0.1:{bare_port}{PATH}"
        wait_for("the bare HAProxy", lambda: answers(bare_url), 10, 0.1)
        targets = [
            Target("direct", direct_url, plain, atoll_cpu, note="the node's instance port, no gateway"),
            Target(
                "TCP relay", relay_url, plain, atoll_cpu,
                note="a reference, not a contender: a bare uvloop byte relay (bench/gateway_relay.py)",
            ),
            Target(
                "bare HAProxy", bare_url, plain, atoll_cpu,
                note="a reference: the same HAProxy binary, one thread, frontend -> the instance, no rules",
            ),
            Target(
                "Atoll alias", alias_url, with_alias, atoll_cpu, note="gateway, private alias, bearer token"
            ),
        ]  # fmt: skip
        log(f"\nthroughput: direct, the references and alias, {args.rounds} rounds of {args.duration} s")
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
        if not args.skip_switch:
            switch = switch_run(atoll, args, workdir)
        if not args.skip_stream:
            streams = stream.stream_run(atoll, args)
        if not args.skip_kill:
            killed = stream.kill_run(atoll, args, workdir)  # last: `atoll up` is a new process after it
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
        remove_networks(workdir)  # the servers are stopped: their project networks go too
        if args.keep:
            log(f"\nwork dir and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    ok = report(targets, switch, args) if targets else False
    if streams:
        ok = stream.report_streams(streams, args) and ok
    if killed is not None:
        ok = stream.report_kill(killed, args) and ok
    if failed:
        tail = atoll.proc.log_tail() if atoll.proc and failed != "interrupted" else ""
        print(f"\nerror: {failed}\n{tail}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
