"""`mailbot case REF` shows what `--json` holds; times are local with their zone; JSON is UTF-8."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlmodel import Session

from mailbot.db import make_engine
from mailbot.models import CaseEvent, Review
from tests.unit.conftest import (
    MailbotRunner,
    add_case,
    clean_env,
    migrated_database,
    write_config,
)

REF = "ITP-2026-0007"


@pytest.fixture
def decided_case(tmp_path: Path) -> Path:
    """A config whose database holds one decided, strategic case with two reviews."""
    config = write_config(tmp_path)
    url = migrated_database(tmp_path / "data")
    add_case(url, REF, title="Bookingsystem til Ærø-salen", applicant_name="Åse Ørnbøl",
             status="decided", strategic=True, strategic_reason="koster over 1 mio. kr.",
             sbsys_number="27.00.00-G01-1-24", system_owner="Søren Ravn",
             meeting_date=date(2026, 3, 9), decision="approved",
             decision_text="Godkendt med krav om exit-klausul.")
    winter = datetime(2026, 3, 2, 10, 59, tzinfo=UTC)  # 11:59 in Copenhagen (CET)
    summer = datetime(2026, 6, 1, 7, 30, tzinfo=UTC)  # 09:30 in Copenhagen (CEST)
    with Session(make_engine(url)) as session:
        session.add(Review(case_id=1, role="contract_manager", recipients=["k@kommune.dk"],
                           state="answered", verdict="changes_requested",
                           comment="Kontrakten mangler\nen exit-klausul.",
                           answered_by="kontrakt@kommune.dk", requested_at=winter))
        session.add(Review(case_id=1, role="it_operations", recipients=["drift@kommune.dk"],
                           requested_at=winter))
        session.add(CaseEvent(case_id=1, at=winter, kind="case_opened", detail="brief"))
        session.add(CaseEvent(case_id=1, at=summer, kind="decision", detail="approved"))
        session.commit()
    return config


def test_text_view_shows_reviews_meeting_decision_and_flags(
        decided_case: Path, mailbot: MailbotRunner) -> None:
    result = mailbot("--config", str(decided_case), "case", REF.lower())
    assert result.code == 0, result.err
    out = result.out
    assert "strategic: yes (koster over 1 mio. kr.)" in out
    assert "SBSYS:     27.00.00-G01-1-24" in out and "owner:     Søren Ravn" in out
    assert "meeting:   2026-03-09" in out
    assert "decision:  approved: Godkendt med krav om exit-klausul." in out
    review_lines = [line.split() for line in out.splitlines()
                    if line.strip().startswith(("contract_manager", "it_operations"))]
    assert review_lines == [
        ["contract_manager", "answered", "changes_requested", "kontrakt@kommune.dk"],
        ["it_operations", "requested", "-", "drift@kommune.dk"]]
    assert "comment: Kontrakten mangler en exit-klausul." in out


def test_timeline_is_local_time_with_its_zone(decided_case: Path,
                                              mailbot: MailbotRunner) -> None:
    out = mailbot("--config", str(decided_case), "case", REF).out
    timeline = out.partition("timeline:\n")[2].splitlines()
    assert [line.split() for line in timeline] == [
        ["2026-03-02", "11:59:00", "CET", "case_opened", "brief"],
        ["2026-06-01", "09:30:00", "CEST", "decision", "approved"]]
    assert timeline[0].index("case_opened") == timeline[1].index("decision")  # one column
    assert "created:   2026-03-02 11:59:00 CET" in out


def test_council_timezone_decides_the_local_time(tmp_path: Path, decided_case: Path,
                                                 mailbot: MailbotRunner) -> None:
    write_config(tmp_path, ('timezone = "Europe/Copenhagen"', 'timezone = "America/New_York"'))
    out = mailbot("--config", str(decided_case), "case", REF).out
    assert "  2026-03-02 05:59:00 EST  case_opened" in out
    assert "  2026-06-01 03:30:00 EDT  decision" in out


def test_json_has_times_with_their_offset(decided_case: Path, mailbot: MailbotRunner) -> None:
    data = json.loads(mailbot("--config", str(decided_case), "case", REF, "--json").out)
    assert data["created_at"] == "2026-03-02T11:59:00+01:00"
    assert data["reviews"][0]["requested_at"] == "2026-03-02T11:59:00+01:00"
    assert data["meeting"] == "2026-03-09" and data["decision"] == "approved"


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"},
                                 {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"},
                                 {"PYTHONIOENCODING": "latin-1"}],
                         ids=["ascii", "C-locale", "latin-1"])
def test_json_is_utf8_whatever_the_locale(decided_case: Path, env: dict[str, str]) -> None:
    for args in (["case", REF, "--json"], ["cases", "--json"]):
        result = subprocess.run([sys.executable, "-m", "mailbot.cli", "--config",
                                 str(decided_case), *args], capture_output=True, timeout=60,
                                env=clean_env({"PYTHONIOENCODING": "", **env}))
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        text = result.stdout.decode("utf-8")  # raises if it is not UTF-8
        assert "Bookingsystem til Ærø-salen" in text and "Åse Ørnbøl" in text
    # the text view does what the terminal allows, without a traceback
    text_view = subprocess.run([sys.executable, "-m", "mailbot.cli", "--config",
                                str(decided_case), "case", REF], capture_output=True,
                               timeout=60, env=clean_env({"PYTHONIOENCODING": "", **env}))
    assert text_view.returncode == 0 and b"Traceback" not in text_view.stderr


def test_cases_filters_by_status_and_prints_json(decided_case: Path, tmp_path: Path,
                                                 mailbot: MailbotRunner) -> None:
    add_case(f"sqlite:///{tmp_path / 'data' / 'mailbot.sqlite3'}", "ITP-2026-0008",
             status="incomplete")
    both = mailbot("--config", str(decided_case), "cases").out
    assert REF in both and "ITP-2026-0008" in both
    decided = mailbot("--config", str(decided_case), "cases", "--status", "decided").out
    assert REF in decided and "ITP-2026-0008" not in decided
    rows = json.loads(mailbot("--config", str(decided_case), "cases", "--status",
                              "incomplete", "--json").out)
    assert [(r["ref"], r["status"]) for r in rows] == [("ITP-2026-0008", "incomplete")]
    assert rows[0]["created_at"] == "2026-03-02T11:59:00+01:00"
    none = mailbot("--config", str(decided_case), "cases", "--status", "bogus")
    assert none.code == 0
    assert none.out == "no cases with status 'bogus' (statuses in use: decided, incomplete)\n"
    assert json.loads(mailbot("--config", str(decided_case), "cases", "--status", "bogus",
                              "--json").out) == []
