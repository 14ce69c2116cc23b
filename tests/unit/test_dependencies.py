"""Every third-party package the code imports is declared in pyproject.toml: a package that only
arrives as a dependency of a dependency can disappear with that dependency's next release."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_top_level(folder: Path) -> set[str]:
    """Top-level names of every absolute import in the .py files under `folder`."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"]) + list(
        project["optional-dependencies"]["postgres"])
    return {normalise(re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0]) for req in requirements}


def test_every_imported_package_is_a_declared_dependency() -> None:
    distributions = packages_distributions()
    third_party = {name for name in imported_top_level(ROOT / "mailbot")
                   if name not in sys.stdlib_module_names and name != "mailbot"}
    missing = {name: distributions.get(name, [name]) for name in third_party
               if not {normalise(d) for d in distributions.get(name, [name])} & declared()}
    assert missing == {}
