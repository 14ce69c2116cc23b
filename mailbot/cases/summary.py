"""How a case is described to people: its answers, what is missing, its documents. The one
place that turns ids (`who`, `contract_draft`) into the words of rules/*.yaml."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypedDict

from mailbot.clock import as_utc
from mailbot.config import AttachmentSettings
from mailbot.delivery.compose import enumeration
from mailbot.models import Case, CaseDocument
from mailbot.reading.documents import kinds_from_filename
from mailbot.rules import QUESTION_IDS, Rules
from mailbot.vocabulary import Hazard


class AnswerLine(TypedDict):
    label: str
    text: str


class CaseSummary(TypedDict):
    """`case` in every template about a case."""

    ref: str
    title: str
    applicant: str
    applicant_name: str
    answers: list[AnswerLine]
    sbsys_number: str
    system_owner: str
    # where the owner came from, or why there is none ("systemejer ikke slået op (…)")
    system_owner_note: str
    strategic: bool
    strategic_reason: str
    missing: list[str]


class MissingAnswer(TypedDict):
    label: str  # "Hvem"
    question: str  # the question in plain words
    example: str


class MissingDocument(TypedDict):
    kind: str  # documents.yaml id: `technical_description`
    title: str
    reviewers: str  # who reviews it, joined with "og" / "and"
    # the held file that was meant to be it, with what happened ("Teknisk beskrivelse.pdf
    # kan ikke læses (krypteret) – …"); "" for none (see fold_held)
    held: str


class DocumentLine(TypedDict):
    filename: str
    title: str
    version: int
    warning: str  # "indeholder makroer: …" (rules/labels.yaml `attachments`), "" for none


class HeldLine(TypedDict):
    """A held attachment in the applicant's list: her file's name, then what happened and
    what to send instead ("kan ikke læses (krypteret) – send den uden adgangskode")."""

    filename: str
    text: str
    kind: str  # the required document its file name names, "" for none


class DeclaredLine(TypedDict):
    """A required document the applicant declared not applicable, with her words."""

    title: str
    declaration: str


class UnderstoodAnswer(TypedDict):
    """An answer found in the applicant's prose, not under a label: shown back to her."""

    label: str  # "Hvem"
    question: str  # the question in plain words
    text: str  # her words that we took as the answer


class ReceiptDocument(TypedDict):
    filename: str
    title: str
    warning: str  # as DocumentLine.warning


class ReceiptContext(TypedDict):
    """What `applicant_receipt` sees besides `case`, `mail_subject` and `bot_name`."""

    not_applicable: list[DeclaredLine]
    strategic: bool
    strategic_reason: str
    sbsys_number: str | None
    sbsys_template: str
    ref: str
    title: str
    applicant_name: str
    documents: list[ReceiptDocument]
    held: list[HeldLine]  # attachments not forwarded, first in the list of what is missing
    missing_answers: list[MissingAnswer]
    missing_documents: list[MissingDocument]
    understood: list[UnderstoodAnswer]
    reviewed: bool  # at least one review request went out: "sendt til vurdering" is true
    # `[council] phases`; with 2 the receipt says what the klarmelding will need: the final
    # versions of some documents, and documents final approval needs besides the guidance's
    phases: int
    final_versions: list[str]  # "Endelig kontrakt"
    final_later: list[str]  # "Projektbeskrivelse"


def answer_label(rules: Rules, question_id: str, language: str = "da") -> str:
    """The question's short label: `Hvem` (Danish) or `Who` (the first English label)."""
    labels = rules.question(question_id).labels
    if language == "en":
        return next((label for label in labels if label.lower() in rules.english_labels),
                    labels[0])
    return labels[0]


def missing_answers(rules: Rules, missing: Iterable[str], language: str
                    ) -> list[MissingAnswer]:
    """Each unanswered question in plain words with an example, in the applicant's language."""
    english = language == "en"
    return [MissingAnswer(label=answer_label(rules, item, language),
                          question=q.question_en if english else q.question,
                          example=q.example_en if english else q.example)
            for item in missing if item in QUESTION_IDS
            for q in (rules.question(item),)]


def understood_answers(rules: Rules, answers: dict[str, str | None], from_prose: Iterable[str],
                       language: str) -> list[UnderstoodAnswer]:
    """The answers read from prose, question by question, so the applicant can check how
    her mail was understood."""
    english = language == "en"
    return [UnderstoodAnswer(label=answer_label(rules, qid, language),
                             question=q.question_en if english else q.question,
                             text=" ".join(text.split()))
            for qid in QUESTION_IDS if qid in set(from_prose)
            for q, text in ((rules.question(qid), answers.get(qid)),) if text]


def missing_documents(rules: Rules, missing: Iterable[str], language: str
                      ) -> list[MissingDocument]:
    """Each missing required document with the roles that review it."""
    last = "and" if language == "en" else "og"
    return [MissingDocument(kind=item, title=rules.title(item, language),
                            reviewers=enumeration((rules.role_name(r, language)
                                                     for r in kind.reviewers), last), held="")
            for item in missing for kind in (rules.kind(item),) if kind is not None]


def missing_labels(rules: Rules, missing: Iterable[str], language: str = "da") -> list[str]:
    """Short names of the missing items: `Hvem`, `Udkast til kontrakt`."""
    return [answer_label(rules, item, language) if item in QUESTION_IDS
            else rules.title(item, language) for item in missing]


def final_phase_start(case: Case) -> datetime | None:
    """When the final phase began: the guidance given or the klarmelding, whichever came
    first (UTC); None while the case is in the guidance phase."""
    moments = [as_utc(m) for m in (case.guidance_given_at, case.klarmeldt_at) if m is not None]
    return min(moments, default=None)


def document_lines(rules: Rules, documents: Iterable[CaseDocument], language: str,
                   case: Case | None = None) -> list[DocumentLine]:
    """Each document with its kind's title; with `case`, a document that came in the final
    phase is named as the final version ("Endelig kontrakt", documents.yaml `final_title`)."""
    start = final_phase_start(case) if case is not None else None
    return [DocumentLine(filename=d.filename, version=d.version,
                         title=rules.title(d.kind, language, final=start is not None
                                           and as_utc(d.received_at) >= start),
                         warning=hazard_warning(rules, d.hazard, language))
            for d in documents]


def hazard_warning(rules: Rules, hazard: str, language: str) -> str:
    """The warning beside a forwarded file: only a file with macros has one (under
    `[attachments] macros = "warn"`); "" for every other file."""
    return rules.labels.get("attachments", "macro_warning", language) \
        if hazard == Hazard.MACRO else ""


def held_lines(rules: Rules, held: Iterable[tuple[str, str]], language: str,
               limits: AttachmentSettings) -> list[HeldLine]:
    """Each held attachment, given as (file name, hazard), with rules/labels.yaml
    `attachments` words; {max_count} and {max_total_mb} are the `[attachments]` caps."""
    return [HeldLine(filename=name, text=rules.labels.get("attachments", hazard, language)
                     .format(max_count=limits.max_count,
                             max_total_mb=f"{limits.max_total_mb:g}"),
                     kind=next(iter(kinds_from_filename(name, rules)), ""))
            for name, hazard in held]


def fold_held(held: list[HeldLine], documents: list[MissingDocument]
              ) -> tuple[list[HeldLine], list[MissingDocument]]:
    """One line per gap in the applicant's list of what is missing: a held file whose name
    names a missing document is that document's reason, so it is said after the document's
    line (`held`) and not again on its own; every other held file keeps its own line.
    Returns (held lines left, missing documents), both in their order."""
    documents = [MissingDocument(**d) for d in documents]  # the caller's list stays as it was
    left = []
    for line in held:
        target = next((d for d in documents if line["kind"] and d["kind"] == line["kind"]
                       and not d["held"]), None)
        if target is None:
            left.append(line)
        else:
            target["held"] = f"{line['filename']} {line['text']}"
    return left, documents


def declared_lines(rules: Rules, declared: dict[str, str], language: str
                   ) -> list[DeclaredLine]:
    """The applicant's "not applicable" declarations (kind -> her words), with the title."""
    return [DeclaredLine(title=rules.title(kind, language), declaration=text)
            for kind, text in declared.items()]


def case_summary(rules: Rules, case: Case) -> CaseSummary:
    """The case as staff read it (Danish labels); CPR numbers were redacted on the way in."""
    return CaseSummary(
        ref=case.ref, title=case.title, applicant=case.applicant_address,
        applicant_name=case.applicant_name,
        answers=[AnswerLine(label=answer_label(rules, q), text=case.answers.get(q) or "—")
                 for q in QUESTION_IDS],
        sbsys_number=case.sbsys_number or "", system_owner=case.system_owner or "",
        system_owner_note=case.system_owner_note,
        strategic=case.strategic, strategic_reason=case.strategic_reason,
        missing=missing_labels(rules, case.missing),
    )
