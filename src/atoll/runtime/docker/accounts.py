"""A container's passwd and group entry for its workload's user (issue 17 item 4).

A workload runs in its container as its project's uid, which the image's /etc/passwd does not
know: `whoami` fails and git and ssh find no home. Before the container starts, its own copies of
/etc/passwd and /etc/group (the image's, read through the Engine API) get the workload's entry
added and are written back into the container's filesystem, never the image's: the image's own
users stay as they are, and the change goes with the container. The files are the image's, which
a project built: they are read as data, bounded, and a link or anything else that is not a
regular file counts as empty.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

from docker.errors import APIError, NotFound

from atoll.runtime.local.accounts import with_account

MAX_FILE = 1 << 20  # a passwd or group file bigger than this is not read (and counts as empty)


def _read(container: Any, path: str) -> str:
    try:
        stream, stat = container.get_archive(path)
    except NotFound:
        return ""
    if int(stat.get("size") or 0) > MAX_FILE:
        return ""
    data = bytearray()
    for chunk in stream:
        data += chunk
        if len(data) > MAX_FILE + 64 * 1024:  # the tar's headers beside the file
            return ""
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        member = next(iter(tar), None)
        if member is None or not member.isfile() or member.size > MAX_FILE:
            return ""
        f = tar.extractfile(member)
        return f.read().decode(errors="replace") if f is not None else ""


def add_account(container: Any, name: str, uid: int, gid: int, home: Path) -> str:
    """Add (uid, gid) as ``name`` to the created (not yet started) container; the name given."""
    given, passwd, group = with_account(
        _read(container, "/etc/passwd"), _read(container, "/etc/group"), name, uid, gid, home
    )
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path, text in (("etc/passwd", passwd), ("etc/group", group)):
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, 0, 0
            tar.addfile(info, io.BytesIO(data))
    if not container.put_archive("/", out.getvalue()):
        raise APIError(f"the container's /etc could not be written for {given}")
    return given
