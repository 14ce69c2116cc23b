"""The operator's corrections (`mailbot outbox retry|cancel`, `mailbot quarantine
release|delete`, `mailbot document --kind`, `mailbot case --withdraw`): each one change in one
transaction with its audit event (`case_event`), refused with a ConfigError (source
"command line", the argument, the fix) when the row is not in a state it may change from.

Rows the running daemon also changes (outbox rows, quarantined mail) are changed with a
conditional UPDATE (`... WHERE state IN (...)`, mailbot.db.rows_changed): the daemon's
sender claims a row the same way (delivery.outbox.Sender._start), so whichever commits
first wins and the other changes nothing. README "Admin commands" says which command may run
beside the daemon and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.cases.documents import OTHER, all_documents, latest_documents, relabel
from mailbot.cases.followup import missing_items
from mailbot.cases.lookup import find_case
from mailbot.cases.opening import completeness
from mailbot.db import rows_changed, transaction
from mailbot.errors import COMMAND_LINE, ConfigError
from mailbot.models import Case, CaseDocument, Outbox, RawMessage, Review, still_quarantined
from mailbot.vocabulary import (
    OPEN_STATUSES,
    TO_REVIEWERS,
    UNSENT,
    CaseStatus,
    LedgerState,
    OutboxState,
    Purpose,
    ReviewState,
    check_transition,
)

OPERATOR = "the operator (command line)"
RETRYABLE = (OutboxState.FAILED, OutboxState.UNCERTAIN)
CANCELLABLE = UNSENT


def refused(key: str, problem: str, fix: str) -> ConfigError:
    """An operator's command that cannot be done: `command line: [KEY] problem. Fix: fix`."""
    return ConfigError(COMMAND_LINE, key, problem, fix)


# -- outbox -----------------------------------------------------------------------------------
def outbox_row(session: Session, row_id: int) -> Outbox:
    """The outbox row `row_id`. Raises ConfigError (key ID) when there is none."""
    row = session.get(Outbox, row_id)
    if row is None:
        raise refused("ID", f"there is no outbox row {row_id}",
                      "`mailbot outbox list` lists them (the id column)")
    return row


def _not_now(row: Outbox, verb: str, allowed: tuple[OutboxState, ...]) -> ConfigError:
    """Why `verb` (retry, cancel) cannot change the row in its state."""
    if row.state == OutboxState.SENDING:
        return refused("ID", f"outbox row {row.id} is being sent right now (state sending, "
                       f"leased by {row.lease_owner or 'the daemon'})",
                       f"wait for the attempt to end, then `mailbot outbox show {row.id}`")
    names = ", ".join(allowed[:-1]) + f" or {allowed[-1]}"
    done = {"retry": "retried", "cancel": "cancelled"}[verb]
    return refused("ID", f"outbox row {row.id} is {row.state}: only a {names} row can be "
                   f"{done}", f"`mailbot outbox show {row.id}` shows it; there is nothing to "
                   f"{verb}")


def retry_outbox(engine: Engine, row_id: int, now: datetime, not_delivered: bool = False
                 ) -> tuple[Outbox, str]:
    """Put a failed or uncertain row back to `pending`, due now; returns (row, its state
    before). The recipients that already accepted it (2xx) keep their result and are not
    sent to again; the others are tried anew, and smtp.give_up_hours counts from now
    (`retried_at`).

    An `uncertain` row may have been delivered (the connection broke after the final "." of
    DATA, RFC 5321 4.1.1.4), and mailbot never sends a mail twice by itself: it is retried
    only with `not_delivered` (the operator checked that it did not arrive). Raises
    ConfigError: no such row, a row in another state (`sending`: the daemon is sending it),
    uncertain without `not_delivered`, or a row the daemon changed meanwhile."""
    with transaction(engine) as session:
        row = outbox_row(session, row_id)
        before = row.state
        if before == OutboxState.UNCERTAIN and not not_delivered:
            raise refused("--not-delivered", f"outbox row {row_id} is uncertain: the SMTP "
                          "server may have delivered it already, and a mail is never sent "
                          "twice by itself",
                          f"search the SMTP server's log for {row.message_id} or ask the "
                          "recipient; if it did not arrive, run `mailbot outbox retry "
                          f"{row_id} --not-delivered`")
        if before not in RETRYABLE:
            raise _not_now(row, "retry", RETRYABLE)
        _refuse_reviewer_mail_of_a_closed_case(session, row)
        accepted = {r: v for r, v in row.results.items() if str(v).startswith("2")}
        why = f"retried by {OPERATOR}; it was {before}: {row.last_error}"[:2000]
        _change(session, row, before, state=OutboxState.PENDING, next_attempt_at=now,
                retried_at=now, lease_until=None, data_at=None, results=accepted,
                last_error=why)
        record(session, row.case_id, None, now, "outbox_retried",
               f"{row.kind} {row.message_id}: {before} -> pending by {OPERATOR}"
               + ("; the operator checked that it was not delivered (--not-delivered)"
                  if before == OutboxState.UNCERTAIN else ""))
        session.refresh(row)
        return row, before


def _refuse_reviewer_mail_of_a_closed_case(session: Session, row: Outbox) -> None:
    """A review request or reminder (vocabulary.TO_REVIEWERS) about a decided or withdrawn
    case must not go out: it asks a reviewer to work on a case that is over. Raises
    ConfigError naming the case, its status and `outbox cancel`."""
    if row.kind not in TO_REVIEWERS or row.case_id is None:
        return
    case = session.get(Case, row.case_id)
    if case is None or case.status in OPEN_STATUSES:
        return
    raise refused("ID", f"outbox row {row.id} is a {row.kind} mail to reviewers of {case.ref}, "
                  f"and {case.ref} is {case.status}: no reviewer is asked about a case that "
                  "is over", f"`mailbot outbox cancel {row.id}`")


def cancel_outbox(engine: Engine, row_id: int, now: datetime) -> tuple[Outbox, str]:
    """Make a pending, failed or uncertain row `cancelled`: it is never sent (again). Returns
    (row, its state before). Raises ConfigError as retry_outbox does."""
    with transaction(engine) as session:
        row = outbox_row(session, row_id)
        before = row.state
        if before not in CANCELLABLE:
            raise _not_now(row, "cancel", CANCELLABLE)
        _change(session, row, before, state=OutboxState.CANCELLED, lease_until=None,
                last_error=f"cancelled by {OPERATOR}; it was {before}: {row.last_error}"[:2000])
        record(session, row.case_id, None, now, "outbox_cancelled",
               f"{row.kind} {row.message_id}: {before} -> cancelled by {OPERATOR}; "
               "never sent")
        session.refresh(row)
        return row, before


def waiting_review(session: Session, row: Outbox) -> Review | None:
    """The review still waiting for an answer whose request `row` is (a `review` row), or
    None. After `outbox cancel` it waits on: the reviewer never got the request, so no
    answer can come, and council.reminders no longer reminds them of it."""
    if row.kind != Purpose.REVIEW:
        return None
    return session.exec(select(Review).where(
        Review.request_message_id == row.message_id,
        Review.state == ReviewState.REQUESTED)).first()


def _change(session: Session, row: Outbox, before: str, **values: object) -> None:
    """UPDATE the row only while it is still in `before`. Raises ConfigError when the daemon
    changed it first (its sender claimed a pending row, say)."""
    changed = rows_changed(session, update(Outbox).where(
        col(Outbox.id) == row.id, col(Outbox.state) == before).values(**values))
    if changed != 1:
        raise refused("ID", f"outbox row {row.id} changed while this command ran (it was "
                      f"{before})", f"`mailbot outbox show {row.id}`, then try again")


# -- quarantine -------------------------------------------------------------------------------
def quarantined(session: Session) -> list[RawMessage]:
    """The quarantined mails not deleted, newest first."""
    return list(session.exec(select(RawMessage).where(still_quarantined())
        .order_by(col(RawMessage.id).desc())).all())


_LIST_FIX = "`mailbot quarantine list` lists the quarantined mails (the id column)"


def quarantine_record(session: Session, raw_id: int) -> RawMessage:
    """The mail `raw_id` if it is or was quarantined: quarantined, released, or a deleted
    quarantined mail's tombstone (`quarantine show` reads them all). Raises ConfigError (key
    ID) when there is no such row or it never was quarantined."""
    row = session.get(RawMessage, raw_id)
    if row is None:
        raise refused("ID", f"there is no mail {raw_id} in the ledger", _LIST_FIX)
    if row.state not in (LedgerState.QUARANTINED, LedgerState.RELEASED):
        raise refused("ID", f"mail {raw_id} is {row.state}, not quarantined", _LIST_FIX)
    return row


def quarantined_row(session: Session, raw_id: int) -> RawMessage:
    """The quarantined mail `raw_id` (its ledger row), to release or delete. Raises
    ConfigError (key ID) when there is no such row, it is not quarantined, or it was
    deleted."""
    row = quarantine_record(session, raw_id)
    if row.purged_at is not None:
        raise refused("ID", f"mail {raw_id} was deleted (its content is gone)", _LIST_FIX)
    if row.state != LedgerState.QUARANTINED:
        raise refused("ID", f"mail {raw_id} is {row.state}, not quarantined", _LIST_FIX)
    return row


@dataclass(frozen=True)
class Copy:
    """Where a quarantined mail's IMAP copy is: `folder`, found by (Message-ID, size)."""

    folder: str
    message_id: str
    size: int


def quarantine_copy(bot: Bot, row: RawMessage, action: str) -> Copy:
    """The IMAP copy of a quarantined mail, for `action` (release, delete). Raises
    ConfigError when mailbot cannot find it: not moved out of the watched folder yet, moved
    by someone else, or, to release it, without a Message-ID (the only way to tell it from
    other mail; a delete then leaves the copy to a person: Copy.message_id is "")."""
    folder = bot.settings.imap.quarantine_folder
    if row.moved_at is None:
        raise refused("ID", f"mail {row.id} is still in {row.folder}: the daemon moves it to "
                      f"{folder} at its next sweep", f"try `mailbot quarantine {action} "
                      f"{row.id}` again after that sweep (`mailbot run --once` makes one)")
    if row.imap_anomaly or row.target_folder != folder or row.imap_removed_at is not None:
        raise refused("ID", f"mail {row.id} has no copy in {folder} that mailbot put there "
                      f"({row.imap_anomaly or 'it is gone'})",
                      "look for it in the mailbox with a mail client")
    if not row.message_id and action == "release":
        raise refused("ID", f"mail {row.id} has no Message-ID, so its copy in {folder} "
                      "cannot be told from other mail", f"move it by hand in a mail client "
                      f"from {folder} to {row.folder}")
    # delete without a Message-ID: the ledger row is tombstoned all the same, and the
    # copy (message_id "") is left for a person (delete_quarantined says so)
    return Copy(folder, row.message_id, row.size)


def mark_released(bot: Bot, raw_id: int, now: datetime) -> RawMessage:
    """After its copy went back to the watched folder: the ledger row becomes `released`
    (its reason kept behind the release), with an audit event. The copy arrives there as a
    new mail with a new UID, so it gets a ledger row of its own: a new (folder,
    UIDVALIDITY, UID) key, attempts from 0 (pipeline.MAX_ATTEMPTS anew), and no Message-ID
    duplicate (ledger.earlier_copy counts only handled mail, and `released` is not handled).
    It is handled exactly once, as any new mail, and moved where such mail goes.
    `imap_removed_at` says the copy is no longer where this row put it, so retention never
    deletes the new row's copy for it (purge.purge_mail). Raises ConfigError when the row
    changed meanwhile."""
    with transaction(bot.engine) as session:
        row = quarantined_row(session, raw_id)
        changed = rows_changed(session, update(RawMessage).where(
            col(RawMessage.id) == raw_id, col(RawMessage.state) == LedgerState.QUARANTINED,
            col(RawMessage.purged_at).is_(None)).values(
            state=LedgerState.RELEASED, imap_removed_at=now,
            reason=f"released by {OPERATOR}; it was quarantined: {row.reason}"[:2000]))
        if changed != 1:
            raise refused("ID", f"mail {raw_id} changed while this command ran",
                          f"`mailbot quarantine show {raw_id}`")
        record(session, row.case_id, raw_id, now, "quarantine_released",
               f"mail {raw_id} (UID {row.uid}, {row.message_id or 'no Message-ID'}) released "
               f"by {OPERATOR}: its copy went from {bot.settings.imap.quarantine_folder} back "
               f"to {row.folder}, where it is read again as a new mail")
        session.refresh(row)
        return row


def delete_quarantined(bot: Bot, raw_id: int, now: datetime) -> tuple[RawMessage, str]:
    """Delete a quarantined mail's content: the ledger row stays as a tombstone (state,
    folder, UID, hashes, size, dates; mailbot.privacy.purge.purge_mail) with reason
    "deleted by the operator" and a `quarantine_deleted` event. Returns (row, the blob hash
    to release after the commit); the caller deletes the blob and the IMAP copy
    (purge.release, purge.remove_copies). Raises ConfigError as quarantined_row does."""
    from mailbot.privacy.purge import copy_folders, purge_mail

    with transaction(bot.engine) as session:
        row = quarantined_row(session, raw_id)
        changed = rows_changed(session, update(RawMessage).where(
            col(RawMessage.id) == raw_id, col(RawMessage.state) == LedgerState.QUARANTINED,
            col(RawMessage.purged_at).is_(None)).values(purged_at=now))
        if changed != 1:
            raise refused("ID", f"mail {raw_id} changed while this command ran",
                          "`mailbot messages --state quarantined`")
        session.refresh(row)
        uid, folder, size, findable = row.uid, row.folder, row.size, bool(row.message_id)
        sha = purge_mail(session, row, copy_folders(bot), now)
        row.reason = f"deleted by {OPERATOR}"
        session.add(row)
        quarantine = bot.settings.imap.quarantine_folder
        record(session, row.case_id, raw_id, now, "quarantine_deleted",
               f"mail {raw_id} (UID {uid} of {folder}, {size} bytes) deleted by {OPERATOR}: "
               + (f"its content, its stored file and its copy in {quarantine}" if findable
                  else f"its content and its stored file; it has no Message-ID, so its copy "
                  f"in {quarantine} is left for a person to delete in a mail client"))
        return row, sha


# -- cases ------------------------------------------------------------------------------------
def open_case(session: Session, ref: str, action: str) -> Case:
    """The case `ref`, still open. Raises ConfigError (key REF) for no such case, or one
    decided or withdrawn (`action` is what cannot be done to it)."""
    case = find_case(session, ref)
    if case is None:
        raise refused("REF", f"there is no case {ref}", "`mailbot cases` lists them")
    if case.status not in OPEN_STATUSES:
        raise refused("REF", f"{case.ref} is {case.status}: {action} only an open case",
                      f"`mailbot case {case.ref}` shows it")
    return case


def withdraw_case(bot: Bot, ref: str, now: datetime) -> tuple[Case, list[Outbox]]:
    """Withdraw an open case as the applicant's "træk tilbage" does (council.decisions
    .withdraw): off the agenda, no more reminders, its unsent mails to reviewers cancelled
    (returned), the applicant told in the decision mail, a `withdrawn` event. Raises
    ConfigError as open_case does."""
    from mailbot.council.decisions import withdraw

    with transaction(bot.engine) as session:
        case = open_case(session, ref, "withdraw")
        cancelled = withdraw(session, bot, case, now, f"by {OPERATOR}")
        return case, cancelled


_CORRECTED = f"kind set by {OPERATOR}; it was "
_FIRST_READ = "; first read as "


def _corrected_note(old: str, note: str) -> str:
    """The note of a document whose kind `old` the operator corrects: the latest correction
    and the reader's original reading, once (an earlier correction's note is not nested):
    "kind set by …; it was other: file name", then "kind set by …; it was contract_draft;
    first read as other: file name". Kinds are identifiers, never ":" or ";"."""
    if not note.startswith(_CORRECTED):
        return f"{_CORRECTED}{old}: {note}"
    head, _, original = note[len(_CORRECTED):].partition(": ")
    first = head.partition(_FIRST_READ)[2] or head
    return f"{_CORRECTED}{old}{_FIRST_READ}{first}: {original}"


@dataclass(frozen=True)
class KindChange:
    """What `mailbot document REF FILE --kind K` did."""

    case: Case
    document: CaseDocument
    old_kind: str
    missing_before: list[str]
    requested: list[Review]


def correct_kind(bot: Bot, ref: str, filename: str, kind: str, now: datetime) -> KindChange:
    """A person corrects a misread document's kind: the newest stored document named
    `filename` becomes `kind` (the next version of that kind, cases.documents.relabel), the
    case's missing list and status follow (as for the applicant's follow-up,
    cases.followup), and the reviewers of the new kind get it through the outbox as normal
    routing sends it (council.reviews.route); a `document_kind_corrected` event.
    Raises ConfigError: no open case, an unknown kind, no such document, a held one (never
    forwarded), or the kind it has already."""
    from mailbot.council.reviews import route

    kinds = [k.id for k in bot.rules.kinds] + [OTHER]
    if kind not in kinds:
        raise refused("--kind", f"{kind!r} is not a document kind",
                      f"use one of {', '.join(kinds)} (rules/documents.yaml)")
    with transaction(bot.engine) as session:
        case = open_case(session, ref, "correct a document of")
        assert case.id is not None
        document = _document(session, case, filename)
        if document.kind == kind:
            raise refused("--kind", f"{document.filename} is {kind} already",
                          "give the kind it should have")
        old, before = document.kind, list(case.missing)
        relabel(session, document, kind, _corrected_note(old, document.note))
        case.missing = missing_items(bot.rules, case,
                                     {d.kind for d in latest_documents(session, case.id)})
        if case.status in (CaseStatus.INCOMPLETE, CaseStatus.COMPLETE):
            case.status = check_transition(case.status, completeness(case.missing))
        case.updated_at = now
        session.add(case)
        requested = route(session, bot, case, now, corrected=True)
        record(session, case.id, document.raw_message_id, now, "document_kind_corrected",
               f"{document.filename}: {old} -> {kind} v{document.version} by {OPERATOR}; "
               f"missing: {', '.join(case.missing) or 'nothing'}; review requests: "
               f"{', '.join(r.role for r in requested) or 'none'}")
        return KindChange(case, document, old, before, requested)


def _document(session: Session, case: Case, filename: str) -> CaseDocument:
    """The newest document of the case named `filename` (as `mailbot case REF` shows it).
    Raises ConfigError when there is none, it is held, or its file was deleted."""
    assert case.id is not None
    stored = all_documents(session, case.id)
    named = [d for d in stored if d.filename == filename.strip()]
    if not named:
        names = ", ".join(sorted({d.filename for d in stored})) or "none"
        raise refused("FILENAME", f"{case.ref} has no document {filename!r} (its documents: "
                      f"{names})", f"give the name as `mailbot case {case.ref}` shows it")
    document = named[-1]
    if document.held:
        raise refused("FILENAME", f"{document.filename} is held ({document.hazard}): it is "
                      "never forwarded and counts as no document",
                      "ask the applicant for a version that can be opened")
    if document.purged_at is not None:
        raise refused("FILENAME", f"the file {document.filename} was deleted (retention)",
                      "ask the applicant to send it again")
    return document
