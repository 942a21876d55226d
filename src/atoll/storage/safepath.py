"""The one way Atoll's privileged code touches a tree that a workload can write.

A workload is hostile. Inside its job dir, project disk, model outbox or notebook run it may
replace any directory with a symbolic link (to Atoll's key, its database, another project's
home), swap one in while Atoll is working (a TOCTOU race), plant hard links to files it could
not read, FIFOs that hang a reader, devices and sockets. A path string handed to the kernel whole
follows all of that. So nothing here does: a ``Tree`` holds a descriptor of its root, opened by
Atoll where every parent is Atoll's own, and every path beneath it is resolved one component at
a time with ``openat(…, O_NOFOLLOW)`` relative to the directory opened before. A link at any
component fails the open (ELOOP); ``..``, ``.``, empty and NUL components are refused before
the kernel sees them. Once a directory is open, renaming or replacing it changes nothing for us:
we hold the inode, not the name. (This is what ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``
does in one call; the walk works on every kernel and costs a syscall per component.)

Files are read only when they are regular files (``fstat`` after an ``O_NONBLOCK`` open, so a
FIFO cannot hang us) and, if they have several hard links, only when the tenant owns them: a
hard link is how a workload would make a file of someone else's appear inside its own tree.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_NAME = 255
MAX_PATH = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


class UnsafePath(OSError):
    """A path that leaves its tree, crosses a link, or names something other than what was asked
    for (a FIFO where a file should be...). An OSError, so callers that handle a missing file
    handle this the same way: the operation is refused, nothing else happens."""


def components(rel: str | Path) -> list[str]:
    """The components of a relative path, refusing anything that could climb out or confuse."""
    text = str(rel)
    if "\0" in text:
        raise UnsafePath(errno.EINVAL, "a path must not contain NUL", text[:100])
    if len(text.encode()) > MAX_PATH:
        raise UnsafePath(errno.ENAMETOOLONG, "path too long", text[:100])
    if text.startswith("/"):
        raise UnsafePath(errno.EINVAL, "an absolute path where a relative one is needed", text)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    for p in parts:
        if p == "..":
            raise UnsafePath(errno.EINVAL, "'..' would leave the tree", text)
        if len(p.encode()) > MAX_NAME:
            raise UnsafePath(errno.ENAMETOOLONG, "a path component is too long", p[:100])
    return parts


def plain_file(st: os.stat_result, owner: int | None) -> bool:
    """A regular file, and not a hard link to someone else's (``owner``: the tenant's uid)."""
    if not stat.S_ISREG(st.st_mode):
        return False
    return st.st_nlink == 1 or owner is None or st.st_uid == owner


@dataclass(frozen=True)
class Entry:
    """One entry met by ``Tree.walk``: its path from the walk's start, name and lstat."""

    path: str
    name: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


class Tree:
    """A directory tree a workload may write, opened by Atoll without following links.

    ``root`` itself must be reached through directories only Atoll can change (the data dir's
    layout guarantees it); its last component is opened with O_NOFOLLOW. ``owner`` is the uid of
    the tenant who writes the tree (None when workloads run as Atoll's own user), used to refuse
    hard links to other users' files. Use as a context manager, or ``close()``.
    """

    def __init__(self, root: Path | str, owner: int | None = None, *, _fd: int | None = None) -> None:
        self.root = Path(root)
        self.owner = owner
        self.fd = _fd if _fd is not None else os.open(self.root, _DIR_FLAGS)

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # --- reaching things -----------------------------------------------------------------------

    def _open_dir_fd(self, parts: list[str], create: bool = False, mode: int = 0o700) -> int:
        fd = os.dup(self.fd)
        try:
            for p in parts:
                try:
                    nxt = os.open(p, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(p, mode, dir_fd=fd)
                    nxt = os.open(p, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePath(e.errno, "a link or a non-directory on the way", "/".join(parts)) from e
            raise
        return fd

    def sub(self, rel: str | Path, *, create: bool = False, mode: int = 0o700) -> Tree:
        """The directory at ``rel`` as a Tree of its own (made, with missing parents, if asked)."""
        return Tree(self.root / str(rel), self.owner, _fd=self._open_dir_fd(components(rel), create, mode))

    def _parent(self, rel: str | Path) -> tuple[int, str]:
        parts = components(rel)
        if not parts:
            raise UnsafePath(errno.EINVAL, "the tree's root is not a file", str(rel))
        return self._open_dir_fd(parts[:-1]), parts[-1]

    def lstat(self, rel: str | Path) -> os.stat_result:
        """lstat of ``rel`` (no link followed on the way or at the end)."""
        parts = components(rel)
        if not parts:
            return os.fstat(self.fd)
        fd, name = self._parent(rel)
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)

    def open_file(self, rel: str | Path) -> BinaryIO:
        """A plain file beneath the tree, opened for reading; anything else is UnsafePath."""
        fd, name = self._parent(rel)
        try:
            try:
                ffd = os.open(name, _READ_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise UnsafePath(e.errno, "a symbolic link", str(rel)) from e
                raise
        finally:
            os.close(fd)
        st = os.fstat(ffd)
        if not plain_file(st, self.owner):
            os.close(ffd)
            raise UnsafePath(
                errno.EPERM, "not a plain file (a FIFO, device, socket or foreign hard link)", rel
            )
        os.set_blocking(ffd, True)
        return os.fdopen(ffd, "rb")

    def read_bytes(self, rel: str | Path, limit: int) -> bytes:
        """The first ``limit`` bytes of a plain file (more are not read)."""
        with self.open_file(rel) as f:
            return f.read(limit)

    def write_new(
        self, rel: str | Path, data: bytes, mode: int = 0o600, owner: tuple[int, int] | None = None
    ) -> None:
        """Create ``rel`` with ``data`` (owned by ``owner``, if given), atomically: written under a
        temporary name, created exclusively (never through a link planted under either name),
        then renamed into place, replacing whatever was there (a link itself, not its target)."""
        fd, name = self._parent(rel)
        tmp = f".{name}.{os.urandom(6).hex()}.tmp"
        try:
            ffd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd
            )
            with os.fdopen(ffd, "wb") as f:
                f.write(data)
                if owner is not None:
                    os.fchown(f.fileno(), *owner)
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            raise
        finally:
            os.close(fd)

    def unlink(self, rel: str | Path) -> None:
        """Remove a non-directory entry (a link itself, never its target)."""
        fd, name = self._parent(rel)
        try:
            os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)

    def link(self, rel: str | Path, target: Path) -> None:
        """Make ``rel`` a symbolic link to ``target`` (its missing parents made, an old link there
        replaced); anything else already at ``rel`` is refused."""
        parts = components(rel)
        if not parts:
            raise UnsafePath(errno.EINVAL, "the tree's root cannot be a link", str(rel))
        fd = self._open_dir_fd(parts[:-1], create=True)
        try:
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISLNK(os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_mode):
                    raise FileExistsError(errno.EEXIST, "already exists", str(rel))
                os.unlink(parts[-1], dir_fd=fd)
            os.symlink(target, parts[-1], dir_fd=fd)
        finally:
            os.close(fd)

    # --- whole trees -------------------------------------------------------------------------

    def walk(self, rel: str | Path = "") -> Iterator[tuple[Entry, int]]:
        """Every entry beneath ``rel``, top-down, as (entry, descriptor of its directory).

        Links are reported, never followed; a directory is entered only if what we open is the
        directory we listed (same device and inode), so one swapped for a link meanwhile is
        skipped. The descriptor is valid until the next step of the iteration.
        """
        top = self._open_dir_fd(components(rel))
        yield from self._walk(top, "")

    def _walk(self, dfd: int, prefix: str) -> Iterator[tuple[Entry, int]]:
        try:
            listed = []
            with os.scandir(dfd) as it:
                for e in it:
                    with contextlib.suppress(OSError):  # gone since readdir: nothing to do
                        listed.append((e.name, e.stat(follow_symlinks=False)))
            for name, st in sorted(listed):
                entry = Entry(f"{prefix}{name}", name, st)
                yield entry, dfd
                if not entry.is_dir:
                    continue
                try:
                    child = open_entry(dfd, entry)
                except OSError:
                    continue  # swapped (for a link, say) or removed since the listing
                yield from self._walk(child, f"{entry.path}/")
        finally:
            os.close(dfd)

    def chown_all(self, uid: int, gid: int, rel: str | Path = "") -> None:
        """Hand the tree (its top included) to ``uid:gid``; links are changed, not followed."""
        top = self._open_dir_fd(components(rel))
        try:
            os.fchown(top, uid, gid)
        finally:
            os.close(top)
        for entry, dfd in self.walk(rel):
            with contextlib.suppress(FileNotFoundError):
                os.chown(entry.name, uid, gid, dir_fd=dfd, follow_symlinks=False)

    def size(self, rel: str | Path = "") -> int:
        """Apparent bytes of the regular files beneath ``rel`` (a sparse file counts whole)."""
        return sum(e.st.st_size for e, _ in self.walk(rel) if stat.S_ISREG(e.st.st_mode))

    def zip_dir(self, rel: str | Path, dest: Path, *, max_bytes: int, max_entries: int) -> list[str]:
        """Zip the plain files beneath ``rel`` into ``dest`` (a file of Atoll's); returns what was
        left out (links, special files, foreign hard links). Stops with UnsafePath past a bound."""
        left_out: list[str] = []
        total = count = 0
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
            for entry, dfd in self.walk(rel):
                if entry.is_dir:
                    continue
                if not plain_file(entry.st, self.owner):
                    left_out.append(entry.path)
                    continue
                count += 1
                total += entry.st.st_size
                if total > max_bytes or count > max_entries:
                    raise UnsafePath(errno.EFBIG, "the directory holds too much to collect", str(rel))
                try:
                    ffd = os.open(entry.name, _READ_FLAGS, dir_fd=dfd)
                except OSError:
                    left_out.append(entry.path)
                    continue
                with os.fdopen(ffd, "rb") as src:
                    st = os.fstat(src.fileno())
                    if not plain_file(st, self.owner):  # swapped since the listing
                        left_out.append(entry.path)
                        continue
                    # A tenant sets mtimes: zip cannot hold dates before 1980.
                    when = time.localtime(max(st.st_mtime, 315532800 + 86400))[:6]
                    info = zipfile.ZipInfo(entry.path, date_time=when)
                    info.external_attr = (st.st_mode & 0o777) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with z.open(info, "w", force_zip64=True) as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        return left_out

    def remove_all(self, rel: str | Path) -> None:
        """Delete ``rel`` and everything beneath it (a link is removed, never followed). Read-only
        directories are opened up first, so trees Atoll sealed go too."""
        fd, name = self._parent(rel)
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=fd)
                return
            with self.sub(rel) as sub:
                os.fchmod(sub.fd, 0o700)
                for entry, dfd in sub.walk():
                    if entry.is_dir:
                        with contextlib.suppress(OSError):
                            os.chmod(entry.name, 0o700, dir_fd=dfd, follow_symlinks=False)
            shutil.rmtree(name, dir_fd=fd)  # fd-based in CPython: never follows a link
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)


def open_entry(dfd: int, entry: Entry) -> int:
    """Open an entry met by ``Tree.walk`` (a directory or a plain file) without following a link,
    checking it is still the one listed; the descriptor is the caller's to close."""
    fd = os.open(entry.name, _DIR_FLAGS if entry.is_dir else _READ_FLAGS, dir_fd=dfd)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (entry.st.st_dev, entry.st.st_ino):
        os.close(fd)
        raise UnsafePath(errno.EPERM, "swapped since it was listed", entry.path)
    return fd


def move_dir(src: Tree, rel: str | Path, dest_parent: Tree, name: str) -> Tree:
    """Move the directory at ``rel`` in ``src`` to ``dest_parent/name`` and return it opened.

    The source is resolved without links and checked to be a directory first; the rename is made
    relative to its (open) parent, and what arrives is checked to be the very directory that was
    checked. If a link or anything else was swapped in between, it is removed and UnsafePath
    raised: a tenant can move only its own directory, never someone else's.
    """
    parent, leaf = src._parent(rel)
    try:
        try:
            dfd = os.open(leaf, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            raise UnsafePath(e.errno, "not a directory (or a link)", str(rel)) from e
        before = os.fstat(dfd)
        os.close(dfd)
        os.rename(leaf, name, src_dir_fd=parent, dst_dir_fd=dest_parent.fd)
    finally:
        os.close(parent)
    try:
        moved = dest_parent.sub(name)
    except OSError:
        dest_parent.remove_all(name)
        raise UnsafePath(errno.EPERM, "the directory was swapped while it was moved", str(rel)) from None
    after = os.fstat(moved.fd)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        moved.close()
        dest_parent.remove_all(name)
        raise UnsafePath(errno.EPERM, "the directory was swapped while it was moved", str(rel))
    return moved
