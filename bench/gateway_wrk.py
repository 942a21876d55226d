"""wrk for bench/gateway.py: a Lua script for the POST body and headers that prints a JSON summary
(and, where asked, a count of every status code), run against one URL and parsed."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from procs import BenchError, Process

MARK = "WRKJSON "

_SCRIPT = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
{count}
function done(summary, latency, requests)
  local codes = {{}}
  for _, t in ipairs(threads) do
    local c = t:get("codes")
    if c then
      for k, v in pairs(c) do codes[tostring(k)] = (codes[tostring(k)] or 0) + v end
    end
  end
  local parts = {{}}
  for k, v in pairs(codes) do table.insert(parts, string.format('"%s": %d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %.1f, "codes": {{%s}}}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ", ")))
end
"""

_COUNT = """\
function init(args)
  codes = {}
end
function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end
"""


def lua_script(path: Path, body: str, headers: dict[str, str], count_codes: bool = False) -> Path:
    """Write a wrk script that POSTs ``body`` with ``headers``; ``count_codes`` counts every
    response's status (wrk then hands each response to Lua, which costs it some speed)."""
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    path.write_text(_SCRIPT.format(body=body, headers=lines, count=_COUNT if count_codes else "", mark=MARK))
    return path


def wrk_executable() -> str:
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk is not installed: `apt-get install wrk` (the load generator this bench uses)")
    return found


@dataclass
class WrkResult:
    name: str
    requests: int = 0
    duration_s: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    non2xx: int = 0  # wrk's "Non-2xx or 3xx responses" (status >= 400)
    socket: dict[str, int] = field(default_factory=dict)  # connect/read/write/timeout
    codes: dict[int, int] = field(default_factory=dict)  # only when counted
    cpu_s: dict[str, float] = field(default_factory=dict)  # process → CPU seconds during the run
    machine_s: float = 0.0  # CPU seconds the whole machine was busy during the run (others' work too)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def socket_errors(self) -> int:
        return sum(self.socket.values())

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


class Wrk:
    """One wrk run against ``url`` (in its own session, output to ``log``)."""

    def __init__(
        self,
        name: str,
        url: str,
        script: Path,
        connections: int,
        duration_s: int,
        log: Path,
        threads: int = 1,
    ) -> None:
        self.name = name
        argv = [
            wrk_executable(), f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency",
            "-s", str(script), url,
        ]  # fmt: skip
        self.proc = Process(argv, {"PATH": "/usr/bin:/bin"}, log)
        self.log = log
        self.duration_s = duration_s
        self._children_cpu = 0.0

    def start(self) -> Wrk:
        self.log.unlink(missing_ok=True)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._children_cpu = usage.ru_utime + usage.ru_stime
        self.proc.start()
        return self

    def interrupt(self) -> None:
        """End the run now: wrk stops on SIGINT and still prints its summary."""
        if self.proc.proc is not None and self.proc.proc.poll() is None:
            self.proc.proc.send_signal(signal.SIGINT)

    def wait(self) -> WrkResult:
        assert self.proc.proc is not None
        try:
            self.proc.proc.wait(timeout=self.duration_s + 30)
        except subprocess.TimeoutExpired as e:
            self.proc.stop()
            raise BenchError(f"wrk ({self.name}) did not finish:\n{self.proc.log_tail()}") from e
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = self.log.read_text(errors="replace")
        line = next((x for x in out.splitlines() if x.startswith(MARK)), None)
        if line is None:
            raise BenchError(
                f"wrk ({self.name}) printed no summary (exit {self.proc.proc.returncode}):\n{out}"
            )
        s = json.loads(line[len(MARK) :])
        return WrkResult(
            name=self.name,
            requests=s["requests"],
            duration_s=s["duration_us"] / 1e6,
            p50_ms=s["p50_us"] / 1e3,
            p90_ms=s["p90_us"] / 1e3,
            p99_ms=s["p99_us"] / 1e3,
            max_ms=s["max_us"] / 1e3,
            non2xx=s["status"],
            socket={k: s[k] for k in ("connect", "read", "write", "timeout")},
            codes={int(k): v for k, v in s["codes"].items()},
            cpu_s={"wrk": usage.ru_utime + usage.ru_stime - self._children_cpu},
        )

    def stop(self) -> None:
        self.proc.stop(grace_s=5)


def run(name: str, url: str, script: Path, connections: int, duration_s: int, log: Path) -> WrkResult:
    w = Wrk(name, url, script, connections, duration_s, log).start()
    try:
        return w.wait()
    finally:
        w.stop()


def warm_up(url: str, script: Path, connections: int, log: Path, seconds: int = 2) -> None:
    """A short run that is not counted: connections opened, caches and pools warm."""
    run("warm-up", url, script, connections, seconds, log)
    time.sleep(0.2)


class Timeline:
    """What happened when during a load run, printed as it happens and kept for the report."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str]] = []
        self._t0 = time.monotonic()

    def __call__(self, what: str) -> None:
        self.events.append((time.monotonic() - self._t0, what))
        print(f"  {self.events[-1][0]:5.1f} s  {what}", flush=True)
