"""A local workload's working dir made ready: its mounts realized as links inside it, and the
tree handed to the workload's user (through the safe-path module: no link in it is followed)."""

from __future__ import annotations

from pathlib import Path

from atoll.runtime.base import Workload, inside_workdir
from atoll.storage.safepath import Tree


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Hand the workdir to the workload's user (through the safe-path module: the tree may be
    the project's already, and no link in it is followed)."""
    with Tree(root) as tree:
        tree.chown_all(uid, gid)


def link_mounts(w: Workload) -> None:
    """Local "mounts" are links inside the workdir: the process sees the source at the target.
    Read-only is not enforced here: the sources a caller mounts read-only (datasets, a built
    environment) are Atoll's and not writable by the workload's user in the first place."""
    if not w.mounts:
        return
    with Tree(w.workdir) as tree:
        for m in w.mounts:
            try:
                tree.link(inside_workdir(m.target, "mount target"), Path(m.source).absolute())
            except FileExistsError:
                raise ValueError(f"mount target {m.target!r} already exists in the workdir") from None
