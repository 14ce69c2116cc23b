"""The secretary's read-only overview (issue #14): Sager, En sag, Møder, Drift."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from mailbot.app import Bot


def routes(bot: Bot) -> list[BaseRoute]:
    """The overview routes (being built in issue #14)."""
    return []
