"""A local workload's working dir made ready: its mounts realized as links inside it, and the
tree handed to the workload's user (through the safe-path module: no link in it is followed)."""

from __future__ import annotations

from pathlib import Path

from atoll.runtime.base import Workload
from atoll.storage.safepath import Tree


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Hand the workdir to the workload's user (through the safe-path module: the tree may be
    the project's already, and no link in it is followed)."""
    with Tree(root) as tree:
        tree.chown_all(uid, gid)


def link_mounts(w: Workload) -> None:
    # Local "mounts" are symlinks inside the workdir: the process sees the source at the target.
    root = w.workdir.resolve()
    for m in w.mounts:
        target = Path(m.target)
        if target.is_absolute() or ".." in target.parts or not target.parts:
            raise ValueError(f"mount target {m.target!r} must be a relative path inside the workdir")
        link = root / target
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            raise ValueError(f"mount target {m.target!r} already exists in the workdir")
        link.symlink_to(Path(m.source).absolute())
