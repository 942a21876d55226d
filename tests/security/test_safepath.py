"""The safe-path module against the tricks a workload plays in its own tree while Atoll (root)
works there: a link at every component, a directory swapped for a link mid-walk (TOCTOU),
hard links, FIFOs, sockets, device files, names with ``..``, NUL and huge lengths."""

from __future__ import annotations

import os
import socket
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from atoll.domain import datasets
from atoll.storage.safepath import Tree, UnsafePath, components, move_dir

SECRET = b"the installation's secret key"


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """(the tenant's tree, a secret of Atoll's beside it)."""
    atoll = tmp_path / "atoll"
    atoll.mkdir()
    (atoll / "secret.key").write_bytes(SECRET)
    (atoll / "sub").mkdir()
    (atoll / "sub" / "secret.key").write_bytes(SECRET)
    tenant = tmp_path / "tenant"
    (tenant / "work" / "a" / "b").mkdir(parents=True)
    (tenant / "work" / "a" / "b" / "out.txt").write_bytes(b"mine")
    return tenant, atoll


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "a\0b", "x" * 256, "a/" * 3000])
def test_paths_that_could_climb_out_are_refused(bad: str) -> None:
    with pytest.raises(UnsafePath):
        components(bad)


@pytest.mark.parametrize("level", ["work", "work/a", "work/a/b"])
def test_a_link_at_any_component_is_never_followed(world: tuple[Path, Path], level: str) -> None:
    tenant, atoll = world
    victim = tenant / level
    os.rename(victim, victim.with_name(victim.name + ".moved"))
    victim.symlink_to(atoll if level != "work/a/b" else atoll / "sub")
    rel = (
        "work/a/b/secret.key"
        if level == "work/a/b"
        else f"{level}/" + "/".join(["sub", "secret.key"] if level == "work/a" else ["a", "b", "secret.key"])
    )
    with Tree(tenant) as t:
        with pytest.raises(OSError):
            t.read_bytes(rel, 1000)
        with pytest.raises(OSError):
            t.lstat(rel)


def test_the_last_component_as_a_link_fifo_or_socket_is_not_read(world: tuple[Path, Path]) -> None:
    tenant, atoll = world
    w = tenant / "work"
    (w / "link").symlink_to(atoll / "secret.key")
    os.mkfifo(w / "fifo")  # a reader would hang on it
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(w / "sock"))
    try:
        with Tree(tenant) as t:
            for name in ("link", "fifo", "sock"):
                with pytest.raises(OSError):
                    t.read_bytes(f"work/{name}", 100)
    finally:
        sock.close()


def test_a_hard_link_to_someone_elses_file_is_refused(world: tuple[Path, Path]) -> None:
    tenant, atoll = world
    os.link(atoll / "secret.key", tenant / "work" / "hard")  # as root; a tenant needs the file's rights
    owner = os.stat(atoll / "secret.key").st_uid + 1  # the tenant: not the file's owner
    with Tree(tenant, owner) as t:
        with pytest.raises(UnsafePath):
            t.read_bytes("work/hard", 100)
    with Tree(tenant, os.stat(atoll / "secret.key").st_uid) as t:  # the owner's own hard link is fine
        assert t.read_bytes("work/hard", 100) == SECRET


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device file needs root")
def test_a_device_file_is_not_read(world: tuple[Path, Path]) -> None:
    tenant, _ = world
    os.mknod(tenant / "work" / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: endless
    with Tree(tenant) as t, pytest.raises(UnsafePath):
        t.read_bytes("work/zero", 100)


def test_zipping_a_directory_swapped_for_a_link_mid_walk_never_reads_atolls_files(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    """A workload racing the collector: it keeps swapping a directory and a link to Atoll's dir."""
    tenant, atoll = world
    res = tenant / "work" / "res"
    for i in range(30):
        (res / f"d{i}").mkdir(parents=True)
        (res / f"d{i}" / "secret.key").write_bytes(b"harmless")
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            for i in range(30):
                d, aside = res / f"d{i}", res / f"d{i}.aside"
                try:
                    os.rename(d, aside)
                    d.symlink_to(atoll)
                    os.unlink(d)
                    os.rename(aside, d)
                except OSError:
                    pass

    t = threading.Thread(target=swapper)
    t.start()
    try:
        for n in range(40):
            dest = tmp_path / f"out{n}.zip"
            with Tree(tenant) as tree:
                tree.zip_dir("work/res", dest, max_bytes=1 << 30, max_entries=10_000)
            with zipfile.ZipFile(dest) as z:
                for name in z.namelist():
                    assert z.read(name) != SECRET, name
    finally:
        stop.set()
        t.join()


def test_moving_a_directory_that_became_a_link_moves_nothing_else(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    tenant, atoll = world
    (tenant / "out").symlink_to(atoll)
    dest_root = tmp_path / "datasets"
    dest_root.mkdir()
    with Tree(tenant) as src, Tree(dest_root) as dest, pytest.raises(UnsafePath):
        move_dir(src, "out", dest, "ds1")
    assert (atoll / "secret.key").read_bytes() == SECRET
    assert list(dest_root.iterdir()) == []


def test_sealing_a_dataset_drops_links_and_special_files_and_touches_nothing_outside(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    tenant, atoll = world
    d = tenant / "ds"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "data.csv").write_text("a,b\n")
    (d / "key").symlink_to(atoll / "secret.key")
    (d / "dir").symlink_to(atoll)
    os.mkfifo(d / "fifo")
    mode_before = os.stat(atoll / "secret.key").st_mode
    with Tree(d) as t:
        sealed = datasets.seal(t, None)
    assert sorted(sealed.dropped) == ["dir", "fifo", "key"]
    assert sorted(str(p.relative_to(d)) for p in d.rglob("*")) == ["sub", "sub/data.csv"]
    assert os.stat(atoll / "secret.key").st_mode == mode_before
    assert stat.S_IMODE(os.stat(d / "sub" / "data.csv").st_mode) == 0o440


def test_removing_a_tree_removes_a_link_not_its_target(world: tuple[Path, Path]) -> None:
    tenant, atoll = world
    (tenant / "work" / "a" / "lnk").symlink_to(atoll)
    with Tree(tenant) as t:
        t.remove_all("work")
    assert not (tenant / "work").exists()
    assert (atoll / "secret.key").read_bytes() == SECRET and (atoll / "sub").is_dir()


def test_writing_never_goes_through_a_planted_link(world: tuple[Path, Path]) -> None:
    tenant, atoll = world
    (tenant / "work" / "answer.json").symlink_to(atoll / "secret.key")
    with Tree(tenant) as t:
        t.unlink("work/answer.json")
        t.write_new("work/answer.json", b"{}")
    assert (atoll / "secret.key").read_bytes() == SECRET
    assert (tenant / "work" / "answer.json").read_bytes() == b"{}"
