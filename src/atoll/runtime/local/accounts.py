"""A workload's user as the system sees it: a passwd and a group entry for its uid.

A project's workloads run as a uid of their own (see domain/workloads.run_identity) that the
host's /etc/passwd does not know. Without an entry, ``whoami`` fails, ``getpass.getuser()``
raises (and with it torch's and matplotlib's cache paths), git refuses to commit and ssh cannot
find its home. Adding users to the host's files would need cleanup and races with the admin's
tools; instead each workload's mount namespace (runtime/local/sandbox.py) gets copies of the
host's files with its own entry added, bound over /etc/passwd and /etc/group. The copies lie in
the workload's state dir (Atoll's, never in a tenant-writable tree) and go with it.
"""

from __future__ import annotations

from pathlib import Path

from atoll.runtime.environment import account_name

HOST_PASSWD = Path("/etc/passwd")
HOST_GROUP = Path("/etc/group")
SHELL = "/bin/bash"


def _entries(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def with_account(
    passwd: str, group: str, name: str, uid: int, gid: int, home: Path, shell: str = SHELL
) -> tuple[str, str, str]:
    """``passwd`` and ``group`` (a file's text) with an entry for (uid, gid) named ``name`` added:
    the name given (made valid, and unlike any already there), and the two new texts. Entries
    with our ids go: ours must be the only answer."""
    name = account_name(name, uid)
    users = [e for e in _entries(passwd) if len(e) > 2 and e[2] != str(uid)]
    groups = [e for e in _entries(group) if len(e) > 2 and e[2] != str(gid)]
    if any(e[0] == name for e in users + groups):  # a project named "root" stays out of root's way
        name = f"{name[:25]}-{uid}"
    passwd_lines = [":".join(e) for e in users]
    group_lines = [":".join(e) for e in groups]
    passwd_lines.append(f"{name}:x:{uid}:{gid}:Atoll workload user {name}:{home}:{shell}")
    group_lines.append(f"{name}:x:{gid}:")
    return name, "\n".join(passwd_lines) + "\n", "\n".join(group_lines) + "\n"


def account_files(
    directory: Path,
    name: str,
    uid: int,
    gid: int,
    home: Path,
    *,
    host_passwd: Path = HOST_PASSWD,
    host_group: Path = HOST_GROUP,
) -> tuple[str, dict[str, str]]:
    """Write passwd and group files for (uid, gid) named ``name`` with ``home`` into the
    workload's state dir ``directory``; return the name given (made valid, and unlike any of the
    host's) and ``{"/etc/passwd": path, "/etc/group": path}`` for the sandbox to bind.
    World-readable: the workload's user reads them (getpwuid) after the bind."""
    name, passwd_text, group_text = with_account(
        host_passwd.read_text(), host_group.read_text(), name, uid, gid, home
    )
    passwd, group = directory / "passwd", directory / "group"
    for path, text in ((passwd, passwd_text), (group, group_text)):
        path.write_text(text)
        path.chmod(0o644)
    return name, {str(HOST_PASSWD): str(passwd), str(HOST_GROUP): str(group)}
