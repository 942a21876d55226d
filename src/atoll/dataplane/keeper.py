"""The keeper: ``python -m atoll.dataplane.keeper <gateway dir> <haproxy binary>``.

It runs HAProxy (master-worker, in the foreground) from the gateway dir's haproxy.cfg, and
outlives `atoll up`: started in a session of its own, it keeps serving the last routing table
Atoll wrote while the control plane is down or restarting, and the next `atoll up` adopts it
through keeper.json. If HAProxy dies (the master exits when a worker dies), the keeper starts it
again within a fraction of a second. SIGHUP reloads (HAProxy's master starts a worker with the
new config; the old one finishes every request it holds); SIGTERM stops HAProxy and the keeper.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from atoll.runtime.local.proc_files import start_time, write_json

RESTART_S = 0.1  # the first restart; doubled while HAProxy keeps dying at once, up to MAX_RESTART_S
MAX_RESTART_S = 1.0
LOG_LIMIT = 1 << 20  # haproxy.log is started afresh past this size


class Keeper:
    def __init__(self, directory: Path, binary: str) -> None:
        self.directory = directory
        self.binary = binary
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def _spawn(self) -> subprocess.Popen[bytes]:
        log = self.directory / "haproxy.log"
        if log.exists() and log.stat().st_size > LOG_LIMIT:
            log.replace(self.directory / "haproxy.log.1")
        with open(log, "ab") as out:
            return subprocess.Popen(
                [self.binary, "-W", "-db", "-f", "haproxy.cfg"],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )

    def _signal(self, sig: int) -> None:
        if self.child is not None and self.child.poll() is None:
            os.kill(self.child.pid, sig)

    def _on_hup(self, signum: int, frame: object) -> None:
        self._signal(signal.SIGUSR2)  # HAProxy's master reloads on SIGUSR2

    def _on_term(self, signum: int, frame: object) -> None:
        self.stopping = True
        self._signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        delay = RESTART_S
        while not self.stopping:
            started = time.monotonic()
            self.child = self._spawn()
            while self.child.poll() is None:
                try:
                    self.child.wait()
                except InterruptedError:
                    continue
            if self.stopping:
                break
            # Died at once again (a config it cannot load): wait longer before the next try.
            delay = min(delay * 2, MAX_RESTART_S) if time.monotonic() - started < 1.0 else RESTART_S
            time.sleep(delay)
        return 0


def main() -> int:
    directory, binary = Path(sys.argv[1]).resolve(), sys.argv[2]
    keeper = Keeper(directory, binary)
    # How Atoll finds it again (pid and start time name one process for good).
    me = os.getpid()
    write_json(directory / "keeper.json", {"pid": me, "start_time": start_time(me), "binary": binary})
    return keeper.run()


if __name__ == "__main__":
    sys.exit(main())
