"""Users' requests to their project's JupyterLab, as the gateway sees them: the notebook
controller's idle policy reads this board, so neither imports the other."""

from __future__ import annotations

import threading
from datetime import UTC, datetime


class ActivityBoard:
    """The gateway's record of users' requests per project, read by the controller.

    Only requests that show a person at work count (see the gateway): a background tab's polling
    does not, so a forgotten tab cannot keep a server alive.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[datetime, str]] = {}

    def touch(self, project_id: str, what: str) -> None:
        with self._lock:
            self._seen[project_id] = (datetime.now(UTC), what)

    def last(self, project_id: str) -> tuple[datetime, str] | None:
        with self._lock:
            return self._seen.get(project_id)
