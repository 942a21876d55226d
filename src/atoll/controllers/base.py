"""What a controller is to the server: a reconcile loop with a name.

``Services`` runs each controller of its list in a loop of its own: ``tick()`` in a worker thread,
then a wait of ``interval(base)`` seconds that a wake-up cuts short (``Services.wake(name)``, from
any thread: an API handler that queued work, another controller that finished some). ``close()``
runs once at shutdown; workloads keep running and are adopted again at the next start.

A new controller is one class with these four members and one line in ``Services.controllers``;
controllers/jobs.py is the example to copy.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Controller(Protocol):
    name: str  # the loop's name: what wake() takes, what the logs say

    def tick(self) -> None:
        """Compare what should be with what is and act, idempotently; may take a while."""

    def interval(self, base: float) -> float:
        """Seconds until the next tick unless woken; ``base`` is ATOLL_CONTROLLER_TICK_S."""

    def close(self) -> None:
        """Release what the controller holds (at server shutdown)."""
