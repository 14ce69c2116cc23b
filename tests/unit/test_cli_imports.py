"""`mailbot --help` and `mailbot inspect` do not load the database, the mail clients, the
scheduler, the web server, the metrics, Rich, or a document library for a document whose
text is not read: they are what makes start-up slow (tests/benchmarks/bench_startup.py
times it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sqlalchemy", "alembic", "sqlmodel", "aiosmtplib", "imapclient", "apscheduler",
         "msal", "prometheus_client", "starlette", "uvicorn", "jinja2", "rich", "pypdf",
         "docx", "openpyxl", "oletools", "olefile", "lxml", "cryptography")
BRIEF = ROOT / "fixtures" / "briefs" / "01-lokalebooking-komplet.eml"


def heavy_modules_after(code: str, cwd: Path) -> list[str]:
    """Run `code` in a fresh interpreter; the heavy top-level packages it left loaded."""
    probe = (f"{code}\nimport json, sys\n"
             "loaded = {name.split('.')[0] for name in sys.modules}\n"
             f"print(json.dumps(sorted(loaded & {set(HEAVY)!r})))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_heavy_module(tmp_path: Path) -> None:
    assert heavy_modules_after("import mailbot.cli", tmp_path) == []


# BRIEF's two PDFs and two DOCX files are named so that their kind is known without their
# text, and no PDF of it is encrypted: no document library is needed to read it
@pytest.mark.parametrize("args", [["--help"], ["inspect", str(BRIEF)],
                                  ["inspect", "--json", str(BRIEF)]])
def test_help_and_inspect_load_no_heavy_module(tmp_path: Path, args: list[str]) -> None:
    # tmp_path holds no mailbot.toml: inspect reads with the shipped rules, as documented
    code = f"from mailbot.cli import main\nassert main({args!r}) == 0"
    assert heavy_modules_after(code, tmp_path) == []
