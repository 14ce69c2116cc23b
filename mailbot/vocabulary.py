"""The words mailbot's records use, in one place: case, ledger, outbox and review states,
verdicts, decisions, reviewer roles, the purposes of outgoing mail (with their RFC 3834
`Auto-Submitted` label), the case status transitions, and the shapes of the normalised
`when` / `cost` answers.

Every value is a `StrEnum`, so it is stored in the database and compared with plain strings
exactly as before (`CaseStatus.QUEUED == "queued"`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypedDict


class CaseStatus(StrEnum):
    """Where a case stands. Changed only through `advance` (the transition table below)."""

    RECEIVED = "received"  # the model's default before a brief is read
    INCOMPLETE = "incomplete"  # an answer or a required document is missing
    COMPLETE = "complete"  # nothing missing; reviews may still be open
    # `[council] phases = 2` only (the council's page: guidance first, then klarmelding):
    GUIDED = "guided"  # "vejledning givet": every role answered, nothing missing for guidance
    KLARMELDT = "klarmeldt"  # declared ready, but something is missing for final approval
    QUEUED = "queued"  # ready, on the agenda of `Case.meeting_date`
    DECIDED = "decided"  # the council decided (approved, rejected, forwarded)
    WITHDRAWN = "withdrawn"  # the applicant withdrew it


OPEN_STATUSES = (CaseStatus.INCOMPLETE, CaseStatus.COMPLETE, CaseStatus.GUIDED,
                 CaseStatus.KLARMELDT, CaseStatus.QUEUED)

# The only case status changes there are (from -> allowed to). A decided or withdrawn case
# never reopens by itself. With two phases a queued case whose final version a reviewer
# rejects before its agenda went out goes back to klarmeldt (with one phase: to complete).
TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.RECEIVED: frozenset({CaseStatus.INCOMPLETE, CaseStatus.COMPLETE}),
    CaseStatus.INCOMPLETE: frozenset({CaseStatus.COMPLETE, CaseStatus.KLARMELDT,
                                      CaseStatus.QUEUED, CaseStatus.DECIDED,
                                      CaseStatus.WITHDRAWN}),
    CaseStatus.COMPLETE: frozenset({CaseStatus.INCOMPLETE, CaseStatus.GUIDED,
                                    CaseStatus.KLARMELDT, CaseStatus.QUEUED,
                                    CaseStatus.DECIDED, CaseStatus.WITHDRAWN}),
    CaseStatus.GUIDED: frozenset({CaseStatus.KLARMELDT, CaseStatus.QUEUED, CaseStatus.DECIDED,
                                  CaseStatus.WITHDRAWN}),
    CaseStatus.KLARMELDT: frozenset({CaseStatus.QUEUED, CaseStatus.DECIDED,
                                     CaseStatus.WITHDRAWN}),
    CaseStatus.QUEUED: frozenset({CaseStatus.COMPLETE, CaseStatus.KLARMELDT,
                                  CaseStatus.DECIDED, CaseStatus.WITHDRAWN}),
    CaseStatus.DECIDED: frozenset(),
    CaseStatus.WITHDRAWN: frozenset(),
}


class Phase(StrEnum):
    """The council's two phases (`Case.phase`, used with `[council] phases = 2`): reviews of
    the drafts are guidance; from guidance given or the klarmelding on, documents are final
    versions for final approval."""

    GUIDANCE = "guidance"
    FINAL = "final"


class InvalidTransition(ValueError):
    """A case status change the transition table does not allow (a bug, not bad input)."""


def check_transition(current: str, new: CaseStatus) -> CaseStatus:
    """`new` when it is `current` or `current -> new` is in TRANSITIONS; raises
    InvalidTransition otherwise."""
    if new != current and new not in TRANSITIONS[CaseStatus(current)]:
        raise InvalidTransition(f"case status {current} -> {new} is not allowed")
    return new


class OwnerSource(StrEnum):
    """Where a case's system owner came from (`Case.system_owner_source`; mailbot.council.owner).
    """

    NOT_LOOKED_UP = ""  # the owner job has not been at the case yet
    BRIEF = "brief"  # a labelled "Systemejer: ..." in the brief
    APPLICANT = "applicant"  # a labelled "Systemejer: ..." in a later mail of the applicant
    KITOS = "kitos"  # the holder of `kitos.owner_role` on the system's usage in KITOS
    NEW_SYSTEM = "new_system"  # the brief says the system is new: KITOS is not asked
    NOT_FOUND = "not_found"  # no usage of the system in KITOS, or one without an owner
    KITOS_ERROR = "kitos_error"  # KITOS could not be asked (tried again later)
    KITOS_DISABLED = "kitos_disabled"  # `[kitos] enabled = false`


class LedgerState(StrEnum):
    """A fetched mail in the ledger (`raw_message.state`)."""

    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    # the operator released a quarantined mail (`mailbot quarantine release`, mailbot.admin):
    # its copy went back to the watched folder, where it arrives again as a new ledger row
    RELEASED = "released"


class OutboxState(StrEnum):
    """An outgoing mail (`outbox.state`): pending -> sending -> sent | failed | uncertain;
    the operator (`mailbot outbox retry|cancel`, mailbot.admin) turns failed or uncertain
    back to pending, or pending, failed or uncertain into cancelled (never sent)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    CANCELLED = "cancelled"


# Not sent and not being sent: what the operator may cancel (mailbot.admin) and what a case
# that is over cancels of its mail to reviewers (council.decisions.cancel_reviewer_mail).
UNSENT = (OutboxState.PENDING, OutboxState.FAILED, OutboxState.UNCERTAIN)


class ImapState(StrEnum):
    """The IMAP connection as the sweeping process last found it (`service_state.imap_state`,
    read by mailbot.health). Written when it changes, not at every sweep."""

    CONNECTED = "connected"  # the last login worked (`run --once` has logged out since)
    UNREACHABLE = "unreachable"  # the server is away or dropped us: retried by itself
    REFUSED = "refused"  # the login is refused: only the operator can fix it


class Delivery(StrEnum):
    """What a crash between the server's 250 and our commit does to an outbox row."""

    AT_MOST_ONCE = "at_most_once"  # marked uncertain, never resent (mail to applicants)
    AT_LEAST_ONCE = "at_least_once"  # resent with the same Message-ID (reviewers, the board)


class ReviewState(StrEnum):
    REQUESTED = "requested"
    ANSWERED = "answered"
    SUPERSEDED = "superseded"  # a newer version of the documents went out


class Verdict(StrEnum):
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"
    REJECTED = "rejected"
    UNCLEAR = "unclear"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    POSTPONED = "postponed"
    FORWARDED = "forwarded"  # approved and sent on to the strategic board (SIT / Chefforum)
    WITHDRAWN = "withdrawn"  # by the applicant, not the council


class ProjectType(StrEnum):
    """The municipality's two kinds of project (its page on the IT-Projektråd): new
    technology that changes how the municipality works, what it delivers or how; or new
    versions, updates, hardware and systems without such a change."""

    DIGITALISATION = "digitaliseringsprojekt"
    IT = "it-projekt"


class ProjectTypeSource(StrEnum):
    """Who set `Case.project_type`: the bot's proposal from the brief, or the secretary."""

    PROPOSED = "proposed"
    SECRETARY = "secretary"


class Role(StrEnum):
    """Reviewer roles; their addresses are `[reviewers]` in the config."""

    IT_OPERATIONS = "it_operations"
    IT_ARCHITECT = "it_architect"
    CONTRACT_MANAGER = "contract_manager"
    SECURITY_COORDINATOR = "security_coordinator"


class AutoSubmitted(StrEnum):
    """RFC 3834 section 5: `auto-replied` for a direct answer to a person's mail,
    `auto-generated` for mail the bot starts itself."""

    REPLIED = "auto-replied"
    GENERATED = "auto-generated"


class Purpose(StrEnum):
    """Why the bot sends a mail; stored as `outbox.kind` and in the signed Message-ID."""

    RECEIPT = "receipt"  # the ONE answer to a new brief
    STATUS = "status"  # answer to "status?"
    UPDATE = "update"  # answer to the applicant's follow-up (new answers or documents)
    # answer to a klarmelding (or a later mail on a klarmeldt case) that still misses
    # something for final approval: ONE list of it (two phases)
    KLARMELDING = "klarmelding"
    ASK_BACK = "askback"  # answer to an unclear verdict
    UNMAPPED = "unmapped"  # answer to the secretary: decision lines that could not be read
    REVIEW = "review"
    REMIND = "remind"  # a late reviewer
    REMINDER = "reminder"  # an applicant whose case still misses something
    GUIDANCE = "guidance"
    ATTENTION = "attention"  # the secretary must look at something
    MEETING = "meeting"  # the case is on an agenda (or moved)
    AGENDA = "agenda"
    DECISION = "decision"
    BOARD = "board"  # the bundle for the strategic board
    ALERT = "alert"  # the operator must act (mailbot.alerts)
    ENCRYPTED = "encrypted"  # answer to encrypted S/MIME: we cannot read it, send it plainly

    @property
    def auto_submitted(self) -> AutoSubmitted:
        return AutoSubmitted.REPLIED if self in _DIRECT_ANSWERS else AutoSubmitted.GENERATED


# The mails that go to the case's reviewers (council.reviews, council.reminders): they ask
# for work, so none goes out about a decided or withdrawn case (mailbot.admin).
TO_REVIEWERS = frozenset({Purpose.REVIEW, Purpose.REMIND})

_DIRECT_ANSWERS = frozenset({Purpose.RECEIPT, Purpose.STATUS, Purpose.UPDATE,
                             Purpose.KLARMELDING, Purpose.ASK_BACK, Purpose.UNMAPPED,
                             Purpose.ENCRYPTED})


class Incident(StrEnum):
    """A kind of trouble the operator must hear about (issue #10, item 7): the stable
    `event=` name in the ERROR log line and the kind of the alert mail to `[operator]`."""

    POISON_MAIL = "poison_mail"  # a mail quarantined after it failed or killed the process
    IMAP_LOGIN_FAILING = "imap_login_failing"
    OUTBOX_FAILURES = "outbox_failures"  # a mail failed for good or became uncertain
    SMTP_FAILING = "smtp_failing"  # the SMTP server away for long, or refusing login / TLS
    CIRCUIT_BREAKER_OPEN = "circuit_breaker_open"
    UIDVALIDITY_CHANGED = "uidvalidity_changed"
    STORAGE_TROUBLE = "storage_trouble"  # the database or the disk refuses to store mail
    FETCH_FAILING = "fetch_failing"  # one UID the IMAP client cannot fetch (SCENARIOS I10)
    MAILBOX_ANOMALY = "mailbox_anomaly"  # a reused UID, mail moved by someone else (I2, I6)
    # critical: a mail this instance handled was moved into its own target folder by someone
    # else, i.e. another mailbot with another database answers the same mailbox (C2)
    ANOTHER_INSTANCE = "another_instance"


class PrivacyEvent(StrEnum):
    """The audit events of retention and the data subject's rights (mailbot.privacy;
    `case_event.kind`). Their detail holds counts and case refs, never content or an
    address."""

    RETENTION_PURGE = "retention_purge"  # one run of the retention job that removed something
    RETENTION_IMAP_FAILED = "retention_imap_failed"  # the mailbox could not be reached
    GDPR_EXPORT = "gdpr_export"  # an access export (Art. 15) was written
    GDPR_ERASE = "gdpr_erase"  # an erasure (Art. 17) was carried out


class PurgeKind(StrEnum):
    """What retention removes (`[retention]`), counted per kind in its report."""

    CASE_MAIL = "case_mail"  # raw mail of a decided or withdrawn case (raw_days)
    DOCUMENT = "document"  # an attachment of such a case (raw_days)
    SENT_MAIL = "sent_mail"  # the copy of a mail the bot sent about such a case (raw_days)
    MACHINE_MAIL = "machine_mail"  # quarantined mail and mail with no case (machine_days)
    CASE = "case"  # a decided or withdrawn case anonymised (case_days)


class Hazard(StrEnum):
    """Why an attachment may hurt or cannot be read (issue #13 item 4, SCENARIOS F3-F6):
    stored on `CaseDocument.hazard`; the applicant's words are rules/labels.yaml
    `attachments`. Every hazard but MACRO (under `[attachments] macros = "warn"`) holds the
    file back: not forwarded, and it never counts as the document its name names."""

    MACRO = "macro"  # VBA: a vbaProject.bin part (OOXML) or a VBA storage (OLE)
    ENCRYPTED = "encrypted"  # password-protected PDF, ZIP or Office file
    EXECUTABLE = "executable"  # a program or script, by its bytes or its name
    MISMATCH = "mismatch"  # the bytes are not the type the name promises
    UNREADABLE = "unreadable"  # an Office file that must not be opened (bomb, DTD/entities)
    TOO_MANY = "too_many"  # beyond `[attachments] max_count` in one mail
    TOO_LARGE = "too_large"  # beyond `[attachments] max_total_mb` in one mail


class MacroPolicy(StrEnum):
    """`[attachments] macros`: what a file with macros gets."""

    WARN = "warn"  # classified and forwarded, with a visible warning
    QUARANTINE = "quarantine"  # held: not forwarded, the applicant asked for another version


class WhenDict(TypedDict):
    """The normalised `Hvornår` answer (`Case.when`); dates are ISO `YYYY-MM-DD`."""

    start: str
    end: str
    precision: str  # day | month | quarter | half | year | ...
    text: str  # the applicant's own words


class AmountDict(TypedDict, total=False):
    """One amount of the `Hvor meget` answer, in whole Danish kroner."""

    dkk: int
    recurrence: str  # one_off | yearly | monthly | total_over_period
    vat: str  # excl | incl | unknown
    years: int | None  # for total_over_period
    text: str


class CostDict(TypedDict):
    """The normalised `Hvor meget` answer (`Case.cost`)."""

    amounts: list[AmountDict]
    payer: str | None
