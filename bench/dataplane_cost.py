"""The data plane's own cost per request, counted in CPU instructions: Atoll's rendered HAProxy
config (routing, the token check, credential stripping, metrics) against a bare HAProxy config
in front of the same upstream, both under valgrind's callgrind.

Wall-clock figures on the 2-core development machine move by ±20 % from one minute to the next
(other tenants of the host); instruction counts do not, so this is how a change to
haproxy.cfg.j2 is judged before bench/gateway.py measures what users see.

1. An upstream that answers at once (a second HAProxy, `http-request return`), outside callgrind.
2. For each config: HAProxy under callgrind (one process: master-worker mode is left out, the
   rules are the same), N1 then N2 requests over one kept-alive connection; the difference of
   the two totals divided by N2 - N1 is the cost of one request, start-up excluded.
3. memcpy is left out of the count: glibc copies big buffers with `rep movsb`, which callgrind
   counts once per byte (a 16 KB buffer copy would count as 16,000 instructions) though the CPU
   does it in a few hundred cycles.

Contenders: **bare** (frontend → backend → the upstream, nothing else), **Atoll public** (a
public alias by the x-node-alias header) and **Atoll private** (a private alias with an Atoll
API token). Printed: instructions per request, and Atoll's over bare.

Run: ``.venv/bin/python bench/dataplane_cost.py [--requests 1200] [--rounds 3]`` (about a
minute). Exit status 0 when measured, 1 when a request failed, 2 when valgrind is missing.
Everything binds to 127.0.0.1 and runs in its own session; each HAProxy is stopped by its pid.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from atoll.dataplane.plan import AliasPlan, NodePlan, Plan, Server
from atoll.dataplane.proxy import HAProxyPlane, haproxy_binary

TOKEN = "atl_" + "b" * 40
PREAMBLE = """global
    nbthread 1
defaults
    mode http
    timeout client 30s
    timeout server 30s
    timeout connect 5s
"""
BARE = (
    PREAMBLE
    + """frontend gateway
    bind 127.0.0.1:{port}
    default_backend node
backend node
    server s1 127.0.0.1:{upstream}
"""
)
UPSTREAM = (
    PREAMBLE
    + """frontend upstream
    bind 127.0.0.1:{port}
    http-request return status 200 content-type application/json string '{{"outputs":[]}}'
"""
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def atoll_config(work: Path, port: int, upstream: int) -> Path:
    """Atoll's haproxy.cfg and maps for one node behind a public and a private alias."""
    plane = HAProxyPlane(work / "gateway", haproxy_binary(), "127.0.0.1", port)
    plane.directory.mkdir(parents=True)
    plan = Plan(
        nodes={"n1": NodePlan("n1", "prj1", (Server("i1", "127.0.0.1", upstream),))},
        aliases={
            "pub": AliasPlan("pub", "prj1", True, (("n1", 1),)),
            "priv": AliasPlan("priv", "prj1", False, (("n1", 1),)),
        },
        tokens={hashlib.sha256(TOKEN.encode()).hexdigest(): "u1"},
        grants={("u1", "prj1")},
    )
    plane._write_all(plan, {"n1": [plan.nodes["n1"].servers[0]]})
    cfg = plane.directory / "haproxy.cfg"
    # One process for callgrind to count, which writes its count as the user it started as (the
    # same rules run in master-worker mode's worker, as nobody when Atoll runs as root).
    text = cfg.read_text()
    for line in ("    master-worker\n", "    uid 65534\n", "    gid 65534\n"):
        text = text.replace(line, "")
    cfg.write_text(text)
    return cfg


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60  # callgrind starts HAProxy ~50× slower
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"HAProxy exited at start ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("HAProxy did not listen within 60 s")


def counted(cfg: Path, port: int, requests: int, headers: dict[str, str], out: Path) -> int:
    """Instructions HAProxy ran, memcpy left out, to start and answer ``requests`` requests."""
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", haproxy_binary(), "-f", cfg.name],
        cwd=cfg.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_port(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(requests):
            conn.request("POST", "/v2/models/noop/infer", body=b'{"inputs":[]}', headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"a request got {response.status}")
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    annotate = ["callgrind_annotate", str(out)]
    report = subprocess.run(annotate, capture_output=True, text=True, check=True).stdout
    total = copies = 0
    for line in report.splitlines():
        if "PROGRAM TOTALS" in line:
            total = int(line.split()[0].replace(",", ""))
        elif "memmove-vec-unaligned-erms" in line and not copies:
            copies = int(line.split()[0].replace(",", ""))
    return total - copies


def per_request(cfg: Path, port: int, requests: int, headers: dict[str, str], work: Path) -> float:
    few = counted(cfg, port, requests // 6, headers, work / "few.out")
    many = counted(cfg, port, requests, headers, work / "many.out")
    return (many - few) / (requests - requests // 6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1200, help="requests in the longer run (1200)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per contender; the median (3)")
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        print("valgrind is not installed (apt install valgrind)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="atoll-bench-dpcost-"))
    upstream_port, port = free_port(), free_port()
    (work / "upstream.cfg").write_text(UPSTREAM.format(port=upstream_port))
    (work / "bare.cfg").write_text(BARE.format(port=port, upstream=upstream_port))
    upstream = subprocess.Popen(
        [haproxy_binary(), "-f", "upstream.cfg"], cwd=work, start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(upstream_port, upstream)
        atoll = atoll_config(work, port, upstream_port)
        rows = [
            ("bare HAProxy", work / "bare.cfg", {}),
            ("Atoll public", atoll, {"x-node-alias": "pub"}),
            ("Atoll private", atoll, {"x-node-alias": "priv", "authorization": f"Bearer {TOKEN}"}),
        ]
        results = []
        for name, cfg, headers in rows:
            # The event loop's turns per request vary a little with timing: a median of rounds.
            rounds = [per_request(cfg, port, args.requests, headers, work) for _ in range(args.rounds)]
            n = statistics.median(rounds)
            results.append(n)
            print(f"{name:14} {n:9,.0f} instructions per request", flush=True)
    except RuntimeError as e:
        print(f"failed: {e}", file=sys.stderr)
        return 1
    finally:
        upstream.send_signal(signal.SIGTERM)
        upstream.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    bare = results[0]
    print(
        f"\nAtoll's rules per request: public +{results[1] - bare:,.0f} ({results[1] / bare:.2f}× bare), "
        f"private +{results[2] - bare:,.0f} ({results[2] / bare:.2f}× bare)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
