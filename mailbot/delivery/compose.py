"""jinja2 templates -> EmailMessage with the headers every mail of the bot carries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

from mailbot.clock import COPENHAGEN
from mailbot.errors import ConfigError
from mailbot.intake.parse import clean_header_text, display_address
from mailbot.intake.screen import LOOP_HEADER
from mailbot.redact import redact_cpr
from mailbot.vocabulary import AutoSubmitted

MAX_SUBJECT_CHARS = 200
# Headers up to RFC 5322's 998 characters: a folded Message-ID confuses some clients' threading.
_POLICY = SMTP.clone(max_line_length=998)
_REPLY_PREFIXES = ("re:", "sv:", "aw:", "vs:", "fw:", "fwd:")


@dataclass(frozen=True)
class Outgoing:
    """A rendered mail ready for the outbox."""

    message_id: str
    recipients: tuple[str, ...]
    subject: str
    message: EmailMessage


def tagged_subject(ref: str, subject: str) -> str:
    """`[ITP-2026-0001] <subject>`, without stacking tags or reply prefixes, CPR redacted."""
    clean = redact_cpr(clean_header_text(subject)).replace(f"[{ref}]", " ")
    clean = " ".join(clean.split())
    previous = None
    while previous != clean:
        previous = clean
        for prefix in _REPLY_PREFIXES:
            if clean.lower().startswith(prefix):
                clean = clean[len(prefix):].strip()
    return f"[{ref}] {_capped(clean)}".strip()


def _capped(subject: str) -> str:
    """`subject` cut to MAX_SUBJECT_CHARS with an ellipsis: a 10 KB subject from a brief
    (SCENARIOS X5) makes no 10 KB header in any mail that quotes it."""
    if len(subject) > MAX_SUBJECT_CHARS:
        return subject[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return subject


def _is_html(name: str | None) -> bool:
    return bool(name) and str(name).endswith(".html.j2")


def genitive(name: str) -> str:
    """Danish genitive of a name: `IT-Projektrådet` -> `IT-Projektrådets`; a name ending in
    s, x or z takes an apostrophe (Retskrivningsordbogen, section 4)."""
    return f"{name}'" if name[-1:].lower() in ("s", "x", "z") else f"{name}s"


def oneline(text: object) -> str:
    """The text with every run of whitespace, line breaks included, as one space."""
    return " ".join(str(text).split())


def enumeration(items: Iterable[object], last: str = "og") -> str:
    """A list as a sentence writes it: "a, b og c" (`last` "and" in English); one item alone,
    two joined by `last` (Retskrivningsordbogen, section 56: no comma before "og")."""
    words = [str(item) for item in items]
    if len(words) < 3:
        return f" {last} ".join(words)
    return f"{', '.join(words[:-1])} {last} {words[-1]}"


class Renderer:
    """Templates by audience and purpose: `<language>/<name>.subject.j2`, `.txt.j2` and
    `.html.j2`, per language, with Danish as the fallback."""

    def __init__(self, folders: list[Path]) -> None:
        self.env = Environment(
            loader=FileSystemLoader([str(f) for f in folders]),
            undefined=StrictUndefined,
            autoescape=_is_html,
            keep_trailing_newline=True,
        )
        self.env.filters["genitive"] = genitive
        self.env.filters["oneline"] = oneline
        self.env.filters["enumeration"] = enumeration

    def _exists(self, name: str) -> bool:
        try:
            self.env.get_template(name)
        except TemplateNotFound:
            return False
        return True

    def render(self, language: str, name: str, context: Mapping[str, Any]) -> tuple[str, str]:
        """Returns (text, html) for `<language>/<name>.txt.j2` and `.html.j2`.
        Raises ConfigError when a template is missing."""
        language = self._language(language, name)
        return (self._render(f"{language}/{name}.txt.j2", context),
                self._render(f"{language}/{name}.html.j2", context))

    def render_mail(self, language: str, name: str, context: Mapping[str, Any]
                    ) -> tuple[str, str, str]:
        """(subject, text, html); the subject template's output on one line.
        Raises ConfigError when a template is missing."""
        text, html = self.render(language, name, context)
        subject = self._render(f"{self._language(language, name)}/{name}.subject.j2", context)
        return " ".join(subject.split()), text, html

    def render_one(self, language: str, template: str, context: Mapping[str, Any]) -> str:
        """One template, e.g. `agenda.docx.j2`, under `<language>/` (Danish as fallback).
        Raises ConfigError when it is missing."""
        if language != "da" and not self._exists(f"{language}/{template}"):
            language = "da"
        return self._render(f"{language}/{template}", context)

    def macros(self, language: str, template: str) -> Any:
        """The macros of `<language>/<template>` (Danish as fallback) as Python callables,
        each returning its text unescaped: for text that several formats share (the HTML
        template escapes it like any other value). Raises ConfigError when it is missing."""
        if language != "da" and not self._exists(f"{language}/{template}"):
            language = "da"
        try:
            return self.env.get_template(f"{language}/{template}").module
        except TemplateNotFound as err:
            raise ConfigError("templates", str(err), "template not found",
                              "restore it from the shipped templates/ folder") from err

    def _language(self, language: str, name: str) -> str:
        if language != "da" and not self._exists(f"{language}/{name}.txt.j2"):
            return "da"  # mail to staff (reviewers, the secretary) exists in Danish only
        return language

    def _render(self, template: str, context: Mapping[str, Any]) -> str:
        try:
            return self.env.get_template(template).render(context)
        except TemplateNotFound as err:
            raise ConfigError("templates", str(err), "template not found",
                              "restore it from the shipped templates/ folder") from err
        except UnicodeDecodeError as err:
            raise ConfigError("templates", template, "is not UTF-8 text",
                              "save the template as UTF-8") from err


def build_message(
    *,
    sender_name: str,
    sender_address: str,
    to: tuple[str, ...],
    subject: str,
    text: str,
    html: str,
    message_id: str,
    now: datetime,
    in_reply_to: str = "",
    references: tuple[str, ...] = (),
    auto_submitted: AutoSubmitted,
    language: str = "da",
    attachments: tuple[tuple[str, bytes, str], ...] = (),
    reply_to: str = "",
) -> EmailMessage:
    """The MIME message (text + HTML alternative, then attachments) with the headers every mail
    of the bot carries: `Auto-Submitted` (RFC 3834), `X-Auto-Response-Suppress` (Exchange),
    `Precedence`, our loop header and `Content-Language`. `attachments` are
    (filename, payload, content type) triples."""
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = display_address(sender_name, sender_address)
    msg["To"] = ", ".join(to)
    # a tagged subject is cut before its tag (tagged_subject); any other here
    subject = clean_header_text(subject)
    msg["Subject"] = subject if subject.startswith("[") else _capped(subject)
    if reply_to:
        msg["Reply-To"] = display_address(sender_name, reply_to)
    msg["Date"] = format_datetime(now.astimezone(COPENHAGEN))
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    refs = [r for r in references if r]
    if refs:
        msg["References"] = " ".join(refs)
    msg["Auto-Submitted"] = auto_submitted
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Precedence"] = "auto_reply"
    msg[LOOP_HEADER] = sender_address
    msg["Content-Language"] = language
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    for filename, payload, content_type in attachments:
        maintype, _, subtype = content_type.partition("/")
        if not subtype or maintype in ("text", "multipart", "message"):
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(payload, maintype=maintype, subtype=subtype,
                           filename=clean_header_text(filename))
    return msg


__all__ = ["Outgoing", "Renderer", "build_message", "genitive", "tagged_subject"]
