"""The ledger: every mail fetched is stored (raw bytes, fsync'd) and recorded before any
work, each attempt is counted before it starts, and a handled mail is moved out of the
watched folder only after its outcome is committed (DESIGN.md section 2, SCENARIOS R1-R9).
"""

from __future__ import annotations

import hashlib
import logging

from sqlmodel import Session, col, select

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.clock import as_utc
from mailbot.db import transaction
from mailbot.faults import crash_point
from mailbot.intake.mailbox import FetchedMail, Mailbox
from mailbot.intake.parse import content_sha256, header_message_id, msgid_hash
from mailbot.models import MailboxState, RawMessage
from mailbot.redact import redact_cpr
from mailbot.vocabulary import Incident, LedgerState

log = logging.getLogger(__name__)


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
    sizes = mailbox.sizes(uids) if uids else {}
    now = bot.clock.now()
    with transaction(bot.engine) as session:
        for uid in uids:
            marker = hashlib.sha256(f"existing:{folder}:{uidvalidity}:{uid}".encode()).hexdigest()
            session.add(RawMessage(
                folder=folder, uidvalidity=uidvalidity, uid=uid, msgid_hash=marker,
                raw_sha256="", content_sha256="", size=sizes.get(uid, 0), fetched_at=now,
                state=LedgerState.IGNORED, target_folder=folder, moved_at=now,
                reason='in the folder before mailbot first watched it (imap.start_from = "now"); '
                       "not read, not answered, left in place"))
    if uids:
        log.warning("first sweep of %s: %d mails already there are recorded, not answered "
                    '(imap.start_from = "now")', folder, len(uids))
    return len(uids)


def ingest(bot: Bot, mailbox: Mailbox) -> int:
    """Store every mail of the folder the ledger does not know yet; returns how many. A mail
    over `imap.max_message_mb` is recorded as quarantined without being downloaded."""
    folder, uidvalidity = mailbox.settings.folder, mailbox.uidvalidity
    uids = mailbox.all_uids()
    if not uids:
        return 0
    with Session(bot.engine) as session:
        known = set(session.exec(
            select(RawMessage.uid).where(RawMessage.folder == folder,
                                         RawMessage.uidvalidity == uidvalidity,
                                         col(RawMessage.uid) >= uids[0])
        ).all())
    new = [uid for uid in uids if uid not in known]
    if not new:
        return 0
    limit = int(mailbox.settings.max_message_mb * 1024 * 1024)
    sizes = mailbox.sizes(new)
    oversize = [uid for uid in new if sizes.get(uid, 0) > limit]
    for uid in oversize:
        _store_oversize(bot, folder, uidvalidity, uid, sizes[uid], limit)
    wanted = [uid for uid in new if uid not in oversize]
    count = 0
    for chunk in mailbox.fetch(wanted):
        _store(bot, folder, uidvalidity, chunk)
        count += len(chunk)
    return count + len(oversize)


def _store(bot: Bot, folder: str, uidvalidity: int, chunk: list[FetchedMail]) -> None:
    """Raw bytes on disk (fsync'd) first, then the ledger rows in one commit."""
    digests = [bot.blobs.put(fetched.raw) for fetched in chunk]
    crash_point("after_fetch")
    now = bot.clock.now()
    with transaction(bot.engine) as session:
        for fetched, raw_sha in zip(chunk, digests, strict=True):
            message_id = header_message_id(fetched.raw)
            session.add(RawMessage(
                folder=folder, uidvalidity=uidvalidity, uid=fetched.uid, message_id=message_id,
                msgid_hash=msgid_hash(message_id, fetched.raw), raw_sha256=raw_sha,
                content_sha256=content_sha256(fetched.raw), size=len(fetched.raw),
                internaldate=fetched.internaldate, fetched_at=now,
            ))
            log.info("stored UID %s %s (%d bytes)", fetched.uid,
                     message_id or "<no Message-ID>", len(fetched.raw))


def _store_oversize(bot: Bot, folder: str, uidvalidity: int, uid: int, size: int,
                    limit: int) -> None:
    """I11: the body is never downloaded; the mail goes to quarantine with the reason."""
    marker = hashlib.sha256(f"oversize:{folder}:{uidvalidity}:{uid}".encode()).hexdigest()
    with transaction(bot.engine) as session:
        session.add(RawMessage(
            folder=folder, uidvalidity=uidvalidity, uid=uid, msgid_hash=marker,
            raw_sha256="", content_sha256="", size=size, fetched_at=bot.clock.now(),
            state=LedgerState.QUARANTINED, target_folder=_folders(bot)[1],
            reason=f"message of {size} bytes exceeds imap.max_message_mb ({limit} bytes)",
        ))
    log.warning("UID %s quarantined unread: %s bytes > %s", uid, size, limit)


def move_done(bot: Bot, mailbox: Mailbox) -> int:
    """Touch the mailbox only after the commit: move every handled mail still in the folder."""
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
        mailbox.move([row.uid for row in group], folder)
        with transaction(bot.engine) as session:
            for row in group:
                row.moved_at = bot.clock.now()
                session.add(row)
    return len(rows)


def count_attempt(bot: Bot, raw_id: int) -> int:
    """Count an attempt and commit it BEFORE the work, so a mail that kills the process is
    still counted (SCENARIOS R9); returns the attempts so far."""
    with transaction(bot.engine) as session:
        row = session.get(RawMessage, raw_id)
        assert row is not None
        row.attempts += 1
        session.add(row)
        return row.attempts


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
    with different content is a broken sender, not a duplicate; both are kept."""
    handled = [LedgerState.PROCESSED, LedgerState.IGNORED, LedgerState.DUPLICATE]
    earlier = session.exec(
        select(RawMessage).where(RawMessage.msgid_hash == row.msgid_hash,
                                 RawMessage.id != row.id, col(RawMessage.state).in_(handled))
        .order_by(col(RawMessage.id))
    ).all()
    for other in earlier:
        if other.content_sha256 == row.content_sha256 or other.raw_sha256 == row.raw_sha256:
            return other
    if earlier:
        record(session, None, row.id, as_utc(row.fetched_at), "conflicting_message_id",
               f"Message-ID {row.message_id} already seen with other content")
    return None


def _folders(bot: Bot) -> tuple[str, str]:
    return bot.settings.imap.processed_folder, bot.settings.imap.quarantine_folder
