"""`mailbot demo` runs the whole flow on its embedded mail world and shows it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_demo_shows_cases_receipts_reviews_guidance_and_both_phases() -> None:
    result = subprocess.run([sys.executable, "-m", "mailbot.cli", "demo"], capture_output=True,
                            text=True, timeout=180)
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "ITP-2026-0005" in out and "6 mails are in Processed" in out
    assert "Not answered: frida@kommune.test" in out
    assert "Der mangler stadig:" in out and "Business case" in out
    assert "kontrakt@kommune.test" in out and "Udkast til kontrakt - Bookit.docx" in out
    assert "recorded: contract_manager -> changes_requested" in out
    assert "== Guidance to anna.sorensen@kommune.test ==" in out
    assert "exit-klausul" in out
    # the two phases: guidance complete, a klarmelding missing two things, then the agenda
    assert "Nu har alle givet vejledning" in out and "Sådan klarmelder du" in out
    assert "Hermed klarmelder jeg sagen" in out and "Tak for klarmeldingen" in out
    klarmelding_answer = out[out.index("Tak for klarmeldingen"):]
    klarmelding_answer = klarmelding_answer[:klarmelding_answer.index("Med venlig hilsen")]
    assert "- Projektbeskrivelse" in klarmelding_answer and "- Systemejer" in klarmelding_answer
    assert "Endelig kontrakt" not in klarmelding_answer
    assert "er klar til endelig\ngodkendelse og sat på dagsordenen" in out
    assert "== Agenda to the secretary (Dagsorden" in out and ".docx" in out
    assert "1. ITP-2026-0004 Chatbot på kommunens hjemmeside" in out
    assert "Sager, der ikke er klar:" in out
    assert "== Decision to dorthe.olgaard@kommune.test ==" in out and "Beslutning: godkendt." in out
