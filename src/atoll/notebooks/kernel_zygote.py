"""Fast kernel starts: a "zygote" forked from the notebook server before it serves, with ipykernel
already imported, that forks each Python kernel the server asks for.

A fresh ``python -m ipykernel_launcher`` spends ~0.5 s importing IPython, zmq and tornado before it
answers; a fork of a process that has them imported answers in a fraction of that. Jupyter still
launches and supervises each kernel as usual, through a stand-in process (the *client*, this file
run as a script with ``-I -S``: a few ms) that Jupyter sees as the kernel:

    client ── connect(socket), send {argv, cwd, env} and its stdin/stdout/stderr ──▶ zygote
    client ◀── {"pid": N} ── zygote forks N: own session, the client's fds, cwd and env, then
                              runs ``python -m ipykernel_launcher -f …`` in-process
    client ◀── {"exit": code} ── N ended (the zygote reaped it); the client exits with that code

The client forwards the signals Jupyter sends it (interrupt, terminate) to the kernel's process
group, as Jupyter would have sent them to a kernel it started itself. Killing the client (Jupyter's
"kill") closes its connection, and the zygote then kills the kernel's group. When the zygote is not
there or cannot serve, the client simply ``exec``s the command it was given: a kernel then starts
exactly as without this module, only ~5 ms later.

Everything here runs as the project's user, inside the workload's sandbox: the zygote is forked by
the server itself (after its user switch), its socket lies in the server's private runtime dir
(0700) and it serves only peers of its own uid, so nothing can start through it what the project
could not start by itself.

Standard library only: the client runs with ``-S``, and both run on the notebook environment's
interpreter, where Atoll is not installed (``jupyter_command`` copies this file beside the server's
config).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

MAX_REQUEST = 1 << 20  # argv + cwd + environment of one kernel
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
SECRET_ENV = "ATOLL_NOTEBOOK_SECRET"  # noqa: S105 - the name (see jupyter_identity.py), not a secret
# What the zygote imports before it serves: ipykernel, then what a kernel otherwise imports while it
# initializes (its shell, history, debugger, completer: ~0.1 s more). Only the first is required.
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.zmqshell",
    "ipykernel.debugger",
    "IPython.core.history",
    "IPython.core.completer",
    "IPython.core.magics",
    "sqlite3",
    "pdb",
    "pydoc",
    "psutil",
)
_PR_SET_PDEATHSIG = 1
_HEADER = struct.Struct("!I")


def _short(path: str) -> tuple[int, str]:
    """(an fd on the socket's dir, a name to bind/connect that stays under the 108-byte limit of
    socket paths however deep the dir is)."""
    d, name = os.path.split(path)
    fd = os.open(d or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return fd, f"/proc/self/fd/{fd}/{name}"


# --- the zygote ----------------------------------------------------------------------------------


def start(path: str, preload: tuple[str, ...] = PRELOAD) -> bool:
    """Fork the zygote, listening on the unix socket ``path`` (which must not exist). Returns
    whether it was forked: only from a process with one thread (a fork copies no other thread, so
    a lock held by one would stay locked forever in the child)."""
    import threading

    if threading.active_count() != 1 or not hasattr(socket, "recv_fds") or not hasattr(os, "pidfd_open"):
        return False
    dir_fd, name = _short(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            listener.bind(name)  # bound before the fork: a kernel asked for meanwhile waits in the backlog
        finally:
            os.umask(old)
        listener.listen(64)
    except OSError:
        listener.close()
        os.close(dir_fd)
        return False
    os.close(dir_fd)
    parent = os.getpid()
    # Objects that exist now are the imported modules: frozen, the collector leaves them alone in
    # both processes, so neither writes to (and copies) the pages they share after the fork.
    gc.freeze()
    pid = os.fork()
    if pid:
        listener.close()
        return True
    code = 1
    try:
        code = _serve(listener, path, parent, preload)
    finally:
        os._exit(code)


def _die_with(parent: int) -> None:
    """SIGTERM this process when the server that forked it ends (however it ends)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # it ended before the line above
        raise SystemExit(0)


def _scrub_initial_environment(name: str) -> None:
    """Blank ``name``'s value in the environment block this process image started with, which
    /proc/<pid>/environ shows whatever os.environ became, and which every fork (each kernel)
    inherits: a server started fresh had its secret there."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # env_start, env_end (stat's fields 50, 51)
    except (OSError, ValueError, IndexError):
        return
    block = ctypes.string_at(start, end - start)
    prefix, offset = name.encode() + b"=", 0
    for entry in block.split(b"\0"):
        if entry.startswith(prefix):
            ctypes.memset(start + offset + len(prefix), ord("x"), len(entry) - len(prefix))
        offset += len(entry) + 1


def _serve(listener: socket.socket, path: str, parent: int, preload: tuple[str, ...]) -> int:
    os.environ.pop(SECRET_ENV, None)
    _scrub_initial_environment(SECRET_ENV)
    kernels: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, its client's connection)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C at a terminal running the server is its own
    try:
        _die_with(parent)
        # debugpy warns on import that this Python has frozen modules (in the server's log, for no
        # reader): the kernels themselves get their own environment from their client.
        os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        for module in preload[1:]:
            with contextlib.suppress(Exception):
                importlib.import_module(module)
        try:
            importlib.import_module(preload[0])
        except Exception as e:  # the environment has no ipykernel: kernels start the usual way
            _unforked(listener, path, f"cannot import {preload[0]} ({e})")
        fresh = fresh_path()
        if fresh is None:
            _unforked(listener, path, f"cannot tell the path of a fresh {sys.executable}")
        # A warm server imported its modules before the project's own packages joined its path
        # (behind the base's): one the project upgraded must not reach a kernel as the old one.
        stale = shadowed(sys.modules, fresh)
        if stale is not None:
            _unforked(listener, path, f"the project's {stale} is not the one loaded")
        packages = _packages(fresh)
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, "listener")
        while True:
            for key, _ in sel.select():
                if key.data == "listener" and _packages(fresh) != packages:
                    # Packages were installed, upgraded or removed (`%pip install`): what this
                    # process imported may be out of date, so new kernels start the usual way.
                    sel.unregister(listener)
                    _stop_serving(listener, path, "the packages changed")
                elif key.data == "listener":
                    _accept(listener, sel, kernels, fresh)
                elif key.data == "client":  # a client sent more, or went away: kill its kernel
                    conn = key.fileobj
                    assert isinstance(conn, socket.socket)
                    with contextlib.suppress(OSError):
                        if conn.recv(4096):
                            continue
                    sel.unregister(conn)
                    for pid, c in kernels.values():
                        if c is conn:
                            with contextlib.suppress(OSError):
                                os.killpg(pid, signal.SIGKILL)
                else:  # a kernel ended: tell its client how
                    pidfd = key.fd
                    pid, conn = kernels.pop(pidfd)
                    sel.unregister(pidfd)
                    os.close(pidfd)
                    _, status = os.waitpid(pid, 0)
                    with contextlib.suppress(OSError):
                        conn.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                    with contextlib.suppress(KeyError, ValueError):
                        sel.unregister(conn)
                    conn.close()
    finally:
        for pid, _ in kernels.values():
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.unlink(path)


def _stop_serving(listener: socket.socket, path: str, why: str) -> None:
    """No more forks: kernels start the usual way from now on (a request already queued is
    refused, and its client falls back too)."""
    print(f"atoll kernel zygote: {why}; kernels start unforked", file=sys.stderr)
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(path)


def _unforked(listener: socket.socket, path: str, why: str) -> NoReturn:
    """Stop serving before the first fork, then wait for the server's end (exiting now would
    leave the server a zombie child it never reaps)."""
    _stop_serving(listener, path, why)
    while True:
        signal.pause()


def shadowed(modules: dict[str, Any], path: list[str]) -> str | None:
    """The first loaded top-level module that a fresh interpreter with ``path`` would import from
    another file (a warm process imports before the project's own packages join the path, and a
    project may have upgraded one of them), or None when all are the same."""
    from importlib.machinery import PathFinder

    roots = {os.path.abspath(p) for p in path}
    for name, module in list(modules.items()):
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None)
        if "." in name or not isinstance(origin, str) or not os.path.isabs(origin):
            continue  # submodules follow their package; built-in, frozen and namespace ones are fixed
        if getattr(spec, "name", name) != name:
            continue  # imported under another name (__main__, an alias): not found by that one
        folder = os.path.dirname(origin)
        where = os.path.dirname(folder) if os.path.basename(folder) == name else folder
        if where not in roots:
            continue  # not from the path (Atoll's config modules, a dir a package added at run time)
        found = PathFinder.find_spec(name, path)
        if found is None or found.origin != origin:
            return name
    return None


def fresh_path() -> list[str] | None:
    """sys.path of a fresh ``python`` of this environment, but its first entry (a kernel's is its
    working dir): the order a kernel Jupyter started itself would import in."""
    probe = "import json, sys; print(json.dumps(sys.path[1:]))"
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=True,
        )
        found = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return [str(p) for p in found] if isinstance(found, list) else None


def _packages(path: list[str]) -> list[tuple[str, int]]:
    """When each directory of ``path`` (the interpreter's and the environment's site-packages,
    PYTHONPATH's) last had an entry added or removed: what an install changes."""
    stamps = []
    for entry in path:
        with contextlib.suppress(OSError):
            stamps.append((entry, os.stat(entry).st_mtime_ns))
    return stamps


def _accept(
    listener: socket.socket, sel: selectors.BaseSelector, kernels: dict[int, Any], path: list[str]
) -> None:
    conn, _ = listener.accept()
    fds: list[int] = []
    try:
        conn.settimeout(5.0)  # a client writes its request at once; one that stalls is dropped
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid != os.getuid():
            raise ValueError(f"peer uid {uid}")
        head, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
        if len(head) != _HEADER.size or len(fds) != 3:
            raise ValueError("short request")
        size = _HEADER.unpack(head)[0]
        if size > MAX_REQUEST:
            raise ValueError("request too large")
        raw = b""
        while len(raw) < size:
            part = conn.recv(size - len(raw))
            if not part:
                raise ValueError("short request")
            raw += part
        req = json.loads(raw)
        argv, cwd, env = list(req["argv"]), str(req["cwd"]), dict(req["env"])
        if len(argv) < 3 or argv[1] != "-m" or argv[2] != "ipykernel_launcher":
            raise ValueError("not an ipykernel")
    except (OSError, ValueError, KeyError, TypeError) as e:
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"error": str(e)}).encode() + b"\n")
        conn.close()
        return
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _become_kernel(argv, cwd, env, fds, path)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    kernels[pidfd] = (pid, conn)
    sel.register(pidfd, selectors.EVENT_READ, "kernel")
    conn.settimeout(None)
    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    sel.register(conn, selectors.EVENT_READ, "client")


def _become_kernel(argv: list[str], cwd: str, env: dict[str, str], fds: list[int], path: list[str]) -> int:
    """In the forked child: turn into ``argv`` (``python -m ipykernel_launcher …``) as a fresh
    interpreter would run it, with the client's fds, working dir and environment."""
    os.setsid()  # its own process group, as Jupyter starts kernels: an interrupt reaches it alone
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    # As Popen(close_fds=True): only stdio is the kernel's. The zygote's socket objects whose fds
    # this closes stay referenced by the frames below this one, which never return (os._exit), so
    # none is collected later to close an fd number the kernel has reused by then.
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    # The server's traitlets application is this process's singleton too: a kernel app is another.
    configurable = sys.modules.get("traitlets.config.configurable")
    if configurable is not None:
        _clear_singletons(configurable.SingletonConfigurable)
    # As a fresh `python -m` has it: the working dir, then the environment in a fresh interpreter's
    # order (a warm server's own path has the project's packages last).
    sys.path = [os.getcwd(), *path]
    # The fds were replaced under the old objects.
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False, buffering=1)
    sys.stderr = open(2, "w", closefd=False, buffering=1)
    # ipykernel ends a kernel whose parent has gone (its parent poller; Jupyter's own kernels die
    # with their server so). It read JPY_PARENT_PID when the zygote imported it, before there was
    # one: name the parent here, the zygote, which itself ends with the server.
    sys.argv = [argv[0], *argv[3:], f"--IPKernelApp.parent_handle={os.getppid()}"]
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    return 0


def _clear_singletons(root: type) -> None:
    todo = [root]
    while todo:
        cls = todo.pop()
        if "_instance" in vars(cls):
            cls._instance = None  # type: ignore[attr-defined]
        todo.extend(cls.__subclasses__())


# --- the client ----------------------------------------------------------------------------------


def client(path: str, argv: list[str]) -> int:
    """Have the zygote at ``path`` fork the kernel ``argv``, then stand for it until it ends; run
    ``argv`` the usual way when the zygote cannot."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = None
    try:
        dir_fd, name = _short(path)
        try:
            sock.connect(name)
        finally:
            os.close(dir_fd)
        payload = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        socket.send_fds(sock, [_HEADER.pack(len(payload))], [0, 1, 2])
        sock.sendall(payload)
        reader = sock.makefile("rb")
        first = json.loads(reader.readline() or b"{}")
        pid = first.get("pid")
    except (OSError, ValueError):
        pid = None
    if not isinstance(pid, int):
        sock.close()
        os.execv(argv[0], argv)  # noqa: S606 - the kernel command Jupyter gave, started the usual way

    def forward(sig: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.killpg(pid, sig)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    line = reader.readline()  # a forwarded signal interrupts it, then it goes on (PEP 475)
    try:
        code = int(json.loads(line)["exit"]) if line else None
    except (ValueError, KeyError, TypeError):
        code = None
    if code is None:  # the zygote is gone (killed): the kernel lives on, stand for it to its end
        _wait_gone(pid)
        return 1
    if code < 0:  # killed by a signal: end the same way, so Jupyter sees what the kernel saw
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


def _wait_gone(pid: int) -> None:
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return  # already gone
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.poll()  # readable once the process has ended (signals are forwarded meanwhile)
    os.close(pidfd)


if __name__ == "__main__":
    # python -I -S kernel_zygote.py SOCKET -- ARGV...
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: kernel_zygote.py SOCKET -- ARGV...", file=sys.stderr)
        sys.exit(2)
    sys.exit(client(sys.argv[1], sys.argv[3:]))
