"""SCENARIOS P1: every public hard case goes through the pure stages without a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mailbot.errors import PermanentError
from mailbot.intake.inspection import inspect_mail, settings_without_config
from mailbot.rules import Rules
from tests.conftest import SHARED

CORPUS = SHARED / "corpus" / "public"
SKIP_NAMES = {"README.md", "MANIFEST.sha256", "LICENSE", "LICENSE.txt", "NOTICE.txt"}
FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in SKIP_NAMES) \
    if CORPUS.exists() else []


@pytest.mark.skipif(not FILES, reason="../shared/corpus/public is absent")
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_file_is_read_or_refused_cleanly(path: Path, rules: Rules) -> None:
    started = time.monotonic()
    try:
        result = inspect_mail(path.read_bytes(), rules,
                              settings_without_config("it.projekter@albertslund.dk"))
    except PermanentError:
        result = {"kind": None}
    assert time.monotonic() - started < 5
    assert result["kind"] in (None, "brief", "reply", "auto_reply", "bounce")
