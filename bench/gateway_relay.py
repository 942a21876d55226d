"""A bare TCP relay on uvloop, for bench/gateway.py: the floor of a Python proxy on this machine.

``python bench/gateway_relay.py LISTEN_PORT BACKEND_PORT``: each client connection gets its own
connection to 127.0.0.1:BACKEND_PORT and bytes are copied both ways as they come, with no HTTP
parsing, routing, pooling or metrics. It does the same socket reads and writes per request as the
gateway (one read and one write each way), so its CPU per request is what the event loop and the
kernel cost before any of the gateway's own work.
"""

from __future__ import annotations

import asyncio
import signal
import sys


class _Pipe(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _Client(_Pipe):
    def __init__(self, backend_port: int) -> None:
        super().__init__()
        self.backend_port = backend_port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(_Pipe, "127.0.0.1", self.backend_port)
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        upstream.peer, self.peer = self, upstream
        assert upstream.transport is not None
        for data in self.pending:
            upstream.transport.write(data)
        self.pending.clear()


async def main(listen_port: int, backend_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(backend_port), "127.0.0.1", listen_port, backlog=1024)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
