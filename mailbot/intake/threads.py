"""Which case an inbound mail belongs to: our Message-IDs first, the subject tag last."""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mailbot.clock import as_utc
from mailbot.intake.parse import Inbound
from mailbot.intake.returned import Returned

CASE_REF = re.compile(r"\bITP-(\d{4})-(\d{4,})\b", re.IGNORECASE)


def format_ref(year: int, number: int) -> str:
    return f"ITP-{year}-{number:04d}"


def ref_in_subject(subject: str) -> str | None:
    match = CASE_REF.search(subject)
    return f"ITP-{match.group(1)}-{match.group(2)}" if match else None


def is_own_message_id(message_id: str, domain: str) -> bool:
    return message_id.lower().endswith(f"@{domain.lower()}>") and message_id.startswith("<mb.")


# Our ids: <mb.{purpose}.{ref}.{review}.{day}.{nonce}.{signature}@domain>. The signature
# (HMAC-SHA256 over ref, review, day and nonce, base32, 20 characters) proves the bot made the
# id; review is 0 for mail that is not about a review; day is the issue day (ISSUE_EPOCH plus
# that many days, UTC), so a reply on an old request can be told from a fresh one (SCENARIOS
# A4); the reference is a case's, an agenda's (AGD-), ALERT (mail to the operator) or
# ENCRYPTED (the answer to an encrypted mail that names no case). Ids written before the day
# existed (legacy, `…{review}.{nonce}.{sig}@`) are still read, with no issue day. Base32 and
# digits survive a client that changes case (A10).
_OWN_ID = re.compile(
    r"^<mb\.(?P<purpose>[a-z]+)\.(?P<ref>(?:ITP|AGD)-\d{4}-\d{4,}|ALERT|ENCRYPTED)\."
    r"(?P<review>\d+)\."
    r"(?:(?P<day>\d{1,6})\.)?(?P<nonce>[a-z0-9]+)\.(?P<sig>[a-z2-7]+)@(?P<domain>[^>]+)>$",
    re.IGNORECASE)
ISSUE_EPOCH = date(2020, 1, 1)


def issue_day(issued: date) -> int:
    """Days from ISSUE_EPOCH to `issued`: the day field of our ids and reply tokens."""
    return (issued - ISSUE_EPOCH).days


def _signature(secret: bytes, ref: str, review: int, nonce: str) -> str:
    digest = hmac.new(secret, f"{ref.upper()}|{review}|{nonce.lower()}".encode(), "sha256")
    return base64.b32encode(digest.digest()).decode().lower().rstrip("=")[:20]


def signed_message_id(purpose: str, ref: str, domain: str, secret: bytes, review: int = 0,
                      issued: date | None = None) -> str:
    """`<mb.review.ITP-2026-0001.7.2525.<nonce>.<signature>@domain>`, signed with `secret`,
    carrying the UTC day it was `issued` (the outgoing path always passes it). `issued`
    None writes the legacy form without a day, as ids written before the day existed: only
    tests of mail still in flight after an upgrade need it."""
    if issued is None:
        nonce = secrets.token_hex(6)
    else:
        # 7 random hex digits (28 bits, unique enough within one purpose, case, review and
        # day) keep the id as long as the legacy form: an id longer than 78 characters is
        # folded as an encoded-word by some writers (Python's email package), and then no
        # longer read as an id by anyone (RFC 2047 section 5)
        nonce = f"{issue_day(issued)}.{secrets.token_hex(4)[:7]}"
    return (f"<mb.{purpose}.{ref}.{review}.{nonce}."
            f"{_signature(secret, ref, review, nonce)}@{domain}>")


@dataclass(frozen=True)
class OwnId:
    purpose: str
    ref: str
    review: int
    valid: bool  # False: ours in shape, but the signature does not match (tampered)
    issued: date | None = None  # the day it was issued; None for the legacy form


def _issued(day: str | None) -> date | None:
    return ISSUE_EPOCH + timedelta(days=int(day)) if day else None


def read_own_id(message_id: str, domain: str, secret: bytes) -> OwnId | None:
    """The id of ours `message_id` is (valid or tampered), or None when it is not ours in
    shape or names another domain. The signature is compared in constant time
    (hmac.compare_digest), the day is covered by it."""
    match = _OWN_ID.match(message_id.strip())
    if not match or match.group("domain").lower() != domain.lower():
        return None
    ref = match.group("ref").upper()
    review = int(match.group("review"))
    day = match.group("day")
    signed = f"{day}.{match.group('nonce')}" if day else match.group("nonce")
    expected = _signature(secret, ref, review, signed)
    valid = hmac.compare_digest(expected, match.group("sig").lower())
    return OwnId(match.group("purpose").lower(), ref, review, valid, _issued(day))


# `+itp-2026-0001-7-2525-<sig>@`; the legacy form has no day: `+itp-2026-0001-7-<sig>@`
_TOKEN = re.compile(r"\+(?P<ref>itp-\d{4}-\d{4,})-(?P<review>\d+)-(?:(?P<day>\d{1,6})-)?"
                    r"(?P<sig>[a-z2-7]{16})@", re.IGNORECASE)


def _token_signature(secret: bytes, ref: str, review: int, day: str | None) -> str:
    # "token" alone is the legacy form's; a day makes it "token.<day>"
    return _signature(secret, ref, review, f"token.{day}" if day else "token")[:16]


def reply_to_address(bot_address: str, ref: str, review: int, secret: bytes,
                     issued: date | None = None) -> str:
    """`local+itp-2026-0001-7-2525-<signature>@domain` (2525: the day it was `issued`, see
    issue_day): survives clients that drop In-Reply-To. `issued` None writes the legacy
    form without a day (as signed_message_id: tests of mail in flight only)."""
    local, _, domain = bot_address.partition("@")
    day = str(issue_day(issued)) if issued is not None else None
    signature = _token_signature(secret, ref.upper(), review, day)
    return f"{local}+{ref.lower()}-{review}-{day + '-' if day else ''}{signature}@{domain}"


def read_token(addresses: tuple[str, ...], bot_address: str, secret: bytes) -> OwnId | None:
    """The first reply token of ours among `addresses` (plus addresses of `bot_address`), or
    None. Compared in constant time (hmac.compare_digest); the day is covered by the
    signature, the legacy form without a day is still read (issued None)."""
    local, _, domain = bot_address.lower().partition("@")
    for address in addresses:
        lowered = address.lower()
        if not (lowered.startswith(local + "+") and lowered.endswith("@" + domain)):
            continue
        match = _TOKEN.search(lowered)
        if match is None:
            continue
        ref, review, day = (match.group("ref").upper(), int(match.group("review")),
                            match.group("day"))
        expected = _token_signature(secret, ref, review, day)
        return OwnId("token", ref, review, hmac.compare_digest(expected, match.group("sig")),
                     _issued(day))
    return None


def expired(issued: date | None, requested: datetime, now: datetime, days: int) -> bool:
    """Whether a reply on an id of ours issued on `issued` comes too late to count: more than
    `days` (`[reviews] token_days`) whole days before `now`'s UTC day. A legacy id (issued
    None, written before ids carried a day) counts from `requested`, when the database says
    the request it answers was sent: so it expires as a new one would have."""
    day = issued if issued is not None else as_utc(requested).date()
    return (as_utc(now).date() - day).days > days


@dataclass(frozen=True)
class ThreadMatch:
    case_ref: str | None
    via: str  # token | message-id | agenda | alert | subject | none
    review: int = 0  # the review our signed id names (0: none)
    tampered: bool = False  # an id of ours in shape whose signature is wrong
    agenda: str = ""  # AGD-2026-1207: a reply to the agenda of that meeting
    issued: date | None = None  # the day the matching id was issued (None: legacy or none)


def find_thread(mail: Inbound, domain: str, secret: bytes,
                bot_address: str = "", bounce: bool = False) -> ThreadMatch:
    """The case (or agenda) a mail belongs to. A `bounce` that names none itself is matched
    by the message it returns (returned_thread)."""
    found = _own_thread(mail, domain, secret, bot_address)
    if bounce and found.case_ref is None and not found.agenda and mail.returned is not None:
        returned = returned_thread(mail.returned, domain, secret)
        if returned.case_ref is not None or returned.agenda:
            return returned
    return found


def returned_thread(returned: Returned, domain: str, secret: bytes) -> ThreadMatch:
    """The case of the message a bounce returns: our signed Message-ID in it first, then the
    case tag in its decoded Subject (RFC 3464 / RFC 6522 returned content)."""
    found, tampered = _by_own_ids(returned.message_ids, domain, secret, "returned-message-id")
    if found is not None:
        return found
    ref = ref_in_subject(returned.subject)
    if ref:
        return ThreadMatch(ref, "returned-subject", 0, tampered)
    return ThreadMatch(None, "none", 0, tampered)


def _by_own_ids(message_ids: Iterable[str], domain: str, secret: bytes, via: str
                ) -> tuple[ThreadMatch | None, bool]:
    """The first of `message_ids` that is a valid id of ours, as a match (an agenda, an
    operator alert or a case), and whether an id of ours with a wrong signature was seen."""
    tampered = False
    for message_id in message_ids:
        own = read_own_id(message_id, domain, secret)
        if own is None:
            continue
        if not own.valid:
            tampered = True
        elif own.ref.startswith("AGD-"):
            return ThreadMatch(None, "agenda", 0, False, own.ref), tampered
        elif own.ref == ALERT_REF:
            return ThreadMatch(None, "alert"), tampered
        elif not own.ref.startswith("ITP-"):
            continue  # our answer to an encrypted mail names no case: its reply is a brief
        else:
            return ThreadMatch(own.ref, via, own.review, issued=own.issued), tampered
    return None, tampered


def _own_thread(mail: Inbound, domain: str, secret: bytes, bot_address: str) -> ThreadMatch:
    tampered = False
    if bot_address:
        recipients = mail.to + mail.cc + mail.headers.get("delivered-to", ()) + \
            mail.headers.get("x-original-to", ())
        token = read_token(tuple(recipients), bot_address, secret)
        if token is not None and token.valid:
            return ThreadMatch(token.ref, "token", token.review, issued=token.issued)
        tampered = token is not None
    # In-Reply-To is last: the nearest parent
    found, tampered_id = _by_own_ids(reversed(mail.in_reply_to), domain, secret, "message-id")
    if found is not None:
        return found
    tampered = tampered or tampered_id
    ref = ref_in_subject(mail.subject)
    if ref:
        return ThreadMatch(ref, "subject", 0, tampered)
    return ThreadMatch(None, "none", 0, tampered)


REPLY_PREFIXES = ("re:", "sv:", "aw:", "antw:")


def looks_like_reply(mail: Inbound) -> bool:
    """A reply to some earlier mail (not one of ours): not a new brief."""
    return bool(mail.in_reply_to) and mail.subject.lower().startswith(REPLY_PREFIXES)


ALERT_REF = "ALERT"  # the "case" an operator alert's signed Message-ID names (mailbot.alerts)


def agenda_ref(meeting: date) -> str:
    """The pseudo case reference in the agenda mail's signed Message-ID."""
    return f"AGD-{meeting.year}-{meeting:%m%d}"


def meeting_of(agenda: str) -> date:
    year, monthday = agenda.split("-")[1:]
    return date(int(year), int(monthday[:2]), int(monthday[2:]))
