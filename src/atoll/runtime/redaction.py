"""Secret values kept out of logs: a streaming redactor (a secret split across two reads is still
caught) and the pump that copies a workload's output through it into the log store."""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any

REDACTED = b"***"


class Redactor:
    """Replaces secret values in a byte stream with "***", also when a value is split across reads.

    The output equals redacting the whole stream at once (leftmost match, longest secret first).
    Only a tail that could still begin a secret is held back until the next read or the end, so
    ordinary output is not delayed.
    """

    def __init__(self, secrets: list[str]) -> None:
        values = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
        # Longest first: at one position the longest secret wins over one that is its prefix.
        self._re = re.compile(b"|".join(re.escape(v) for v in values)) if values else None
        self._values = values
        self._longest = len(values[0]) if values else 0
        self._pending = b""

    def redact(self, data: bytes) -> bytes:
        """Redact a complete piece of data (nothing carried over)."""
        return self._re.sub(REDACTED, data) if self._re else data

    def feed(self, data: bytes) -> bytes:
        """Take the next read; return what can be written now."""
        if self._re is None:
            return data
        buf = self._pending + data
        out: list[bytes] = []
        pos = 0
        # Below `safe` every secret that could start at a position ends inside buf, so the
        # regex decides there exactly as it would on the whole stream.
        safe = len(buf) - self._longest + 1
        while pos < safe:
            m = self._re.search(buf, pos)
            if m is None or m.start() >= safe:
                out.append(buf[pos:safe])
                pos = safe
                break
            out.append(buf[pos : m.start()])
            out.append(REDACTED)
            pos = m.end()
        # The short tail, one position at a time: stop where a secret may still begin.
        while pos < len(buf):
            rest = buf[pos:]
            if any(len(v) > len(rest) and v.startswith(rest) for v in self._values):
                break
            m = self._re.match(buf, pos)
            if m is not None:
                out.append(REDACTED)
                pos = m.end()
            else:
                out.append(buf[pos : pos + 1])
                pos += 1
        self._pending = buf[pos:]
        return b"".join(out)

    def flush(self) -> bytes:
        """At the end of the stream: what was held back, redacted (no more data can change it)."""
        out, self._pending = self.redact(self._pending), b""
        return out


def write_all(f: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = f.write(view)
        view = view[n:]


def pump(fd: int, out: Any, redactor: Redactor) -> None:
    """Copy a pipe into a log file until EOF, redacting secrets.

    Keeps draining even when the log cannot be written (a full disk, say): a pipe nobody reads
    would block the workload on its next print.
    """
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunk = redactor.feed(data)
            if chunk:
                with contextlib.suppress(OSError):
                    write_all(out, chunk)
        rest = redactor.flush()
        if rest:
            with contextlib.suppress(OSError):
                write_all(out, rest)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
