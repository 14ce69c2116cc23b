"""docs/scenarios.md has a row for every ID of ../shared/SCENARIOS.md, each with one of the
four statuses, and every `path::function` a `tested` row names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT, shared_path

TABLE = ROOT / "docs" / "scenarios.md"
STATUSES = ("tested", "handled, untested", "missing", "does not apply")
_ID_CELL = re.compile(r"^\|\s*([A-Z][0-9]+)\s*\|", re.MULTILINE)
_TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def scenario_ids() -> list[str]:
    return _ID_CELL.findall(shared_path("SCENARIOS.md").read_text(encoding="utf-8"))


def table_rows() -> dict[str, list[str]]:
    """ID -> the cells after the ID (situation, status, where)."""
    rows: dict[str, list[str]] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if _ID_CELL.match(line):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def defined_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_scenario_has_a_row_with_a_known_status() -> None:
    ids = scenario_ids()
    assert len(ids) == len(set(ids)) and ids, "SCENARIOS.md IDs not read"
    rows = table_rows()
    missing = [i for i in ids if i not in rows]
    bad_status = [f"{i}: {cells[1] if len(cells) > 1 else '(no status)'}"
                  for i, cells in rows.items()
                  if len(cells) != 3 or cells[1] not in STATUSES]
    unknown = [i for i in rows if i not in ids]
    problems = []
    if missing:
        problems.append(f"no row in docs/scenarios.md for: {', '.join(missing)}")
    if bad_status:
        problems.append(f"status not one of {STATUSES}: {'; '.join(bad_status)}")
    if unknown:
        problems.append(f"rows for IDs not in SCENARIOS.md: {', '.join(unknown)}")
    assert not problems, "\n".join(problems)
    ordered = [i for i in rows if i in ids]
    assert ordered == ids, "rows are not in the order of SCENARIOS.md"


def test_every_test_named_in_a_tested_row_exists() -> None:
    problems: list[str] = []
    for scenario, cells in table_rows().items():
        if len(cells) != 3 or cells[1] != "tested":
            continue
        refs = _TEST_REF.findall(cells[2])
        if not refs:
            problems.append(f"{scenario}: `tested` but names no path::function")
        for path, function in refs:
            file = ROOT / path
            if not file.is_file():
                problems.append(f"{scenario}: {path} does not exist")
            elif function not in defined_functions(file):
                problems.append(f"{scenario}: {path} defines no {function}")
    assert not problems, "\n".join(problems)


def test_the_readme_counts_what_the_table_says() -> None:
    counts = {status: 0 for status in STATUSES}
    for cells in table_rows().values():
        if len(cells) == 3 and cells[1] in counts:
            counts[cells[1]] += 1
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    expected = (f"Today: {counts['tested']} tested, {counts['handled, untested']} handled but "
                f"untested, {counts['missing']} missing, {counts['does not apply']} not "
                "applicable.")
    assert expected in " ".join(readme.split())
