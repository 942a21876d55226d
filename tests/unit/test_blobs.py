"""The content-addressed blob store refuses content that does not match its announced digest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from atoll.storage.blobs import BlobMismatch, BlobStore


def test_put_and_verify(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = b"atoll" * 1000
    sha = hashlib.sha256(data).hexdigest()
    assert not store.has(sha)
    assert store.put_stream(iter([data[:7], data[7:]]), sha256=sha, size=len(data)) == (sha, len(data))
    assert store.has(sha) and store.path(sha).read_bytes() == data
    with pytest.raises(BlobMismatch):
        store.put_stream(iter([b"other"]), sha256=sha)
    with pytest.raises(BlobMismatch):
        store.put_stream(iter([data]), sha256=sha, size=1)
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")
    assert list((tmp_path / "tmp").iterdir()) == []  # refused uploads leave nothing behind
