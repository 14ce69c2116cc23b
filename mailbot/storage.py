"""Database and disk trouble while the daemon runs (SCENARIOS R10, R11; issue #10, item 6).

A database that is locked, read-only or unreachable, or a disk that is full or read-only, is
nobody's mail's fault: the mail stays where it is (nothing is moved on IMAP before a commit),
the daemon waits longer each time, the operator hears of it once, and it goes on by itself.

`storage_error` tells such an error from the others (also when it is the cause of another
exception); `StorageWatch` keeps the one incident all threads of the daemon share: ONE
`event=storage_trouble` alert (bot.alerts; mailed directly when the database cannot store it)
when it starts, one `event=storage_recovered` WARNING line when a full sweep works again,
and the exponential wait between the watcher's retries.
"""

from __future__ import annotations

import errno
import logging
import random
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from mailbot.vocabulary import Incident

if TYPE_CHECKING:
    from mailbot.app import Bot

log = logging.getLogger(__name__)

# the disk is full, over quota, read-only, refuses a file this large, or fails
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO})
BACKOFF_CAP_SECONDS = 300  # a storage fault is retried at least every 5 minutes


def storage_error(err: BaseException) -> BaseException | None:
    """The database or disk error in `err` or its causes, or None when it is none of those.

    Database: OperationalError (locked, read-only, full, server gone), InterfaceError, a
    connection the driver invalidated, a pool that gives no connection. Disk: an OSError
    whose errno is in DISK_ERRNOS (a socket's OSError is none of these).
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OperationalError | InterfaceError | PoolTimeout):
            return current
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return current
        if isinstance(current, OSError) and current.errno in DISK_ERRNOS:
            return current
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__)
    return None


def describe(err: BaseException) -> str:
    """One line for the log and the operator: database or disk, and the system's words."""
    if isinstance(err, OSError):
        return f"disk: {err}"
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    return f"database: {text.splitlines()[0] if text else type(err).__name__}"


class StorageWatch:
    """The daemon's one storage incident, shared by the IMAP watcher and the scheduler jobs.

    `failed` is called with every error; for a storage error it starts the incident (one
    alert) or counts one more failure, and says so. `recovered` ends it after a full sweep
    (which writes to the database) worked. Thread-safe.
    """

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.failures = 0  # failures in the current incident
        self.since: float | None = None  # monotonic start of the current incident
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, err: BaseException, where: str, quiet: bool = False) -> bool:
        """True (and handled) when `err` is database or disk trouble; False for any other
        error, which the caller handles as before. quiet: a failure after the first is only
        a DEBUG line (the scheduler jobs, which run every 15 s and do not back off)."""
        cause = storage_error(err)
        if cause is None:
            return False
        with self._lock:
            self.failures += 1
            if self.since is None:
                self.since = time.monotonic()
                self.bot.alerts.raise_alert(
                    Incident.STORAGE_TROUBLE,
                    f"{describe(cause)} (during {where}); nothing is moved on IMAP until it "
                    f"can be stored, retrying by itself, at least every "
                    f"{BACKOFF_CAP_SECONDS} s")
            else:
                log.log(logging.DEBUG if quiet else logging.INFO,
                        "storage still failing during %s (%s); failure %d of this incident",
                        where, describe(cause), self.failures)
        return True

    def delay(self) -> float:
        """Seconds to wait before the next try: 1-2, 2-4, 4-8 … at most BACKOFF_CAP_SECONDS."""
        base = min(BACKOFF_CAP_SECONDS, 2 ** min(max(self.failures, 1), 9))
        return float(base) * random.uniform(0.5, 1)

    def recovered(self) -> None:
        """A full sweep worked: end the incident with one WARNING line, if there was one."""
        with self._lock:
            if self.since is None:
                return
            lasted = time.monotonic() - self.since
            failures, self.failures, self.since = self.failures, 0, None
        log.warning("event=storage_recovered the database and the disk store mail again "
                    "after %.0f s and %d failed tries", lasted, failures)
