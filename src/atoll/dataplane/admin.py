"""HAProxy's runtime API (the stats socket at level admin): slots, weights and maps changed live.

The socket lives in the gateway dir, whose path may be longer than a Unix socket address allows
(108 bytes): it is reached through ``/proc/self/fd/<dir fd>/admin.sock``, which is always short.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable
from pathlib import Path

TIMEOUT_S = 5.0
MAX_ANSWER = 16 * 1024 * 1024


class AdminError(RuntimeError):
    """HAProxy refused a runtime API command, or its socket is not there."""


class Admin:
    def __init__(self, directory: Path, name: str = "admin.sock") -> None:
        self.directory = directory
        self.name = name

    def send(self, command: str, timeout: float = TIMEOUT_S) -> socket.socket:
        """A connection that has sent ``command``, to read its answer from (a stream, for
        ``show events ... -w``); raises AdminError when HAProxy cannot be reached."""
        if "\n" in command:
            raise ValueError("one command per call")
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise AdminError(f"HAProxy's runtime API is not reachable: {e}") from e
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect(f"/proc/self/fd/{fd}/{self.name}")
            s.sendall(command.encode() + b"\n")
        except OSError as e:
            s.close()
            raise AdminError(f"HAProxy's runtime API is not reachable: {e}") from e
        finally:
            os.close(fd)
        return s

    def ask(self, command: str) -> str:
        """One command's answer (raises AdminError when HAProxy cannot be reached)."""
        with self.send(command) as s:
            chunks: list[bytes] = []
            size = 0
            try:
                while chunk := s.recv(65536):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > MAX_ANSWER:
                        raise AdminError(f"{command.split()[0]}: answer over {MAX_ANSWER} bytes")
            except OSError as e:
                raise AdminError(f"HAProxy's runtime API is not reachable: {e}") from e
        return b"".join(chunks).decode(errors="replace")

    def run(self, commands: Iterable[str]) -> list[str]:
        """Each command in turn; raises AdminError naming the first one HAProxy refused."""
        answers = []
        for c in commands:
            out = self.ask(c)
            # Errors read like "No such server." / "Unknown ..." / "Require ..."; successes are
            # empty or informational ("no need to change the addr ...").
            first = out.strip().splitlines()[0] if out.strip() else ""
            if first.startswith(("No such", "Unknown", "Require", "Invalid", "Missing", "Can't", "'")):
                raise AdminError(f"{c!r}: {first}")
            answers.append(out)
        return answers

    def worker_pid(self) -> int | None:
        """The pid of the worker answering the socket (None when none does)."""
        with contextlib.suppress(AdminError):
            for line in self.ask("show info").splitlines():
                if line.startswith("Pid:"):
                    return int(line.split(":", 1)[1])
        return None

    def alive(self) -> bool:
        with contextlib.suppress(AdminError):
            return "Name:" in self.ask("show info")
        return False
