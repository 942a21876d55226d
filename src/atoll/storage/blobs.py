"""Content-addressed blob store on the local disk: files named by their sha256.

A write streams into a temp file while hashing, checks the announced digest and size, and
renames into place atomically, so a partial or lying upload never becomes a blob.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

SHA256_LEN = 64


class BlobMismatch(ValueError):
    """The uploaded bytes do not hash to the announced sha256 (or have another size)."""


def _check_digest(sha256: str) -> str:
    if len(sha256) != SHA256_LEN or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        d = _check_digest(sha256)
        return self.root / d[:2] / d[2:]

    def has(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def put_stream(
        self, chunks: Iterable[bytes], sha256: str | None = None, size: int | None = None
    ) -> tuple[str, int]:
        """Store the bytes; returns (sha256, size). Refuses content that does not match."""
        h = hashlib.sha256()
        n = 0
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    n += len(chunk)
                    f.write(chunk)
            digest = h.hexdigest()
            if sha256 is not None and digest != sha256:
                raise BlobMismatch(f"content hashes to {digest}, not {sha256}")
            if size is not None and n != size:
                raise BlobMismatch(f"content is {n} bytes, not {size}")
            dest = self.path(digest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            return digest, n
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def adopt(self, tmp: Path, sha256: str) -> None:
        """Move a file already written (and hashed) under `root/tmp` into place as blob `sha256`."""
        dest = self.path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)

    def put_file(self, src: Path) -> tuple[str, int]:
        with open(src, "rb") as f:
            return self.put_stream(iter(lambda: f.read(1 << 20), b""))

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path(sha256), "rb")

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
