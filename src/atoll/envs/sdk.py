"""Atoll's own Python modules that run inside workloads (``atoll.models``, ``atoll.serving``).

Users' environments do not have Atoll installed, and must not get its dependencies. A directory
holding only a link named ``atoll`` to this package goes on the workload's PYTHONPATH: those two
modules import nothing but the standard library (and, for the server, what its environment has).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import atoll

PACKAGE = Path(atoll.__file__).resolve().parent


def sdk_path(data_dir: Path) -> Path:
    """The directory to put on PYTHONPATH (created on first use, kept in sync with this install)."""
    root = data_dir / "sdk"
    link = root / "atoll"
    if link.is_symlink() and Path(os.readlink(link)) == PACKAGE:
        return root
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    # A name of its own per call: several threads (jobs, notebooks, nodes) may get here at once.
    tmp = root / f".atoll-{secrets.token_hex(8)}"
    tmp.symlink_to(PACKAGE, target_is_directory=True)
    os.replace(tmp, link)
    return root
