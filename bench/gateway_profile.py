"""The deploy gateway under cProfile, for bench/gateway.py --profile.

Run as a script (``gateway_profile.py STATS_FILE``), this is the gateway's own code as
``python -m atoll.gateway`` runs it (settings from the ATOLL_* environment, uvloop when installed),
under cProfile, writing its statistics to STATS_FILE when it stops (SIGTERM). ``profile_gateway``
starts it beside the real one, loads it with wrk like the alias run and reads the statistics.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
from pathlib import Path
from typing import Any

import httpx
from gateway_atoll import BODY, PATH, Atoll, wait_for
from gateway_wrk import lua_script, run
from procs import BenchError, Process, free_port

from atoll.gateway import serve
from atoll.settings import Settings

BENCH_DIR = Path(__file__).resolve().parent


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


def main() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    profile = cProfile.Profile()
    profile.enable()
    try:
        asyncio.run(serve.main(Settings()))
    finally:
        profile.disable()
        profile.dump_stats(sys.argv[1])


if __name__ == "__main__":
    main()
