"""Finding a case by its reference."""

from __future__ import annotations

from sqlmodel import Session, select

from mailbot.models import Case


def find_case(session: Session, ref: str | None) -> Case | None:
    """The case `ITP-2026-0001` (any case, surrounding blanks ignored); None for no ref or no
    such case."""
    if not ref:
        return None
    return session.exec(select(Case).where(Case.ref == ref.strip().upper())).first()
