"""The notebook server's kernel manager: Python kernels of the server's own interpreter are forked
from a zygote that has ipykernel imported (see kernel_zygote.py), every other kernel starts as
Jupyter starts it.

Like jupyter_identity.py, this file runs *inside* the JupyterLab process, in the notebook
environment: it may import only the standard library, jupyter_server and the zygote beside it.
``jupyter_command`` copies it into the server's private config dir, and the server's
``jupyter_server_config.py`` calls ``setup(c)`` while Jupyter loads its config: before the server
has started any thread, which is when the zygote can be forked.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from jupyter_server.services.kernels.kernelmanager import ServerKernelManager  # type: ignore[import-not-found]

ZYGOTE_MODULE = "atoll_kernel_zygote"  # the name jupyter_command copies kernel_zygote.py under
SECRET_ENV = "ATOLL_NOTEBOOK_SECRET"  # noqa: S105 - the name (see jupyter_identity.py), not a secret

_socket: str | None = None  # the zygote's, once forked


def _zygote() -> Any:
    here = Path(__file__).with_name(f"{ZYGOTE_MODULE}.py")
    if ZYGOTE_MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(ZYGOTE_MODULE, here)
        assert spec is not None and spec.loader is not None
        sys.modules[ZYGOTE_MODULE] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[ZYGOTE_MODULE]


def setup(c: Any) -> None:
    """Fork the zygote and make the server's kernel manager use it.

    Only in the server Atoll started (the one whose environment still holds its secret at config
    time): a ``jupyter`` command a user runs in a terminal reads the same config dir, and must not
    fork one of its own.
    """
    global _socket
    if SECRET_ENV not in os.environ or os.environ.get("ATOLL_KERNEL_ZYGOTE", "1") == "0":
        return
    runtime = os.environ.get("JUPYTER_RUNTIME_DIR")
    if not runtime or not os.path.isdir(runtime):
        return
    path = os.path.join(runtime, f"atoll-kernels-{os.getpid()}.sock")
    if _zygote().start(path):
        _socket = path
        c.AsyncMappingKernelManager.kernel_manager_class = f"{__name__}.ZygoteKernelManager"


class ZygoteKernelManager(ServerKernelManager):
    """Jupyter's kernel manager, with ``python -m ipykernel_launcher`` of this very interpreter
    started through the zygote's client. The client stands for the kernel (Jupyter signals, kills
    and waits for it as for the kernel itself), so restarts, interrupts and culling are Jupyter's."""

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd: list[str] = super().format_kernel_cmd(extra_arguments)
        if _socket is None or not os.path.exists(_socket) or len(cmd) < 3:
            return cmd
        # The same path, not the same file: every venv's python links to one interpreter, and a
        # kernel of another venv must get that venv's sys.path, not the server's.
        if cmd[1:3] != ["-m", "ipykernel_launcher"] or os.path.abspath(cmd[0]) != os.path.abspath(
            sys.executable
        ):
            return cmd  # another interpreter (a project's own kernel) or language: as usual
        client = str(Path(__file__).with_name(f"{ZYGOTE_MODULE}.py"))
        return [sys.executable, "-I", "-S", client, _socket, "--", sys.executable, *cmd[1:]]

    async def _async_post_start_kernel(self, **kw: Any) -> None:
        await super()._async_post_start_kernel(**kw)
        if self.transport != "tcp":
            return
        # Return once the kernel listens: the channels Jupyter opens next then connect at once,
        # instead of being refused by a kernel still starting and retrying 0.1 s later, which
        # races the websocket's IOPub subscription and can cost its 0.5 s kernel_info retry.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        for port in (self.shell_port, self.iopub_port, self.control_port):
            while loop.time() < deadline and not await _listening(self.ip, port):
                await asyncio.sleep(0.005)


async def _listening(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    return True
