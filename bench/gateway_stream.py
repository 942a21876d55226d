"""The streaming and control-plane-kill runs of bench/gateway.py.

Streaming: a command node whose server answers ``GET /events`` with Server-Sent Events (headers at
once, then one event every ``--stream-every`` seconds, ``--stream-events`` of them), published as
the private alias ``bench-sse``. Streams are opened directly on the instance's port and through
the alias in alternating rounds of ``--stream-parallel`` at once, ``--streams`` each; every stream
is a new connection, timed from before the connect to the arrival of its first event and of its
last, with the largest gap between two events (a buffering proxy would show it). Target: the
alias's median first-event latency at most +5 ms over direct's.

Control-plane kill: wrk keeps the ``bench`` alias busy (every status counted, as in the switch
run) while `atoll up`'s process group is killed with SIGKILL and `atoll up` is started again on the
same ports and data dir (tests/deploy/test_control_plane_down.py does the same in the suite).
The baseline is the same load for the same time with nothing killed. Target: 0 failed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from gateway_atoll import BODY, PATH, Atoll, wait_for
from gateway_wrk import Timeline, Wrk, WrkResult, lua_script, run
from procs import BenchError

STREAM_TARGET_MS = 5.0
SSE_ALIAS = "bench-sse"
# The SSE server of the streaming node (standard library only; $HOST and $PORT from Atoll).
SSE_SERVER = r"""
import http.server, os, socket, sys, time
from urllib.parse import parse_qs, urlsplit
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path != "/events":
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            return
        q = parse_qs(url.query)
        n, every = int(q.get("n", ["20"])[0]), float(q.get("every", ["0.1"])[0])
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        start = time.monotonic()
        try:
            for i in range(n):
                time.sleep(max(0.0, start + (i + 1) * every - time.monotonic()))
                event = b"data: %d\n\n" % i
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-stream", action="store_true", help="leave the streaming run out")
    parser.add_argument("--streams", type=int, default=30, help="SSE streams per contender (30)")
    parser.add_argument("--stream-parallel", type=int, default=5, help="streams open at once (5)")
    parser.add_argument("--stream-events", type=int, default=20, help="events per stream (20)")
    parser.add_argument("--stream-every", type=float, default=0.1, help="seconds between events (0.1)")
    parser.add_argument("--skip-kill", action="store_true", help="leave the control-plane kill run out")
    parser.add_argument("--kill-step", type=float, default=4.0, help="seconds between kill-run steps (4)")


def log(msg: str) -> None:
    print(msg, flush=True)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


# -- streaming -------------------------------------------------------------------------------------


@dataclass
class StreamStats:
    name: str
    head_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    last_ms: list[float] = field(default_factory=list)
    max_gap_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def _one_stream(port: int, request: bytes, events: int, timeout: float) -> list[float]:
    """One stream on a new connection to 127.0.0.1:port: [the response's headers, first event, last
    event, largest gap between two events], in ms from before the connect."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(request)
        buf, body_at, seen, arrivals, head = b"", -1, 0, [], 0.0
        while seen < events:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                raise BenchError(f"closed after {seen} of {events} events: {buf[:200]!r}")
            now = time.perf_counter()
            buf += chunk
            if body_at < 0:
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    continue
                if not buf.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                    raise BenchError(f"answered {buf[:head_end].decode(errors='replace')[:200]!r}")
                body_at, head = head_end + 4, now
            # Each event ends with a blank line; the chunk framing around it holds none.
            now_seen = buf.count(b"\n\n", body_at)
            arrivals += [now] * (now_seen - seen)
            seen = now_seen
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        ms = [(t - t0) * 1e3 for t in (head, arrivals[0], arrivals[-1])]
        return [*ms, max(gaps, default=0.0) * 1e3]
    finally:
        writer.close()


async def _streams(
    targets: list[tuple[StreamStats, int, bytes]], streams: int, parallel: int, events: int, timeout: float
) -> None:
    """``streams`` streams per target, ``parallel`` at once, the targets taking turns."""
    for i in range(-(-streams // parallel)):
        order = targets if i % 2 == 0 else targets[::-1]  # alternate, so no one always goes first
        k = min(parallel, streams - i * parallel)
        for stats, port, request in order:
            got = await asyncio.gather(
                *(_one_stream(port, request, events, timeout) for _ in range(k)), return_exceptions=True
            )
            for g in got:
                if isinstance(g, BaseException):
                    stats.failures.append(repr(g))
                else:
                    stats.head_ms.append(g[0])
                    stats.first_ms.append(g[1])
                    stats.last_ms.append(g[2])
                    stats.max_gap_ms.append(g[3])


def stream_run(atoll: Atoll, args: argparse.Namespace) -> list[StreamStats]:
    log("\nstreaming run: an SSE node and the alias bench-sse …")
    atoll.create_node(
        "sse",
        command=[sys.executable, "-c", SSE_SERVER],
        healthCheck={"path": "/health", "intervalS": 1, "timeoutS": 1},
    )
    node = atoll.wait_healthy("sse")
    atoll.set_alias({"sse": 100}, create=True, alias=SSE_ALIAS)
    query = f"/events?n={args.stream_events}&every={args.stream_every}"
    gw_port = int(atoll.gateway_url.rsplit(":", 1)[1])

    def routed() -> bool:
        r = httpx.get(atoll.gateway_url + "/health", headers=atoll.alias_headers(SSE_ALIAS), trust_env=False)
        return r.status_code == 200

    wait_for("the gateway to route bench-sse", routed, 10)
    node_port = int(node["instances"][0]["port"])
    head = f"GET {query} HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n"
    auth = atoll.alias_headers(SSE_ALIAS)
    alias_head = head + "".join(f"{k}: {auth[k]}\r\n" for k in ("x-node-alias", "authorization"))
    direct, alias = StreamStats("direct"), StreamStats("Atoll alias")
    targets = [
        (direct, node_port, (head + "\r\n").encode()),
        (alias, gw_port, (alias_head + "\r\n").encode()),
    ]
    n, parallel = args.stream_events, args.stream_parallel
    timeout = 10 + n * args.stream_every
    warm = [(StreamStats("warm-up"), port, request) for _, port, request in targets]  # not counted
    asyncio.run(_streams(warm, parallel, parallel, n, timeout))
    asyncio.run(_streams(targets, args.streams, parallel, n, timeout))
    return [direct, alias]


def report_streams(stats: list[StreamStats], args: argparse.Namespace) -> bool:
    expect = args.stream_every * 1e3
    log(
        f"\nstreaming: {args.streams} SSE streams per contender, {args.stream_parallel} at once, "
        f"each {args.stream_events} events {expect:.0f} ms apart (the first {expect:.0f} ms after "
        "the headers); ms from before the connect"
    )
    log(
        f"{'contender':<14} {'headers p50':>11} {'first p50':>9} {'first p95':>9} {'last p50':>9} "
        f"{'gap max':>8} {'failed':>7}"
    )
    for s in stats:
        if s.first_ms:
            log(
                f"{s.name:<14} {statistics.median(s.head_ms):>11.2f} {statistics.median(s.first_ms):>9.2f} "
                f"{pct(s.first_ms, 95):>9.2f} {statistics.median(s.last_ms):>9.1f} "
                f"{max(s.max_gap_ms):>8.1f} {len(s.failures):>7}"
            )
        else:
            log(f"{s.name:<14} {'-':>11} {'-':>9} {'-':>9} {'-':>9} {'-':>8} {len(s.failures):>7}")
        for f in s.failures[:3]:
            log(f"  {s.name} failed: {f}")
    direct, alias = stats
    if not (direct.first_ms and alias.first_ms):
        return False
    p50 = statistics.median(alias.first_ms) - statistics.median(direct.first_ms)
    p95 = pct(alias.first_ms, 95) - pct(direct.first_ms, 95)
    met = p50 <= STREAM_TARGET_MS and not direct.failures and not alias.failures
    log(
        f"  alias − direct first event: p50 {p50:+.2f} ms, p95 {p95:+.2f} ms   "
        f"target p50 ≤ +{STREAM_TARGET_MS:.0f} ms, no failed stream: {'met' if met else 'NOT met'}"
    )
    return not direct.failures and not alias.failures  # the latency target is reported, not enforced


# -- control-plane kill ----------------------------------------------------------------------------


@dataclass
class KillResult:
    baseline: WrkResult
    load: WrkResult
    events: list[tuple[float, str]]
    keeper: tuple[int | None, int | None]  # the data plane keeper's pid before and after


def kill_run(atoll: Atoll, args: argparse.Namespace, workdir: Path) -> KillResult:
    step = args.kill_step
    log(f"\ncontrol-plane kill run: baseline, the same load for {3 * step:.0f} s with nothing killed …")
    script = lua_script(workdir / "kill.lua", BODY, atoll.alias_headers(), count_codes=True)
    url = atoll.gateway_url + PATH
    baseline = run("no kill", url, script, args.connections, round(3 * step), workdir / "wrk-nokill.log")
    log("then the same load while `atoll up` is killed and started again:")
    keeper_before = atoll.keeper_pid()
    w = Wrk("kill", url, script, args.connections, 600, workdir / "wrk-kill.log")
    event = Timeline()
    w.start()
    try:
        event("wrk started")
        time.sleep(step)
        atoll.kill()
        event("`atoll up`'s process group killed (SIGKILL)")
        time.sleep(step)
        event("`atoll up` started again (same ports, same data dir)")
        atoll.restart()
        event("`atoll up` and the gateway answer /healthz again")
        time.sleep(step)
        w.interrupt()
        event("wrk stopped")
        load = w.wait()
    finally:
        w.stop()
    return KillResult(baseline, load, event.events, (keeper_before, atoll.keeper_pid()))


def _failed(r: WrkResult) -> int:
    return r.socket_errors + sum(v for k, v in r.codes.items() if not 200 <= k < 300)


def report_kill(k: KillResult, args: argparse.Namespace) -> bool:
    log(f"\ncontrol-plane kill (wrk -t1 -c{args.connections}, the `bench` alias, every status counted)")
    log(f"{'run':<22} {'s':>5} {'requests':>9} {'failed':>7} {'req/s':>8} {'p99 ms':>8} {'max ms':>8}  codes")
    for name, r in (("nothing killed", k.baseline), ("atoll up killed+back", k.load)):
        log(
            f"{name:<22} {r.duration_s:>5.1f} {r.requests:>9} {_failed(r):>7} {r.rps:>8.0f} "
            f"{r.p99_ms:>8.1f} {r.max_ms:>8.0f}  {dict(sorted(r.codes.items()))}, socket errors "
            + ", ".join(f"{k} {v}" for k, v in r.socket.items())
        )
    before, after = k.keeper
    adopted = "adopted (same pid)" if before is not None and before == after else f"{before} → {after}"
    ratio = k.load.rps / k.baseline.rps if k.baseline.rps else 0.0
    failed = _failed(k.load)
    log(f"  with the kill / without: {ratio:.2f}× the throughput; data plane keeper {adopted}")
    met = "met" if failed == 0 else "NOT met"
    log(f"  requests {k.load.requests}, failed {failed}   target 0 failed: {met}")
    return failed == 0
