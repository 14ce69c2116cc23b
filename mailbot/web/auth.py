"""Who is looking at the overview (issue #14): `[web] auth` = "basic" (`[[web.users]]` with
argon2 password hashes, a sign-in form), "proxy" (the municipality's reverse proxy names the
user in a header) or "oidc" (Entra ID, mailbot.web.oidc).

A signed-in user lives in the signed session cookie as
`request.session["user"] = {"name": str, "role": "secretary"|"operator"|"council"}` (the
contract mailbot.web.oidc writes to). Sign-in and sign-out are POSTs with a CSRF token kept in
the session; no GET changes anything.
"""

from __future__ import annotations

import hmac
import ipaddress
import itertools
import os
import re
import secrets
import tempfile
import time
import tomllib
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from functools import cache
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.errors import ConfigError

if TYPE_CHECKING:
    from mailbot.app import Bot
    from mailbot.config import WebSettings

ROLES = ("secretary", "operator", "council")
ROLE_NAMES = {"secretary": "sekretariat", "operator": "drift", "council": "rådsmedlem"}
SESSION_KEY = "user"
CSRF_KEY = "csrf"
NEXT_KEY = "next"
MAX_FORM_BYTES = 4096  # a sign-in form is a few hundred bytes
_OWN_PATH = re.compile(r"/(?:[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)?")


@dataclass(frozen=True)
class WebUser:
    """A signed-in user; `role` is one of ROLES, or "" for someone the proxy named whom
    `[[web.users]]` gives no role (every page refuses them with 403)."""

    name: str
    role: str

    @property
    def role_name(self) -> str:
        """The role in Danish, as the page header shows it."""
        return ROLE_NAMES.get(self.role, "ingen rolle")


def session_key(secret: bytes) -> str:
    """The session cookie's signing key: HMAC-SHA256 of a fixed label under the bot secret
    (mailbot.app.load_secret), so the cookie key is not the secret that signs Message-IDs."""
    return hmac.new(secret, b"mailbot web session", sha256).hexdigest()


def web_settings(request: Request) -> WebSettings:
    bot: Bot = request.app.state.bot
    return bot.settings.web


def current_user(request: Request) -> WebUser | None:
    """The user of this request, or None (not signed in, or the proxy header came from an
    address not in `[web] proxy_addresses`). With auth "basic" the role is read from the
    config on every request, so a removed user is out at once."""
    web = web_settings(request)
    if web.auth == "proxy":
        return _proxy_user(request, web)
    stored = request.session.get(SESSION_KEY)
    if not isinstance(stored, dict) or not isinstance(stored.get("name"), str):
        return None
    if web.auth == "basic":
        configured = _configured(web, stored["name"])
        return WebUser(configured.name, configured.role) if configured else None
    role = stored.get("role")
    return WebUser(stored["name"], role if role in ROLES else "")


def _configured(web: WebSettings, name: str) -> Any:
    """The `[[web.users]]` entry named `name` (case does not count), or None."""
    wanted = name.strip().casefold()
    return next((u for u in web.users if u.name.casefold() == wanted), None)


def _proxy_user(request: Request, web: WebSettings) -> WebUser | None:
    """The user the reverse proxy names in `proxy_user_header`, believed only when the TCP
    peer is one of `proxy_addresses` (anyone else could write the header)."""
    peer = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return None
    if not any(address in ipaddress.ip_network(n.strip(), strict=False)
               for n in web.proxy_addresses):
        return None
    name = _utf8(request.headers.get(web.proxy_user_header, "")).strip()
    if not name:
        return None
    configured = _configured(web, name)
    return WebUser(configured.name, configured.role) if configured else WebUser(name, "")


def _utf8(value: str) -> str:
    """A header value as the proxy sent it: Starlette decodes header bytes as Latin-1 (RFC
    9110 section 5.5 leaves other bytes opaque); a proxy sends a name like "Søren" in UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


# -- guarding pages ---------------------------------------------------------------------------
Page = Callable[[Request, WebUser], Response]
Refusal = Callable[[Request, WebUser | None, int], Response]


def guarded(page: Page, roles: Collection[str], refuse: Refusal
            ) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that runs `page` (in a worker thread: it reads the database) for a user
    with one of `roles`. No user: a redirect to /login (303, the path kept in the session,
    never in the URL) or, with auth "proxy", `refuse(..., 401)`; a wrong role:
    `refuse(..., 403)`."""
    async def endpoint(request: Request) -> Response:
        user = current_user(request)
        if user is None:
            if web_settings(request).auth == "proxy" or request.method != "GET":
                return refuse(request, None, 401)
            request.session[NEXT_KEY] = request.url.path
            return RedirectResponse("/login", status_code=303)
        if user.role not in roles:
            return refuse(request, user, 403)
        return await run_in_threadpool(page, request, user)
    return endpoint


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use): every form carries it."""
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[CSRF_KEY] = token
    return token


async def read_form(request: Request) -> dict[str, str] | None:
    """An application/x-www-form-urlencoded body (WHATWG URL standard) as a dict, or None
    when it is too large or its CSRF token is not this session's."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    expected = request.session.get(CSRF_KEY)
    given = form.get(CSRF_KEY, "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, given):
        return None
    return form


# -- passwords (auth = "basic") ---------------------------------------------------------------
@cache
def _hasher() -> PasswordHasher:
    """argon2id with argon2-cffi's defaults (RFC 9106's second recommended option)."""
    return PasswordHasher()


@cache
def _decoy() -> str:
    return _hasher().hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    """The argon2id hash in its encoded form ("$argon2id$v=19$m=…")."""
    return _hasher().hash(password)


def check_password(web: WebSettings, name: str, password: str) -> WebUser | None:
    """The configured user when `password` is theirs, else None. An unknown name costs a
    hash check too, so the time taken does not tell which names exist."""
    configured = _configured(web, name)
    hashed = configured.password_hash.get_secret_value() if configured else ""
    try:
        _hasher().verify(hashed or _decoy(), password)
    except (VerificationError, InvalidHashError):
        return None
    return WebUser(configured.name, configured.role) if configured and hashed else None


def sign_in(request: Request, user: WebUser) -> str:
    """Start a fresh session for `user` (a new session, so a token planted before sign-in
    is gone) and return where to go: the page first asked for, or /."""
    wanted = request.session.get(NEXT_KEY)
    request.session.clear()
    request.session[SESSION_KEY] = {"name": user.name, "role": user.role}
    # a path of ours only: "//host" or "/\host" would send the browser to another site
    return wanted if isinstance(wanted, str) and _OWN_PATH.fullmatch(wanted) else "/"


# -- `mailbot web add-user` -------------------------------------------------------------------
_TABLE = re.compile(r"^[ \t]*\[", re.MULTILINE)
_USERS_TABLE = re.compile(r"^\s*\[\[\s*web\s*\.\s*users\s*\]\]\s*(#.*)?$")


def add_user(config: Path, name: str, role: str, password: str) -> bool:
    """Write `[[web.users]]` for `name` (role, argon2 hash of `password`) into the config
    file: appended at the end (an array-of-tables entry may follow anything, TOML 1.0), an
    existing table for the same name removed first. Returns True when it replaced one. The
    file is replaced atomically with its mode kept. Raises ConfigError for an unknown role,
    an empty name or password, or a file that is not valid TOML."""
    name = name.strip()
    if role not in ROLES:
        raise ConfigError("command line", "--role", f"{role!r} is not a role",
                          f"use one of {', '.join(ROLES)}")
    if not name:
        raise ConfigError("command line", "NAME", "is empty", "give the user's name")
    if not password:
        raise ConfigError("standard input", "password", "is empty",
                          "pipe the password in: printf %s \"$PW\" | mailbot web add-user ...")
    if not config.is_file():
        raise ConfigError(str(config), "web.users", "there is no such config file",
                          f"write one first: mailbot init --config {config}")
    text = config.read_text(encoding="utf-8")
    kept, replaced = _without_user(text, name, config)
    entry = (f"\n[[web.users]]\nname = {_toml_string(name)}\nrole = \"{role}\"\n"
             f"password_hash = {_toml_string(hash_password(password))}\n")
    new = kept.rstrip("\n") + "\n" + entry if kept.strip() else entry.lstrip("\n")
    try:
        tomllib.loads(new)  # what we wrote must read back
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(config), "web.users", f"cannot add a table to it ({err})",
                          "write the users as [[web.users]] tables") from err
    mode = config.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(dir=config.absolute().parent, prefix=".mailbot-config-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(new)
    os.chmod(tmp, mode)
    os.replace(tmp, config)
    return replaced


def _without_user(text: str, name: str, config: Path) -> tuple[str, bool]:
    """`text` without the `[[web.users]]` tables whose name is `name` (case does not count):
    such a table runs from its header to the next table header."""
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(config), "-", f"is not valid TOML ({err})",
                          "correct the file first") from err
    starts = [m.start() for m in _TABLE.finditer(text)]
    headers = sum(1 for start in starts if _USERS_TABLE.match(_first_line(text, start)))
    users = parsed.get("web", {}).get("users") if isinstance(parsed.get("web"), dict) else None
    # an inline array (`users = [{...}]`) cannot be extended by a table (TOML 1.0, "Array
    # of Tables"), and rewriting it would not keep the file as written
    if users is not None and (headers == 0 or not isinstance(users, list)
                              or len(users) != headers):
        raise ConfigError(str(config), "web.users", "is written inline, so add-user cannot "
                          "change it", "write the users as [[web.users]] tables, one per user")
    wanted, removed, out, last = name.casefold(), False, [], 0
    for start, end in itertools.pairwise([*starts, len(text)]):
        block = text[start:end]
        if _USERS_TABLE.match(_first_line(text, start)):
            body = block.split("\n", 1)[1] if "\n" in block else ""
            try:
                found = tomllib.loads(body).get("name")
            except tomllib.TOMLDecodeError:
                found = None
            if isinstance(found, str) and found.strip().casefold() == wanted:
                out.append(text[last:start])
                last, removed = end, True
    out.append(text[last:])
    return "".join(out), removed


def _first_line(text: str, start: int) -> str:
    """The line of `text` that begins at offset `start`, without its newline."""
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped (TOML 1.0,
    "String")."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if ord(c) >= 0x20 and c != "\x7f" else f"\\u{ord(c):04x}"
                         for c in escaped) + '"'


# -- the sign-in routes -----------------------------------------------------------------------
THROTTLE_FAILURES = 10
THROTTLE_SECONDS = 15 * 60
THROTTLE_KEYS = 10_000


class Throttle:
    """Password guessing slowed: after THROTTLE_FAILURES wrong passwords for one name from
    one address within THROTTLE_SECONDS, that pair is refused until the oldest of them is
    that old (OWASP Authentication Cheat Sheet, "Login Throttling"). In memory: a restart
    forgets, which only an operator can cause."""

    def __init__(self) -> None:
        self.failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, request: Request, name: str) -> list[float]:
        peer = request.client.host if request.client else ""
        key = (peer, name.strip().casefold())
        now = time.monotonic()
        recent = [t for t in self.failures.get(key, []) if now - t < THROTTLE_SECONDS]
        self.failures[key] = recent
        return recent

    def blocked(self, request: Request, name: str) -> bool:
        return len(self._recent(request, name)) >= THROTTLE_FAILURES

    def failed(self, request: Request, name: str) -> None:
        self._recent(request, name).append(time.monotonic())
        if len(self.failures) > THROTTLE_KEYS:  # many names tried: forget the stale ones
            now = time.monotonic()
            self.failures = {k: v for k, v in self.failures.items()
                             if v and now - v[-1] < THROTTLE_SECONDS}
Render = Callable[[Request, str, dict[str, Any], int], Response]


def routes(render: Render) -> list[BaseRoute]:
    """GET/POST /login and POST /logout; `render(request, template, context, status)` draws
    the sign-in page."""
    throttle = Throttle()

    async def login_page(request: Request) -> Response:
        return _login_form(request, render, "", 200)

    async def login(request: Request) -> Response:
        web = web_settings(request)
        if web.auth != "basic":
            return _login_form(request, render, "", 405)
        form = await read_form(request)
        if form is None:
            return _login_form(request, render, "Formularen var for gammel. Prøv igen.", 400)
        name = form.get("navn", "")
        if throttle.blocked(request, name):
            return _login_form(request, render, "For mange forkerte forsøg. Prøv igen om "
                               f"{THROTTLE_SECONDS // 60} minutter.", 429)
        user = await run_in_threadpool(check_password, web, name, form.get("adgangskode", ""))
        if user is None:
            throttle.failed(request, name)
            return _login_form(request, render, "Forkert brugernavn eller adgangskode.", 401)
        return RedirectResponse(sign_in(request, user), status_code=303)

    async def logout(request: Request) -> Response:
        if await read_form(request) is not None:
            request.session.clear()
        return RedirectResponse("/login", status_code=303)

    return [Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"])]


def _login_form(request: Request, render: Render, error: str, status: int) -> Response:
    web = web_settings(request)
    return render(request, "web/login.html.j2",
                  {"auth": web.auth, "error": error, "csrf": csrf_token(request),
                   "user": current_user(request)}, status)
