"""How well mailbot reads: phrases found, leaks, exact missing lists, kinds and documents over
the shared samples, our own fixtures and the public-bugs mails (prints one table; not a test).

    python tests/benchmarks/bench_reading.py

Each mail goes through the same reading as `mailbot inspect` (inspect_details). For the
samples and fixtures the expected reading is the JSON beside each mail (as in
tests/unit/test_reading.py); for ../shared/cases/public-bugs it is the table of that folder's
README, written out below. Sets whose folder is absent are skipped.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mailbot.intake.inspection import inspect_details, settings_without_config  # noqa: E402
from mailbot.intake.parse import parse  # noqa: E402
from mailbot.resources import shipped  # noqa: E402
from mailbot.rules import Rules, load_rules  # noqa: E402
from tests.docs import with_attachments  # noqa: E402

SHARED = ROOT.parent / "shared"
TODAY = date(2026, 11, 27)
QUESTIONS = ("who", "what", "where", "when", "why", "cost")

# ../shared/cases/public-bugs/README.md, "expected reading"
PUBLIC_BUGS: dict[str, dict[str, Any]] = {
    "01-tnef-winmail-dat": {"kind": "brief", "answers": 6, "missing": [], "documents": 4},
    "02-pdf-without-name-or-disposition": {"kind": "brief", "answers": 6, "missing": []},
    "06-smime-opaque-signed-p7m": {"kind": "brief", "answers": 6, "missing": [],
                                   "documents": 4},
    "08-precedence-auto-reply-only": {"kind": "auto_reply"},
    "10-iso-8859-1-label-really-cp1252": {"kind": "brief", "answers": 6},
    "12-from-encoded-comma-lastname-firstname": {
        "kind": "brief", "answers": 6, "from": "aase.sorensen@albertslund.dk"},
    "13-dsn-returned-subject-encoded-word": {"kind": "bounce", "case_ref": "ITP-2026-0035"},
}


@dataclass
class Score:
    mails: int = 0
    phrases: int = 0
    found: int = 0
    leaks: int = 0
    briefs: int = 0
    missing_exact: int = 0
    kinds_right: int = 0
    documents_right: int = 0
    documents_expected: int = 0
    seconds: list[float] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)


def norm(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def read(raw: bytes, rules: Rules, address: str) -> tuple[dict[str, Any], dict[str, Any], float]:
    started = time.perf_counter()
    shape, details = inspect_details(raw, rules, settings_without_config(address), TODAY)
    seconds = time.perf_counter() - started
    details["from_address"] = parse(raw).from_address
    return shape, details, seconds


def score_expected(score: Score, name: str, expected: dict[str, Any], shape: dict[str, Any],
                   ) -> None:
    """Count against an expected reading in the samples' JSON format."""
    score.kinds_right += shape["kind"] == expected["kind"]
    if expected["kind"] != "brief" or shape["kind"] != "brief":
        if shape["kind"] != expected["kind"]:
            score.wrong.append(f"{name}: kind {shape['kind']}")
        return
    score.briefs += 1
    for qid, phrases in expected["answers"].items():
        answer = norm(shape["answers"].get(qid))
        for phrase in phrases or ():
            score.phrases += 1
            score.found += norm(phrase) in answer
    for qid, phrases in expected.get("forbidden", {}).items():
        score.leaks += sum(norm(p) in norm(shape["answers"].get(qid)) for p in phrases)
    exact = sorted(shape["missing"]) == sorted(expected["missing"])
    score.missing_exact += exact
    if not exact:
        score.wrong.append(f"{name}: missing {shape['missing']} != {expected['missing']}")
    documents = shape["documents"]
    score.documents_expected += 1
    score.documents_right += documents == expected["documents"]


def score_public(score: Score, name: str, expected: dict[str, Any], shape: dict[str, Any],
                 details: dict[str, Any]) -> None:
    """Count against the public-bugs README's expected reading."""
    problems = []
    score.kinds_right += shape["kind"] == expected["kind"]
    if shape["kind"] != expected["kind"]:
        problems.append(f"kind {shape['kind']}")
    if "case_ref" in expected and shape.get("case_ref") != expected["case_ref"]:
        problems.append(f"case_ref {shape.get('case_ref')}")
    if expected["kind"] == "brief" and shape["kind"] == "brief":
        score.briefs += 1
        given = sum(1 for q in QUESTIONS if shape["answers"].get(q))
        score.phrases += expected["answers"]
        score.found += given
        if "missing" in expected:
            score.missing_exact += shape["missing"] == expected["missing"]
            if shape["missing"] != expected["missing"]:
                problems.append(f"missing {shape['missing']}")
        else:
            score.missing_exact += all(q not in shape["missing"] for q in QUESTIONS)
        if "documents" in expected:
            score.documents_expected += 1
            score.documents_right += len(shape["documents"]) == expected["documents"]
        if "from" in expected and details["from_address"] != expected["from"]:
            problems.append(f"from {details['from_address']!r}")
    score.wrong += [f"{name}: {p}" for p in problems]


def run_set(label: str, paths: list[Path], rules: Rules, address: str,
            public: bool = False) -> Score:
    score = Score()
    for path in paths:
        raw = path.read_bytes()
        if public:
            expected = PUBLIC_BUGS[path.stem]
        else:
            expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            raw = with_attachments(raw, expected.get("generate", []))
        shape, details, seconds = read(raw, rules, address)
        score.mails += 1
        score.seconds.append(seconds)
        if public:
            score_public(score, path.stem, expected, shape, details)
        else:
            score_expected(score, path.stem, expected, shape)
    return score


def main() -> None:
    logging.disable(logging.WARNING)  # pypdf and mail-parser comment on every odd file
    rules = load_rules(shipped("rules"))
    sets: list[tuple[str, list[Path], str, bool]] = [
        ("../shared/samples", sorted((SHARED / "samples" / "cases").glob("*.eml")),
         "it.projekter@albertslund.dk", False),
        ("fixtures/reading", sorted((ROOT / "fixtures" / "reading").glob("*.eml")),
         "it.projekter@kommune.test", False),
        ("../shared/cases/public-bugs",
         sorted(p for p in (SHARED / "cases" / "public-bugs").glob("*.eml")
                if p.stem in PUBLIC_BUGS), "it.projekter@albertslund.dk", True),
    ]
    print("| set | mails | phrases found | leaks | exact missing list | kinds | documents "
          "| inspect median / max |")
    print("|---|---|---|---|---|---|---|---|")
    wrong: list[str] = []
    for label, paths, address, public in sets:
        if not paths:
            print(f"| {label} | absent | | | | | | |")
            continue
        s = run_set(label, paths, rules, address, public)
        share = f"{s.found}/{s.phrases} ({100 * s.found / max(s.phrases, 1):.1f} %)"
        print(f"| {label} | {s.mails} | {share} | {s.leaks} | {s.missing_exact}/{s.briefs} | "
              f"{s.kinds_right}/{s.mails} | {s.documents_right}/{s.documents_expected} | "
              f"{1000 * statistics.median(s.seconds):.0f} ms / "
              f"{1000 * max(s.seconds):.0f} ms |")
        wrong += [f"{label}: {w}" for w in s.wrong]
    for line in wrong:
        print("  wrong:", line)


if __name__ == "__main__":
    main()
