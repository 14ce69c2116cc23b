"""One case as an item on the council's agenda, in the form the municipality's other
decision forums use: title, Resumé, Sagsfremstilling, Økonomi, Indstilling and Beslutning.

This module gathers the facts (the answers, the normalised `when` and `cost`, the reviews,
the documents, the project type, the strategic flag, the system owner, the SBSYS number);
every word the secretary reads is in the templates (`da/_agenda_words.j2` writes the Resumé,
the project type line and the Indstilling once for the mail, its HTML and the Word files)
and in rules/labels.yaml. Nothing is invented: a missing answer leaves its sentence out.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TypedDict

from sqlmodel import Session

from mailbot.app import Bot
from mailbot.cases.documents import latest_documents
from mailbot.cases.summary import CaseSummary, case_summary, document_lines
from mailbot.council.meetings import DANISH_MONTHS, danish_date
from mailbot.council.reviews import current_reviews, review_state_label, reviews_of
from mailbot.models import Case, Review
from mailbot.rules import AgendaWords
from mailbot.vocabulary import ReviewState

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-ZÆØÅ0-9\"„“(])")
MAX_WHY_CHARS = 300  # the Resumé quotes at most this much of the answer to "Hvorfor"


class AgendaReview(TypedDict):
    role_name: str
    verdict: str  # the state in Danish words (rules/labels.yaml)
    comment: str
    reviewer: str  # who answered, or who was asked
    documents: str  # what was reviewed: "Kontrakt.docx (v1)"


class WhenFacts(TypedDict):
    """The normalised `Hvornår`, ready for a sentence: `precision` as in WhenDict; `start`
    and `end` "1. marts 2027"; `month` "marts 2027"; `quarter`, `week` and `year` numbers;
    `text` the applicant's words."""

    precision: str
    start: str
    end: str
    month: str
    quarter: int
    week: int
    year: int
    text: str


class Economy(TypedDict):
    """The normalised `Hvor meget`, each "" when the brief does not say: `one_off` and
    `yearly` ("80.000 kr."; monthly amounts count twelve times in `yearly`), `over_period`
    ("400.000 kr. i alt over 4 år"), `vat` ("ekskl. moms" when every amount says so),
    `payer`, and `text` the applicant's own answer."""

    one_off: str
    yearly: str
    over_period: list[str]
    vat: str
    payer: str
    text: str


class Resume(TypedDict):
    """The facts the Resumé is written from (`da/_agenda_words.j2`), "" when unknown:
    `unit` (Hvor) or else `applicant`; `what` as written and `what_inline` in lower case
    when it can follow "ansøger om" (its first word is in rules/agenda.yaml
    `lowercase_first_words`); `users` the sentence of Hvem that names the users; `why` up to
    MAX_WHY_CHARS of Hvorfor, and `why_sentence` when it is a sentence of its own."""

    applicant: str
    unit: str
    what: str
    what_inline: str
    users: str
    why: str
    why_sentence: bool
    when: WhenFacts | None


class ProjectTypeLine(TypedDict):
    """`kind` in the words of rules/labels.yaml `project_types` ("" when not settled),
    `reason`, and `source`: "proposed", "secretary", or "" for a case from before."""

    kind: str
    reason: str
    source: str


class ItemTexts(TypedDict):
    """The item's sentences as `da/_agenda_words.j2` writes them, for every format alike:
    `resume` one paragraph; `facts` (project type, strategic flag, system owner, SBSYS
    number) and `economy` one line each; `recommendation` the Indstilling."""

    resume: str
    facts: list[str]
    economy: list[str]
    recommendation: str


class AgendaItem(TypedDict):
    number: int
    case: CaseSummary
    where: str
    texts: ItemTexts
    reviews: list[AgendaReview]  # the current reviews: the verdicts that count
    guidance: list[AgendaReview]  # answered reviews of earlier versions of the documents
    documents: list[str]  # "Teknisk beskrivelse: TB.pdf (v2)"


def agenda_item(session: Session, bot: Bot, case: Case, number: int) -> AgendaItem:
    """The case as item `number` of an agenda. Raises what rendering `da/_agenda_words.j2`
    raises (jinja2.TemplateError, ConfigError when it is missing)."""
    assert case.id is not None
    summary = case_summary(bot.rules, case)
    return AgendaItem(
        number=number, case=summary, where=case.answers.get("where") or "—",
        texts=item_texts(bot, case, summary),
        reviews=review_lines(session, bot, case),
        guidance=[_review_line(bot, r) for r in reviews_of(session, case.id)
                  if r.state == ReviewState.SUPERSEDED and r.verdict is not None],
        documents=[f"{line['title']}: {line['filename']} (v{line['version']})"
                   for line in document_lines(bot.rules, latest_documents(session, case.id),
                                              "da", case)])


def item_texts(bot: Bot, case: Case, summary: CaseSummary) -> ItemTexts:
    """The Resumé, the facts of the Sagsfremstilling, the Økonomi and the Indstilling,
    written by the macros of `da/_agenda_words.j2` from the case's facts."""
    words = bot.renderer.macros("da", "_agenda_words.j2")
    not_given = bot.rules.labels.get("agenda", "not_given")
    money = economy(bot, case)
    return ItemTexts(
        resume=" ".join(str(words.resume(summary, resume(case, bot.rules.agenda),
                                         money)).split()),
        facts=_lines(words.facts(summary, project_type_line(bot, case),
                                 system_owner_text(bot, case),
                                 case.sbsys_number or not_given)),
        economy=_lines(words.economy(money)),
        recommendation=" ".join(str(words.recommendation(summary,
                                                         bot.settings.bot.name)).split()))


def _lines(text: object) -> list[str]:
    return [" ".join(line.split()) for line in str(text).splitlines() if line.strip()]


def system_owner_text(bot: Bot, case: Case) -> str:
    """The agenda's system owner line: the owner, or `ikke oplyst` (rules/labels.yaml
    `agenda.not_given`), followed by where it came from or why it is not known
    (`case.system_owner_note`: "fundet i KITOS: RuteNet, rolle Systemejer", "systemejer ikke
    slået op (KITOS svarede 403)")."""
    owner = case.system_owner or bot.rules.labels.get("agenda", "not_given")
    return f"{owner} – {case.system_owner_note}" if case.system_owner_note else owner


def project_type_line(bot: Bot, case: Case) -> ProjectTypeLine:
    """The proposal or the secretary's choice, in the words of rules/labels.yaml."""
    kind = bot.rules.labels.get("project_types", case.project_type) if case.project_type \
        else ""
    return ProjectTypeLine(kind=kind, reason=" ".join(case.project_type_reason.split()),
                           source=case.project_type_source)


def review_lines(session: Session, bot: Bot, case: Case) -> list[AgendaReview]:
    """Each current review: role, state (Danish), comment, who answered (or was asked) and
    the documents it is about."""
    assert case.id is not None
    return [_review_line(bot, r) for r in current_reviews(session, case.id)]


def _review_line(bot: Bot, review: Review) -> AgendaReview:
    return AgendaReview(role_name=bot.rules.role_names[review.role],
                        verdict=review_state_label(bot, review), comment=review.comment,
                        reviewer=review.answered_by or ", ".join(review.recipients),
                        documents=", ".join(review.documents))


# -- the Resumé ---------------------------------------------------------------------------
def resume(case: Case, words: AgendaWords) -> Resume:
    """The facts of the Resumé, from the answers and the normalised `when`; "" (or None)
    for what the brief does not say."""
    what = _first_sentences(case.answers.get("what"), 1)
    first_word = what.split(" ", 1)[0].lower() if what else ""
    why = _first_sentences(case.answers.get("why"), 2, MAX_WHY_CHARS)
    unit = _first_sentences(case.answers.get("where"), 1).rstrip(".!?")
    return Resume(
        applicant=case.applicant_name or case.applicant_address,
        unit=unit if _names_a_unit(unit, words) else "",
        what=what.rstrip(".!?"),
        what_inline=(what[:1].lower() + what[1:]).rstrip(".!?")
        if first_word in words.lowercase_first_words else "",
        users=_users(case.answers.get("who"), words),
        why=why if why[-1:] in (".", "!", "?", "") else why + ".",
        why_sentence=bool(why[:1].isupper() and len(why.split()) >= 4),
        when=when_facts(case),
    )


def _names_a_unit(text: str, words: AgendaWords) -> bool:
    """True when the answer to Hvor is the name of a unit ("Borgerservice, Center for
    Kultur og Borgerservice"), not a sentence ("Vi sidder i Vej og Park"): short enough, and
    none of rules/agenda.yaml `resume.not_a_unit` in it."""
    said = [w.strip(",;:()").lower() for w in text.split()]
    return 0 < len(said) <= words.unit_max_words and not words.not_a_unit & set(said)


def _first_sentences(text: str | None, count: int, limit: int = 0) -> str:
    """The first `count` sentences of an answer on one line, cut at a word to `limit`
    characters with "…" (0: no limit)."""
    flat = " ".join((text or "").split())
    kept = " ".join(_SENTENCE.split(flat)[:count])
    if limit and len(kept) > limit:
        kept = kept[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"
    return kept


def _users(who: str | None, words: AgendaWords) -> str:
    """The sentence of the `who` answer that says who the users are ("Brugerne er 40
    medarbejdere."), as written; "" when none does."""
    for sentence in _SENTENCE.split(" ".join((who or "").split())):
        if any(p.search(sentence) for p in words.users):
            return sentence if sentence[-1:] in (".", "!", "?") else sentence + "."
    return ""


def when_facts(case: Case) -> WhenFacts | None:
    """The normalised `when` (Case.when) in Danish words; None when the brief gave no date."""
    when = case.when or {}
    if not when:
        return None
    start, end = date.fromisoformat(when["start"]), date.fromisoformat(when["end"])
    return WhenFacts(precision=when["precision"], start=danish_date(start),
                     end=danish_date(end),
                     month=f"{DANISH_MONTHS[start.month - 1]} {start.year}",
                     quarter=(start.month - 1) // 3 + 1, week=start.isocalendar().week,
                     year=start.year, text=" ".join(str(when.get("text", "")).split()))


# -- Økonomi ------------------------------------------------------------------------------
def kroner(bot: Bot, dkk: int) -> str:
    """`80.000 kr.`: thousands with points, the currency word from rules/labels.yaml."""
    return f"{dkk:,}".replace(",", ".") + " " + bot.rules.labels.get("cost", "currency")


def economy(bot: Bot, case: Case) -> Economy:
    """The normalised cost (Case.cost, see CostDict) split into one-off and yearly sums."""
    words = bot.rules.labels
    cost = case.cost or {}
    amounts = cost.get("amounts", [])
    one_off = sum(a["dkk"] for a in amounts if a["recurrence"] == "one_off")
    yearly = sum(a["dkk"] * (12 if a["recurrence"] == "monthly" else 1) for a in amounts
                 if a["recurrence"] in ("yearly", "monthly"))
    over = [f"{kroner(bot, a['dkk'])} "
            + words.get("cost", "total_over_period").format(years=a.get("years"))
            for a in amounts if a["recurrence"] == "total_over_period"]
    vats = {a["vat"] for a in amounts}
    vat = words.get("cost", vats.pop()).strip(" ,") if len(vats) == 1 and \
        vats <= {"excl", "incl"} else ""
    return Economy(one_off=kroner(bot, one_off) if one_off else "",
                   yearly=kroner(bot, yearly) if yearly else "", over_period=over, vat=vat,
                   payer=cost.get("payer") or "",
                   text=" ".join((case.answers.get("cost") or "").split()))

