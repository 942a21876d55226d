"""Atoll's public ports inside each project's network namespace: a workload reaches the API and
the gateway at ``127.0.0.1:<port>`` as it did on the shared loopback, and nothing else of the host.

A listening socket belongs to the network namespace it was made in, whatever thread accepts on
it later. So a short-lived thread joins the project's namespace (``setns``, which moves only the
calling thread), makes ``127.0.0.1:<port>`` there and ends; the relay then accepts in Atoll's own
namespace and connects each client to the host's ``127.0.0.1:<port>``. Nothing is parsed: bytes
go both ways until either side closes. The traffic is a project's own calls to Atoll's API (job
submissions, the SDK), small and rare next to what the data plane carries.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import socket
import threading
from queue import Queue

log = logging.getLogger("atoll.relay")
CLONE_NEWNET = 0x40000000
BUFFER = 64 * 1024


def _listen_in(netns_path: str, port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:``port`` inside the namespace at ``netns_path``."""
    result: Queue[socket.socket | BaseException] = Queue()

    def inside() -> None:  # this thread alone changes namespace, then ends
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns_path}): {os.strerror(err)}")
            finally:
                os.close(fd)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(128)
            result.put(s)
        except BaseException as e:  # handed to the caller, who raises it
            result.put(e)

    t = threading.Thread(target=inside, name="atoll-relay-setns", daemon=True)
    t.start()
    got = result.get(timeout=10)
    t.join()
    if isinstance(got, BaseException):
        raise got
    return got


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(BUFFER):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class LoopbackRelay:
    """Relays ``ports`` of the host's loopback into every namespace it is told to serve."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = [p for p in ports if p]
        self._listeners: dict[str, list[socket.socket]] = {}
        self._lock = threading.Lock()

    def serve(self, netns_path: str) -> None:
        """Start relaying into the namespace at ``netns_path`` (once; later calls do nothing)."""
        with self._lock:
            if netns_path in self._listeners:
                return
            socks = []
            try:
                for port in self.ports:
                    socks.append(_listen_in(netns_path, port))
            except BaseException:
                for s in socks:
                    s.close()
                raise
            self._listeners[netns_path] = socks
        for s, port in zip(socks, self.ports, strict=True):
            threading.Thread(
                target=self._accept, args=(s, port), name=f"atoll-relay-{port}", daemon=True
            ).start()

    def _accept(self, listener: socket.socket, port: int) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._connect, args=(client, port), daemon=True).start()

    def _connect(self, client: socket.socket, port: int) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def close(self) -> None:
        with self._lock:
            for socks in self._listeners.values():
                for s in socks:
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                    s.close()
            self._listeners.clear()
