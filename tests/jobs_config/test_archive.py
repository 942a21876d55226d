"""One set of archive rules for the client and the server (atoll/jobspec/archive.py)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from atoll.client import AtollError
from atoll.jobclient import safe_extract
from atoll.jobspec.archive import ArchiveError, extract, zip_dir


def _archive(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def test_limits_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    big = _archive(tmp_path / "big.zip", {"a": b"0" * 4096, "b": b"1"})  # a few hundred bytes packed
    for kw in ({"max_bytes": 4096}, {"max_entries": 1}):
        dest = tmp_path / f"out-{next(iter(kw))}"
        dest.mkdir()
        with pytest.raises(ArchiveError, match=r"more than"):
            extract(big, dest, **kw)
        assert list(dest.iterdir()) == []


def test_an_entry_leading_out_is_refused_on_both_sides(tmp_path: Path) -> None:
    evil = _archive(tmp_path / "evil.zip", {"ok.txt": b"x", "../../escaped.txt": b"x"})
    (tmp_path / "d" / "e").mkdir(parents=True)
    with pytest.raises(ArchiveError, match="outside"):
        extract(evil, tmp_path / "d" / "e")
    with pytest.raises(AtollError, match="outside"):  # the client's download, same rule
        safe_extract(evil, tmp_path / "d" / "e")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "d" / "e" / "ok.txt").exists()


def test_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_text("hello")
    with pytest.raises(ArchiveError, match="not a zip archive"):
        extract(tmp_path / "x.zip", tmp_path)


def test_a_packed_directory_unpacks_with_its_modes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    (src / "sub" / "data.txt").write_text("d")
    zip_dir(src, tmp_path / "src.zip")
    out = tmp_path / "out"
    out.mkdir()
    extract(tmp_path / "src.zip", out, mode_mask=0o700)
    assert (out / "run.sh").stat().st_mode & 0o777 == 0o700
    assert (out / "sub" / "data.txt").read_text() == "d"
