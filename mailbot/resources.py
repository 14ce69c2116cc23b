"""Where the shipped defaults live: inside the wheel, or beside the package in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """`rules`, `templates` or `demo_briefs`: the copy in the wheel, else the checkout's."""
    inside = _PACKAGE / name
    if inside.is_dir():
        return inside
    checkout_names = {"demo_briefs": "fixtures/briefs"}
    return _PACKAGE.parent / checkout_names.get(name, name)
