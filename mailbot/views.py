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
    from mailbot.models import Case, RawMessage


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def cases_table(cases: list[Case]) -> str:
    if not cases:
        return "no cases yet"
    return _table(
        ["ref", "status", "applicant", "missing", "title"],
        [[c.ref, c.status, c.applicant_address, str(len(c.missing)), _short(c.title, 50)]
         for c in cases],
    )


def cases_data(cases: list[Case], tz: tzinfo = COPENHAGEN) -> list[dict[str, Any]]:
    """`mailbot cases --json`: one object per case, `created_at` ISO 8601 with its offset."""
    return [{"ref": c.ref, "status": c.status, "applicant": c.applicant_address,
             "applicant_name": c.applicant_name, "title": c.title, "missing": c.missing,
             "created_at": _local(c.created_at, tz).isoformat()} for c in cases]


def _local(moment: datetime, tz: tzinfo) -> datetime:
    """A stored moment (UTC; naive when read back from SQLite) in the council's zone."""
    return as_utc(moment).astimezone(tz)


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
                       "note": d.note} for d in documents],
        "missing": case.missing,
        "not_applicable": case.not_applicable,
        "strategic": case.strategic,
        "strategic_reason": case.strategic_reason,
        "sbsys_number": case.sbsys_number,
        "system_owner": case.system_owner,
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
    }


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
             f"created:   {_local(case.created_at, tz):%Y-%m-%d %H:%M:%S %Z}",
             *_case_facts(data), "", "answers:"]
    for qid, answer in data["answers"].items():
        lines.append(f"  {qid:6} {_short((answer or '(missing)').replace(chr(10), ' '), 90)}")
    lines.append("documents:")
    lines += [f"  {d['filename']}  [{d['kind']}]" for d in data["documents"]] or ["  (none)"]
    lines.append(f"missing:   {', '.join(case.missing) or 'nothing'}")
    lines.append("")
    lines += _reviews_text(data["reviews"])
    lines.append("")
    lines.append("timeline:")
    stamps = [f"{_local(e.at, tz):%Y-%m-%d %H:%M:%S %Z}" for e in events]
    width = max(map(len, stamps), default=0)  # CET and CEST in one column
    lines += [f"  {stamp:{width}}  {e.kind:18} {_short(e.detail, 100)}"
              for stamp, e in zip(stamps, events, strict=True)]
    return "\n".join(lines)


def _case_facts(data: dict[str, Any]) -> list[str]:
    """Strategic flag, SBSYS number, system owner, meeting and decision: one line each."""
    strategic = "yes" if data["strategic"] else "no"
    if data["strategic_reason"]:
        strategic += f" ({data['strategic_reason']})"
    decision = data["decision"] or "-"
    if data["decision"] and data["decision_text"]:
        decision += f": {_one_line(data['decision_text'], 100)}"
    return [f"strategic: {strategic}", f"SBSYS:     {data['sbsys_number'] or '-'}",
            f"owner:     {data['system_owner'] or '-'}", f"meeting:   {data['meeting'] or '-'}",
            f"decision:  {decision}"]


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


def messages_table(rows: list[RawMessage]) -> str:
    if not rows:
        return "no messages"
    return _table(
        ["id", "uid", "state", "kind", "from", "reason"],
        [[str(r.id), str(r.uid), r.state, r.kind, r.sender, _short(r.reason, 70)] for r in rows],
    )


def outbox_table(session: Session, limit: int) -> str:
    from sqlmodel import col, select

    from mailbot.models import Outbox

    rows = session.exec(select(Outbox).order_by(col(Outbox.id).desc()).limit(limit)).all()
    if not rows:
        return "outbox is empty"
    return _table(
        ["id", "kind", "state", "tries", "to", "subject", "last error"],
        [[str(r.id), r.kind, r.state, str(r.attempts), ", ".join(r.recipients),
          _short(r.subject, 40), _short(r.last_error, 40)] for r in rows],
    )


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
    for doc in result.get("documents") or []:
        note = details["document_notes"].get(doc["filename"], "")
        lines.append(f"document:  {doc['filename']}  [{doc['kind']}]  {note}")
    for statement in details.get("document_statements") or ():
        kinds = ", ".join(statement["kinds"]) or "documents"
        lines.append(f"said:      {kinds}: {statement['state']} ({statement['text']})")
    for kind, text in details["declarations"].items():
        lines.append(f"not needed: {kind}: {text}")
    lines.append(f"missing:   {', '.join(result['missing']) or 'nothing'}")
    lines.append(f"strategic: {result['strategic']}"
                 + (f" ({details['strategic_reason']})" if details["strategic_reason"] else ""))
    lines.append(f"SBSYS:     {details['sbsys_number'] or '-'}")
    lines.append(f"owner:     {details['system_owner'] or '-'}")
    return "\n".join(lines)


def calendar_table(meetings: list[Meeting]) -> str:
    if not meetings:
        return "no meetings"
    rows = [[m.day.isoformat(), f"{m.starts:%a %H:%M}", f"{m.deadline:%Y-%m-%d %a %H:%M}",
             f"uge {m.day.isocalendar().week}", m.note] for m in meetings]
    return _table(["meeting", "time", "agenda deadline", "week", "note"], rows)


def render_sample_receipt(bot: Bot) -> None:
    """Render the receipt once with sample data: `check` fails on a broken template."""
    from mailbot.cases.opening import receipt_context
    from mailbot.cases.summary import case_summary
    from mailbot.models import Case
    from mailbot.reading.brief import BriefReading
    from mailbot.reading.documents import DocumentReading

    sample = Case(ref="ITP-2000-0001", applicant_address="a@example.invalid", title="Prøve",
                  language=bot.settings.bot.language, created_at=bot.clock.now(),
                  updated_at=bot.clock.now(), applicant_name="Åse Ærø")
    reading = BriefReading(
        answers={**dict.fromkeys(("who", "what", "where", "when", "why", "cost")),
                 "what": "Et nyt bookingsystem."},
        documents=(DocumentReading("Teknisk beskrivelse.pdf", "technical_description"),),
        missing=("who", "contract_draft"),
        from_prose=("what",),  # so that the "how we understood you" part is rendered too
    )
    context = {"bot_name": bot.settings.bot.name, "case": case_summary(bot.rules, sample),
               "mail_subject": "Projektforslag: Prøve", **receipt_context(bot, sample, reading)}
    bot.renderer.render_mail(sample.language, "applicant_receipt", context)
