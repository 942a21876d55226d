"""Each node's requests in the data plane right now, as the node controller scales by them.

The data plane controller puts what HAProxy counts (in flight, queued on capped instances, held
for a node's first instance) here every tick; the node controller reads it. A count older than
``FRESH_S`` is not used: the data plane is down or not HAProxy, and the node controller falls
back on the finished requests' latencies.
"""

from __future__ import annotations

import threading
import time

FRESH_S = 2.0


class NodeLoadBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loads: dict[str, int] = {}
        self._at = float("-inf")

    def put(self, loads: dict[str, int]) -> None:
        with self._lock:
            self._loads, self._at = dict(loads), time.monotonic()

    def of(self, node_id: str) -> int | None:
        """The node's requests now (0 when none), or None when the count is not fresh."""
        with self._lock:
            if time.monotonic() - self._at > FRESH_S:
                return None
            return self._loads.get(node_id, 0)
