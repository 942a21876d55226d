"""How a project's JupyterLab (jupyter-server) is launched and when it is ready.

Everything here is a pure description of the process (argv and environment) plus a readiness
probe: starting, stopping and metering it belong to the runtime and controllers, which see it as
one more Workload. The flags follow what was measured on this machine (see MACHINE-NOTES):
loopback only, a fixed port (no silent retry onto another), a per-start secret that only the
gateway sends (Atoll's identity provider, see jupyter_identity.py: Jupyter itself has no token it
could render into a page), and per-server Jupyter config/data/runtime dirs so that two servers (or
the user's own ``~/.jupyter``) never share state.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import httpx

from atoll.envs import builtins
from atoll.envs.build import Environment, EnvironmentBuilder
from atoll.notebooks.kernel_zygote import PRELOAD
from atoll.storage.safepath import Tree

# The environment variable that hands a server its secret (read, then removed, by
# jupyter_identity.py; the name is repeated there, which runs where Atoll is not installed).
SECRET_ENV = "ATOLL_NOTEBOOK_SECRET"  # noqa: S105 - the variable's name, not a secret
# Where jupyter_command copies the identity provider, and the name it is imported under.
IDENTITY_MODULE = "atoll_jupyter_identity"
# The same for the kernel manager (jupyter_kernels.py) and its zygote (kernel_zygote.py).
KERNELS_MODULE = "atoll_jupyter_kernels"
ZYGOTE_MODULE = "atoll_kernel_zygote"

# Lab plugins that reach for the network on their own (news feed, update check): no network
# reach-outs from a self-hosted server, and the checks fail slowly where there is no internet.
DISABLED_LAB_PLUGINS: dict[str, bool] = {
    "@jupyterlab/apputils-extension:announcements": True,
}


# What a warm JupyterLab process imports before it is anyone's (see LocalRuntime.keep_warm): the
# server application and the server extensions it loads at start, and ipykernel, which the kernel
# zygote forked from it at start (jupyter_kernels.py) then has without importing it.
WARM_MODULES: tuple[str, ...] = (
    "jupyterlab.labapp",
    "jupyter_server.serverapp",
    # The handlers the server and its extensions (the default environment's: LSP, terminals,
    # proxy, Git, nbdime) import as they load: ~0.2 s of a start otherwise (aiohttp, GitPython).
    "jupyter_server.kernelspecs.handlers",
    "jupyter_server.nbconvert.handlers",
    "jupyter_server.view.handlers",
    "jupyter_lsp.serverextension",
    "jupyter_server_terminals.terminalmanager",
    "notebook_shim.nbserver",
    "jupyter_server_proxy.handlers",
    "jupyterlab_git.handlers",
    "nbdime.webapp.nb_server_extension",
    # ipykernel and what a kernel imports as it starts: imported ahead, they cost the zygote
    # nothing, where it would otherwise import them beside the starting server, competing with it
    # for the CPU.
    *PRELOAD,
)


def notebook_environment(builder: EnvironmentBuilder) -> Environment:
    """The base environment notebook servers run in: the default built-in environment (Atoll's
    Python, JupyterLab and the data-science stack, see envs/builtins.py).

    Built once per machine (the builder caches by content), so later calls return at once.
    """
    return builtins.DEFAULT.build(builder)


def pick_port() -> int:
    """A loopback port free right now for the server to listen on.

    The server binds it a moment later with ``port_retries=0``: if another process took it in
    between, the start fails loudly (the server's log says so) instead of wandering elsewhere.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _normalize_base_url(base_url: str) -> str:
    """jupyter-server wants the prefix with both slashes: ``/nb/p1/``."""
    return "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"


# The server's jupyter_server_config.py. The identity provider and the kernel manager are loaded
# from the files beside it (no Atoll in the notebook environment); Jupyter's own token stays empty,
# so no page, header or log line it writes can carry a credential (the secret is checked by the
# provider, see jupyter_identity.py). A server whose jupyter_server is older than the kernel
# manager needs (an image's own JupyterLab) starts its kernels the usual way.
_SERVER_CONFIG = f"""\
import importlib.util, ipaddress, os, sys
host = os.environ.get('HOST', '127.0.0.1')
c.ServerApp.ip = host
c.ServerApp.allow_remote_access = not ipaddress.ip_address(host).is_loopback
def _load(name):
    if name not in sys.modules:
        path = os.path.join(os.path.dirname(__file__), name + '.py')
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]
c.ServerApp.identity_provider_class = _load('{IDENTITY_MODULE}').AtollIdentityProvider
c.IdentityProvider.token = ''
try:
    _kernels = _load('{KERNELS_MODULE}')
except ImportError:
    _kernels = None
if _kernels is not None:
    _kernels.setup(c)
# Terminals run the user's shell as it is, not as a login shell (Jupyter's default when not on a
# tty): /etc/profile would reset PATH and lose the project's environment.
c.ServerApp.terminado_settings = {{'shell_command': [os.environ.get('SHELL') or '/bin/sh']}}
"""


def _write_config(state: Tree) -> None:
    """Write the server's own config: Atoll's identity provider, no token in any page, no plugins
    that phone home.

    JupyterLab reads ``labconfig/page_config.json`` from every JUPYTER_CONFIG_DIR; ours is the
    server's private dir, so this never touches the user's or another project's settings.
    """
    state.sub("config/labconfig", create=True).close()
    page_config = {
        "disabledExtensions": dict(DISABLED_LAB_PLUGINS),
        # JupyterLab writes the server's token into every /lab page (page_config.token). Jupyter
        # has none (see _SERVER_CONFIG); this file is merged last, so even a server started
        # otherwise shows none. The browser needs none: the gateway adds the secret to each
        # proxied call (as JupyterHub does with its own auth).
        "token": "",
    }
    state.write_new("config/labconfig/page_config.json", (json.dumps(page_config, indent=2) + "\n").encode())
    here = Path(__file__).parent
    for source, name in (
        ("jupyter_identity.py", IDENTITY_MODULE),
        ("jupyter_kernels.py", KERNELS_MODULE),
        ("kernel_zygote.py", ZYGOTE_MODULE),
    ):
        state.write_new(f"config/{name}.py", (here / source).read_bytes())
    # The address to listen on is the workload's HOST (127.0.0.1 here; a Ray node's own address on
    # a cluster, where the gateway reaches it from another machine). Jupyter serves only Host
    # headers of loopback addresses unless remote access is on: it is for a node's address, and
    # the secret still guards every request (only the gateway has it).
    state.write_new("config/jupyter_server_config.py", _SERVER_CONFIG.encode())


def jupyter_command(
    python: Path,
    port: int,
    base_url: str,
    root_dir: Path,
    token: str,
    state_dir: Path,
    base_prefix: Path | None = None,
) -> tuple[list[str], dict[str, str]]:
    """argv and env vars to run ``jupyter lab`` for one project.

    ``python`` is the notebook environment's interpreter (``python -m jupyterlab`` avoids relying
    on console-script shebangs); ``state_dir`` holds this server's Jupyter config, data and
    runtime dirs (created here, with the config written). ``token`` is the server's secret, new
    for each start: only the gateway and the controller send it (``Authorization: token …``).
    The env holds only the Jupyter variables (the secret among them, as ``SECRET_ENV``): the caller
    merges it over the workload's environment.
    ``base_url`` must be the public prefix the gateway serves the server under (``/nb/<project>/``):
    Jupyter builds its links and redirects from it.
    ``base_prefix``: the environment ``python``'s project layer lies over (EnvironmentBuilder.overlay).
    Jupyter finds its server extensions (terminals, Git) and lab extensions (widgets, Git) under
    ``sys.prefix``, which is the layer's: the base's are named to it here.
    """
    state_dir = Path(state_dir)
    config_dir, data_dir, runtime_dir = state_dir / "config", state_dir / "data", state_dir / "runtime"
    state_dir.mkdir(parents=True, exist_ok=True)  # in the project's dir, which only Atoll writes
    with Tree(state_dir) as state:
        for name in ("config", "data", "runtime"):
            with state.sub(name, create=True) as d:
                os.fchmod(d.fd, 0o700)  # runtime: kernel connection files hold their HMAC keys
        _write_config(state)

    argv = [
        str(python),
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.port_retries=0",  # the gateway routes to this exact port: fail, don't wander
        "--ServerApp.password=",
        f"--ServerApp.base_url={_normalize_base_url(base_url)}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.open_browser=False",
        # No phoning home: no news/update checks, no extension manager listing PyPI.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # jupyter-server refuses to run as root without it

    env = {
        # The secret goes by environment, not argv: argv is readable by every local user in `ps`.
        # Not JUPYTER_TOKEN: Jupyter would take it for its own token, which it renders into pages.
        SECRET_ENV: token,
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_DATA_DIR": str(data_dir),
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(state_dir / "ipython"),
        "SHELL": "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh",  # the terminals' shell
        # `%tensorboard` shows TensorBoard in the notebook through jupyter-server-proxy (behind
        # Atoll's gateway) instead of at a localhost address the browser cannot reach.
        "TENSORBOARD_PROXY_URL": f"{_normalize_base_url(base_url)}proxy/%PORT%/",
    }
    if base_prefix is not None:
        env["JUPYTER_CONFIG_PATH"] = str(Path(base_prefix) / "etc" / "jupyter")
        env["JUPYTER_PATH"] = str(Path(base_prefix) / "share" / "jupyter")
    return argv, env


async def wait_ready(url: str, token: str, timeout: float = 60.0) -> dict[str, object]:
    """Poll ``<url>/api/status`` until the server answers 200; return its status JSON.

    ``url`` is the server's base URL including its base_url prefix. Raises ``TimeoutError``
    after ``timeout`` seconds, naming the last error seen.
    """
    deadline = time.monotonic() + timeout
    status_url = url.rstrip("/") + "/api/status"
    last = "no answer"
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        while True:
            try:
                resp = await client.get(status_url, headers={"Authorization": f"token {token}"})
                if resp.status_code == 200:
                    data: dict[str, object] = resp.json()
                    return data
                last = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:  # not listening yet: keep polling
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise TimeoutError(f"JupyterLab at {url} not ready after {timeout:.0f} s ({last})")
            await asyncio.sleep(0.1)
