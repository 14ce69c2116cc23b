"""What the CLI prints: tables, a case's timeline, an inspection. Pure formatting.

The database and workflow modules are imported inside the functions that query or render
with them, so `mailbot inspect` (which only needs inspect_text) does not load SQLAlchemy.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from mailbot.clock import COPENHAGEN, as_utc

if TYPE_CHECKING:
    from sqlmodel import Session

    from mailbot.app import Bot
    from mailbot.council.meetings import Meeting
    from mailbot.models import Case, CaseEvent, Outbox, RawMessage


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest line; a cell with line breaks (a wrapped text) takes as
    many lines, the other cells of its row blank below their first line."""
    cells = [[cell.split("\n") for cell in row] for row in rows]
    widths = [max(len(h), *(len(part) for row in cells for part in row[i])) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(parts: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(parts, widths, strict=True)).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])]
    for row in cells:
        for k in range(max(len(cell) for cell in row)):
            lines.append(line([cell[k] if k < len(cell) else "" for cell in row]))
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _wrap(text: str, width: int) -> str:
    """All of `text` on one or more lines of at most `width` characters (white space and line
    breaks in it become single spaces; a word longer than a line is split). Nothing is cut."""
    import textwrap

    return "\n".join(textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False))


def cases_table(cases: list[Case]) -> str:
    if not cases:
        return "no cases yet"
    return _table(
        ["ref", "status", "meeting", "applicant", "missing", "title"],
        [[c.ref, c.status, c.meeting_date.isoformat() if c.meeting_date else "-",
          c.applicant_address, str(len(c.missing)), _short(c.title, 50)] for c in cases],
    )


def cases_data(cases: list[Case], tz: tzinfo = COPENHAGEN) -> list[dict[str, Any]]:
    """`mailbot cases --json`: one object per case, `created_at` ISO 8601 with its offset,
    `meeting` the agenda's day (YYYY-MM-DD) or null."""
    return [{"ref": c.ref, "status": c.status, "applicant": c.applicant_address,
             "applicant_name": c.applicant_name, "title": c.title, "missing": c.missing,
             "meeting": c.meeting_date.isoformat() if c.meeting_date else None,
             "created_at": _local(c.created_at, tz).isoformat()} for c in cases]


def _local(moment: datetime, tz: tzinfo) -> datetime:
    """A stored moment (UTC; naive when read back from SQLite) in the council's zone."""
    return as_utc(moment).astimezone(tz)


def stamp(moment: datetime, tz: tzinfo = COPENHAGEN) -> str:
    """A stored moment as people read it: local time with its zone, `2026-03-02 11:59:00
    CET` (CEST in summer)."""
    return f"{_local(moment, tz):%Y-%m-%d %H:%M:%S %Z}"


def case_data(session: Session, case: Case, tz: tzinfo = COPENHAGEN) -> dict[str, Any]:
    """Everything about one case (`mailbot case REF --json`); times ISO 8601 in `tz`."""
    from sqlmodel import col, select

    from mailbot.models import CaseDocument, Review

    documents = session.exec(
        select(CaseDocument).where(CaseDocument.case_id == case.id)
        .order_by(col(CaseDocument.id))).all()
    return {
        "ref": case.ref,
        "status": case.status,
        "title": case.title,
        "applicant": case.applicant_address,
        "applicant_name": case.applicant_name,
        "created_at": _local(case.created_at, tz).isoformat(),
        "answers": case.answers,
        "documents": [{"filename": d.filename, "kind": d.kind, "version": d.version,
                       "note": d.note, "hazard": d.hazard, "held": d.held}
                      for d in documents],
        "missing": case.missing,
        "not_applicable": case.not_applicable,
        "strategic": case.strategic,
        "strategic_reason": case.strategic_reason,
        "project_type": case.project_type,
        "project_type_source": case.project_type_source or None,
        "project_type_reason": case.project_type_reason,
        "sbsys_number": case.sbsys_number,
        "system_owner": case.system_owner,
        "system_owner_source": case.system_owner_source,
        "system_owner_note": case.system_owner_note,
        "when": case.when,
        "cost": case.cost,
        "reviews": [
            {"role": r.role, "reviewer": r.answered_by or ", ".join(r.recipients),
             "verdict": r.verdict, "comment": r.comment,
             "document_kind": r.document_kinds[0] if len(r.document_kinds) == 1
             else r.document_kinds, "documents": r.documents, "state": r.state,
             "requested_at": _local(r.requested_at, tz).isoformat(),
             "reminders_sent": r.reminders_sent}
            for r in session.exec(select(Review).where(Review.case_id == case.id)
                                  .order_by(col(Review.id))).all()],
        "meeting": case.meeting_date.isoformat() if case.meeting_date else None,
        "decision": case.decision,
        "decision_text": case.decision_text,
        # the council's two phases (`[council] phases = 2`)
        "phase": case.phase,
        "stage": _stage(case),
        "guidance_given_at": _local_iso(case.guidance_given_at, tz),
        "klarmeldt_at": _local_iso(case.klarmeldt_at, tz),
    }


def _stage(case: Case) -> str:
    """`guidance`, `guided` (guidance given, not klarmeldt yet) or `klarmeldt`."""
    from mailbot.council.phases import stage

    return stage(case)


def _local_iso(moment: datetime | None, tz: tzinfo) -> str | None:
    return _local(moment, tz).isoformat() if moment is not None else None


def case_text(session: Session, case: Case, data: dict[str, Any],
              tz: tzinfo = COPENHAGEN) -> str:
    """`mailbot case REF`: the case_data of one case for a person, and its timeline with
    local times that name their zone (`2026-03-02 11:59:00 CET`)."""
    from sqlmodel import col, select

    from mailbot.models import CaseEvent

    events = session.exec(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.id))).all()
    lines = [f"{case.ref}  {case.title}", f"status:    {case.status}",
             f"applicant: {case.applicant_name} <{case.applicant_address}>",
             f"created:   {stamp(case.created_at, tz)}",
             *_case_facts(data), _phase_line(case, tz), "", "answers:"]
    for qid, answer in data["answers"].items():
        lines.append(f"  {qid:6} {_short((answer or '(missing)').replace(chr(10), ' '), 90)}")
    lines.append("documents:")
    lines += [f"  {d['filename']}  [{d['kind']}]" + _hazard_text(d)
              for d in data["documents"]] or ["  (none)"]
    lines.append(f"missing:   {', '.join(case.missing) or 'nothing'}")
    lines.append("")
    lines += _reviews_text(data["reviews"])
    lines.append("")
    lines.append("timeline:")
    lines += _timeline([(e.at, e.kind, e.detail) for e in events], tz)
    return "\n".join(lines)


def _timeline(events: list[tuple[datetime, str, str]], tz: tzinfo) -> list[str]:
    """Audit events (at, kind, detail) as `  2026-03-02 11:59:00 CET  kind  detail` lines."""
    stamps = [stamp(at, tz) for at, _, _ in events]
    width = max(map(len, stamps), default=0)  # CET and CEST in one column
    return [f"  {stamp:{width}}  {kind:18} {_short(detail, 100)}"
            for stamp, (_, kind, detail) in zip(stamps, events, strict=True)]


def _case_facts(data: dict[str, Any]) -> list[str]:
    """Strategic flag, SBSYS number, system owner, meeting and decision: one line each."""
    strategic = "yes" if data["strategic"] else "no"
    if data["strategic_reason"]:
        strategic += f" ({data['strategic_reason']})"
    decision = data["decision"] or "-"
    if data["decision"] and data["decision_text"]:
        decision += f": {_one_line(data['decision_text'], 100)}"
    kind = project_type_text(data["project_type"], data["project_type_source"],
                             data["project_type_reason"])
    return [f"strategic: {strategic}", f"type:      {kind}",
            f"SBSYS:     {data['sbsys_number'] or '-'}",
            f"owner:     {_owner(data)}", f"meeting:   {data['meeting'] or '-'}",
            f"decision:  {decision}"]


def project_type_text(kind: str | None, source: str | None, reason: str) -> str:
    """`digitaliseringsprojekt (proposed: selvbetjening: „…“)`, `it-projekt (secretary: …)`,
    `- (proposed: not settled; …)`, or `-` for a case opened before proposals existed."""
    if not source:
        return "-"
    said = f": {_one_line(reason, 120)}" if reason else ""
    if kind:
        return f"{kind} ({source}{said})"
    return f"- ({source}: not settled{'; ' + _one_line(reason, 120) if reason else ''})"


def _owner(data: dict[str, Any]) -> str:
    """"Søren Ravn (kitos: fundet i KITOS: RuteNet, rolle Systemejer)", "- (not looked up
    yet)", "- (not_found: ikke fundet i KITOS …)"."""
    source = data["system_owner_source"] or "not looked up yet"
    note = f": {data['system_owner_note']}" if data["system_owner_note"] else ""
    return f"{data['system_owner'] or '-'} ({source}{note})"


def _phase_line(case: Case, tz: tzinfo) -> str:
    """`phase:     final, klarmeldt (guidance given 2027-02-26 10:00 CET, klarmeldt
    2027-03-01 11:00 CET)`; the stage says whether a final-phase case is only guided or
    klarmeldt (mailbot.council.phases.stage)."""
    moments = [f"{label} {_local(moment, tz):%Y-%m-%d %H:%M %Z}"
               for moment, label in ((case.guidance_given_at, "guidance given"),
                                     (case.klarmeldt_at, "klarmeldt")) if moment is not None]
    now = _stage(case)
    shown = case.phase if now == case.phase else f"{case.phase}, {now}"
    return f"phase:     {shown}" + (f" ({', '.join(moments)})" if moments else "")


def _reviews_text(reviews: list[dict[str, Any]]) -> list[str]:
    """One line per review (role, state, verdict, reviewer), its comment below it."""
    if not reviews:
        return ["reviews:   (none)"]
    rows = [[r["role"], r["state"], r["verdict"] or "-", r["reviewer"]] for r in reviews]
    table = _table(["role", "state", "verdict", "reviewer"], rows).splitlines()
    lines = ["reviews:", *(f"  {row}" for row in table[:2])]
    for row, review in zip(table[2:], reviews, strict=True):
        lines.append(f"  {row}")
        if review["comment"]:
            lines.append(f"      comment: {_one_line(review['comment'], 300)}")
    return lines


def _one_line(text: str, width: int) -> str:
    return _short(" ".join(text.split()), width)


REASON_WIDTH = 60  # a long reason or error is wrapped at this width, never cut
SUBJECT_WIDTH = 40


def message_sender(row: RawMessage) -> str:
    """The sender as the listing shows it: the From address, or why there is none."""
    if row.sender:
        return row.sender
    if row.purged_at is not None:  # mailbot.privacy: its content is gone on purpose
        return "(deleted)"
    if not row.raw_sha256:  # recorded without its body: too large, FETCH failing, start_from
        return "(not downloaded)"
    return "(not read yet)" if row.state == "received" else "(not parsed)"


def messages_table(rows: list[RawMessage], total: int | None = None) -> str:
    """`mailbot messages`: one row per mail, the subject and the whole reason wrapped.
    `total`: how many match in all, when more than `rows` do (a line says so)."""
    if not rows:
        return "no messages"
    table = _table(
        ["id", "uid", "state", "kind", "from", "subject", "reason"],
        [[str(r.id), str(r.uid), r.state, r.kind, message_sender(r),
          _wrap(r.subject, SUBJECT_WIDTH), _wrap(_reason(r), REASON_WIDTH)] for r in rows],
    )
    if total is not None and total > len(rows):
        table += f"\n\nnewest {len(rows)} of {total} shown; `--limit {total}` shows all"
    return table


def _reason(row: RawMessage) -> str:
    """The outcome's reason, and what the mailbox did wrong with the mail, if anything."""
    if not row.imap_anomaly:
        return row.reason
    return f"{row.reason} (mailbox: {row.imap_anomaly})" if row.reason else row.imap_anomaly


def messages_data(session: Session, rows: list[RawMessage], tz: tzinfo = COPENHAGEN
                  ) -> list[dict[str, Any]]:
    """`mailbot messages --json`: one object per mail; `sender` and `subject` are null when
    the mail was never read (`parsed` false: a poison mail, one not downloaded)."""
    refs = case_refs(session, {r.case_id for r in rows})
    return [{"id": r.id, "folder": r.folder, "uid": r.uid, "message_id": r.message_id,
             "state": r.state, "kind": r.kind, "sender": r.sender or None,
             "subject": r.subject if r.sender else None, "parsed": bool(r.sender),
             "downloaded": bool(r.raw_sha256), "reason": r.reason, "attempts": r.attempts,
             "case_ref": refs.get(r.case_id), "imap_anomaly": r.imap_anomaly,
             "fetched_at": _local(r.fetched_at, tz).isoformat(),
             "deleted_at": _local_iso(r.purged_at, tz)}
            for r in rows]


def case_refs(session: Session, ids: set[int | None]) -> dict[int | None, str]:
    from sqlmodel import col, select

    from mailbot.models import Case

    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    found = session.exec(select(Case.id, Case.ref).where(col(Case.id).in_(wanted))).all()
    return {case_id: ref for case_id, ref in found}


def outbox_problem(row: Outbox) -> str:
    """The row's last error, and each recipient the server did not take with its reply
    (`every recipient refused: a@x.dk: 550 5.1.1 no such user`)."""
    refused = [f"{recipient}: {reply}" for recipient, reply in row.results.items()
               if not str(reply).startswith("2")]
    extra = "; ".join(r for r in refused if r not in row.last_error)
    if row.last_error and extra:
        return f"{row.last_error}: {extra}"
    return row.last_error or extra


def outbox_table(rows: list[Outbox], note: str = "") -> str:
    """`mailbot outbox`: recipients one per line, the whole last error wrapped."""
    if not rows:
        return "outbox is empty" + (f"\n\n{note}" if note else "")
    table = _table(
        ["id", "kind", "state", "tries", "to", "subject", "last error"],
        [[str(r.id), r.kind, r.state, str(r.attempts), "\n".join(r.recipients),
          _short(r.subject, SUBJECT_WIDTH), _wrap(outbox_problem(r), REASON_WIDTH)]
         for r in rows],
    )
    return table + (f"\n\n{note}" if note else "")


def outbox_data(session: Session, rows: list[Outbox], tz: tzinfo = COPENHAGEN
                ) -> list[dict[str, Any]]:
    """`mailbot outbox --json`: one object per row, times ISO 8601 in `tz` (`retried_at`:
    the operator's last `outbox retry`, or null)."""
    refs = case_refs(session, {r.case_id for r in rows})
    return [{"id": r.id, "kind": r.kind, "state": r.state, "delivery": r.delivery,
             "attempts": r.attempts, "recipients": r.recipients, "subject": r.subject,
             "message_id": r.message_id, "case_ref": refs.get(r.case_id),
             "created_at": _local(r.created_at, tz).isoformat(),
             "next_attempt_at": _local(r.next_attempt_at, tz).isoformat()
             if r.state == "pending" else None,
             "sent_at": _local(r.sent_at, tz).isoformat() if r.sent_at else None,
             "retried_at": _local_iso(r.retried_at, tz),
             "last_error": r.last_error, "results": r.results} for r in rows]


def outbox_row_data(session: Session, row: Outbox, tz: tzinfo = COPENHAGEN) -> dict[str, Any]:
    """`mailbot outbox show ID --json`: outbox_data of the row, its text part and the file
    names of its attachments."""
    text, attachments = mail_text(row.raw)
    return {**outbox_data(session, [row], tz)[0], "text": text, "attachments": attachments}


def mail_text(raw: bytes) -> tuple[str, list[str]]:
    """The text/plain body of a mail the bot composed, and its attachments' file names."""
    from email import message_from_bytes, policy
    from email.message import EmailMessage

    mail = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    body = mail.get_body(preferencelist=("plain",))
    text = ""
    if isinstance(body, EmailMessage):
        try:
            text = body.get_content()
        except (LookupError, ValueError):  # an unknown charset: the bytes as they are
            payload = body.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    names = [part.get_filename() or part.get_content_type()
             for part in mail.iter_attachments()]
    return text, names


_HAND = {
    "uncertain": "The SMTP connection broke after the mail's last line went out: the server may "
                 "have it. mailbot never sends it again by itself. Ask the recipient or look for "
                 "the Message-ID in the SMTP server's log; if it did not arrive, send the text "
                 "below by hand, or `mailbot outbox retry {id} --not-delivered` (`mailbot "
                 "outbox cancel {id}` if it is not to go at all).",
    "failed": "Not delivered, and not tried again. Correct the cause (the reply above), then "
              "`mailbot outbox retry {id}`, or send the text below by hand if it is still "
              "needed (`mailbot outbox cancel {id}` if not).",
}


def outbox_row_text(row: Outbox, data: dict[str, Any], tz: tzinfo = COPENHAGEN) -> str:
    """`mailbot outbox show ID`: the row's facts, each recipient's result, and the text the
    recipient reads, so the operator can send it by hand."""
    def when(value: datetime | None) -> str:
        return stamp(value, tz) if value else "-"

    problem = _wrap(outbox_problem(row), 78).splitlines() or ["-"]
    lines = [f"outbox {row.id}: {row.kind} ({row.delivery.replace('_', ' ')})",
             f"state:      {row.state}",
             f"to:         {', '.join(row.recipients)}",
             f"subject:    {row.subject}",
             f"case:       {data['case_ref'] or '-'}",
             f"attempts:   {row.attempts}",
             f"created:    {when(row.created_at)}",
             f"sent:       {when(row.sent_at)}"]
    if row.state == "pending":
        lines.append(f"next try:   {when(row.next_attempt_at)}")
    lines.append(f"Message-ID: {row.message_id}")
    lines.append(f"last error: {problem[0]}")
    lines += [f"            {part}" for part in problem[1:]]
    lines.append("results:" if row.results else "results:    (none yet)")
    width = max((len(r) for r in row.results), default=0)
    lines += [f"  {recipient:{width}}  {' '.join(str(reply).split())}"
              for recipient, reply in row.results.items()]
    lines.append(f"attachments: {', '.join(data['attachments']) or '(none)'}")
    if row.state in _HAND:
        lines += ["", *_wrap(_HAND[row.state].format(id=row.id), 90).splitlines()]
    lines += ["", "--- text part " + "-" * 40, data["text"].rstrip("\n"), "-" * 54]
    return "\n".join(lines)


def inspect_text(result: dict[str, Any], details: dict[str, Any]) -> str:
    lines = [f"kind:      {result.get('kind')}", f"case_ref:  {result.get('case_ref')}"]
    if "disposition" in details:  # what the daemon would do with it (intake.classify)
        lines.append(f"daemon:    {details['disposition']}: {details['action']}")
    for key in ("error", "reason"):
        if key in details:
            lines.append(f"{key + ':':10} {details[key]}")
    if result.get("verdict"):
        lines.append(f"verdict:   {result['verdict']}"
                     + (f" ({details['verdict_phrase']!r})" if details.get("verdict_phrase")
                        else ""))
    for ref, decision in (result.get("decisions") or {}).items():
        lines.append(f"decision:  {ref}: {decision}")
    for ref, kind in (details.get("project_types") or {}).items():
        lines.append(f"type:      {ref}: {kind}")
    for line in details.get("unmapped") or []:
        lines.append(f"unmapped:  {line}")
    if result.get("kind") != "brief":
        return "\n".join(lines)
    lines.append(f"read from: {details['answers_from']}")
    prose = set(details.get("from_prose") or ())
    for qid, answer in (result.get("answers") or {}).items():
        shown = (answer or "(missing)").replace(chr(10), " / ")
        # answers found in prose are the reader's interpretation: the receipt asks for a check
        lines.append(f"{qid + ':':10} {shown}" + ("  [from prose]" if qid in prose else ""))
    if details["when"]:
        w = details["when"]
        lines.append(f"  -> when: {w['start']} .. {w['end']} ({w['precision']}: {w['text']})")
    for amount in details["amounts"]:
        kroner = f"{amount['dkk']:,}".replace(",", ".")
        lines.append(f"  -> cost: {kroner} kr. {amount['recurrence']}"
                     f" (moms: {amount['vat']}; {amount['text']})")
    if details["payer"]:
        lines.append(f"  -> paid by: {details['payer']}")
    for filename, kind in (result.get("documents") or {}).items():
        note = details["document_notes"].get(filename, "")
        hazard = (details.get("document_hazards") or {}).get(filename, "")
        lines.append(f"document:  {filename}  [{kind}]  " + (f"{hazard}: " if hazard else "")
                     + note)
    for statement in details.get("document_statements") or ():
        kinds = ", ".join(statement["kinds"]) or "documents"
        lines.append(f"said:      {kinds}: {statement['state']} ({statement['text']})")
    for kind, text in details["declarations"].items():
        lines.append(f"not needed: {kind}: {text}")
    lines.append(f"missing:   {', '.join(result['missing']) or 'nothing'}")
    lines.append(f"strategic: {result['strategic']}"
                 + (f" ({details['strategic_reason']})" if details["strategic_reason"] else ""))
    lines.append("type:      " + project_type_text(details["project_type"], "proposed",
                                                   details["project_type_reason"]))
    lines.append(f"SBSYS:     {details['sbsys_number'] or '-'}")
    lines.append(f"owner:     {details['system_owner'] or '-'}")
    return "\n".join(lines)


def calendar_table(meetings: list[Meeting]) -> str:
    """`mailbot calendar`: each meeting, its time and agenda deadline (local, with the zone:
    `Tue 14:00 CET`), week and note."""
    if not meetings:
        return "no meetings"
    rows = [[m.day.isoformat(), f"{m.starts:%a %H:%M %Z}", f"{m.deadline:%Y-%m-%d %a %H:%M %Z}",
             f"uge {m.day.isocalendar().week}", m.note] for m in meetings]
    return _table(["meeting", "time", "agenda deadline", "week", "note"], rows)


def _hazard_text(document: dict[str, Any]) -> str:
    """"  held: encrypted" for a held attachment, "  macro" for a forwarded one with macros."""
    if document["held"]:
        return f"  held: {document['hazard']}"
    return f"  {document['hazard']}" if document["hazard"] else ""


def render_sample_receipt(bot: Bot) -> None:
    """Render the receipt once with sample data: `check` fails on a broken template."""
    from mailbot.cases.opening import receipt_context
    from mailbot.cases.summary import case_summary
    from mailbot.models import Case
    from mailbot.reading.brief import BriefReading
    from mailbot.reading.documents import DocumentReading
    from mailbot.vocabulary import Hazard

    sample = Case(ref="ITP-2000-0001", applicant_address="a@example.invalid", title="Prøve",
                  language=bot.settings.bot.language, created_at=bot.clock.now(),
                  updated_at=bot.clock.now(), applicant_name="Åse Ærø")
    reading = BriefReading(
        answers={**dict.fromkeys(("who", "what", "where", "when", "why", "cost")),
                 "what": "Et nyt bookingsystem."},
        documents=(DocumentReading("Teknisk beskrivelse.pdf", "technical_description"),
                   # a forwarded file with macros and a held one: their words are rendered
                   DocumentReading("Kontrakt.docm", "contract_draft", hazard=Hazard.MACRO),
                   DocumentReading("Bilag.pdf", "other", hazard=Hazard.ENCRYPTED, held=True)),
        missing=("who", "contract_draft"),
        from_prose=("what",),  # so that the "how we understood you" part is rendered too
    )
    context = {"bot_name": bot.settings.bot.name, "case": case_summary(bot.rules, sample),
               "mail_subject": "Projektforslag: Prøve",
               **receipt_context(bot, sample, reading, reviewed=True)}
    bot.renderer.render_mail(sample.language, "applicant_receipt", context)


QUARANTINE_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
                      "In-Reply-To", "Auto-Submitted", "Content-Type")


def header_lines(raw: bytes) -> list[tuple[str, str]]:
    """The QUARANTINE_HEADERS found in a stored mail's header block, decoded (RFC 2047), in
    that order; the block alone is read (RFC 5322 section 2.1: it ends at the first empty
    line) with the standard library's header parser, so a mail that killed the parser is
    shown too. A header that cannot be decoded is shown as its raw text."""
    from email import policy
    from email.parser import BytesHeaderParser

    from mailbot.intake.parse import split_header_block

    head, _ = split_header_block(raw[:1024 * 1024])
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(head + b"\r\n\r\n")
    out: list[tuple[str, str]] = []
    for name in QUARANTINE_HEADERS:
        for value in parsed.get_all(name) or []:
            try:
                text = str(value)
            except (ValueError, LookupError, TypeError):
                text = getattr(value, "_raw", repr(value))
            out.append((name, " ".join(text.split())))
    return out


def quarantine_data(session: Session, row: RawMessage, headers: list[tuple[str, str]],
                    tz: tzinfo = COPENHAGEN) -> dict[str, Any]:
    """`mailbot quarantine show ID --json`: messages_data of the mail, its headers as
    [name, value] pairs (empty when its body was never downloaded), its folder now, its
    quarantine state (`quarantined`, `released`, `deleted`) and its audit events
    (`case_event` rows with raw_message_id = its id) as {at, kind, detail}."""
    return {**messages_data(session, [row], tz)[0], "size": row.size,
            "headers": [[name, value] for name, value in headers],
            "copy_folder": row.target_folder if row.moved_at is not None else row.folder,
            "quarantine_state": quarantine_state(row),
            "events": [{"at": _local_iso(e.at, tz), "kind": e.kind, "detail": e.detail}
                       for e in mail_events(session, row)]}


def quarantine_state(row: RawMessage) -> str:
    """`deleted` (a tombstone: purged_at set), or the ledger state (quarantined, released)."""
    return "deleted" if row.purged_at is not None else row.state


def mail_events(session: Session, row: RawMessage) -> list[CaseEvent]:
    """The audit events about one fetched mail (`case_event.raw_message_id`), oldest first."""
    from sqlmodel import col, select

    from mailbot.models import CaseEvent

    return list(session.exec(select(CaseEvent).where(CaseEvent.raw_message_id == row.id)
                             .order_by(col(CaseEvent.id))).all())


def quarantine_text(row: RawMessage, data: dict[str, Any], tz: tzinfo = COPENHAGEN) -> str:
    """`mailbot quarantine show ID`: the mail's facts (times local, with their zone), the
    reason (whole, wrapped) and its headers, then what the operator can do."""
    reason = _wrap(data["reason"], 90).splitlines() or ["-"]
    lines = [f"quarantined mail {data['id']}: UID {data['uid']} of {data['folder']}",
             f"state:      {data['quarantine_state']}", f"attempts:   {data['attempts']}",
             f"fetched:    {stamp(row.fetched_at, tz)}", f"size:       {data['size']} bytes",
             f"copy in:    {data['copy_folder']}", f"case:       {data['case_ref'] or '-'}",
             f"Message-ID: {data['message_id'] or '-'}", f"reason:     {reason[0]}",
             *(f"            {part}" for part in reason[1:]), "headers:"]
    width = max((len(name) for name, _ in data["headers"]), default=0) + 1
    lines += [f"  {name + ':':{width}} {_short(value, 200)}" for name, value in data["headers"]]
    if not data["headers"]:
        lines.append("  (not downloaded)" if not data["downloaded"] else "  (none)")
    lines.append("events:")
    lines += _timeline([(datetime.fromisoformat(e["at"]), e["kind"], e["detail"])
                        for e in data["events"]], tz) or ["  (none)"]
    done = {"released": f"it was released: its copy went back to {data['folder']} and was read "
                        "again as a new mail (`mailbot messages`)",
            "deleted": "it was deleted: only this tombstone is left"}
    lines += ["", f"quarantined mail {data['id']} is {data['quarantine_state']}; "
              + done[data["quarantine_state"]] + "." if data["quarantine_state"] in done else
              f"`mailbot quarantine release {data['id']}` processes it again once the cause "
              f"is fixed; `mailbot quarantine delete {data['id']}` deletes it."]
    return "\n".join(lines)
