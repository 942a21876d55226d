"""The environment a workload's command gets, whichever runtime runs it: built from nothing but
the Workload (the server's own environment never leaks in)."""

from __future__ import annotations

import re

from atoll.runtime.base import DEFAULT_PATH, Workload

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")  # DataSphere secret names may hold "-"
_NAME = re.compile(r"[^a-z0-9_-]+")


def account_name(wanted: str, uid: int) -> str:
    """A valid login name from ``wanted`` (lowercase letters, digits, ``-``, ``_``; starting with
    a letter; at most 32 characters), ``u<uid>`` when nothing usable is left."""
    name = _NAME.sub("-", wanted.lower()).strip("-_")[:32].rstrip("-_")
    return name if name and name[0].isalpha() else f"u{uid}"


def workload_env(w: Workload, *, host_files: bool = True) -> dict[str, str]:
    """The complete environment of a workload's command.

    A minimal base (PATH, HOST = 127.0.0.1 where its servers listen, HOME = workdir, LANG,
    PYTHONUNBUFFERED so Python output reaches the log as it is printed), then `env`; where the
    workload sees the server's files (``host_files``), its Python environment activated and
    `host_env` (a container runtime realizes the Python environment itself); then `secret_env`;
    then what the runtime owns and callers cannot override: CUDA_VISIBLE_DEVICES from gpu_ids
    ("" when none, so no GPU leaks in), PORT / PORT_<i> (PORT = PORT_0 = ports[0], PORT_1 =
    ports[1], ...) and ATOLL_WORKLOAD_ID. The server's own environment never leaks in.
    """
    env = {
        "PATH": DEFAULT_PATH,
        # The address its servers bind to: its project's own in a network namespace, a Ray node's
        # on a cluster.
        "HOST": w.address or "127.0.0.1",
        "HOME": str(w.workdir),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    if w.user_name and w.run_as is not None:  # what getpass.getuser() and git read first
        env["USER"] = env["LOGNAME"] = account_name(w.user_name, w.run_as[0])
    env.update(w.env)
    if host_files:
        if w.python is not None:
            env = w.python.activate(env)
        env.update(w.host_env)
    env.update(w.secret_env)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in w.gpu_ids)
    for i, port in enumerate(w.ports):
        env[f"PORT_{i}"] = str(port)
    if w.ports:
        env["PORT"] = str(w.ports[0])
    env["ATOLL_WORKLOAD_ID"] = w.id
    # Names only: lets code in the workload (the notebook runner) hide the values it writes down.
    env["ATOLL_SECRET_NAMES"] = ",".join(sorted(w.secret_env))
    for k in env:
        if not _ENV_NAME.match(k):
            raise ValueError(f"invalid environment variable name {k!r}")
    return env
