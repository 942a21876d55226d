"""Every runtime a server can have, in one place.

A runtime is a folder under runtime/ whose class implements `runtime.base.Runtime`, and one entry
in `BUILDERS` below: its name (the one recorded on workload rows) and how it is built from the
settings, or None where the settings do not ask for it. The local runtime is always built (it
keeps the warm pools and serves a forgotten workload's logs); ATOLL_RUNTIME names the default
one, which runs workloads without an image; a runtime whose ``runs_images`` is true runs those
with one (see runtime/router.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from atoll.runtime.base import Runtime
from atoll.runtime.docker.runtime import DockerRuntime
from atoll.runtime.local.netns import install_tag
from atoll.runtime.local.runtime import LocalRuntime
from atoll.settings import Settings
from atoll.storage.logs import LogStore

Builder = Callable[[Settings, LogStore, Path], Runtime | None]


def _local(settings: Settings, logs: LogStore, data: Path) -> Runtime:
    return LocalRuntime(data / "runtime", logs)


def _docker(settings: Settings, logs: LogStore, data: Path) -> Runtime | None:
    """Where ATOLL_DOCKER_HOST names a daemon: nodes from images, jobs with env.docker."""
    if not settings.docker_host:
        return None
    tag = install_tag(data / "runtime") if settings.network_isolation != "off" else None
    return DockerRuntime(logs, base_url=settings.docker_host, gpus=settings.docker_gpus, network_tag=tag)


def _ray(settings: Settings, logs: LogStore, data: Path) -> Runtime | None:
    """With ATOLL_RUNTIME=ray: the cluster ATOLL_RAY_ADDRESS names (Ray is imported only here)."""
    if settings.runtime != "ray":
        return None
    if not settings.ray_address:
        raise ValueError("ATOLL_RUNTIME=ray needs ATOLL_RAY_ADDRESS (the Ray head's host:port)")
    from atoll.runtime.ray.runtime import RayRuntime

    return RayRuntime(
        settings.ray_address,
        logs,
        data / "runtime-ray",
        str(settings.ray_node_dir or data / "ray-node"),
        namespace=settings.ray_namespace,
        node_ip=settings.ray_node_ip or None,
        warm_hosts=settings.ray_warm_hosts,
    )


BUILDERS: dict[str, Builder] = {"local": _local, "docker": _docker, "ray": _ray}


def build_runtimes(settings: Settings, logs: LogStore, data: Path) -> dict[str, Runtime]:
    """The runtimes these settings ask for, by name; the local one always, and first."""
    built = {name: build(settings, logs, data) for name, build in BUILDERS.items()}
    return {name: rt for name, rt in built.items() if rt is not None}
