"""Reviewers by email: each role gets ONE request with exactly its documents; a reply counts
as a verdict only from the right sender answering our signed request.

Every function runs inside the caller's transaction and only adds rows (reviews, audit
events, outbox mails); nothing here talks to a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select, update

from mailbot.app import Bot
from mailbot.audit import record
from mailbot.blobs import BlobStorage
from mailbot.cases.documents import as_attachments, latest_documents
from mailbot.cases.mail import mail_about_case
from mailbot.cases.summary import document_lines
from mailbot.council.attention import tell_secretary
from mailbot.db import rows_changed
from mailbot.intake.parse import Inbound
from mailbot.models import Case, CaseDocument, Guidance, Outbox, Review
from mailbot.reading.replies import Verdict as VerdictReading
from mailbot.vocabulary import Delivery, OutboxState, Purpose, ReviewState, Role, Verdict


def role_addresses(bot: Bot, role: str) -> list[str]:
    """The `[reviewers]` addresses of a role, lower-cased."""
    return [a.lower() for a in getattr(bot.settings.reviewers, role)]


def reviews_of(session: Session, case_id: int) -> list[Review]:
    """Every review of the case, superseded ones included, oldest first."""
    return list(session.exec(select(Review).where(Review.case_id == case_id)
                             .order_by(col(Review.id))).all())


def current_reviews(session: Session, case_id: int) -> list[Review]:
    """The reviews that count: one per role, for the newest version of its documents."""
    return [r for r in reviews_of(session, case_id) if r.state != ReviewState.SUPERSEDED]


def review_state_label(bot: Bot, review: Review, language: str = "da") -> str:
    """`godkendt`, `afventer svar`, … from rules/labels.yaml."""
    return bot.rules.labels.get("review_states", review.verdict or "waiting", language)


# -- routing ------------------------------------------------------------------------------------
def route(session: Session, bot: Bot, case: Case, now: datetime, *,
          corrected: bool = False, at_hand: Mapping[str, bytes] | None = None
          ) -> list[Review]:
    """Send each role ONE request with exactly its documents, for every role whose documents
    are new or in a new version since its last request. An older review is superseded, and
    its request is cancelled when it has not gone out yet (one request per role in flight).
    `corrected`: the documents changed because a person corrected a kind
    (mailbot.admin.correct_kind), not because a new version came: the request says so
    instead of announcing a new version. `at_hand`: documents' bytes the caller holds
    already, by their SHA-256 (hex), used instead of reading the blob store again (the
    mail's own attachments: a 25 MB document is not held twice)."""
    created = []
    blobs = ReadOnce(bot.blobs, at_hand)  # a document two roles review is read once
    for role, kinds, mine, names, current in _due(session, bot, case):
        review = _request(session, bot, blobs, case, (role, kinds, mine, names), current,
                          now, corrected)
        if review is not None:
            created.append(review)
    return created


def requests_due(session: Session, bot: Bot, case: Case) -> bool:
    """Whether `route` would send at least one review request now (a role with documents
    to review and an address in [reviewers]); writes nothing. The receipt asks it before
    it is queued, so it goes out ahead of the review requests and still tells the truth."""
    return any(role_addresses(bot, due[0]) for due in _due(session, bot, case))


_Due = tuple[Role, list[str], list[CaseDocument], list[str], Review | None]


def _due(session: Session, bot: Bot, case: Case) -> list[_Due]:
    """(role, its kinds, its documents, their names with versions, its current review) for
    every role whose documents are new or in a new version since its last request."""
    assert case.id is not None
    documents = latest_documents(session, case.id)
    current_by_role = {r.role: r for r in current_reviews(session, case.id)}
    due: list[_Due] = []
    for role in Role:
        kinds = [k.id for k in bot.rules.kinds if role in k.reviewers]
        mine = [d for d in documents if d.kind in kinds]
        if not mine:
            continue
        names = sorted(f"{d.filename} (v{d.version})" for d in mine)
        current = current_by_role.get(role)
        if current is not None and sorted(current.documents) == names:
            continue
        due.append((role, kinds, mine, names, current))
    return due


def _request(session: Session, bot: Bot, blobs: BlobStorage, case: Case,
             due: tuple[Role, list[str], list[CaseDocument], list[str]],
             current: Review | None, now: datetime, corrected: bool) -> Review | None:
    assert case.id is not None
    role, kinds, mine, names = due
    recipients = role_addresses(bot, role)
    if not recipients:
        record(session, case.id, None, now, "review_unrouted",
               f"no address for reviewer role {role} in [reviewers]")
        return None
    if current is not None:
        current.state = ReviewState.SUPERSEDED
        session.add(current)
        why = "documents corrected by the operator, now" if corrected else "new version of"
        record(session, case.id, None, now, "review_superseded",
               f"{role}: {why} {', '.join(names)}")
        _cancel_unsent(session, case.id, current, now)
    review = Review(case_id=case.id, role=role, recipients=recipients,
                    document_kinds=kinds, documents=names, requested_at=now)
    session.add(review)
    session.flush()
    assert review.id is not None
    review.request_message_id = mail_about_case(
        session, bot, case, template="reviewer_request", purpose=Purpose.REVIEW,
        to=recipients, now=now, review=review.id, delivery=Delivery.AT_LEAST_ONCE,
        attachments=as_attachments(blobs, mine),
        context={**_request_context(bot, case, role, mine,
                                    superseded=current is not None and not corrected),
                 "corrected": current is not None and corrected},
    ).message_id
    record(session, case.id, None, now, "review_requested",
           f"{role} ({', '.join(recipients)}): {', '.join(names)}")
    return review


class ReadOnce:
    """A blob store whose `get` reads each blob once (for one routing of one case: the
    documents are immutable under their hash); everything else goes to `store`."""

    def __init__(self, store: BlobStorage, at_hand: Mapping[str, bytes] | None = None
                 ) -> None:
        self.store = store
        self._read: dict[str, bytes] = dict(at_hand or {})

    def get(self, sha256: str) -> bytes:
        """As BlobStorage.get: FileNotFoundError when there are none."""
        if sha256 not in self._read:
            self._read[sha256] = self.store.get(sha256)
        return self._read[sha256]

    def put(self, data: bytes) -> str:
        return self.store.put(data)

    def exists(self, sha256: str) -> bool:
        return self.store.exists(sha256)

    def remove_if_idle(self, sha256: str, now: datetime, idle_seconds: float) -> bool:
        return self.store.remove_if_idle(sha256, now, idle_seconds)


def _cancel_unsent(session: Session, case_id: int, review: Review, now: datetime) -> None:
    """The superseded `review`'s request is never sent when it has not gone out yet (pending
    or failed): the reviewer would get two requests, the first already void (issue #14 trial).
    A row the sender has claimed (sending) or sent is left as it is. An `outbox_cancelled`
    event, as `mailbot outbox cancel` writes."""
    unsent = (OutboxState.PENDING, OutboxState.FAILED)
    row = session.exec(select(Outbox).where(
        Outbox.message_id == review.request_message_id,
        col(Outbox.state).in_(unsent))).first()
    if row is None:
        return
    before = row.state
    changed = rows_changed(session, update(Outbox).where(
        col(Outbox.id) == row.id, col(Outbox.state) == before).values(
        state=OutboxState.CANCELLED, lease_until=None,
        last_error=f"superseded before it was sent; it was {before}: {row.last_error}"[:2000]))
    if changed == 1:
        record(session, case_id, None, now, "outbox_cancelled",
               f"{row.kind} {row.message_id}: {before} -> cancelled: its review request was "
               "superseded before it was sent")


def _request_context(bot: Bot, case: Case, role: str, documents: list[CaseDocument],
                     superseded: bool) -> dict[str, Any]:
    kinds = {d.kind for d in documents}
    declared = [{"title": bot.rules.title(kind), "declaration": text}
                for kind, text in case.not_applicable.items()
                if kind not in kinds and role in bot.rules.reviewers_of(kind)]
    return {"role_name": bot.rules.role_names[role],
            "documents": document_lines(bot.rules, documents, "da", case),
            "declared": declared, "new_version": superseded}


# -- replies ------------------------------------------------------------------------------------
def identity_problem(bot: Bot, review: Review, case: Case, mail: Inbound) -> str:
    """Why this reply may not count as the review's verdict ("" when it may).

    The signed id proves the mail answers our request; the From address must be the reviewer
    it was sent to or an address of that role. Reply-To is never identity (SCENARIOS A7)."""
    if review.case_id != case.id:
        return "the signed id names another case"
    sender = mail.from_address
    if not sender:
        return "no single, well-formed From address"
    allowed = {a.lower() for a in review.recipients} | set(role_addresses(bot, review.role))
    if sender not in allowed:
        return (f"reply to the {review.role} request came from {sender}, "
                f"not from the reviewer it was sent to")
    return ""


def apply_verdict(session: Session, bot: Bot, case: Case, review: Review,
                  verdict: VerdictReading, mail: Inbound, now: datetime) -> None:
    """Record the verdict and queue the comment as guidance; an unclear answer is asked back
    once, then goes to the secretary; an answer to a superseded request only is recorded."""
    if review.state == ReviewState.SUPERSEDED:
        record(session, case.id, None, now, "review_late",
               f"{review.role} answered a superseded request: {verdict.verdict}")
        return
    if verdict.verdict == Verdict.UNCLEAR:
        _unclear(session, bot, case, review, verdict, mail, now)
        return
    review.state, review.verdict = ReviewState.ANSWERED, verdict.verdict
    review.comment, review.answered_by, review.answered_at = remark(verdict), mail.from_address, now
    session.add(review)
    record(session, case.id, None, now, "verdict",
           f"{review.role} ({mail.from_address}): {verdict.verdict} ({verdict.phrase!r})")
    # with two phases a bare "Afvist" is relayed too: it keeps the case off the agenda, and
    # the applicant must hear why her case waits
    if review.comment or (verdict.verdict == Verdict.REJECTED
                          and bot.settings.council.phases == 2):
        assert review.id is not None and case.id is not None
        session.add(Guidance(case_id=case.id, review_id=review.id, created_at=now,
                             verdict=review.verdict or "", comment=review.comment))


def remark(verdict: VerdictReading) -> str:
    """The reviewer's own words, or "" when they hold nothing beyond the verdict itself
    (a bare "Godkendt." is not repeated to the applicant or on the agenda)."""
    rest = verdict.comment.replace(verdict.phrase, "", 1) if verdict.phrase else verdict.comment
    return verdict.comment.strip() if rest.strip(" .,;:!-–\r\n\t") else ""


def _unclear(session: Session, bot: Bot, case: Case, review: Review,
             verdict: VerdictReading, mail: Inbound, now: datetime) -> None:
    if review.asked_back_at is None:
        review.asked_back_at = now
        session.add(review)
        assert review.id is not None
        mail_about_case(session, bot, case, template="reviewer_ask_back",
                        purpose=Purpose.ASK_BACK, to=[mail.from_address], now=now,
                        review=review.id,
                        context={"role_name": bot.rules.role_names[review.role],
                                 "comment": verdict.comment[:1000]})
        record(session, case.id, None, now, "verdict_unclear",
               f"{review.role} ({mail.from_address}): asked back once")
        return
    review.comment = verdict.comment
    session.add(review)
    role = bot.rules.role_names[review.role]
    tell_secretary(session, bot, case, f"{review.role} answered twice without a clear verdict",
                   now, bot.rules.labels.get("attention", "unclear_twice").format(
                       role=role[:1].upper() + role[1:]), mail)
