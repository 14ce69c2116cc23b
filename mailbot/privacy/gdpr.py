"""The data subject's rights for one e-mail address: the access export (GDPR Art. 15,
`mailbot gdpr export`) and erasure (Art. 17, `mailbot gdpr erase`).

What mailbot holds about an address: cases where it is the applicant or the system owner,
reviews it was asked for or answered, mail from it (the ledger, raw mail and attachments in
the blob store), mail the bot sent to it (the outbox) and events that name it. The export
gives all of it and nothing about other people: other addresses, and the names of other
applicants, become `[anden person]` (rules/labels.yaml `privacy.other_person`) in the JSON,
the index, the headers of every mail, and the text of the mail the bot sent; the body and
attachments of a mail the person sent are their own data and stay as sent. After an
erasure the export finds nothing, and the address is in none of its files.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from mailbot.audit import record
from mailbot.clock import COPENHAGEN, as_utc
from mailbot.db import transaction
from mailbot.intake.parse import ADDRESS_PATTERN, display_name, split_header_block
from mailbot.intake.threads import is_own_message_id
from mailbot.models import (
    Alert,
    Case,
    CaseDocument,
    CaseEvent,
    Guidance,
    KitosLookup,
    Outbox,
    RawMessage,
    Review,
)
from mailbot.privacy.purge import (
    UNSENT,
    anonymise_case,
    copy_folders,
    purge_mail,
    purge_sent,
    relabel_results,
    release,
    remove_copies,
    waiting_copies,
)
from mailbot.vocabulary import (
    OPEN_STATUSES,
    CaseStatus,
    OutboxState,
    PrivacyEvent,
    check_transition,
)

if TYPE_CHECKING:
    from mailbot.app import Bot

# Headers that hold addresses: in an exported copy each address but the person's own (and
# the bot's) is replaced, its display name with it
_ADDRESS_HEADERS = frozenset({"to", "cc", "bcc", "reply-to", "sender", "resent-to",
                              "resent-cc", "resent-bcc", "resent-from", "resent-sender",
                              "delivered-to", "x-original-to", "return-path",
                              "disposition-notification-to"})
# Message-IDs look like addresses; they are kept as they are (threading, no person)
_ID_HEADERS = frozenset({"message-id", "in-reply-to", "references", "resent-message-id"})
_SENT_HEADERS = ("Date", "From", "To", "Cc", "Reply-To", "Subject", "Message-ID",
                 "In-Reply-To", "References", "Auto-Submitted")


def subject_key(bot: Bot, address: str) -> str:
    """A keyed hash of the address for the audit trail (HMAC-SHA256 with the bot's secret,
    16 hex digits): which request an event was for, without keeping the address."""
    return hmac.new(bot.secret, address.encode(), hashlib.sha256).hexdigest()[:16]


def normalised(address: str) -> str:
    """The address as mailbot stores it (lower case, no spaces)."""
    return address.strip().lower()


def exactly(address: str) -> re.Pattern[str]:
    """The address as a whole word in any case: `mette@k.dk` is not found inside
    `it-mette@k.dk` or `mette@k.dk.example` (parse.ADDRESS_PATTERN's characters bound it)."""
    return re.compile(rf"(?<![A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]){re.escape(address)}"
                      rf"(?![A-Za-z0-9-]|\.[A-Za-z0-9])", re.IGNORECASE)


# -- what is held ---------------------------------------------------------------------------
@dataclass
class Held:
    """What the database holds about one address. `roles`: case id -> the person's roles
    on it ("applicant", "system_owner", "reviewer:<role>", "sender", "recipient")."""

    address: str
    cases: dict[int, Case] = field(default_factory=dict)
    roles: dict[int, set[str]] = field(default_factory=dict)
    reviews: list[Review] = field(default_factory=list)
    mails: list[RawMessage] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # outbox ids: raw loaded one at a time
    events: list[CaseEvent] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.cases or self.reviews or self.mails or self.sent or self.events)


def find(session: Session, address: str) -> Held:
    """Everything about `address` (see the module docstring). Mail already purged by
    retention is not held any more and is not found."""
    held = Held(address)

    def role(case_id: int | None, name: str) -> None:
        if case_id is not None:
            held.roles.setdefault(case_id, set()).add(name)

    for case in session.exec(select(Case).where(func.lower(Case.applicant_address) == address)):
        role(case.id, "applicant")
    named = exactly(address)
    for case in session.exec(select(Case).where(col(Case.system_owner).ilike(f"%{address}%"))):
        if named.search(case.system_owner or ""):
            role(case.id, "system_owner")
    for review in session.exec(select(Review).order_by(col(Review.id))):
        if address in {normalised(r) for r in review.recipients} or \
                normalised(review.answered_by) == address:
            held.reviews.append(review)
            role(review.case_id, f"reviewer:{review.role}")
    held.mails = list(session.exec(select(RawMessage).where(
        func.lower(RawMessage.sender) == address, col(RawMessage.purged_at).is_(None))
        .order_by(col(RawMessage.id))).all())
    for mail in held.mails:
        role(mail.case_id, "sender")
    for outbox_id, case_id, recipients in session.execute(
            sa_select(col(Outbox.id), col(Outbox.case_id), col(Outbox.recipients))
            .order_by(col(Outbox.id))).all():
        if address in {normalised(r) for r in recipients}:
            held.sent.append(int(outbox_id))
            role(case_id, "recipient")
    for case_id in held.roles:
        found = session.get(Case, case_id)
        if found is not None:
            held.cases[case_id] = found
    own = [cid for cid, names in held.roles.items() if "applicant" in names]
    mail_ids = [m.id for m in held.mails]
    held.events = [event for event in session.exec(select(CaseEvent).where(
        col(CaseEvent.case_id).in_(own) | col(CaseEvent.raw_message_id).in_(mail_ids)
        | col(CaseEvent.detail).ilike(f"%{address}%")).order_by(col(CaseEvent.id))).all()
        if event.case_id in own or event.raw_message_id in mail_ids
        or named.search(event.detail)]
    return held


# -- hiding other people --------------------------------------------------------------------
@dataclass(frozen=True)
class Others:
    """Replaces every other person in a text: any address but `keep` and the bot's own
    Message-IDs (`<mb.…@bot_domain>`, threads.is_own_message_id: no person), and the known
    names of other people (applicants of cases this person is not the applicant of)."""

    keep: frozenset[str]
    names: tuple[str, ...]
    placeholder: str
    bot_domain: str = ""

    def _kept(self, found: str) -> bool:
        return found.lower() in self.keep or bool(
            self.bot_domain and is_own_message_id(f"<{found}>", self.bot_domain))

    def text(self, value: str) -> str:
        value = ADDRESS_PATTERN.sub(lambda m: m.group(0) if self._kept(m.group(0))
                             else self.placeholder, value)
        for name in self.names:
            value = re.sub(re.escape(name), self.placeholder, value, flags=re.IGNORECASE)
        return value

    def value(self, data: Any) -> Any:
        """`text` applied to every string in a JSON-like value."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {k: self.value(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.value(v) for v in data]
        return data

    def headers(self, raw: bytes) -> bytes:
        """The mail with its header block rewritten: in address headers every address but
        `keep` becomes the placeholder (its display name with it); other headers have
        `text` applied; Message-IDs stay. The body is untouched."""
        head, body = split_header_block(raw)
        newline = b"\r\n" if b"\r\n" in head else b"\n"
        fields: list[list[bytes]] = []
        for line in head.splitlines():
            if line[:1] in (b" ", b"\t") and fields:
                fields[-1].append(line)
            else:
                fields.append([line])
        out = [self._field(lines, newline) for lines in fields]
        return newline.join(out) + newline + newline + body

    def _field(self, lines: list[bytes], newline: bytes) -> bytes:
        text = newline.join(lines).decode("latin-1")
        name, colon, value = text.partition(":")
        key = name.strip().lower()
        if not colon or key in _ID_HEADERS:
            return text.encode("latin-1")
        if key in _ADDRESS_HEADERS:
            kept = [addr for _, addr in getaddresses([value]) if addr.lower() in self.keep]
            hidden = len(getaddresses([value])) - len(kept)
            shown = [*kept, *([self.placeholder] * min(hidden, 1))]
            return f"{name}: {', '.join(shown)}".encode("latin-1", "replace")
        return self.text(text).encode("latin-1", "replace")


def others_for(bot: Bot, held: Held) -> Others:
    """Who is hidden in this person's export: every address but theirs and the bot's, and
    the names of other applicants and of system owners on the cases found."""
    own = {cid for cid, names in held.roles.items() if "applicant" in names}
    mine = {c.applicant_name.lower() for cid, c in held.cases.items() if cid in own}
    names = {c.applicant_name for cid, c in held.cases.items() if cid not in own}
    for cid, case in held.cases.items():
        if case.system_owner and "system_owner" not in held.roles[cid]:
            # "Søren Ravn (soren@k.dk), Bo Hansen (bo@k.dk)": the names without addresses
            names |= {part.strip(" ()<>\"") for part in
                      ADDRESS_PATTERN.sub("", case.system_owner).split(",")}
    # a name of two letters would hide words, not people; the person's own name stays
    return Others(keep=frozenset({held.address, bot.address}),
                  names=tuple(sorted(n for n in names if len(n) > 2 and n.lower() not in mine)),
                  placeholder=bot.rules.labels.get("privacy", "other_person"),
                  bot_domain=bot.domain)


def _sent_copy(raw: bytes, others: Others) -> bytes:
    """A mail the bot sent, as exported: the listed headers and the text (plain and HTML)
    with other people hidden; attachments are left out (the documents of a case go to
    reviewers and the secretary; the person's own attachments are exported from their
    mail)."""
    msg = message_from_bytes(raw, policy=policy.default)
    out = EmailMessage(policy=SMTP)
    for name in _SENT_HEADERS:
        value = msg.get(name)
        if value is None:
            continue
        value = str(value)
        if name.lower() in _ADDRESS_HEADERS:
            kept = [a for _, a in getaddresses([value]) if a.lower() in others.keep]
            value = ", ".join(kept) or others.placeholder
        elif name.lower() not in _ID_HEADERS:
            value = others.text(value)
        out[name] = value
    plain = msg.get_body(("plain",)) if isinstance(msg, EmailMessage) else None
    html = msg.get_body(("html",)) if isinstance(msg, EmailMessage) else None
    out.set_content(others.text(_content(plain)))
    if html is not None:
        out.add_alternative(others.text(_content(html)), subtype="html")
    return out.as_bytes()


def _content(part: Any) -> str:
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        return ""


# -- export ---------------------------------------------------------------------------------
@dataclass
class Export:
    """The ZIP's bytes and what is in it (counts per kind)."""

    data: bytes
    counts: dict[str, int]


def export(bot: Bot, address: str, now: datetime) -> Export:
    """The access export of `address` (GDPR Art. 15) as a ZIP: `indeks.txt` (Danish: what
    each file is, dates, case refs), `data.json` (the same, machine-readable), `mails/`
    (the raw .eml of each mail from the address, other people's addresses in its headers
    hidden), `sendt/` (each mail the bot sent to it, text only, other people hidden),
    `bilag/` (the attachments of its mails). Member names go through
    parse.display_name. Nothing held: only the index, saying so. Writes a `gdpr_export`
    event with the counts (the address only as `subject_key`)."""
    address = normalised(address)
    zone = COPENHAGEN  # the council's time, as in every mail
    members: dict[str, bytes] = {}
    with Session(bot.engine) as session:
        held = find(session, address)
        others = others_for(bot, held)
        refs = {cid: case.ref for cid, case in held.cases.items()}
        mails = _mail_members(bot, held, others, refs, members, zone)
        sent = _sent_members(session, held, others, refs, members, zone)
        attachments = _attachment_members(bot, session, held, refs, members, zone)
        cases = [_case_data(session, case, held.roles[cid], address, others)
                 for cid, case in sorted(held.cases.items())]
        events = [{"case": refs.get(e.case_id or 0), "at": _when(e.at, zone), "kind": e.kind,
                   "detail": others.text(e.detail)} for e in held.events]
    data = {"created": _when(now, zone), "cases": cases, "mails_received": mails,
            "mails_sent": sent, "attachments": attachments, "events": events}
    counts = {"cases": len(cases), "mails_received": len(mails), "mails_sent": len(sent),
              "attachments": len(attachments), "events": len(events)}
    index = index_text(bot, data, counts)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("indeks.txt", index)
        if not held.empty:
            archive.writestr("data.json", json.dumps(data, ensure_ascii=False, indent=2))
        for name, content in members.items():
            archive.writestr(name, content)
    with transaction(bot.engine) as session:
        record(session, None, None, now, PrivacyEvent.GDPR_EXPORT,
               f"request {subject_key(bot, address)}: "
               + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return Export(buffer.getvalue(), counts)


def index_text(bot: Bot, data: dict[str, Any], counts: dict[str, int]) -> str:
    """`indeks.txt` of an export (templates/da/gdpr_index.txt.j2): `data` as in data.json.
    Raises ConfigError when the template is missing, jinja2 errors when it is broken."""
    return bot.renderer.render_one("da", "gdpr_index.txt.j2", {
        **data, "counts": counts, "bot_name": bot.settings.bot.name})


def _when(value: datetime | None, zone: Any) -> str | None:
    return None if value is None else as_utc(value).astimezone(zone).isoformat(
        timespec="minutes")


def _member(folder: str, stem: str) -> str:
    return f"{folder}/{display_name(stem) or 'fil'}"


def _mail_members(bot: Bot, held: Held, others: Others, refs: dict[int, str],
                  members: dict[str, bytes], zone: Any) -> list[dict[str, Any]]:
    out = []
    for mail in held.mails:
        ref = refs.get(mail.case_id or 0)
        entry = {"file": None, "received": _when(mail.fetched_at, zone), "case": ref,
                 "state": mail.state, "kind": mail.kind, "subject": others.text(mail.subject),
                 "unreadable_here": False}
        if mail.raw_sha256 and bot.blobs.exists(mail.raw_sha256):
            name = _member("mails", f"{mail.id}-{_day(mail.fetched_at)}.eml")
            members[name] = others.headers(bot.blobs.get(mail.raw_sha256))
            entry["file"] = name
        elif mail.raw_sha256:
            # stored, but not where this host reads (another host's data_dir/blobs): the
            # index must not say it was never stored (trial 15 F13)
            entry["unreadable_here"] = True
        out.append(entry)
    return out


def _sent_members(session: Session, held: Held, others: Others, refs: dict[int, str],
                  members: dict[str, bytes], zone: Any) -> list[dict[str, Any]]:
    out = []
    for outbox_id in held.sent:
        row = session.get(Outbox, outbox_id)
        if row is None:
            continue
        entry = {"file": None, "written": _when(row.created_at, zone),
                 "sent": _when(row.sent_at, zone), "kind": row.kind,
                 "case": refs.get(row.case_id or 0), "subject": others.text(row.subject)}
        if row.raw:
            name = _member("sendt", f"{row.id}-{_day(row.created_at)}-{row.kind}.eml")
            members[name] = _sent_copy(row.raw, others)
            entry["file"] = name
        out.append(entry)
        session.expunge(row)  # its raw bytes need not stay in memory
    return out


def _attachment_members(bot: Bot, session: Session, held: Held, refs: dict[int, str],
                        members: dict[str, bytes], zone: Any) -> list[dict[str, Any]]:
    mail_ids = [m.id for m in held.mails]
    documents = session.exec(select(CaseDocument).where(
        col(CaseDocument.raw_message_id).in_(mail_ids), col(CaseDocument.purged_at).is_(None))
        .order_by(col(CaseDocument.id))).all()
    out = []
    for document in documents:
        # a file refused by a per-mail cap was never stored (blob_sha256 "")
        if not document.blob_sha256 or not bot.blobs.exists(document.blob_sha256):
            continue
        name = _member("bilag", f"{document.id}-{document.filename}")
        members[name] = bot.blobs.get(document.blob_sha256)
        out.append({"file": name, "case": refs.get(document.case_id), "kind": document.kind,
                    "received": _when(document.received_at, zone)})
    return out


def _day(value: datetime | None) -> str:
    return as_utc(value).date().isoformat() if value else "ukendt"


def _case_data(session: Session, case: Case, roles: set[str], address: str, others: Others
               ) -> dict[str, Any]:
    """One case as the export gives it: all of it for its applicant; for anyone else the
    ref, status, dates, decision and their own reviews, without the applicant."""
    own_reviews = [r for r in session.exec(select(Review).where(Review.case_id == case.id))
                   if "applicant" in roles or address in {
                       *(normalised(a) for a in r.recipients), normalised(r.answered_by)}]
    data: dict[str, Any] = {
        "ref": case.ref, "roles": sorted(roles), "status": case.status,
        "created": _when(case.created_at, COPENHAGEN), "decision": case.decision,
        "decided": _when(case.decided_at, COPENHAGEN),
        "meeting": case.meeting_date.isoformat() if case.meeting_date else None,
        "reviews": [{"role": r.role, "state": r.state, "verdict": r.verdict,
                     "comment": r.comment, "requested": _when(r.requested_at, COPENHAGEN),
                     "answered": _when(r.answered_at, COPENHAGEN)}
                    for r in own_reviews],
    }
    if "applicant" in roles:
        data.update({
            "title": case.title, "applicant_name": case.applicant_name,
            "applicant_address": case.applicant_address, "answers": case.answers,
            "missing": case.missing, "not_applicable": case.not_applicable,
            "strategic": case.strategic, "project_type": case.project_type,
            "sbsys_number": case.sbsys_number, "system_owner": case.system_owner,
            "decision_text": case.decision_text,
            "documents": [{"name": d.filename, "kind": d.kind, "version": d.version,
                           "received": _when(d.received_at, COPENHAGEN)}
                          for d in session.exec(select(CaseDocument).where(
                              CaseDocument.case_id == case.id))]})
    elif "system_owner" in roles:
        data["system_owner"] = case.system_owner
    return others.value(data)  # type: ignore[no-any-return]


# -- erasure --------------------------------------------------------------------------------
@dataclass
class Erasure:
    """What an erasure changed (or, dry run, would change): counts per kind, the refs of
    the cases anonymised, config keys that still name the address, and after the commit the
    blob files and IMAP copies deleted."""

    counts: dict[str, int] = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)
    config_keys: list[str] = field(default_factory=list)
    blobs_deleted: int = 0
    blobs_kept: int = 0
    imap_copies: int = 0  # copies on IMAP to delete (the dry run's answer)
    imap_deleted: int = 0
    imap_error: str = ""

    def count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    def lines(self, dry_run: bool) -> list[str]:
        verb = "would erase" if dry_run else "erased"
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "nothing held"
        out = [f"gdpr {verb}: {kinds}"]
        if self.refs:
            out.append(f"  cases anonymised: {', '.join(self.refs)}")
        if dry_run:
            out.append(f"  copies on IMAP to be deleted: {self.imap_copies}")
        else:
            out.append(f"  blob files deleted: {self.blobs_deleted}; copies deleted on "
                       f"IMAP: {self.imap_deleted}")
        if self.blobs_kept:
            out.append(f"  blob files kept: {self.blobs_kept}, another case or mail still "
                       f"uses the same bytes; retention deletes them with it")
        if self.imap_error:
            out.append(f"  IMAP failed; `mailbot retention run` deletes the copies later: "
                       f"{self.imap_error}")
        for key in self.config_keys:
            out.append(f"  the address is still in the config key {key}: remove it there")
        return out


def erase(bot: Bot, address: str, now: datetime, dry_run: bool = False) -> Erasure:
    """Erase `address` (GDPR Art. 17) from the database, the blob store and the IMAP folders.

    - its cases as applicant are anonymised (purge.anonymise_case, with `[slettet person]`),
      an open one withdrawn first (nobody can be answered any more);
    - its mail is purged (ledger content, blobs unless another row needs them, SCENARIOS F7,
      the copies in Processed/Quarantine);
    - in reviews, the outbox, events, alerts, KITOS answers kept (kitos.cache_hours) and
      other cases' texts the address becomes the placeholder; mail to it not sent yet is
      given up; the stored copy of any sent mail that names it is dropped;
    - a reviewer's comment on someone else's case stays (it is about that project).

    The config is not changed: keys that name the address are reported. Dry run: the same
    work in a transaction that is rolled back, no files or servers touched. A `gdpr_erase`
    event records the counts (the address only as `subject_key`)."""
    address = normalised(address)
    placeholder = bot.rules.labels.get("privacy", "erased")
    result = Erasure(config_keys=_config_keys(bot, address))
    with transaction(bot.engine) as session:
        hashes = _erase_rows(session, bot, address, placeholder, result, now)
        result.imap_copies = len(waiting_copies(session))
        if dry_run:
            session.rollback()
            return result
        record(session, None, None, now, PrivacyEvent.GDPR_ERASE,
               f"request {subject_key(bot, address)}: " + "; ".join(result.lines(False)[:2]))
    result.blobs_deleted = release(bot, hashes, now)
    result.blobs_kept = sum(1 for sha in {h for h in hashes if h} if bot.blobs.exists(sha))
    copies = remove_copies(bot, now)
    result.imap_deleted, result.imap_error = copies.deleted, copies.error
    return result


def _erase_rows(session: Session, bot: Bot, address: str, placeholder: str, result: Erasure,
                now: datetime) -> list[str]:
    held = find(session, address)
    copies, hashes = copy_folders(bot), []
    for case_id, roles in held.roles.items():
        case = held.cases.get(case_id)
        if case is None or "applicant" not in roles or case.anonymised_at is not None:
            continue
        _count_case(session, case, result)
        if case.status in OPEN_STATUSES:
            case.status = check_transition(case.status, CaseStatus.WITHDRAWN)
            case.meeting_date = None
            record(session, case.id, None, now, "withdrawn", "the applicant's data was erased")
        hashes += anonymise_case(session, case, placeholder, copies, now)
        result.refs.append(case.ref)
    for mail in held.mails:
        if mail.purged_at is None:
            hashes.append(purge_mail(session, mail, copies, now))
            result.count("mails")
    scrub = _Scrub(address, placeholder)
    for review in held.reviews:
        review.recipients = [scrub(r) for r in review.recipients]
        review.answered_by = scrub(review.answered_by)
        review.comment = scrub(review.comment)
        session.add(review)
        for item in session.exec(select(Guidance).where(Guidance.review_id == review.id)):
            item.comment = scrub(item.comment)
            session.add(item)
        result.count("reviews")
    _erase_outbox(session, address, scrub, result)
    for event in session.exec(select(CaseEvent).where(
            col(CaseEvent.detail).ilike(f"%{address}%"))):
        if scrub.pattern.search(event.detail):
            event.detail = scrub(event.detail)
            session.add(event)
            result.count("events")
    for case in session.exec(select(Case)):
        if _scrub_case(case, scrub):
            session.add(case)
            result.count("other_cases")
    for alert in session.exec(select(Alert).where(col(Alert.detail).ilike(f"%{address}%"))):
        alert.detail = scrub(alert.detail)
        session.add(alert)
    for lookup in session.exec(select(KitosLookup).where(
            col(KitosLookup.owner).ilike(f"%{address}%"))):
        lookup.owner = scrub(lookup.owner)
        session.add(lookup)
    session.flush()
    return hashes


def _count_case(session: Session, case: Case, result: Erasure) -> None:
    """What anonymising the person's case removes, counted before it does (the same counts
    the export gave: mails, attachments, mails sent, events)."""
    result.count("cases")
    mails = session.exec(select(func.count()).select_from(RawMessage).where(
        RawMessage.case_id == case.id, col(RawMessage.purged_at).is_(None))).one()
    documents = session.exec(select(func.count()).select_from(CaseDocument).where(
        CaseDocument.case_id == case.id, col(CaseDocument.purged_at).is_(None))).one()
    sent = session.exec(select(func.count()).select_from(Outbox).where(
        Outbox.case_id == case.id)).one()
    events = session.exec(select(func.count()).select_from(CaseEvent).where(
        CaseEvent.case_id == case.id, CaseEvent.detail != "",
        col(CaseEvent.kind).not_in(list(PrivacyEvent)))).one()
    for kind, n in (("mails", mails), ("attachments", documents), ("mails_sent", sent),
                    ("events", events)):
        if n:
            result.count(kind, n)


class _Scrub:
    """The address replaced by the placeholder, in any case."""

    def __init__(self, address: str, placeholder: str) -> None:
        self.pattern, self.placeholder = exactly(address), placeholder

    def __call__(self, text: str) -> str:
        return self.pattern.sub(self.placeholder, text)


def _erase_outbox(session: Session, address: str, scrub: _Scrub, result: Erasure) -> None:
    """Mail to the address: the address replaced (recipients, subject, the per-recipient
    delivery results and the last SMTP error), unsent mail to nobody else given up. Any
    sent mail whose stored copy names the address loses that copy. Rows are read one at a
    time and let go after their change is flushed: the copies can be large."""
    for row_id, recipients, state, results, last_error in session.execute(
            sa_select(col(Outbox.id), col(Outbox.recipients), col(Outbox.state),
                      col(Outbox.results), col(Outbox.last_error))).all():
        to_them = address in {normalised(r) for r in recipients}
        in_results = bool(scrub.pattern.search(json.dumps(results) + last_error))
        if not to_them and not in_results and state in UNSENT:
            continue
        row = session.get(Outbox, row_id)
        if row is None:
            continue
        if to_them:
            row.recipients = [scrub(r) for r in row.recipients]
            row.subject = scrub(row.subject)
            if row.state in UNSENT and all(normalised(r) == address for r in recipients):
                row.state, row.last_error, row.raw = OutboxState.FAILED, "recipient erased", b""
            result.count("mails_sent")
        if in_results:
            row.results = relabel_results(row.results, scrub)
            row.last_error = scrub(row.last_error)
        if _names(row.raw, scrub.pattern) and purge_sent(session, row) and not to_them:
            result.count("sent_copies")
        session.add(row)
        session.flush()
        session.expunge(row)


def _names(raw: bytes, address: re.Pattern[str]) -> bool:
    """Whether a stored mail names the address, in its headers or inside base64 or
    quoted-printable text parts."""
    if not raw:
        return False
    if address.search(raw.decode("latin-1")):
        return True
    msg = message_from_bytes(raw, policy=policy.default)
    return any(part.get_content_maintype() == "text" and address.search(_content(part))
               for part in msg.walk())


def _scrub_case(case: Case, scrub: _Scrub) -> bool:
    """The address replaced in a case's texts (someone else's case may name it: a system
    owner, a colleague in an answer). True when anything changed."""
    before = (case.title, case.subject, case.system_owner, case.system_owner_note,
              case.decision_text, case.strategic_reason, json.dumps(case.answers),
              json.dumps(case.not_applicable))
    case.title, case.subject = scrub(case.title), scrub(case.subject)
    case.system_owner = scrub(case.system_owner) if case.system_owner else case.system_owner
    case.system_owner_note = scrub(case.system_owner_note)
    case.decision_text, case.strategic_reason = (scrub(case.decision_text),
                                                 scrub(case.strategic_reason))
    case.answers = {k: scrub(v) if isinstance(v, str) else v for k, v in case.answers.items()}
    case.not_applicable = {k: scrub(v) for k, v in case.not_applicable.items()}
    after = (case.title, case.subject, case.system_owner, case.system_owner_note,
             case.decision_text, case.strategic_reason, json.dumps(case.answers),
             json.dumps(case.not_applicable))
    return before != after


def _config_keys(bot: Bot, address: str) -> list[str]:
    """The config keys (lists of addresses) that name the address."""
    settings = bot.settings
    lists: Iterable[tuple[str, list[str]]] = [
        ("council.secretary", settings.council.secretary),
        ("council.strategic_board", settings.council.strategic_board),
        ("operator.addresses", settings.operator.addresses),
        *((f"reviewers.{role}", getattr(settings.reviewers, role))
          for role in type(settings.reviewers).model_fields)]
    return [key for key, values in lists if address in {normalised(v) for v in values}]
