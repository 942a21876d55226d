"""Zip archives of a job's directories, one set of rules on both sides: the client zips a
directory input the same way every time (so equal trees hash equal and upload once), and whoever
unpacks one (the server preparing a job, the client downloading a result) holds it to the same
limits: no entry outside the target, no more files or bytes than a job may have.

Plain files: the server's own zipping of outputs from a tenant's tree is `storage/safepath.py`'s,
which never follows a link there.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Collection
from pathlib import Path

from atoll.jobspec.units import GIB, human_bytes

MAX_FILE_BYTES = 5 * GIB  # one input or output file (spec §5.8)
MAX_TOTAL_BYTES = 10 * GIB  # all of a job's files together
MAX_ENTRIES = 100_000  # files and directories in one archive
CHUNK = 1 << 20
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date zip can hold: no timestamp reaches a hash


class ArchiveError(ValueError):
    """An archive that may not be unpacked: too big, too many entries, or an entry leading out."""


def zip_entries(src: Path, exclude: Collection[str] = ()) -> list[tuple[str, Path]]:
    """``(archive name, local path)`` of every directory and file under ``src``, sorted by name.

    Directory names end with ``/`` (so empty directories survive). Links to files are followed
    (the client packs what its user sees); links to directories, dangling links and names in
    ``exclude`` are left out, as the size check before upload counts them.
    """
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(src):
        here = Path(root)
        dirs[:] = [d for d in dirs if d not in exclude and not (here / d).is_symlink()]
        for d in dirs:
            found.append(((here / d).relative_to(src).as_posix() + "/", here / d))
        for name in files:
            path = here / name
            if name not in exclude and path.is_file():
                found.append((path.relative_to(src).as_posix(), path))
    return sorted(found)


def zip_dir(src: Path, dest: Path, exclude: Collection[str] = ()) -> None:
    """Zip the contents of ``src`` into ``dest`` so that equal trees give byte-equal archives.

    Entries are sorted, dated 1980-01-01 and carry only the executable bit of their mode, so
    neither timestamps nor umask change the hash (and re-runs upload nothing new).
    """
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for name, path in zip_entries(src, exclude):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so external_attr holds a mode
            if name.endswith("/"):
                info.external_attr = (0o40755 << 16) | 0x10
                z.writestr(info, b"")
                continue
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = path.stat().st_size  # decides zip64 for big files, deterministically
            with path.open("rb") as f, z.open(info, "w") as w:
                shutil.copyfileobj(f, w, CHUNK)


def extract(
    archive: Path,
    dest: Path,
    *,
    mode_mask: int = 0o777,
    max_entries: int = MAX_ENTRIES,
    max_bytes: int = MAX_TOTAL_BYTES,
) -> None:
    """Unpack ``archive`` into ``dest``, checked before anything is written: at most
    ``max_entries`` entries and ``max_bytes`` unpacked (a few KB can unpack to terabytes; the
    defaults are a job's limits), and no entry that would land outside ``dest`` (zip-slip).
    Modes the archive recorded are restored (zipfile does not), masked by ``mode_mask``.
    Raises ArchiveError."""
    root = dest.resolve()
    try:
        z = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"{archive.name} is not a zip archive ({e})") from None
    with z:
        infos = z.infolist()
        if len(infos) > max_entries:
            raise ArchiveError(f"{archive.name} holds more than {max_entries} entries")
        size = sum(i.file_size for i in infos)
        if size > max_bytes:
            limit = f"{max_bytes // GIB} GB" if max_bytes % GIB == 0 else human_bytes(max_bytes)
            raise ArchiveError(f"{archive.name} unpacks to more than {limit} ({human_bytes(size)})")
        for info in infos:
            if not (root / info.filename).resolve().is_relative_to(root):
                raise ArchiveError(f"archive entry {info.filename!r} points outside its directory")
        for info in infos:
            z.extract(info, root)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():  # scripts in a directory input stay executable
                (root / info.filename).chmod(mode & mode_mask)
