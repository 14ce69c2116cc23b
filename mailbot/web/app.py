"""The one ASGI application: the monitoring endpoints and, unless left out, the overview."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from mailbot.app import Bot


def create_app(bot: Bot, *, pages: bool = True) -> Starlette:
    """A Starlette app on `bot`'s database: /healthz and /metrics (mailbot.web.ops, no
    sign-in) and, with `pages`, the overview (mailbot.web.pages, every page signed in)."""
    from mailbot.web import ops
    from mailbot.web import pages as overview

    routes: list[BaseRoute] = [*ops.routes(bot)]
    if pages:
        routes += overview.routes(bot)
    return Starlette(routes=routes)
