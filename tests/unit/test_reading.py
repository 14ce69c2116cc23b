"""Reading what people send: the shared samples and our own fixtures, phrase by phrase."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from mailbot.intake.inspection import inspect_details, settings_without_config
from mailbot.rules import Rules
from tests.conftest import FIXTURES, SHARED
from tests.docs import with_attachments

TODAY = date(2026, 11, 27)
SAMPLES = sorted((SHARED / "samples" / "cases").glob("*.eml")) if SHARED.exists() else []
OWN = sorted((FIXTURES / "reading").glob("*.eml"))


def _norm(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def problems(expected: dict[str, Any], shape: dict[str, Any], details: dict[str, Any]
             ) -> list[str]:
    """Every way the reading differs from the expectation (empty when it matches)."""
    found: list[str] = []
    for key in ("kind", "case_ref"):
        if shape.get(key) != expected.get(key):
            found.append(f"{key}: {shape.get(key)!r} != {expected.get(key)!r}")
    if "decisions" in expected and shape.get("decisions") != expected["decisions"]:
        found.append(f"decisions {shape.get('decisions')!r} != {expected['decisions']!r}")
    if "verdict" in expected and shape.get("verdict") != expected["verdict"]:
        found.append(f"verdict {shape.get('verdict')!r} != {expected['verdict']!r}")
    if expected["kind"] != "brief":
        return found
    for qid, phrases in expected["answers"].items():
        answer = shape["answers"][qid]
        if phrases is None:
            if answer is not None:
                found.append(f"{qid} should be missing, got {answer[:80]!r}")
            continue
        found += [f"{qid} lacks {p!r} (got {_norm(answer)[:120]!r})" for p in phrases
                  if _norm(p) not in _norm(answer)]
    for qid, phrases in expected.get("forbidden", {}).items():
        found += [f"{qid} leaks {p!r}" for p in phrases if _norm(p) in _norm(shape["answers"][qid])]
    documents = shape["documents"]
    if documents != expected["documents"]:
        found.append(f"documents {documents} != {expected['documents']}")
    if sorted(shape["missing"]) != sorted(expected["missing"]):
        found.append(f"missing {shape['missing']} != {expected['missing']}")
    if sorted(shape["not_applicable"]) != sorted(expected.get("not_applicable", [])):
        found.append(f"not_applicable {shape['not_applicable']}")
    if "strategic" in expected and shape["strategic"] != expected["strategic"]:
        found.append(f"strategic {shape['strategic']} ({details['strategic_reason']})")
    found += _normalised(expected, details)
    return found


def _normalised(expected: dict[str, Any], details: dict[str, Any]) -> list[str]:
    found = []
    if "when" in expected:
        when = details["when"] or {}
        for key, value in expected["when"].items():
            if when.get(key) != value:
                found.append(f"when.{key} {when.get(key)!r} != {value!r}")
    if "cost" in expected:
        amounts = [a["dkk"] for a in details["amounts"]]
        if amounts != expected["cost"]["amounts"]:
            found.append(f"amounts {amounts} != {expected['cost']['amounts']}")
        if details["payer"] != expected["cost"]["payer"]:
            found.append(f"payer {details['payer']!r}")
    for key, detail in (("sbsys", "sbsys_number"), ("system_owner", "system_owner")):
        if key in expected and details[detail] != expected[key]:
            found.append(f"{key} {details[detail]!r} != {expected[key]!r}")
    return found + _prose_and_statements(expected, details)


def _prose_and_statements(expected: dict[str, Any], details: dict[str, Any]) -> list[str]:
    """Our own fixtures may also say which answers come from prose (the receipt asks the
    applicant to check those), what the mail says about documents, and its language."""
    found = []
    if "from_prose" in expected and sorted(details["from_prose"]) != sorted(expected["from_prose"]):
        found.append(f"from_prose {details['from_prose']} != {expected['from_prose']}")
    said = {(kind, s["state"]) for s in details.get("document_statements", [])
            for kind in s["kinds"]}
    found += [f"no statement {kind}: {state}" for kind, state in
              expected.get("statements", {}).items() if (kind, state) not in said]
    if "english" in expected and details["english"] != expected["english"]:
        found.append(f"english {details['english']}")
    return found


@pytest.mark.skipif(not SAMPLES, reason="../shared/samples is absent")
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_shared_sample_is_read_as_expected(path: Path, rules: Rules) -> None:
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    shape, details = inspect_details(path.read_bytes(), rules,
                                     settings_without_config("it.projekter@albertslund.dk"), TODAY)
    assert problems(expected, shape, details) == []


@pytest.mark.parametrize("path", OWN, ids=lambda p: p.stem)
def test_own_fixture_is_read_as_expected(path: Path, rules: Rules) -> None:
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    raw = with_attachments(path.read_bytes(), expected.get("generate", []))
    shape, details = inspect_details(raw, rules,
                                     settings_without_config("it.projekter@kommune.test"), TODAY)
    assert problems(expected, shape, details) == []


def test_there_are_at_least_thirty_own_fixtures() -> None:
    assert len(OWN) >= 30


def test_checker_notices_a_wrong_reading() -> None:
    """The comparison itself must be able to fail."""
    expected = {"kind": "brief", "case_ref": None, "answers": {"who": ["Anna"]},
                "forbidden": {"who": ["Bo"]}, "documents": {}, "missing": []}
    shape = {"kind": "brief", "case_ref": None, "answers": {"who": "Bo"}, "documents": {},
             "missing": ["cost"], "not_applicable": [], "strategic": False}
    assert len(problems(expected, shape, {"strategic_reason": ""})) == 3
