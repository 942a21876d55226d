"""LogStore: append-only streams read by byte offset, kept until deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.storage.logs import LogStore, system_line


def test_append_read_resume_and_delete(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    assert store.read("w1", "stdout") == (b"", 0)
    assert store.size("w1", "stdout") == 0
    assert store.append("w1", "stdout", b"hello ") == 6
    assert store.append("w1", "stdout", b"world\n") == 12
    store.append("w1", "stderr", b"oops\n")

    # Read in small pieces, resuming from each returned offset.
    got, offset = b"", 0
    while True:
        data, offset = store.read("w1", "stdout", offset, limit=5)
        if not data:
            break
        got += data
    assert got == b"hello world\n" and offset == 12
    assert store.read("w1", "stdout", 6, 100) == (b"world\n", 12)
    assert store.read("w1", "stderr") == (b"oops\n", 5)
    assert store.size("w1", "stdout") == 12
    assert store.path("w1", "stdout") == tmp_path / "w1" / "stdout.log"
    assert store.exists("w1") and not store.exists("w2")

    store.delete("w1")
    assert not store.exists("w1")
    assert store.read("w1", "stdout") == (b"", 0)
    store.delete("w1")  # deleting twice is fine


def test_ids_and_streams_cannot_escape_the_root(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs")
    for bad in ("../x", "A", "", "a/b", "-x"):
        with pytest.raises(ValueError):
            store.path(bad, "stdout")
    with pytest.raises(ValueError):
        store.path("w1", "../stdout")
    with pytest.raises(ValueError):
        store.read("w1", "stdout", offset=-1)


def test_system_line_is_one_timestamped_line() -> None:
    line = system_line("stopped:\nbalance", when=0)
    assert line == b"1970-01-01T00:00:00Z stopped: balance\n"
