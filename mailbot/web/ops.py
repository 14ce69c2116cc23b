"""/healthz and /metrics (issue #14): the operator's monitoring, no sign-in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from mailbot.app import Bot


def routes(bot: Bot) -> list[BaseRoute]:
    """The monitoring routes (being built in issue #14)."""
    return []
