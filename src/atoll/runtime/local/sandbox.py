"""A workload's private view of the machine: its own mount namespace, in which ``/tmp`` and
``/var/tmp`` are its project's tmp dir and ``/proc`` shows only its own user's processes.

On one machine, projects' workloads share the kernel. Separate uids already keep their files
apart; what they still shared was ``/tmp`` (a world-writable meeting point, where one project's
sockets and caches were another's to find) and ``/proc``, where every project's command lines,
ids and ports could be read. A new mount namespace fixes both without touching the host: the
project's tmp dir is bound over ``/tmp`` and ``/var/tmp``, and a fresh ``proc`` is mounted with
``hidepid=invisible`` (Linux ≥ 5.8 gives each proc mount its own options), so the workload sees
the processes of its own uid — its project's — and no others. Everything else is the host's.

It needs root (CAP_SYS_ADMIN) before the user switch, and a single-threaded process (the kernel
refuses ``unshare`` otherwise). ``enter()`` is called between fork and exec by the shim, and by
a warm process right before it becomes its workload. Standard library only: warm processes load
this file on the template's interpreter, where Atoll is not installed.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000


def libc() -> Any:
    """The C library's entry points, looked up before a fork (the child should only make calls)."""
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def private_targets(tmp: str) -> list[bytes]:
    """Where the project's tmp dir goes: /tmp and /var/tmp, except one that holds Atoll's data
    dir (a test install under /tmp): hiding it would hide the workload's own files."""
    real = os.path.realpath(tmp)
    return [
        t
        for t in (b"/tmp", b"/var/tmp")
        if os.path.isdir(t) and not real.startswith(os.path.realpath(t.decode()) + "/")
    ]


def enter(c: Any, tmp: str | None, files: dict[str, str] | None = None) -> None:
    """Move the calling process into a new mount namespace with ``tmp`` over /tmp and /var/tmp
    (if given), each of ``files`` (target → source: the workload's own /etc/passwd and
    /etc/group, see accounts.py) bound over its target, and a /proc that hides other users'
    processes. Raises OSError if it cannot."""
    _check(c.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Nothing mounted here may leak back to the host, nor the host's later mounts in.
    _check(c.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "making / private")
    # Before /tmp is covered: a test install keeps its state (the sources) under /tmp.
    for file_target, file_source in (files or {}).items():
        bound = c.mount(file_source.encode(), file_target.encode(), None, MS_BIND, None)
        _check(bound, f"binding {file_source} on {file_target}")
    if tmp:
        # Through a descriptor: once /tmp is bound over, a source beneath /tmp is out of sight.
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
        source = f"/proc/self/fd/{fd}".encode()
        try:
            for target in private_targets(tmp):
                _check(c.mount(source, target, None, MS_BIND, None), f"binding {tmp} on {target.decode()}")
        finally:
            os.close(fd)
    _check(
        c.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, b"hidepid=invisible"),
        "mounting /proc with hidepid",
    )


def join_netns(c: Any, path: str) -> None:
    """Move the calling process (thread) into the network namespace at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(c.setns(fd, CLONE_NEWNET), f"joining the network namespace {path}")
    finally:
        os.close(fd)


def supported() -> str:
    """ "" when this machine can give workloads a private view, else why not (asked once, at
    startup, by running a child into it)."""
    if os.geteuid() != 0:
        return "the server is not root"
    import subprocess

    c = libc()
    try:
        subprocess.run(
            ["/bin/true"], preexec_fn=lambda: enter(c, None), check=True, timeout=10, close_fds=True
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"the kernel refused a private mount namespace with its own /proc ({e})"
    return ""
