"""Environment variable names Atoll keeps for itself in workloads: a job's ``env.vars`` and a
project's secrets may not take them (shared by the config parser and the server's secrets)."""

from __future__ import annotations

import re

# Environment variables Atoll sets in workloads (controllers/, runtime/, envs/): a job's env.vars
# may not take these names, so nothing a config says shadows them or is silently overridden.
# (PYTHONPATH stays a job's own: Atoll puts its SDK after the job's entries.)
ATOLL_ENV_PREFIXES: tuple[str, ...] = ("ATOLL_", "DS_")
ATOLL_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "VIRTUAL_ENV",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "JOB_PROGRESS_FILENAME",
        "TINI_KILL_PROCESS_GROUP",
    }
)
# Project secrets reach every workload of the project, Atoll's own servers in them too (JupyterLab,
# the model server), and override the env Atoll gives those: they may not take these either.
SECRET_ENV_PREFIXES = (*ATOLL_ENV_PREFIXES, "JUPYTER_")
SECRET_ENV_NAMES = ATOLL_ENV_NAMES | {
    "HOST",
    "PORT",
    "PYTHONPATH",
    "PYTHONHOME",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
}
_PORT_N = re.compile(r"^PORT_[0-9]+$")  # PORT_0, PORT_1…: a workload's ports


def reserved_env_name(name: str, *, secret: bool = False) -> bool:
    """Whether `name` is an environment variable Atoll sets in workloads (for a project secret
    when `secret`, else for a job's env.vars). Names are case-sensitive, as the kernel's are."""
    if secret:
        return name in SECRET_ENV_NAMES or name.startswith(SECRET_ENV_PREFIXES) or bool(_PORT_N.match(name))
    return name in ATOLL_ENV_NAMES or name.startswith(ATOLL_ENV_PREFIXES)


def reserved_env_message(name: str, *, secret: bool = False) -> str:
    """Why `name` is refused, listing what is reserved."""
    prefixes, names = (
        (SECRET_ENV_PREFIXES, [*sorted(SECRET_ENV_NAMES), "PORT_<n>"])
        if secret
        else (ATOLL_ENV_PREFIXES, sorted(ATOLL_ENV_NAMES))
    )
    listed = ", ".join([*(p + "*" for p in prefixes), *names])
    return f"{name} is reserved for the variables Atoll sets in workloads ({listed})"
