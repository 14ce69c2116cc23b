"""The one ASGI application: the monitoring endpoints and, unless left out, the overview."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from mailbot.app import Bot

SESSION_COOKIE = "mailbot_session"


def create_app(bot: Bot, *, pages: bool = True) -> Starlette:
    """A Starlette app on `bot`'s database: /healthz and /metrics (mailbot.web.ops, no
    sign-in) and, with `pages`, the overview (mailbot.web.pages, every page signed in) with
    its session cookie (signed with a key derived from the bot secret; HttpOnly,
    SameSite=Lax, Secure with `[web] secure_cookie`) and, with `[web] auth = "oidc"`, the
    Entra ID sign-in routes (mailbot.web.oidc)."""
    from mailbot.web import ops
    from mailbot.web import pages as overview
    from mailbot.web.auth import session_key

    routes: list[BaseRoute] = [*ops.routes(bot)]
    middleware: list[Middleware] = []
    handlers: dict[Any, Any] = {}
    if pages:
        handlers[404] = overview.not_found(bot)
        web = bot.settings.web
        if web.auth == "oidc":
            from mailbot.web import oidc

            routes += oidc.routes(bot)
        routes += overview.routes(bot)
        middleware.append(Middleware(
            # no secret yet (a read-only bot): a key for this process only, so a sign-in
            # lasts until a restart rather than being signed with an empty key
            SessionMiddleware, secret_key=session_key(bot.secret or secrets.token_bytes(32)),
            session_cookie=SESSION_COOKIE, max_age=int(web.session_hours * 3600),
            same_site="lax", https_only=web.secure_cookie))
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.bot = bot
    return app
