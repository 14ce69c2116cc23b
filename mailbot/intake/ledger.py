"""The ledger: every mail fetched is stored (raw bytes, fsync'd) and recorded before any
work, each attempt is counted before it starts, and a handled mail is moved out of the
watched folder only after its outcome is committed (DESIGN.md section 2, SCENARIOS R1-R9).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlmodel import Session, col, func, select

from mailbot import metrics
from mailbot.app import Bot
from mailbot.audit import record
from mailbot.clock import as_utc
from mailbot.db import transaction
from mailbot.faults import crash_point
from mailbot.intake.mailbox import FetchedMail, Mailbox
from mailbot.intake.parse import content_sha256, header_message_id, msgid_hash
from mailbot.models import FetchFailure, MailboxState, RawMessage
from mailbot.redact import redact_cpr
from mailbot.vocabulary import Incident, LedgerState
from mailbot.watchdog import HEARTBEAT

log = logging.getLogger(__name__)

# A UID whose FETCH failed this many times, in as many sweeps, is recorded as quarantined
# without its body and not fetched again (SCENARIOS I10). One failure can be a dropped
# connection; three in a row, while the other UIDs of the same sweeps come, are that mail.
FETCH_ATTEMPTS = 3


@dataclass
class Intake:
    """What one ingest did: `stored` mails recorded (fetched, or quarantined unread), and how
    many new UIDs are `waiting` for the next batch (imap.batch_size)."""

    stored: int = 0
    waiting: int = 0


@dataclass(frozen=True)
class _Known:
    """The newest ledger row of a UID (its highest generation)."""

    generation: int
    left: bool  # the ledger moved the mail out of the folder (or saw it gone)


def remember_uidvalidity(bot: Bot, mailbox: Mailbox) -> bool:
    """Record the folder's UIDVALIDITY and the sweep time; a change is logged (SCENARIOS I1).
    Returns True when this database had never seen the folder."""
    folder = mailbox.settings.folder
    with transaction(bot.engine) as session:
        state = session.get(MailboxState, folder)
        if state is not None and state.uidvalidity != mailbox.uidvalidity:
            # I1: no mass re-processing; the Message-ID/hash check in `handle` skips known mail.
            bot.alerts.raise_in(session, Incident.UIDVALIDITY_CHANGED,
                                f"UIDVALIDITY of {folder} changed from {state.uidvalidity} to "
                                f"{mailbox.uidvalidity}; re-scanning by Message-ID and content",
                                bot.clock.now())
        session.merge(MailboxState(folder=folder, uidvalidity=mailbox.uidvalidity,
                                   last_sweep_at=bot.clock.now()))
    return state is None


def record_existing(bot: Bot, mailbox: Mailbox) -> int:
    """The first sweep with `imap.start_from = "now"`: every mail already in the folder is
    recorded in the ledger as `ignored` (not downloaded, not answered, left where it is), so
    connecting a mailbox with years of mail does not answer old briefs. Returns how many."""
    folder, uidvalidity = mailbox.settings.folder, mailbox.uidvalidity
    uids = mailbox.all_uids()
    # the Message-ID (a header fetch, no body) lets a later UIDVALIDITY change recognise
    # this mail as known (SCENARIOS I1) instead of answering it
    prints = mailbox.fingerprints(uids) if uids else {}
    now = bot.clock.now()
    with transaction(bot.engine) as session:
        for uid in uids:
            found = prints.get(uid)
            message_id = found.message_id if found else ""
            key = (msgid_hash(message_id, b"") if message_id else hashlib.sha256(
                f"existing:{folder}:{uidvalidity}:{uid}".encode()).hexdigest())
            session.add(RawMessage(
                folder=folder, uidvalidity=uidvalidity, uid=uid, message_id=message_id,
                msgid_hash=key, raw_sha256="", content_sha256="",
                size=found.size if found else 0, fetched_at=now,
                state=LedgerState.IGNORED, target_folder=folder, moved_at=now,
                reason='in the folder before mailbot first watched it (imap.start_from = "now"); '
                       "not read, not answered, left in place"))
    if uids:
        log.warning("first sweep of %s: %d mails already there are recorded, not answered "
                    '(imap.start_from = "now")', folder, len(uids))
    return len(uids)


def ingest(bot: Bot, mailbox: Mailbox, limit: int | None = None) -> Intake:
    """Store the mails of the folder the ledger does not know yet, at most `limit` of them
    (oldest UID first; imap.batch_size), so a sweep holds a bounded number of mails before
    they are processed and moved. A mail over `imap.max_message_mb` is recorded as
    quarantined without being downloaded; a UID whose FETCH keeps failing too (I10).

    A UID the ledger knows but moved out of the folder, found in the folder again under the
    same UIDVALIDITY, carries another mail (RFC 3501 section 2.3.1.1 forbids reusing a UID;
    SCENARIOS I2): it is stored as the next generation of that UID, with an alert, and the
    hash de-duplication (`earlier_copy`) keeps a known mail from opening a second case."""
    folder, uidvalidity = mailbox.settings.folder, mailbox.uidvalidity
    uids = mailbox.all_uids()
    if not uids:
        return Intake()
    known = _known(bot, folder, uidvalidity, uids[0])
    generations = {uid: 0 for uid in uids if uid not in known}
    generations.update(_reused(mailbox, known, [u for u in uids if u in known and known[u].left]))
    todo = sorted(generations)
    batch = todo if limit is None else todo[:limit]
    intake = Intake(waiting=len(todo) - len(batch))
    if not batch:
        return intake
    size_limit = int(mailbox.settings.max_message_mb * 1024 * 1024)
    sizes = mailbox.sizes(batch)
    oversize = [uid for uid in batch if sizes.get(uid, 0) > size_limit]
    for uid in oversize:
        _store_oversize(bot, folder, uidvalidity, uid, sizes[uid], size_limit,
                        generations[uid])
    wanted = [uid for uid in batch if uid not in oversize]
    for fetched in mailbox.fetch(wanted):
        HEARTBEAT.beat()  # a chunk arrived: a large batch is progress, not a stuck loop
        _store(bot, folder, uidvalidity, fetched.mails, generations)
        intake.stored += len(fetched.mails)
        intake.stored += _fetch_failed(bot, folder, uidvalidity, fetched.failed, generations)
    intake.stored += len(oversize)
    return intake


def _known(bot: Bot, folder: str, uidvalidity: int, lowest: int) -> dict[int, _Known]:
    """The newest row of every UID from `lowest` on in this folder and UIDVALIDITY."""
    with Session(bot.engine) as session:
        # sqlalchemy's select: sqlmodel's takes at most four columns
        found = session.execute(
            sa_select(col(RawMessage.uid), col(RawMessage.generation),
                      col(RawMessage.moved_at), col(RawMessage.target_folder))
            .where(col(RawMessage.folder) == folder,
                   col(RawMessage.uidvalidity) == uidvalidity, col(RawMessage.uid) >= lowest)
            .order_by(col(RawMessage.uid), col(RawMessage.generation))
        ).all()
    return {uid: _Known(generation, moved_at is not None and target != folder)
            for uid, generation, moved_at, target in found}


def _reused(mailbox: Mailbox, known: dict[int, _Known], present: list[int]) -> dict[int, int]:
    """Of the UIDs the ledger moved away that are in the folder again, those to fetch again,
    with the generation to store them under. Normally `present` is empty: a moved UID is
    gone for good. A mail flagged \\Deleted is left alone: a server without UIDPLUS keeps
    our moved mail that way (I5). Any other is fetched, even when its Message-ID and size
    are those of the mail the ledger moved (a restored folder): the content hash then makes
    it a `duplicate`, and it leaves the folder like any handled mail."""
    if not present:
        return {}
    return {uid: known[uid].generation + 1
            for uid, seen in mailbox.fingerprints(present).items() if not seen.deleted}


def _store(bot: Bot, folder: str, uidvalidity: int, chunk: list[FetchedMail],
           generations: dict[int, int] | None = None) -> None:
    """Raw bytes on disk (fsync'd) first, then the ledger rows in one commit. A mail on a
    reused UID (generation > 0, SCENARIOS I2) is recorded as such and alerted."""
    generations = generations or {}
    digests = [bot.blobs.put(fetched.raw) for fetched in chunk]
    crash_point("after_fetch")
    now = bot.clock.now()
    with transaction(bot.engine) as session:
        for fetched, raw_sha in zip(chunk, digests, strict=True):
            message_id = header_message_id(fetched.raw)
            generation = generations.get(fetched.uid, 0)
            anomaly = "" if not generation else (
                f"UID {fetched.uid} reused under UIDVALIDITY {uidvalidity}: the ledger had "
                f"moved another mail with this UID out of {folder} (RFC 3501 section "
                "2.3.1.1 forbids reuse)")
            session.add(RawMessage(
                folder=folder, uidvalidity=uidvalidity, uid=fetched.uid, generation=generation,
                message_id=message_id, msgid_hash=msgid_hash(message_id, fetched.raw),
                raw_sha256=raw_sha, content_sha256=content_sha256(fetched.raw),
                size=len(fetched.raw), internaldate=fetched.internaldate, fetched_at=now,
                imap_anomaly=anomaly,
            ))
            if anomaly:
                bot.alerts.raise_in(session, Incident.MAILBOX_ANOMALY,
                                    f"{anomaly}; stored as generation {generation} "
                                    f"({message_id or 'no Message-ID'}) and de-duplicated by "
                                    "Message-ID and content", now)
            log.info("stored UID %s %s (%d bytes)", fetched.uid,
                     message_id or "<no Message-ID>", len(fetched.raw))


def _fetch_failed(bot: Bot, folder: str, uidvalidity: int, failed: dict[int, str],
                  generations: dict[int, int]) -> int:
    """Count a failed FETCH per UID (SCENARIOS I10); at FETCH_ATTEMPTS the UID is recorded
    as quarantined without its body (moved to the quarantine folder like any quarantined
    mail) and the operator is alerted. Returns how many UIDs were quarantined now."""
    if not failed:
        return 0
    now, quarantined = bot.clock.now(), 0
    with transaction(bot.engine) as session:
        for uid, error in failed.items():
            row = session.get(FetchFailure, (folder, uidvalidity, uid)) or FetchFailure(
                folder=folder, uidvalidity=uidvalidity, uid=uid, last_at=now)
            row.attempts += 1
            row.last_error, row.last_at = redact_cpr(error)[:2000], now
            session.add(row)
            log.warning("FETCH of UID %s in %s failed (%d of %d): %s", uid, folder,
                        row.attempts, FETCH_ATTEMPTS, error)
            if row.attempts < FETCH_ATTEMPTS:
                continue
            reason = f"FETCH failed {row.attempts} times: {error}"
            marker = hashlib.sha256(f"fetch-failed:{folder}:{uidvalidity}:{uid}:"
                                    f"{generations.get(uid, 0)}".encode()).hexdigest()
            session.add(RawMessage(
                folder=folder, uidvalidity=uidvalidity, uid=uid,
                generation=generations.get(uid, 0), msgid_hash=marker, raw_sha256="",
                content_sha256="", size=0, fetched_at=now, state=LedgerState.QUARANTINED,
                target_folder=_folders(bot)[1], reason=redact_cpr(reason)[:2000]))
            bot.alerts.raise_in(session, Incident.FETCH_FAILING,
                                f"UID {uid} in {folder}: {reason}; moved to "
                                f"{_folders(bot)[1]} unread, the other mails go on", now)
            quarantined += 1
    metrics.ingested("", LedgerState.QUARANTINED, quarantined)  # never read: no kind
    return quarantined


def _store_oversize(bot: Bot, folder: str, uidvalidity: int, uid: int, size: int,
                    limit: int, generation: int = 0) -> None:
    """I11: the body is never downloaded; the mail goes to quarantine with the reason."""
    marker = hashlib.sha256(
        f"oversize:{folder}:{uidvalidity}:{uid}:{generation}".encode()).hexdigest()
    with transaction(bot.engine) as session:
        session.add(RawMessage(
            folder=folder, uidvalidity=uidvalidity, uid=uid, generation=generation,
            msgid_hash=marker,
            raw_sha256="", content_sha256="", size=size, fetched_at=bot.clock.now(),
            state=LedgerState.QUARANTINED, target_folder=_folders(bot)[1],
            reason=f"message of {size} bytes exceeds imap.max_message_mb ({limit} bytes)",
        ))
    log.warning("UID %s quarantined unread: %s bytes > %s", uid, size, limit)
    metrics.ingested("", LedgerState.QUARANTINED)


def move_done(bot: Bot, mailbox: Mailbox) -> int:
    """Touch the mailbox only after the commit: move every handled mail still in the folder.

    A UID the server did not move (absent from COPYUID, RFC 4315 section 3) was removed by
    another client first (SCENARIOS I6): the row is marked with `imap_anomaly`, never moved
    again, and the operator alerted. When the mail sits in our own target folder more often
    than we put it there, another mailbot with another database handles this mailbox (C2):
    a critical alert, and mail to applicants paused (the circuit breaker) so that nobody is
    answered twice."""
    with Session(bot.engine) as session:
        rows = list(session.exec(
            select(RawMessage).where(
                RawMessage.folder == mailbox.settings.folder,
                RawMessage.uidvalidity == mailbox.uidvalidity,
                RawMessage.state != LedgerState.RECEIVED,
                col(RawMessage.moved_at).is_(None),
            ).order_by(col(RawMessage.id))
        ).all())
    by_folder: dict[str, list[RawMessage]] = {}
    for row in rows:
        by_folder.setdefault(row.target_folder, []).append(row)
    for folder, group in by_folder.items():
        moved = mailbox.move([row.uid for row in group], folder)
        gone = [] if moved is None else [row for row in group if row.uid not in moved]
        elsewhere = [row for row in gone if _handled_by_another(bot, mailbox, folder, row)]
        with transaction(bot.engine) as session:
            now = bot.clock.now()
            for row in group:
                row.moved_at = now
                if row in gone:
                    _not_moved_by_me(session, bot, row, folder, row in elsewhere, now)
                session.add(row)
            if gone:
                _alert_gone(session, bot, mailbox.settings.folder, folder, gone, elsewhere, now)
    return len(rows)


def _handled_by_another(bot: Bot, mailbox: Mailbox, folder: str, row: RawMessage) -> bool:
    """Whether `folder` holds this mail more often than this ledger moved it there: then
    something that moves mail where we do (another mailbot) took it (SCENARIOS C2)."""
    if not row.message_id:
        return False
    found = mailbox.count_message_id(folder, row.message_id)
    with Session(bot.engine) as session:
        ours = session.exec(select(func.count()).select_from(RawMessage).where(
            RawMessage.message_id == row.message_id, RawMessage.target_folder == folder,
            col(RawMessage.moved_at).is_not(None), RawMessage.imap_anomaly == "")).one()
    return found > int(ours)


def _not_moved_by_me(session: Session, bot: Bot, row: RawMessage, folder: str,
                     by_another: bool, now: datetime) -> None:
    who = ("another program moved it into " + folder + " (another mailbot?)" if by_another
           else "another client removed it first")
    row.imap_anomaly = (f"not moved by mailbot: UID MOVE of UID {row.uid} answered OK without "
                        f"COPYUID for it (RFC 6851, RFC 4315); {who}")
    record(session, row.case_id, row.id, now, "moved_by_other", row.imap_anomaly,
           source_key=f"moved_by_other:{row.id}")
    log.warning("raw message %s (UID %s): %s", row.id, row.uid, row.imap_anomaly)


def _alert_gone(session: Session, bot: Bot, watched: str, folder: str, gone: list[RawMessage],
                elsewhere: list[RawMessage], now: datetime) -> None:
    uids = ", ".join(str(row.uid) for row in gone)
    if elsewhere:
        detail = (f"UIDs {uids} of {watched}, handled by this mailbot, were moved into {folder} "
                  "by someone else: another mailbot with its own database is answering this "
                  "mailbox (not supported). Mail to applicants is paused until `mailbot outbox "
                  "resume`")
        log.critical("event=%s %s", Incident.ANOTHER_INSTANCE.value, detail)
        bot.sender.breaker.open(session, f"another mailbot answers {watched} (UIDs {uids})",
                                now)
        bot.alerts.raise_in(session, Incident.ANOTHER_INSTANCE, detail, now)
        return
    bot.alerts.raise_in(session, Incident.MAILBOX_ANOMALY,
                        f"UIDs {uids} of {watched} were gone before mailbot moved them to "
                        f"{folder} (UID MOVE answered OK without COPYUID for them): another "
                        "client moved or deleted them; their outcome stands, nothing was "
                        "claimed twice", now)


def count_attempt(bot: Bot, raw_id: int) -> int:
    """Count an attempt and commit it BEFORE the work, so a mail that kills the process is
    still counted (SCENARIOS R9); returns the attempts so far. One statement, UPDATE ...
    RETURNING (SQLite 3.35+, PostgreSQL): the count is raised in the database, not read and
    written back. Raises sqlalchemy.exc.NoResultFound when there is no such row."""
    with transaction(bot.engine) as session:
        counted = session.execute(
            update(RawMessage).where(col(RawMessage.id) == raw_id)
            .values(attempts=col(RawMessage.attempts) + 1).returning(col(RawMessage.attempts))
            .execution_options(synchronize_session=False))
        return int(counted.scalar_one())


def forget_attempt(bot: Bot, raw_id: int) -> None:
    """Take back the attempt count_attempt counted when the work failed on the database or
    the disk, not on the mail (SCENARIOS R10, R11). Best effort: when storage refuses this
    too, the count stays one higher (logged); a mail is still parsed up to MAX_ATTEMPTS times."""
    try:
        with transaction(bot.engine) as session:
            row = session.get(RawMessage, raw_id)
            if row is not None and row.attempts > 0:
                row.attempts -= 1
                session.add(row)
    except Exception as err:  # the storage trouble the caller is about to report
        log.warning("raw message %s: the failed attempt could not be taken back (%s)",
                    raw_id, type(err).__name__)


def quarantine(bot: Bot, raw_id: int, reason: str, poison: bool = False) -> LedgerState:
    """Mark the mail quarantined with `reason` (own transaction); it is moved later. `poison`:
    it failed or killed the process again and again, which the operator is alerted about."""
    with transaction(bot.engine) as session:
        row = session.get(RawMessage, raw_id)
        assert row is not None
        finish(row, LedgerState.QUARANTINED, reason, bot)
        record(session, None, raw_id, bot.clock.now(), "quarantined", reason,
               source_key=f"quarantined:{raw_id}")
        session.add(row)
        if poison:
            bot.alerts.raise_in(session, Incident.POISON_MAIL,
                                f"raw message {raw_id} ({row.message_id or 'no Message-ID'}, "
                                f"UID {row.uid} in {row.folder}): {reason}", bot.clock.now())
    log.warning("raw message %s (%s) quarantined: %s", raw_id, row.message_id, reason)
    metrics.ingested(row.kind, LedgerState.QUARANTINED)
    return LedgerState.QUARANTINED


def finish(row: RawMessage, state: LedgerState, reason: str, bot: Bot, kind: str = "") -> None:
    """Set the mail's outcome (CPR redacted in the reason) and the folder it moves to."""
    processed, quarantine_folder = _folders(bot)
    row.state = state
    row.reason = redact_cpr(reason)[:2000]
    row.kind = kind or row.kind
    row.target_folder = quarantine_folder if state == LedgerState.QUARANTINED else processed


def earlier_copy(session: Session, row: RawMessage) -> RawMessage | None:
    """R5: same Message-ID and same content = one mail delivered twice. R7: same Message-ID
    with different content is a broken sender, not a duplicate; both are kept. A mail that
    was in the folder before mailbot watched it was recorded by its Message-ID alone
    (record_existing, never downloaded): the same Message-ID is that mail, seen again after
    a UIDVALIDITY change (I1)."""
    handled = [LedgerState.PROCESSED, LedgerState.IGNORED, LedgerState.DUPLICATE]
    earlier = session.exec(
        select(RawMessage).where(RawMessage.msgid_hash == row.msgid_hash,
                                 RawMessage.id != row.id, col(RawMessage.state).in_(handled))
        .order_by(col(RawMessage.id))
    ).all()
    for other in earlier:
        if other.content_sha256 == row.content_sha256 or other.raw_sha256 == row.raw_sha256:
            return other
        if other.raw_sha256 == "" and other.state == LedgerState.IGNORED and row.message_id:
            return other  # recorded unread by record_existing: known by its Message-ID
    if earlier:
        record(session, None, row.id, as_utc(row.fetched_at), "conflicting_message_id",
               f"Message-ID {row.message_id} already seen with other content")
    return None


def _folders(bot: Bot) -> tuple[str, str]:
    return bot.settings.imap.processed_folder, bot.settings.imap.quarantine_folder
