"""How a Workload's runtime-neutral parts become a container's: its bind mounts (the workdir at
its own path, each mount and the Python environment under it) and its environment (the local
runtime's, without what names the server's own files; GPUs and ports as seen inside)."""

from __future__ import annotations

import os
from pathlib import Path

from docker.types import Mount

from atoll.runtime.base import Workload, inside_workdir
from atoll.runtime.environment import workload_env
from atoll.storage.safepath import Tree

# Where a workload's Python environment is mounted, under its workdir (see PythonEnv).
PYTHON_ENV_TARGET = ".python-env"


def container_mounts(w: Workload) -> list[Mount]:
    """The workdir at its own path, then each mount (and the Python environment) bound read-only
    or not under it; their mount points are made in the workdir first, so the daemon (as root)
    never creates them and no link planted there is followed."""
    root = w.workdir.resolve()
    mounts = [Mount(str(root), str(root), type="bind")]
    wanted = [(m.target, Path(m.source), m.read_only) for m in w.mounts]
    if w.python is not None:
        wanted.append((PYTHON_ENV_TARGET, w.python.prefix, True))
    with Tree(root) as tree:
        for target, source, read_only in wanted:
            rel = Path(inside_workdir(target, "mount target"))
            tree.sub(rel, create=True).close()
            mounts.append(Mount(str(root / rel), str(source.resolve()), type="bind", read_only=read_only))
    return mounts


def container_env(w: Workload, gpus_by_env: bool) -> dict[str, str]:
    env = workload_env(w, host_files=False)  # host_env names files the container does not see
    if "PATH" not in w.env and "PATH" not in w.secret_env:
        del env["PATH"]  # the image knows where its programs are
    site = w.python.site_packages() if w.python is not None else None
    if site is not None:  # the image's python3 runs, with the environment's packages on its path
        packages = str(w.workdir.resolve() / PYTHON_ENV_TARGET / site)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (packages, env.get("PYTHONPATH")) if p)
    if not w.gpu_ids:
        # CUDA images set NVIDIA_VISIBLE_DEVICES=all: on a daemon whose default runtime is nvidia,
        # that would hand every GPU of the machine to a workload that was given none.
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
    elif gpus_by_env:
        # The nvidia runtime shows only these devices, numbered from 0 inside the container.
        env["NVIDIA_VISIBLE_DEVICES"] = env["CUDA_VISIBLE_DEVICES"]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(w.gpu_ids)))
    else:
        del env["CUDA_VISIBLE_DEVICES"]  # the device request numbers them from 0 inside
    for i, port in enumerate(w.container_ports):  # inside, a program listens on the container's port
        env[f"PORT_{i}"] = str(port)
        if i == 0:
            env["PORT"] = str(port)
    env["HOST"] = "0.0.0.0"  # inside the container: its published ports reach what listens there
    env["TINI_KILL_PROCESS_GROUP"] = "1"
    return env
