"""Load and validate rules/*.yaml. Errors name the file, the entry and the problem."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mailbot.errors import ConfigError

QUESTION_IDS = ("who", "what", "where", "when", "why", "cost")
DOCUMENT_KINDS = (
    "technical_description", "contract_draft", "dpa_draft", "business_case",
    "project_description", "other",
)
ROLES = ("it_operations", "it_architect", "contract_manager", "security_coordinator")


@dataclass(frozen=True)
class Question:
    id: str
    labels: tuple[str, ...]
    question: str
    example: str


@dataclass(frozen=True)
class DocumentKind:
    id: str
    title: str
    reviewers: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class Screening:
    auto_reply_subject_prefixes: tuple[str, ...]
    auto_reply_headers: tuple[str, ...]
    bounce_senders: tuple[str, ...]
    bulk_precedence: tuple[str, ...]
    list_headers: tuple[str, ...]
    max_received_headers: int
    max_receipts_per_sender_per_hour: int


@dataclass(frozen=True)
class Rules:
    questions: tuple[Question, ...]
    empty_answers: frozenset[str]
    end_markers: tuple[str, ...]
    kinds: tuple[DocumentKind, ...]
    required: tuple[str, ...]
    role_names: dict[str, str]
    screening: Screening

    def kind(self, kind_id: str) -> DocumentKind | None:
        return next((k for k in self.kinds if k.id == kind_id), None)

    def title(self, kind_id: str) -> str:
        kind = self.kind(kind_id)
        return kind.title if kind else "Andet bilag"

    def question(self, question_id: str) -> Question:
        return next(q for q in self.questions if q.id == question_id)


class _Reader:
    """Typed access to one YAML file that raises ConfigError naming file and entry."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(str(path), "-", "the rules file is missing",
                              "restore it from the shipped rules/ folder") from err
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

    def regex(self, pattern: str, entry: str) -> re.Pattern[str]:
        try:
            return re.compile(pattern, re.IGNORECASE)
        except re.error as err:
            raise self.fail(entry, f"is not a valid regular expression ({err})") from err


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
            question=reader.string(entry.get("question"), f"questions.{qid}.question"),
            example=reader.string(entry.get("example"), f"questions.{qid}.example"),
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
        out.append(DocumentKind(
            id=kind_id,
            title=reader.string(entry.get("title"), f"{entry_name}.title"),
            reviewers=reviewers,
            patterns=tuple(
                reader.regex(p, f"{entry_name}.filename_patterns[{i}]")
                for i, p in enumerate(patterns)
            ),
        ))
    return tuple(out)


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
    )


def _positive(reader: _Reader, entry: str) -> int:
    value = reader.data.get(entry)
    if not isinstance(value, int) or value < 1:
        raise reader.fail(entry, "must be a whole number of at least 1")
    return value


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
        empty_answers=frozenset(
            a.strip().lower()
            for a in brief.strings(brief.data.get("empty_answers"), "empty_answers", True)),
        end_markers=tuple(
            m.lower() for m in brief.strings(brief.data.get("end_markers"), "end_markers", True)),
        kinds=kinds,
        required=required,
        role_names={k: documents.string(v, f"roles.{k}") for k, v in roles.items()},
        screening=_screening(screening),
    )
