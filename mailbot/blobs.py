"""Content-addressed storage for raw mail and attachments: paths are hashes, never names."""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import datetime
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store once; durable (fsync of the file and of its folder) before returning, so a
        commit that names it is safe.

        A full or read-only disk raises its OSError (ENOSPC, EDQUOT, EROFS, EFBIG) with no
        partial file left behind; the caller has committed nothing yet, so the mail stays in
        the watched folder and is fetched again (mailbot.storage, SCENARIOS R11)."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            # a fresh modification time tells retention (`remove_if_idle`) that a mail not
            # committed yet is about to name this blob again
            os.utime(target)
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            _fsync_folder(target.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def remove_if_idle(self, sha256: str, now: datetime, idle_seconds: float) -> bool:
        """Delete the blob unless `put` stored or met it within `idle_seconds` before `now`
        (the bot's clock; then a mail that names it may be on its way to the database: the
        caller tries again next run). `idle_seconds` 0: deleted whatever its age (no intake
        is running, e.g. a command under the leader lock).
        The caller has checked that no row references it (mailbot.privacy.purge.in_use).
        Returns True when a file was deleted; a missing file is no error."""
        target = self.path(sha256)
        try:
            if idle_seconds > 0 and now.timestamp() - target.stat().st_mtime < idle_seconds:
                return False
            target.unlink()
        except FileNotFoundError:
            return False
        return True


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX: the folder's entry is data of its own)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
