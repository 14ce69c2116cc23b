"""Load and validate rules/*.yaml. Errors name the file, the entry and the problem."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mailbot.errors import ConfigError
from mailbot.vocabulary import Decision, Hazard, ProjectType, Role, Verdict

QUESTION_IDS = ("who", "what", "where", "when", "why", "cost")
DOCUMENT_KINDS = (
    "technical_description", "contract_draft", "dpa_draft", "business_case",
    "project_description", "other",
)
ROLES: tuple[str, ...] = tuple(Role)


@dataclass(frozen=True)
class Question:
    id: str
    labels: tuple[str, ...]
    hints: tuple[str, ...]
    question: str
    example: str
    question_en: str
    example_en: str


@dataclass(frozen=True)
class Cue:
    """One prose cue: a clause that matches `pattern` scores `weight` for its question."""

    weight: int
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class Prose:
    """rules/brief.yaml `prose`: how a brief without labels is read."""

    cues: dict[str, tuple[Cue, ...]]  # question id -> its cues
    min_score: int
    min_answers: int
    max_clauses: int
    date_weight: int
    year_weight: int
    amount_weight: int
    english_words: frozenset[str]
    danish_words: frozenset[str]
    # a clause about what the old or current system costs is not the new project's cost,
    # unless it names the new price too
    old_cost: tuple[re.Pattern[str], ...] = ()
    new_cost: tuple[re.Pattern[str], ...] = ()
    # a writer who introduces herself as the supplier's (or a consultant's) person is not the
    # municipality's contact person, and her company is not where the system is used
    supplier_self: tuple[re.Pattern[str], ...] = ()
    # a writer who says she only helps another unit send the brief ("Jeg hjælper Jobcentret med
    # at sende denne ansøgning"): that clause, and her own introduction (`self_intro`), answer
    # no question
    helper: tuple[re.Pattern[str], ...] = ()
    # a supplier's pitch: no answer is read from the prose of a mail that has one
    pitch: tuple[re.Pattern[str], ...] = ()
    # a clause that says who pays names the payer, not (unless nothing else does) the unit
    payer: tuple[re.Pattern[str], ...] = ()
    self_intro: tuple[re.Pattern[str], ...] = ()
    # a dated sentence about something else than go-live (a demo, a workshop, a meeting, a past
    # event, a contract that expires) is not the `when` answer when another sentence has a
    # go-live cue
    go_live: tuple[re.Pattern[str], ...] = ()
    other_events: tuple[re.Pattern[str], ...] = ()
    # without any label, the answers must come from at least this many clauses that speak to a
    # question themselves: one sentence that touches three questions ("can I attend the
    # meeting on 13 April about the parking app for Vej og Park?") is not a brief
    min_statements: int = 1


@dataclass(frozen=True)
class DocumentStatements:
    """rules/brief.yaml `document_statements`: sentences about the documents."""

    names: tuple[re.Pattern[str], ...]
    states: dict[str, tuple[re.Pattern[str], ...]]  # attached | announced | missing | negotiating


DOCUMENT_STATES = ("attached", "announced", "missing", "negotiating")


@dataclass(frozen=True)
class DocumentKind:
    id: str
    title: str
    title_en: str
    reviewers: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    content_patterns: tuple[re.Pattern[str], ...]
    not_applicable: tuple[re.Pattern[str], ...]
    # scoring a document by its text (mailbot.reading.documents): terms it defines and uses,
    # headings of its structure
    terms: tuple[re.Pattern[str], ...] = ()
    structure: tuple[re.Pattern[str], ...] = ()
    # the name of the version final approval needs ("Endelig kontrakt"); "" = `title`
    final_title: str = ""
    final_title_en: str = ""


@dataclass(frozen=True)
class Screening:
    auto_reply_subject_prefixes: tuple[str, ...]
    auto_reply_headers: tuple[str, ...]
    bounce_senders: tuple[str, ...]
    bulk_precedence: tuple[str, ...]
    list_headers: tuple[str, ...]
    max_received_headers: int
    max_receipts_per_sender_per_hour: int
    auto_reply_precedence: tuple[str, ...] = ()
    loop_headers: tuple[str, ...] = ()
    machine_senders: tuple[str, ...] = ()
    auto_reply_subject_patterns: tuple[re.Pattern[str], ...] = ()
    # each entry: patterns that must all match near the top of a short mail's own text
    auto_reply_body: tuple[tuple[re.Pattern[str], ...], ...] = ()
    auto_reply_body_window: int = 600
    auto_reply_body_max_chars: int = 1500
    # a mail whose brief reading finds this many answers is a person's, whatever its subject or
    # body says (content heuristics never override a brief)
    brief_min_answers: int = 3
    quote_starts: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True)
class Period:
    pattern: re.Pattern[str]
    start: str  # MM-DD
    end: str
    precision: str


@dataclass(frozen=True)
class SystemCues:
    """signals.yaml `systems`: how a brief names its system (mailbot.reading.systems)."""

    new_negative: tuple[re.Pattern[str], ...]
    new_positive: tuple[re.Pattern[str], ...]
    name_words: tuple[re.Pattern[str], ...]
    endings: tuple[str, ...]  # longest first
    min_stem: int
    not_names: frozenset[str]  # casefolded
    max_names: int


@dataclass(frozen=True)
class Signals:
    strategic_negative: tuple[re.Pattern[str], ...]
    strategic_positive: tuple[re.Pattern[str], ...]
    municipality_wide: tuple[re.Pattern[str], ...]
    cost_threshold_dkk: int
    sbsys: re.Pattern[str]
    sbsys_template: str
    system_owner_labels: tuple[str, ...]
    payer_phrases: tuple[str, ...]
    when_periods: tuple[Period, ...]
    systems: SystemCues
    field_labels: tuple[str, ...] = ()  # a line "SBSYS: …" is a field, not an answer


@dataclass(frozen=True)
class Replies:
    quote_headers: tuple[re.Pattern[str], ...]
    sign_offs: tuple[str, ...]
    verdicts: dict[str, tuple[re.Pattern[str], ...]]
    status_words: tuple[str, ...]


@dataclass(frozen=True)
class DecisionWords:
    patterns: dict[str, tuple[re.Pattern[str], ...]]
    add_to_agenda: tuple[str, ...]
    applicant_postpone: tuple[str, ...]
    applicant_withdraw: tuple[str, ...]
    informational: tuple[re.Pattern[str], ...] = ()  # "til orientering": not decided
    clause_breaks: tuple[str, ...] = ()  # ", mens": a new clause with its own decision
    # the secretary's "ITP-…: it-projekt": project type -> the words that name it
    project_types: dict[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)
    # "ikke et it-projekt": a type named right after these is not chosen
    project_type_negations: tuple[re.Pattern[str], ...] = ()
    # the applicant declares the case ready for final approval (two phases): one pattern
    # per phrase, whole words, ASCII spellings of æ/ø/å included
    applicant_klarmelding: tuple[re.Pattern[str], ...] = ()
    klarmelding_negations: tuple[str, ...] = ()  # "ikke klar til godkendelse" is none
    # "Klarmelding følger i næste uge", "Jeg klarmelder, når DBA er underskrevet": a
    # klarmelding announced for later, anywhere in the sentence, is none yet
    klarmelding_later: tuple[str, ...] = ()


@dataclass(frozen=True)
class TypeCue:
    """One cue for a project type (rules/agenda.yaml): a brief that matches `pattern`
    scores `weight` for that type; `cue` is the reason in the secretary's words."""

    weight: int
    pattern: re.Pattern[str]
    cue: str


@dataclass(frozen=True)
class AgendaWords:
    """rules/agenda.yaml: the project type proposal and the words the Resumé needs."""

    project_types: dict[str, tuple[TypeCue, ...]]  # ProjectType value -> its cues
    negations: tuple[re.Pattern[str], ...]
    reason: str  # "{cue}: „{words}“"
    tie_reason: str  # "… {digital} og {it}"
    lowercase_first_words: frozenset[str]
    users: tuple[re.Pattern[str], ...]
    unit_max_words: int = 6
    not_a_unit: frozenset[str] = frozenset()


LABEL_KEYS: dict[str, tuple[str, ...]] = {
    "review_states": ("waiting", *(v.value for v in Verdict)),
    "decisions": tuple(d.value for d in Decision),
    "readiness": ("missing", "no_reviews", "review", "not_klarmeldt"),
    "items": ("system_owner",),
    "files": ("agenda_docx", "agenda_item_docx", "documents_zip"),
    "cost": ("one_off", "yearly", "monthly", "total_over_period", "excl", "incl", "currency",
             "payer"),
    "project_types": tuple(t.value for t in ProjectType),
    "agenda": ("not_given",),
    "system_owner": ("brief", "applicant", "kitos", "kitos_no_owner", "not_found", "no_names",
                     "new_system", "kitos_error", "kitos_disabled"),
    "kitos_reasons": ("refused", "login", "timeout", "unreachable", "bad_answer",
                      "no_organization"),
    "attention": ("tampered", "reviewer_on_thread", "outside", "no_review",
                  "verdict_not_applied", "not_answered", "unclear_twice", "expired",
                  "unauthenticated"),
    # an attachment's hazard as the applicant reads it after its name; `macro_warning` is
    # the warning beside a file with macros that was forwarded (mailbot.vocabulary.Hazard)
    "attachments": ("macro_warning", *(h.value for h in Hazard)),
    "privacy": ("other_person", "anonymised", "erased"),
}


# The {placeholders} each label may use; any other name (or a broken brace) is an error at load.
LABEL_PLACEHOLDERS: dict[tuple[str, str], frozenset[str]] = {
    ("readiness", "missing"): frozenset({"items"}),
    ("attachments", "too_many"): frozenset({"max_count"}),
    ("attachments", "too_large"): frozenset({"max_total_mb"}),
    ("readiness", "review"): frozenset({"role", "state"}),
    ("cost", "total_over_period"): frozenset({"years"}),
    ("cost", "payer"): frozenset({"payer"}),
    ("files", "agenda_docx"): frozenset({"meeting"}),
    ("files", "documents_zip"): frozenset({"meeting"}),
    ("files", "agenda_item_docx"): frozenset({"meeting", "number", "ref"}),
    ("system_owner", "kitos"): frozenset({"system", "role"}),
    ("system_owner", "kitos_no_owner"): frozenset({"system", "role"}),
    ("system_owner", "not_found"): frozenset({"names"}),
    ("system_owner", "kitos_error"): frozenset({"reason"}),
    ("kitos_reasons", "refused"): frozenset({"status"}),
    ("kitos_reasons", "timeout"): frozenset({"seconds"}),
    ("kitos_reasons", "no_organization"): frozenset({"cvr"}),
    ("attention", "reviewer_on_thread"): frozenset({"sender"}),
    ("attention", "outside"): frozenset({"sender"}),
    ("attention", "verdict_not_applied"): frozenset({"sender", "role"}),
    ("attention", "not_answered"): frozenset({"role", "recipients", "count"}),
    ("attention", "unclear_twice"): frozenset({"role"}),
    ("attention", "expired"): frozenset({"sender", "role", "days"}),
    ("attention", "unauthenticated"): frozenset({"sender", "domain"}),
}


@dataclass(frozen=True)
class Labels:
    """rules/labels.yaml: group -> language -> key -> the words people read."""

    groups: dict[str, dict[str, dict[str, str]]]

    def get(self, group: str, key: str, language: str = "da") -> str:
        """The words for `key` in `language`, Danish when that language lacks them.
        Raises KeyError for a key that labels.yaml does not define (a bug: load validates)."""
        words = self.groups[group]
        return words.get(language, {}).get(key) or words["da"][key]


@dataclass(frozen=True)
class Rules:
    questions: tuple[Question, ...]
    empty_answers: tuple[re.Pattern[str], ...]  # a clause that says the answer is not known
    end_markers: tuple[str, ...]
    english_labels: frozenset[str]
    paragraph_stops: tuple[re.Pattern[str], ...]
    signals: Signals
    replies: Replies
    decision_words: DecisionWords
    kinds: tuple[DocumentKind, ...]
    required: tuple[str, ...]
    # two phases: kind -> "final" (a version from the final phase) or "any" (any version)
    required_final: dict[str, str]
    role_names: dict[str, str]
    role_names_en: dict[str, str]
    screening: Screening
    labels: Labels
    prose: Prose
    document_statements: DocumentStatements
    agenda: AgendaWords
    closing_lines: tuple[re.Pattern[str], ...] = ()  # an offer to call, a phone line, "/Name"

    def kind(self, kind_id: str) -> DocumentKind | None:
        return next((k for k in self.kinds if k.id == kind_id), None)

    def title(self, kind_id: str, language: str = "da", final: bool = False) -> str:
        """The kind's name in `language`; `final`: the name of the version final approval
        needs ("Endelig kontrakt"), where documents.yaml gives one."""
        kind = self.kind(kind_id)
        if kind is None:
            return "Other attachment" if language == "en" else "Andet bilag"
        if final and kind.final_title:
            return kind.final_title_en if language == "en" else kind.final_title
        return kind.title_en if language == "en" else kind.title

    def reviewers_of(self, kind_id: str) -> tuple[str, ...]:
        kind = self.kind(kind_id)
        return kind.reviewers if kind else ()

    def role_name(self, role: str, language: str = "da") -> str:
        names = self.role_names_en if language == "en" else self.role_names
        return names.get(role, self.role_names[role])

    def question(self, question_id: str) -> Question:
        return next(q for q in self.questions if q.id == question_id)


# libyaml's loader reads the shipped rules ten times faster than PyYAML's Python one (a
# tenth of a second of every start-up, `mailbot inspect` included); PyYAML without libyaml
# has only the Python one (https://pyyaml.org/wiki/PyYAMLDocumentation, "CLoader")
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str) -> Any:
    """The YAML document `text` as Python objects (safe types only). Raises yaml.YAMLError
    with the line, the column and the offending line quoted: libyaml's message has no
    quote, so a file it refuses is read again by the Python loader for the message."""
    try:
        return yaml.load(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        return yaml.safe_load(text)


class _Reader:
    """Typed access to one YAML file that raises ConfigError naming file and entry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            loaded = _load_yaml(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(str(path), "-", "the rules file is missing",
                              "restore it from the shipped rules/ folder") from err
        except UnicodeDecodeError as err:
            raise ConfigError(str(path), "-", f"is not UTF-8 text ({err.reason} at byte "
                              f"{err.start})", "save the file as UTF-8") from err
        except yaml.YAMLError as err:
            raise ConfigError(str(path), "-", f"is not valid YAML ({err})",
                              "correct the syntax") from err
        if not isinstance(loaded, dict):
            raise ConfigError(str(path), "-", "must be a mapping", "see the shipped file")
        self.data: dict[str, Any] = loaded

    def fail(self, entry: str, problem: str, fix: str = "see the shipped file") -> ConfigError:
        return ConfigError(str(self.path), entry, problem, fix)

    def mapping(self, value: Any, entry: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(entry, "must be a mapping")
        return value

    def strings(self, value: Any, entry: str, allow_empty: bool = False) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(entry, "must be a list of strings")
        if not value and not allow_empty:
            raise self.fail(entry, "must not be empty")
        return tuple(value)

    def string(self, value: Any, entry: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(entry, "must be a non-empty string")
        return value

    def regex(self, pattern: str, entry: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
        try:
            return re.compile(pattern, flags)
        except re.error as err:
            raise self.fail(entry, f"is not a valid regular expression ({err})") from err

    def regexes(self, patterns: tuple[str, ...], entry: str,
                flags: int = re.IGNORECASE) -> tuple[re.Pattern[str], ...]:
        return tuple(self.regex(p, f"{entry}[{i}]", flags) for i, p in enumerate(patterns))


def _questions(reader: _Reader) -> tuple[Question, ...]:
    raw = reader.mapping(reader.data.get("questions"), "questions")
    if set(raw) != set(QUESTION_IDS):
        raise reader.fail("questions", f"must name exactly {', '.join(QUESTION_IDS)}")
    out = []
    for qid in QUESTION_IDS:
        entry = reader.mapping(raw[qid], f"questions.{qid}")
        out.append(Question(
            id=qid,
            labels=reader.strings(entry.get("labels"), f"questions.{qid}.labels"),
            hints=tuple(h.lower() for h in reader.strings(
                entry.get("hints", []), f"questions.{qid}.hints", True)),
            question=reader.string(entry.get("question"), f"questions.{qid}.question"),
            example=reader.string(entry.get("example"), f"questions.{qid}.example"),
            question_en=str(entry.get("question_en") or entry.get("question")),
            example_en=str(entry.get("example_en") or entry.get("example")),
        ))
    return tuple(out)


def _kinds(reader: _Reader) -> tuple[DocumentKind, ...]:
    raw = reader.mapping(reader.data.get("kinds"), "kinds")
    out = []
    for kind_id, value in raw.items():
        entry_name = f"kinds.{kind_id}"
        if kind_id not in DOCUMENT_KINDS or kind_id == "other":
            raise reader.fail(entry_name, "is not a document kind",
                              f"use one of {', '.join(DOCUMENT_KINDS[:-1])}")
        entry = reader.mapping(value, entry_name)
        reviewers = reader.strings(entry.get("reviewers", []), f"{entry_name}.reviewers", True)
        for role in reviewers:
            if role not in ROLES:
                raise reader.fail(f"{entry_name}.reviewers", f"{role!r} is not a reviewer role",
                                  f"use one of {', '.join(ROLES)}")
        patterns = reader.strings(entry.get("filename_patterns"), f"{entry_name}.filename_patterns")
        content = reader.strings(entry.get("content_patterns", []),
                                 f"{entry_name}.content_patterns", True)
        declared = reader.strings(entry.get("not_applicable", []),
                                  f"{entry_name}.not_applicable", True)
        out.append(DocumentKind(
            id=kind_id,
            title=reader.string(entry.get("title"), f"{entry_name}.title"),
            title_en=str(entry.get("title_en") or entry.get("title")),
            reviewers=reviewers,
            patterns=reader.regexes(patterns, f"{entry_name}.filename_patterns"),
            content_patterns=reader.regexes(content, f"{entry_name}.content_patterns",
                                            re.IGNORECASE | re.MULTILINE),
            not_applicable=reader.regexes(declared, f"{entry_name}.not_applicable"),
            terms=reader.regexes(reader.strings(entry.get("terms", []), f"{entry_name}.terms",
                                                True), f"{entry_name}.terms"),
            structure=reader.regexes(
                reader.strings(entry.get("structure", []), f"{entry_name}.structure", True),
                f"{entry_name}.structure", re.IGNORECASE | re.MULTILINE),
            final_title=str(entry.get("final_title") or ""),
            final_title_en=str(entry.get("final_title_en") or entry.get("final_title") or ""),
        ))
    return tuple(out)


FINAL_MODES = ("final", "any")


def _required_final(reader: _Reader, known: set[str]) -> dict[str, str]:
    """documents.yaml `required_final`: kind -> "final" | "any", every kind defined."""
    raw = reader.mapping(reader.data.get("required_final"), "required_final")
    for kind_id, mode in raw.items():
        if kind_id not in known:
            raise reader.fail(f"required_final.{kind_id}", "is not defined under kinds")
        if mode not in FINAL_MODES:
            raise reader.fail(f"required_final.{kind_id}", f"must be {' or '.join(FINAL_MODES)}",
                              "final: a version from the final phase; any: any version")
    return {str(k): str(v) for k, v in raw.items()}


def _screening(reader: _Reader) -> Screening:
    d = reader.data
    limit = d.get("max_received_headers")
    if not isinstance(limit, int) or limit < 5:
        raise reader.fail("max_received_headers", "must be a whole number of at least 5")
    return Screening(
        auto_reply_subject_prefixes=tuple(
            p.lower() for p in reader.strings(d.get("auto_reply_subject_prefixes"),
                                              "auto_reply_subject_prefixes")),
        auto_reply_headers=tuple(
            h.lower() for h in reader.strings(d.get("auto_reply_headers"), "auto_reply_headers")),
        bounce_senders=tuple(
            s.lower() for s in reader.strings(d.get("bounce_senders"), "bounce_senders")),
        bulk_precedence=tuple(
            s.lower() for s in reader.strings(d.get("bulk_precedence"), "bulk_precedence")),
        list_headers=tuple(
            s.lower() for s in reader.strings(d.get("list_headers"), "list_headers")),
        max_received_headers=limit,
        max_receipts_per_sender_per_hour=_positive(reader, "max_receipts_per_sender_per_hour"),
        auto_reply_precedence=_lowered(reader, "auto_reply_precedence"),
        loop_headers=_lowered(reader, "loop_headers"),
        machine_senders=_lowered(reader, "machine_senders"),
        auto_reply_subject_patterns=reader.regexes(
            reader.strings(d.get("auto_reply_subject_patterns", []),
                           "auto_reply_subject_patterns", True),
            "auto_reply_subject_patterns"),
        auto_reply_body=_pattern_groups(reader, "auto_reply_body"),
        auto_reply_body_window=_positive(reader, "auto_reply_body_window", 600),
        auto_reply_body_max_chars=_positive(reader, "auto_reply_body_max_chars", 1500),
        brief_min_answers=_positive(reader, "brief_min_answers", 3),
        quote_starts=reader.regexes(
            reader.strings(d.get("quote_starts", []), "quote_starts", True), "quote_starts",
            re.IGNORECASE | re.MULTILINE),
    )


def _lowered(reader: _Reader, entry: str) -> tuple[str, ...]:
    return tuple(s.lower() for s in reader.strings(reader.data.get(entry, []), entry, True))


def _pattern_groups(reader: _Reader, entry: str) -> tuple[tuple[re.Pattern[str], ...], ...]:
    """A list of lists of regular expressions (all of one inner list must match)."""
    value = reader.data.get(entry, [])
    if not isinstance(value, list):
        raise reader.fail(entry, "must be a list of lists of regular expressions")
    return tuple(
        reader.regexes(reader.strings(group, f"{entry}[{i}]"), f"{entry}[{i}]",
                       re.IGNORECASE | re.MULTILINE)
        for i, group in enumerate(value))


def _whole(reader: _Reader, value: Any, entry: str) -> int:
    """A whole number of at least 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise reader.fail(entry, "must be a whole number of at least 1")
    return value


def _positive(reader: _Reader, entry: str, default: int | None = None) -> int:
    value = reader.data.get(entry, default)
    if not isinstance(value, int) or value < 1:
        raise reader.fail(entry, "must be a whole number of at least 1")
    return value


def _signals(reader: _Reader) -> Signals:
    d = reader.data
    strategic = reader.mapping(d.get("strategic"), "strategic")
    threshold = strategic.get("cost_threshold_dkk")
    if not isinstance(threshold, int) or threshold < 0:
        raise reader.fail("strategic.cost_threshold_dkk", "must be a whole number of kroner")
    periods = []
    raw_periods = d.get("when_periods", [])
    if not isinstance(raw_periods, list):
        raise reader.fail("when_periods", "must be a list")
    for i, item in enumerate(raw_periods):
        entry = reader.mapping(item, f"when_periods[{i}]")
        for key in ("start", "end"):
            if not re.fullmatch(r"\d{2}-\d{2}", str(entry.get(key, ""))):
                raise reader.fail(f"when_periods[{i}].{key}", "must be MM-DD")
        periods.append(Period(
            pattern=reader.regex(reader.string(entry.get("pattern"), f"when_periods[{i}]"),
                                 f"when_periods[{i}].pattern"),
            start=entry["start"], end=entry["end"],
            precision=reader.string(entry.get("precision"), f"when_periods[{i}].precision"),
        ))
    return Signals(
        strategic_negative=reader.regexes(
            reader.strings(strategic.get("negative"), "strategic.negative"), "strategic.negative"),
        strategic_positive=reader.regexes(
            reader.strings(strategic.get("positive"), "strategic.positive"), "strategic.positive"),
        municipality_wide=reader.regexes(
            reader.strings(strategic.get("municipality_wide"), "strategic.municipality_wide"),
            "strategic.municipality_wide"),
        cost_threshold_dkk=threshold,
        sbsys=reader.regex(reader.string(d.get("sbsys_pattern"), "sbsys_pattern"),
                           "sbsys_pattern", 0),
        sbsys_template=reader.string(d.get("sbsys_template"), "sbsys_template"),
        system_owner_labels=reader.strings(d.get("system_owner_labels"), "system_owner_labels"),
        field_labels=reader.strings(d.get("field_labels", []), "field_labels", True),
        payer_phrases=reader.strings(d.get("payer_phrases"), "payer_phrases"),
        when_periods=tuple(periods),
        systems=_system_cues(reader),
    )


def _system_cues(reader: _Reader) -> SystemCues:
    raw = reader.mapping(reader.data.get("systems"), "systems")
    new = reader.mapping(raw.get("new_system"), "systems.new_system")

    def patterns(value: Any, entry: str) -> tuple[re.Pattern[str], ...]:
        return reader.regexes(reader.strings(value, entry, True), entry)

    endings = reader.strings(raw.get("endings", []), "systems.endings", True)
    return SystemCues(
        new_negative=patterns(new.get("negative", []), "systems.new_system.negative"),
        new_positive=patterns(new.get("positive"), "systems.new_system.positive"),
        name_words=patterns(raw.get("name_words", []), "systems.name_words"),
        endings=tuple(sorted((e.lower() for e in endings), key=len, reverse=True)),
        min_stem=_positive(reader, "systems.min_stem", raw.get("min_stem", 4)),
        not_names=frozenset(w.casefold() for w in reader.strings(
            raw.get("not_names", []), "systems.not_names", True)),
        max_names=_positive(reader, "systems.max_names", raw.get("max_names", 6)),
    )


def _replies(reader: _Reader) -> Replies:
    d = reader.data
    raw = reader.mapping(d.get("verdicts"), "verdicts")
    expected = ("rejected", "changes_requested", "approved")
    if set(raw) != set(expected):
        raise reader.fail("verdicts", f"must name exactly {', '.join(expected)}")
    multiline = re.IGNORECASE | re.MULTILINE
    return Replies(
        quote_headers=reader.regexes(reader.strings(d.get("quote_headers"), "quote_headers"),
                                     "quote_headers"),
        sign_offs=tuple(s.lower() for s in reader.strings(d.get("sign_offs"), "sign_offs")),
        verdicts={v: reader.regexes(reader.strings(raw[v], f"verdicts.{v}"), f"verdicts.{v}",
                                    multiline) for v in expected},
        status_words=tuple(s.lower() for s in reader.strings(d.get("status_words"),
                                                              "status_words")),
    )


def _decision_words(reader: _Reader) -> DecisionWords:
    d = reader.data
    raw = reader.mapping(d.get("decisions"), "decisions")
    expected = ("forwarded", "postponed", "rejected", "approved")
    if set(raw) != set(expected):
        raise reader.fail("decisions", f"must name exactly {', '.join(expected)}")

    def words(key: str) -> tuple[str, ...]:
        return tuple(w.lower() for w in reader.strings(d.get(key), key))

    return DecisionWords(
        patterns={k: reader.regexes(reader.strings(raw[k], f"decisions.{k}"), f"decisions.{k}")
                  for k in expected},
        add_to_agenda=words("add_to_agenda"),
        applicant_postpone=words("applicant_postpone"),
        applicant_withdraw=words("applicant_withdraw"),
        informational=reader.regexes(
            reader.strings(d.get("informational", []), "informational", True),
            "informational"),
        clause_breaks=tuple(w.lower() for w in reader.strings(
            d.get("clause_breaks", []), "clause_breaks", True)),
        project_types=_per_project_type(reader, "project_types", lambda items, entry:
                                        reader.regexes(reader.strings(items, entry), entry)),
        project_type_negations=reader.regexes(
            reader.strings(d.get("project_type_negations", []), "project_type_negations",
                           True), "project_type_negations"),
        applicant_klarmelding=tuple(
            _phrase(reader, phrase, f"applicant_klarmelding[{i}]")
            for i, phrase in enumerate(reader.strings(d.get("applicant_klarmelding"),
                                                      "applicant_klarmelding"))),
        klarmelding_negations=words("klarmelding_negations"),
        klarmelding_later=words("klarmelding_later"),
    )


def _per_project_type(reader: _Reader, entry: str, read: Any) -> dict[str, Any]:
    """A mapping with exactly one entry per ProjectType, each read by `read(value, entry)`."""
    raw = reader.mapping(reader.data.get(entry), entry)
    expected = [t.value for t in ProjectType]
    if set(raw) != set(expected):
        raise reader.fail(entry, f"must name exactly {', '.join(expected)}")
    return {kind: read(raw[kind], f"{entry}.{kind}") for kind in expected}


def _agenda_words(reader: _Reader) -> AgendaWords:
    d = reader.data

    def cues(items: Any, entry: str) -> tuple[TypeCue, ...]:
        if not isinstance(items, list) or not items:
            raise reader.fail(entry, "must be a list of [weight, pattern, cue]")
        found = []
        for i, item in enumerate(items):
            where = f"{entry}[{i}]"
            if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], int)
                    or item[0] < 1 or not isinstance(item[1], str)
                    or not isinstance(item[2], str) or not item[2].strip()):
                raise reader.fail(where, "must be [weight, pattern, cue] with a whole weight "
                                  ">= 1", 'e.g. [3, "\\bselvbetjening\\w*", "selvbetjening"]')
            found.append(TypeCue(item[0], reader.regex(item[1], where), item[2]))
        return tuple(found)

    resume = reader.mapping(d.get("resume"), "resume")
    return AgendaWords(
        project_types=_per_project_type(reader, "project_types", cues),
        negations=reader.regexes(reader.strings(d.get("negations", []), "negations", True),
                                 "negations"),
        reason=_formatted(reader, d.get("reason"), "reason", frozenset({"cue", "words"})),
        tie_reason=_formatted(reader, d.get("tie_reason"), "tie_reason",
                              frozenset({"digital", "it"})),
        lowercase_first_words=frozenset(w.lower() for w in reader.strings(
            resume.get("lowercase_first_words", []), "resume.lowercase_first_words", True)),
        users=reader.regexes(reader.strings(resume.get("users", []), "resume.users", True),
                             "resume.users"),
        unit_max_words=_whole(reader, resume.get("unit_max_words", 6),
                              "resume.unit_max_words"),
        not_a_unit=frozenset(w.lower() for w in reader.strings(
            resume.get("not_a_unit", []), "resume.not_a_unit", True)),
    )


def _phrase(reader: _Reader, phrase: str, entry: str) -> re.Pattern[str]:
    """A phrase as whole words, any run of white space between them, æ/ø/å also in their
    ASCII spellings ("klar til IT-Projektraadet")."""
    from mailbot.reading.danish import ascii_spellings  # danish reads Signals from here

    spellings = sorted(ascii_spellings(phrase.strip()), key=len, reverse=True)
    body = "|".join(r"\s+".join(re.escape(w) for w in s.split()) for s in spellings)
    return reader.regex(rf"(?<!\w)(?:{body})(?!\w)", entry)


def load_rules(folder: Path) -> Rules:
    brief = _Reader(folder / "brief.yaml")
    documents = _Reader(folder / "documents.yaml")
    screening = _Reader(folder / "screening.yaml")
    kinds = _kinds(documents)
    required = documents.strings(documents.data.get("required"), "required")
    known = {k.id for k in kinds}
    for kind_id in required:
        if kind_id not in known:
            raise documents.fail("required", f"{kind_id!r} is not defined under kinds")
    roles = documents.mapping(documents.data.get("roles"), "roles")
    if set(roles) != set(ROLES):
        raise documents.fail("roles", f"must name exactly {', '.join(ROLES)}")
    return Rules(
        questions=_questions(brief),
        empty_answers=brief.regexes(
            brief.strings(brief.data.get("empty_answers"), "empty_answers", True),
            "empty_answers"),
        closing_lines=brief.regexes(
            brief.strings(brief.data.get("closing_lines", []), "closing_lines", True),
            "closing_lines"),
        english_labels=frozenset(
            label.lower() for label in brief.strings(brief.data.get("english_labels", []),
                                                      "english_labels", True)),
        paragraph_stops=brief.regexes(
            brief.strings(brief.data.get("paragraph_stops", []), "paragraph_stops", True),
            "paragraph_stops", re.IGNORECASE | re.MULTILINE),
        signals=_signals(_Reader(folder / "signals.yaml")),
        replies=_replies(_Reader(folder / "verdicts.yaml")),
        decision_words=_decision_words(_Reader(folder / "decisions.yaml")),
        end_markers=tuple(
            m.lower() for m in brief.strings(brief.data.get("end_markers"), "end_markers", True)),
        kinds=kinds,
        required=required,
        required_final=_required_final(documents, known),
        role_names={k: documents.string(v, f"roles.{k}") for k, v in roles.items()},
        role_names_en={k: documents.string(v, f"roles_en.{k}") for k, v in documents.mapping(
            documents.data.get("roles_en", roles), "roles_en").items()},
        screening=_screening(screening),
        labels=_labels(_Reader(folder / "labels.yaml")),
        prose=_prose(brief),
        document_statements=_document_statements(brief),
        agenda=_agenda_words(_Reader(folder / "agenda.yaml")),
    )


def _prose(reader: _Reader) -> Prose:
    raw = reader.mapping(reader.data.get("prose"), "prose")
    cues_raw = reader.mapping(raw.get("cues"), "prose.cues")
    unknown = sorted(set(cues_raw) - set(QUESTION_IDS))
    if unknown:
        raise reader.fail(f"prose.cues.{unknown[0]}", "is not a question id",
                          f"use {', '.join(QUESTION_IDS)}")
    cues: dict[str, tuple[Cue, ...]] = {}
    for qid in QUESTION_IDS:
        items = cues_raw.get(qid, [])
        if not isinstance(items, list):
            raise reader.fail(f"prose.cues.{qid}", "must be a list of [weight, pattern]")
        found = []
        for i, item in enumerate(items):
            entry = f"prose.cues.{qid}[{i}]"
            if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], int)
                    or item[0] < 1 or not isinstance(item[1], str)):
                raise reader.fail(entry, "must be [weight, pattern] with a whole weight >= 1",
                                  'e.g. [3, "\\\\bkontaktperson\\\\b"]')
            found.append(Cue(item[0], reader.regex(item[1], entry)))
        cues[qid] = tuple(found)

    def number(key: str) -> int:
        value = raw.get(key)
        if not isinstance(value, int) or value < 0:
            raise reader.fail(f"prose.{key}", "must be a whole number of at least 0")
        return value

    def words(key: str) -> frozenset[str]:
        return frozenset(w.lower() for w in reader.strings(raw.get(key), f"prose.{key}"))

    def patterns(key: str) -> tuple[re.Pattern[str], ...]:
        return reader.regexes(reader.strings(raw.get(key, []), f"prose.{key}", True),
                              f"prose.{key}")

    return Prose(cues=cues, min_score=number("min_score"), min_answers=number("min_answers"),
                 max_clauses=max(1, number("max_clauses")), date_weight=number("date_weight"),
                 year_weight=number("year_weight"), amount_weight=number("amount_weight"),
                 english_words=words("english_words"), danish_words=words("danish_words"),
                 old_cost=patterns("old_cost"), new_cost=patterns("new_cost"),
                 supplier_self=patterns("supplier_self"), helper=patterns("helper"),
                 pitch=patterns("pitch"),
                 payer=patterns("payer"),
                 self_intro=patterns("self_intro"), go_live=patterns("go_live"),
                 other_events=patterns("other_events"),
                 min_statements=number("min_statements") if "min_statements" in raw else 1)


def _document_statements(reader: _Reader) -> DocumentStatements:
    raw = reader.mapping(reader.data.get("document_statements"), "document_statements")
    states = reader.mapping(raw.get("states"), "document_statements.states")
    unknown = sorted(set(states) - set(DOCUMENT_STATES))
    if unknown:
        raise reader.fail(f"document_statements.states.{unknown[0]}", "is not a state",
                          f"use {', '.join(DOCUMENT_STATES)}")
    flags = re.IGNORECASE | re.MULTILINE
    return DocumentStatements(
        names=reader.regexes(reader.strings(raw.get("names"), "document_statements.names"),
                             "document_statements.names", flags),
        states={state: reader.regexes(
            reader.strings(states.get(state, []), f"document_statements.states.{state}", True),
            f"document_statements.states.{state}", flags) for state in DOCUMENT_STATES},
    )


def _labels(reader: _Reader) -> Labels:
    groups: dict[str, dict[str, dict[str, str]]] = {}
    for group, keys in LABEL_KEYS.items():
        by_language = reader.mapping(reader.data.get(group), group)
        if "da" not in by_language:
            raise reader.fail(group, "must have the Danish words under `da`")
        groups[group] = {}
        for language, words in by_language.items():
            entry = f"{group}.{language}"
            mapping = reader.mapping(words, entry)
            unknown = set(mapping) - set(keys)
            if unknown:
                raise reader.fail(entry, f"unknown key {sorted(unknown)[0]!r}",
                                  f"use only {', '.join(keys)}")
            if language == "da" and set(mapping) != set(keys):
                missing = sorted(set(keys) - set(mapping))
                raise reader.fail(entry, f"lacks {', '.join(missing)}", "add the Danish words")
            groups[group][language] = {k: _label(reader, group, k, v, f"{entry}.{k}")
                                       for k, v in mapping.items()}
    unknown = set(reader.data) - set(LABEL_KEYS)
    if unknown:
        raise reader.fail(sorted(unknown)[0], "is not a group of labels",
                          f"use only {', '.join(LABEL_KEYS)}")
    return Labels(groups)


def _label(reader: _Reader, group: str, key: str, value: Any, entry: str) -> str:
    """The label's text, its {placeholders} checked against LABEL_PLACEHOLDERS."""
    return _formatted(reader, value, entry, LABEL_PLACEHOLDERS.get((group, key), frozenset()))


def _formatted(reader: _Reader, value: Any, entry: str, allowed: frozenset[str]) -> str:
    """A non-empty text for str.format whose {placeholders} are all in `allowed`."""
    text = reader.string(value, entry)
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as err:
        raise reader.fail(entry, f"has a broken {{placeholder}} ({err})",
                          "write {name} with both braces, or {{ and }} for a brace") from err
    wrong = sorted(n for n in names if n not in allowed)
    if wrong:
        usable = ", ".join(f"{{{n}}}" for n in sorted(allowed)) or "none"
        raise reader.fail(entry, f"uses the unknown placeholder {{{wrong[0]}}}",
                          f"placeholders here: {usable}")
    return text
