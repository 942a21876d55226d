"""Workload logs: append-only byte files, one per workload and stream.

Offsets are byte offsets into a stream, so a reader that saw up to offset N resumes from N
(this is how `attach` follows a running workload and how the UI tails logs). Logs are kept
after the workload (and its runtime state) is gone, until `delete()` is called explicitly.

The local runtime's supervisor process (`atoll.runtime.local.shim`) writes through this class too,
so it must stay import-light and process-safe: every write is a single `write()` on a file
opened with O_APPEND, which the kernel keeps whole against other appenders on a local disk.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import BinaryIO

# Workload ids name directories (here and in the cgroup tree): keep them to a safe alphabet so
# a caller's id can never climb out of the root.
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
_STREAM = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def check_id(workload_id: str) -> str:
    """Return `workload_id` if it is a valid workload id ([a-z0-9-], 1-128 chars), else raise ValueError."""
    if not _ID.match(workload_id):
        raise ValueError(
            f"invalid workload id {workload_id!r}: use 1-128 characters a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return workload_id


class LogStore:
    """Append-only log files under `root/<workload id>/<stream>.log`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, workload_id: str, stream: str) -> Path:
        """The file holding one stream of one workload (it may not exist yet)."""
        if not _STREAM.match(stream):
            raise ValueError(f"invalid log stream name {stream!r}")
        return self.root / check_id(workload_id) / f"{stream}.log"

    def open_append(self, workload_id: str, stream: str) -> BinaryIO:
        """An unbuffered append-only file object for a writer that stays open (the supervisor)."""
        p = self.path(workload_id, stream)
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return os.fdopen(fd, "ab", buffering=0)

    def append(self, workload_id: str, stream: str, data: bytes) -> int:
        """Append `data` to a stream; returns the stream's size afterwards."""
        with self.open_append(workload_id, stream) as f:
            f.write(data)
            return os.fstat(f.fileno()).st_size

    def size(self, workload_id: str, stream: str) -> int:
        """Bytes written to a stream so far (0 when nothing was)."""
        try:
            return self.path(workload_id, stream).stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, workload_id: str, stream: str, offset: int = 0, limit: int = 1 << 20) -> tuple[bytes, int]:
        """Up to `limit` bytes from `offset`; returns (data, next offset to read from)."""
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must not be negative")
        try:
            with self.path(workload_id, stream).open("rb") as f:
                # Past the end there is nothing yet; and seeking far past it fails (EINVAL beyond
                # the filesystem's largest file), which must not become a server error.
                if offset >= os.fstat(f.fileno()).st_size:
                    return b"", offset
                f.seek(offset)
                data = f.read(limit)
        except FileNotFoundError:
            return b"", offset
        return data, offset + len(data)

    def exists(self, workload_id: str) -> bool:
        """Whether any log of this workload is stored."""
        return (self.root / check_id(workload_id)).is_dir()

    def delete(self, workload_id: str) -> None:
        """Remove every stream of a workload; a no-op when there are none."""
        shutil.rmtree(self.root / check_id(workload_id), ignore_errors=True)


def system_line(text: str, when: float | None = None) -> bytes:
    """One line of a "system" stream (Atoll's own messages): an ISO-8601 UTC time, then the text."""
    t = time.gmtime(when if when is not None else time.time())
    return (time.strftime("%Y-%m-%dT%H:%M:%SZ", t) + " " + text.replace("\n", " ") + "\n").encode()
