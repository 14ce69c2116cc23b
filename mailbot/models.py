"""Database tables. Every schema change gets an alembic migration in mailbot/migrations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, ColumnElement, LargeBinary, UniqueConstraint, and_
from sqlmodel import Field, SQLModel, col

from mailbot.vocabulary import LedgerState


class MailboxState(SQLModel, table=True):
    """What the bot last saw of a watched folder (I1: a new UIDVALIDITY is noticed)."""

    __tablename__ = "mailbox_state"
    folder: str = Field(primary_key=True)
    uidvalidity: int
    last_sweep_at: datetime | None = None


class RawMessage(SQLModel, table=True):
    """The ledger: one row per (folder, UIDVALIDITY, UID, generation) ever fetched, stored
    before any work. `generation` is 0 unless the server gave a UID the ledger knows to another
    mail under the same UIDVALIDITY, which RFC 3501 section 2.3.1.1 forbids (SCENARIOS I2): the
    new mail is then stored as the next generation of that UID."""

    __tablename__ = "raw_message"
    __table_args__ = (UniqueConstraint("folder", "uidvalidity", "uid", "generation",
                                       name="uq_raw_message_uid_generation"),)
    id: int | None = Field(default=None, primary_key=True)
    folder: str
    uidvalidity: int
    uid: int
    generation: int = 0
    message_id: str = ""
    msgid_hash: str = Field(index=True)
    raw_sha256: str = Field(index=True)
    content_sha256: str
    size: int
    internaldate: datetime | None = None
    fetched_at: datetime
    # received -> processed | ignored | duplicate | quarantined
    state: str = Field(default="received", index=True)
    attempts: int = 0
    kind: str = ""
    reason: str = ""
    sender: str = ""
    subject: str = ""
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    duplicate_of: int | None = None
    target_folder: str = ""
    moved_at: datetime | None = None
    # what the mailbox did that it should not have (SCENARIOS I2, I6, C2): a reused UID, a
    # mail that was gone before our UID MOVE; "" when nothing
    imap_anomaly: str = ""
    # retention or erasure (mailbot.privacy): the blob reference and the content fields were
    # dropped at purged_at; the copy in the Processed/Quarantine folder was deleted (or found
    # gone) at imap_removed_at, which a later run retries while it is None
    purged_at: datetime | None = None
    imap_removed_at: datetime | None = None


def still_quarantined() -> ColumnElement[bool]:
    """WHERE clause of the mails that are quarantined now: state `quarantined` and not deleted
    (`mailbot quarantine delete` and retention keep a tombstone in that state with
    purged_at set; a released mail is `released`). Health, metrics and `quarantine list`
    count these."""
    return and_(col(RawMessage.state) == LedgerState.QUARANTINED,
                col(RawMessage.purged_at).is_(None))


class FetchFailure(SQLModel, table=True):
    """A UID whose FETCH failed (SCENARIOS I10): counted per try; after
    mailbot.intake.ledger.FETCH_ATTEMPTS tries the UID is recorded in the ledger as
    quarantined and not fetched again."""

    __tablename__ = "fetch_failure"
    folder: str = Field(primary_key=True)
    uidvalidity: int = Field(primary_key=True)
    uid: int = Field(primary_key=True)
    attempts: int = 0
    last_error: str = ""
    last_at: datetime


class CaseCounter(SQLModel, table=True):
    """Per-year counter so references are ITP-<year>-<n>, never reused."""

    __tablename__ = "case_counter"
    year: int = Field(primary_key=True)
    last_number: int = 0


class Case(SQLModel, table=True):
    __tablename__ = "case"
    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(unique=True, index=True)
    applicant_address: str = Field(index=True)
    applicant_name: str = ""
    title: str
    status: str = "received"
    language: str = "da"
    created_at: datetime
    updated_at: datetime
    thread_message_id: str = ""
    answers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    missing: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # kind -> the applicant's declaration that it is not needed, with the reason
    # questions whose answer was read from unlabelled prose: the receipt asks the applicant to
    # correct them, and a labelled answer in a follow-up replaces them (cases.followup)
    from_prose: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False,
                                                                           server_default="[]"))
    not_applicable: dict[str, str] = Field(default_factory=dict,
                                           sa_column=Column(JSON, nullable=False))
    strategic: bool = False
    strategic_reason: str = ""
    # "digitaliseringsprojekt" | "it-projekt" | None (not settled); the reason (the cue and
    # the applicant's words, or the secretary's line); who set it: "proposed" | "secretary"
    project_type: str | None = None
    project_type_reason: str = ""
    project_type_source: str = ""
    sbsys_number: str | None = None
    system_owner: str | None = None
    # mailbot.vocabulary.OwnerSource, and the words the agenda shows beside the owner
    # ("fundet i KITOS: RuteNet, rolle Systemejer", "systemejer ikke slået op (KITOS svarede 403)")
    system_owner_source: str = Field(default="", sa_column_kwargs={"server_default": ""})
    system_owner_note: str = Field(default="", sa_column_kwargs={"server_default": ""})
    system_owner_checked_at: datetime | None = None  # the last KITOS lookup, found or not
    # normalised `when` ({start, end, precision, text}) and `cost` ({amounts, payer})
    when: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    cost: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    applicant_reminded_at: datetime | None = None
    subject: str = ""  # the brief's subject (CPR redacted): every mail of the thread uses it
    ready_at: datetime | None = None  # nothing missing and every review approved
    meeting_date: date | None = None  # the meeting whose agenda it is on
    decision: str | None = None  # approved | rejected | postponed | forwarded | withdrawn
    decision_text: str = ""
    decided_at: datetime | None = None
    # the council's two phases (`[council] phases = 2`): "guidance" until every role has
    # answered (guidance_given_at) or the applicant declared the case ready (klarmeldt_at),
    # then "final"; documents received from then on are final versions
    phase: str = "guidance"
    guidance_given_at: datetime | None = None
    klarmeldt_at: datetime | None = None
    # personal data removed (retention `case_days`, or erasure of its applicant)
    anonymised_at: datetime | None = None


class CaseDocument(SQLModel, table=True):
    __tablename__ = "case_document"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    raw_message_id: int = Field(foreign_key="raw_message.id")
    filename: str
    kind: str
    content_type: str = ""
    size: int = 0
    blob_sha256: str
    version: int = 1
    received_at: datetime
    note: str = ""  # how the kind was found, or why it is `other`
    purged_at: datetime | None = None  # its blob reference dropped (mailbot.privacy)
    # what makes the file dangerous or unreadable (mailbot.vocabulary.Hazard), "" for none
    hazard: str = ""
    # held back (issue #13 item 4): never forwarded, never counted as a document (kind
    # `other`); kept as the record. A file refused by a per-mail cap (too_many, too_large)
    # is not stored at all: its blob_sha256 is "" (the raw mail still holds its bytes)
    held: bool = False


class CaseEvent(SQLModel, table=True):
    """The audit trail. source_key makes an event idempotent (one per inbound mail and kind)."""

    __tablename__ = "case_event"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    raw_message_id: int | None = Field(default=None, foreign_key="raw_message.id")
    at: datetime
    kind: str
    detail: str = ""
    source_key: str | None = Field(default=None, unique=True)


class Outbox(SQLModel, table=True):
    """A mail to send, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    kind: str
    message_id: str = Field(unique=True)
    # at_most_once: an applicant never gets a receipt twice (a crash after 250 -> "uncertain");
    # at_least_once: resent with the same Message-ID after such a crash.
    delivery: str = "at_most_once"
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    subject: str = ""
    # pending -> sending -> sent | failed | uncertain
    state: str = Field(default="pending", index=True)
    attempts: int = 0
    created_at: datetime
    next_attempt_at: datetime
    lease_owner: str = ""
    lease_until: datetime | None = None
    # set (committed) just before the final "." of DATA: a `sending` row without it died
    # before the server could have the mail, so it is safe to send again (SCENARIOS O1/O7)
    data_at: datetime | None = None
    sent_at: datetime | None = None
    # the operator's last `mailbot outbox retry`: smtp.give_up_hours counts from it
    retried_at: datetime | None = None
    last_error: str = ""
    results: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Review(SQLModel, table=True):
    """One request to one reviewer role for one version of its documents."""

    __tablename__ = "review"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    role: str
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    document_kinds: list[str] = Field(default_factory=list,
                                      sa_column=Column(JSON, nullable=False))
    documents: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    request_message_id: str = ""
    # requested -> answered | superseded; asked_back after one unclear answer
    state: str = Field(default="requested", index=True)
    verdict: str | None = None
    comment: str = ""
    answered_by: str = ""
    requested_at: datetime
    answered_at: datetime | None = None
    reminders_sent: int = 0
    last_reminder_at: datetime | None = None
    secretary_told_at: datetime | None = None
    asked_back_at: datetime | None = None


class Guidance(SQLModel, table=True):
    """A reviewer's comment waiting to be relayed to the applicant (batched)."""

    __tablename__ = "guidance"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    review_id: int = Field(foreign_key="review.id")
    created_at: datetime
    relayed_at: datetime | None = Field(default=None, index=True)
    # the verdict that completed the guidance (two phases): its relay says so and how to
    # klarmelde
    completes_guidance: bool = False
    # the reviewer's verdict and words as they were when this item was queued: a second
    # reply to the same request replaces the review's, and each must be relayed as written
    verdict: str = ""
    comment: str = ""


class Agenda(SQLModel, table=True):
    """One row per meeting and version: the unique key makes the agenda go out exactly once."""

    __tablename__ = "agenda"
    __table_args__ = (UniqueConstraint("meeting_date", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    meeting_date: date = Field(index=True)
    version: int = 1  # 2, 3, ... for updated agendas after late additions
    message_id: str
    case_refs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    waiting_refs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime


class Installation(SQLModel, table=True):
    """One row: when the daemon first ran here. An agenda whose deadline passed before that
    is never sent (a fresh install does not mail last week's agenda)."""

    __tablename__ = "installation"
    id: int = Field(default=1, primary_key=True)
    first_run_at: datetime


class CircuitBreaker(SQLModel, table=True):
    """One row: the brake on mail to applicants (SCENARIOS L6). Open: applicant mail waits in
    the outbox until the operator runs `mailbot outbox resume`."""

    __tablename__ = "circuit_breaker"
    id: int = Field(default=1, primary_key=True)
    opened_at: datetime | None = None  # None: closed
    reason: str = ""
    resumed_at: datetime | None = None  # mail sent before this does not count again


class KitosLookup(SQLModel, table=True):
    """What KITOS said about one normalised system name (mailbot.council.owner), kept for
    `kitos.cache_hours`, so a day's cases about one system ask KITOS once."""

    __tablename__ = "kitos_lookup"
    name: str = Field(primary_key=True)  # normalised: "økonomisystem"
    looked_up_at: datetime
    system: str = ""  # the global system name of the usage found; "" none
    owner: str = ""  # its owners, "Name (email)" joined by ", "; "" none


class Alert(SQLModel, table=True):
    """One row per kind of incident (`mailbot.vocabulary.Incident`): when it last happened and
    when the operator was last mailed about it, so one incident is one mail, not a flood."""

    __tablename__ = "alert"
    kind: str = Field(primary_key=True)
    last_at: datetime
    detail: str = ""  # the latest occurrence's detail (CPR redacted)
    mailed_at: datetime | None = None
    since_mail: int = 0  # occurrences after the last mail, told in the next one


class ServiceState(SQLModel, table=True):
    """One row: what the sweeping process (the daemon or `run --once`) last saw of the
    mailbox, so `mailbot health` judges the same with or without a daemon (issue #14).
    Written once per sweep and once per IMAP connect or failure, never more."""

    __tablename__ = "service_state"
    id: int = Field(default=1, primary_key=True)
    last_sweep_at: datetime | None = None  # the end of the last sweep that completed
    sweep_seconds: float = 0.0  # how long that sweep took
    imap_state: str = ""  # mailbot.vocabulary.ImapState; "" never connected
    imap_since: datetime | None = None  # when imap_state began
    imap_detail: str = ""  # the last error, for a state other than connected


class Leadership(SQLModel, table=True):
    """One row: the process that holds the leader lock (mailbot.leadership) and since when,
    written when it takes the lock and deleted when it lets go, so `mailbot status` can name
    it. A row left by a killed leader is stale: readers check it against the lock itself."""

    __tablename__ = "leadership"
    id: int = Field(default=1, primary_key=True)
    holder: str  # "mailbot HOST:PID", also the lock connection's application_name
    host: str
    pid: int
    since: datetime  # UTC, when it took the lock


# -- shared by every host on the database (issue #15, H3) ------------------------------------
class Blob(SQLModel, table=True):
    """Raw mail and attachments with `bot.blob_store = "database"` (mailbot.blobs.
    DatabaseBlobStore): content-addressed like the file store, so every host on the database
    reads what any host stored, without a shared disk."""

    __tablename__ = "blob"
    sha256: str = Field(primary_key=True, max_length=64)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int  # len(data), bytes: what `mailbot health` and an operator can sum cheaply
    stored_at: datetime  # when the first host stored it
    touched_at: datetime  # the last put() of the same bytes (retention's grace)


class BotSecret(SQLModel, table=True):
    """The signing secret when `bot.secret` is not configured: generated once by whichever
    host comes first, read by all (mailbot.app.load_secret). One row, name "signing"."""

    __tablename__ = "bot_secret"
    name: str = Field(primary_key=True)
    value: str  # hex, as data_dir/secret held it before issue #15
    created_at: datetime
