"""How jobs look in `atoll job list` and `get`: the columns, timestamps and data expiry.

Kept apart from job_terminal.py (following a running job), so that listing jobs imports
neither the job client nor the config checker: a start of `atoll job list` stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from atoll.cli.output import Column


def ts(value: Any) -> str:
    if not value:
        return "-"
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def expires(job: Mapping[str, Any]) -> str:
    if job.get("dataTtlDays") is None:
        return "Never"
    if job.get("dataExpiresAt"):
        return ts(job["dataExpiresAt"])
    return f"{job['dataTtlDays']} days after it ends"


COLUMNS: list[Column] = [
    ("ID", "id"),
    ("Name", "name"),
    ("Description", "desc"),
    ("Created at", lambda j: ts(j.get("createdAt"))),
    ("Finished at", lambda j: ts(j.get("finishedAt"))),
    ("Status", "status"),
    ("Created by", "createdById"),
    ("Data cleared", "dataCleared"),
    ("Data expires at", expires),
]
