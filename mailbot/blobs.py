"""Content-addressed storage for raw mail and attachments: keys are hashes, never names.

Two stores with one interface (BlobStorage): files under data_dir/blobs (BlobStore, one host)
and a table in the database (DatabaseBlobStore, every host on the database; issue #15).
`bot.blob_store` chooses where new blobs go; LayeredBlobStore reads both, so switching either
way loses nothing (mailbot.app.blob_store).
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class BlobStorage(Protocol):
    """What the bot needs of a blob store. The invariant every caller relies on: `put`
    returns only once the bytes are durable, before the commit of the row that names them
    (a crash in between leaves an unnamed blob, never a row without its blob)."""

    def put(self, data: bytes) -> str:
        """Store `data` once; returns its SHA-256 (64 lowercase hex digits)."""
        ...

    def get(self, sha256: str) -> bytes:
        """The bytes stored under `sha256`; FileNotFoundError when there are none."""
        ...

    def exists(self, sha256: str) -> bool:
        ...

    def remove_if_idle(self, sha256: str, now: datetime, idle_seconds: float) -> bool:
        """Delete unless `put` stored or met it within `idle_seconds` before `now`; True
        when something was deleted."""
        ...


def check_digest(sha256: str) -> None:
    """Raises ValueError unless `sha256` is a SHA-256 hex digest (a key is never a name)."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")


# a blob touched this recently is safe from retention's grace (BLOB_IDLE_SECONDS, 600 s in
# mailbot.privacy.purge) for far longer than a commit takes: put() need not touch it again
TOUCH_SECONDS = 60


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        check_digest(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store once; durable (fsync of the file and of its folder) before returning, so a
        commit that names it is safe. Bytes already stored are not written again.

        A full or read-only disk raises its OSError (ENOSPC, EDQUOT, EROFS, EFBIG) with no
        partial file left behind; the caller has committed nothing yet, so the mail stays in
        the watched folder and is fetched again (mailbot.storage, SCENARIOS R11)."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        try:
            stored = target.stat().st_mtime
        except FileNotFoundError:
            stored = None
        if stored is not None:
            # met again: never rewritten or fsync'd. A fresh modification time tells
            # retention (`remove_if_idle`) that a mail not committed yet is about to name
            # it again; one touched within TOUCH_SECONDS is left as it is (no inode write)
            if time.time() - stored > TOUCH_SECONDS:
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


class DatabaseBlobStore:
    """Blobs in the `blob` table (models.Blob), read by every host on the database.

    Database errors are SQLAlchemy's own (OperationalError for a locked, read-only or
    unreachable database), so the daemon's storage handling (mailbot.storage, SCENARIOS R10)
    treats them as it treats a full disk with the file store.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, data: bytes) -> str:
        """Store once, in a transaction of its own committed before this returns: durable
        before any commit that names it. On SQLite (WAL) commits reach the log in order, so a
        later commit naming the blob cannot survive a crash that this one does not. The same
        bytes stored again (by this host or another at the same moment) leave one row
        (INSERT ... ON CONFLICT DO NOTHING) and refresh its touched_at, which retention's
        grace reads (mailbot.privacy.purge); a row touched within TOUCH_SECONDS is only read,
        so an attachment that every brief carries costs no write (and no fsync) each time."""
        from sqlalchemy import select, update

        from mailbot.db import insert_if_missing
        from mailbot.models import Blob

        digest = hashlib.sha256(data).hexdigest()
        now = datetime.now(UTC)
        table = Blob.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            touched = conn.execute(select(table.c.touched_at).where(table.c.sha256 == digest)
                                   ).scalar_one_or_none()
        if touched is not None and touched >= now - timedelta(seconds=TOUCH_SECONDS):
            return digest
        with self.engine.begin() as conn:
            # met again: the UPDATE alone, the bytes are not sent twice
            if touched is None or not conn.execute(
                    update(table).where(table.c.sha256 == digest)
                    .values(touched_at=now)).rowcount:
                insert_if_missing(conn, table, {"sha256": digest, "data": data,
                                                "size": len(data), "stored_at": now,
                                                "touched_at": now}, ["sha256"])
        return digest

    def get(self, sha256: str) -> bytes:
        from sqlalchemy import select

        from mailbot.models import Blob

        check_digest(sha256)
        table = Blob.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            data = conn.execute(select(table.c.data).where(table.c.sha256 == sha256)
                                ).scalar_one_or_none()
        if data is not None:
            return bytes(data)
        raise FileNotFoundError(errno.ENOENT, "no such blob in the database", sha256)

    def exists(self, sha256: str) -> bool:
        from sqlalchemy import select

        from mailbot.models import Blob

        check_digest(sha256)
        table = Blob.__table__  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            found = conn.execute(select(table.c.sha256).where(table.c.sha256 == sha256)
                                 ).first() is not None
        return found

    def remove_if_idle(self, sha256: str, now: datetime, idle_seconds: float) -> bool:
        """As BlobStore.remove_if_idle: delete the row unless `put` met it within
        `idle_seconds` before `now` (the bot's clock).
        One conditional DELETE, so a put() by another host at the same moment either comes
        first (the row stays) or after (it stores the row again)."""
        from sqlalchemy import delete

        from mailbot.models import Blob

        check_digest(sha256)
        table = Blob.__table__  # type: ignore[attr-defined]
        statement = delete(table).where(table.c.sha256 == sha256)
        if idle_seconds > 0:
            cutoff = now - timedelta(seconds=idle_seconds)
            statement = statement.where(table.c.touched_at <= cutoff)
        with self.engine.begin() as conn:
            return bool(conn.execute(statement).rowcount)


class LayeredBlobStore:
    """The configured store (`primary`, where put() writes) over the other one (`other`,
    only read and cleaned). `bot.blob_store` may be switched either way, files -> database or
    database -> files: what the other store already holds is still read from there, and
    retention deletes it there too. Nothing is copied.

    Errors as the two stores raise them (OSError from files, SQLAlchemy's from the
    database); get raises FileNotFoundError only when neither store holds the blob.
    """

    def __init__(self, primary: BlobStorage, other: BlobStorage) -> None:
        self.primary = primary
        self.other = other

    def put(self, data: bytes) -> str:
        return self.primary.put(data)

    def get(self, sha256: str) -> bytes:
        try:
            return self.primary.get(sha256)
        except FileNotFoundError:
            return self.other.get(sha256)

    def exists(self, sha256: str) -> bool:
        return self.primary.exists(sha256) or self.other.exists(sha256)

    def remove_if_idle(self, sha256: str, now: datetime, idle_seconds: float) -> bool:
        """Both stores, each under its own rule (BlobStore / DatabaseBlobStore); True when
        either deleted something."""
        removed = self.primary.remove_if_idle(sha256, now, idle_seconds)
        return self.other.remove_if_idle(sha256, now, idle_seconds) or removed


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX: the folder's entry is data of its own)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
