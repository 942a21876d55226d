"""A project's notebook environment (its %pip layer) is the project's tree: Atoll makes and repairs it
as the project's user, so a link planted in it leads uv only where that user could write anyway.

Real uv over a real bare base venv; the tree lives under /var/lib as an installation's data dir does
(a private /tmp parent would keep the project's user out of its own tree).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.envs import BuildFailed, Environment, EnvironmentBuilder
from atoll.envs.interpreter import current_version
from tests.support.leaks import register_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching to a project's user needs root")

TENANT = (64011, 64011)  # a uid and gid no account uses: the project's user


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="atoll-envs-", dir="/var/lib"))
    register_root(path)
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def base(root: Path) -> tuple[EnvironmentBuilder, Environment]:
    builder = EnvironmentBuilder(root / "envs")
    return builder, builder.build(current_version())


def _project(root: Path, name: str) -> Path:
    project = root / "projects" / name
    project.mkdir(parents=True, mode=0o711)
    return project


def _files(path: Path) -> list[os.stat_result]:
    return [os.lstat(os.path.join(d, n)) for d, dirs, names in os.walk(path) for n in (*dirs, *names)]


def test_the_layer_is_made_by_and_for_the_projects_user(
    root: Path, base: tuple[EnvironmentBuilder, Environment]
) -> None:
    builder, env = base
    target = _project(root, "fresh") / "notebook-env"
    layer = builder.overlay(env, target, TENANT)
    out = subprocess.run(
        [str(layer.python), "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        user=TENANT[0],
        group=TENANT[1],
        extra_groups=[],
        check=True,
    )
    assert out.stdout.strip() == str(target)
    st = target.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (*TENANT, 0o700)
    for f in _files(target):
        assert (f.st_uid, f.st_gid) == TENANT
        assert not f.st_mode & 0o007 or stat.S_ISLNK(f.st_mode), "a file of the layer is open to other users"


@pytest.mark.parametrize("planted", ["bin", "lib", "pyvenv.cfg"])
def test_a_planted_link_leads_the_repair_nowhere_new(
    root: Path, base: tuple[EnvironmentBuilder, Environment], planted: str
) -> None:
    """The layer lost its interpreter (so Atoll repairs it) and the project planted a link to a
    directory or file of Atoll's: nothing there is written or changed."""
    builder, env = base
    victim = root / f"atoll-owned-{planted}"
    victim.mkdir(mode=0o755)
    (victim / "keep").write_text("Atoll's")
    target = _project(root, f"hostile-{planted.replace('.', '-')}") / "notebook-env"
    target.mkdir(mode=0o700)
    os.chown(target, *TENANT)
    link = victim if planted != "pyvenv.cfg" else victim / "keep"
    os.symlink(link, target / planted)
    os.lchown(target / planted, *TENANT)
    try:
        builder.overlay(env, target, TENANT)
    except BuildFailed:
        pass  # refused: uv, as the project's user, could not write there
    assert sorted(p.name for p in victim.iterdir()) == ["keep"]
    assert (victim / "keep").read_text() == "Atoll's"
    assert all(f.st_uid == 0 for f in _files(victim))
