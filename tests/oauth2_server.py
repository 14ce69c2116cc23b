"""A small OAuth2 authority of our own for the tests: the token endpoint the bot asks and the
introspection endpoint Dovecot and the test SMTP server ask; and that SMTP server, which takes
AUTH XOAUTH2. Test harness only.

It fakes the identity provider at the one interface the bot has with it, HTTP(S):

- generic:   POST /token (RFC 6749 §4.4, client credentials in HTTP Basic or the body);
- microsoft: what msal asks of an authority `https://127.0.0.1:PORT/<tenant>` when
  `instance_discovery=False`: GET `/<tenant>/v2.0/.well-known/openid-configuration` (tenant
  discovery, msal/authority.py) and POST `/<tenant>/oauth2/v2.0/token`;
- POST /introspect (RFC 7662; Dovecot's `introspection_mode = post` sends `token=...`):
  `{"active": true, "username": <the app's mailbox>}` for a live token, else `{"active": false}`.

Tokens live `lifetime` seconds, so a test sees them expire and be refreshed. `fail_with` makes
the token endpoint answer as Entra ID does for an AADSTS error (bodies as Entra ID sends them,
quoted in the tests); `denied` makes introspection refuse every token (the app lacks
FullAccess); `smtp_auth_disabled` makes the test SMTP server answer 535 5.7.139.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import ssl
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult

from mailbot.mailworld import SmtpSink, _Handler, free_port

TENANT = "9f8e7d6c-1111-2222-3333-444455556666"
CLIENT_ID = "0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff"
CLIENT_SECRET = "Hemmelig~Kode.1234567890abcdefXYZ"

# error bodies as Entra ID sends them (texts from real responses; ids shortened)
AADSTS: dict[str, tuple[int, dict[str, Any]]] = {
    "7000215": (401, {
        "error": "invalid_client",
        "error_description": (
            f"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
            f"the request is the client secret value, not the client secret ID, for a secret "
            f"added to app '{CLIENT_ID}'. Trace ID: 3b7e Correlation ID: 5d1a "
            "Timestamp: 2027-03-02 10:15:42Z"),
        "error_codes": [7000215]}),
    "7000222": (401, {
        "error": "invalid_client",
        "error_description": (
            f"AADSTS7000222: The provided client secret keys for app '{CLIENT_ID}' are "
            "expired. Visit the Azure portal to create new keys for your app: "
            "https://aka.ms/NewClientSecret, or consider using certificate credentials for "
            "added security: https://aka.ms/certCreds. Trace ID: 3b7e Correlation ID: 5d1a "
            "Timestamp: 2027-03-02 10:15:42Z"),
        "error_codes": [7000222]}),
    "700016": (400, {
        "error": "unauthorized_client",
        "error_description": (
            f"AADSTS700016: Application with identifier '{CLIENT_ID}' was not found in the "
            f"directory '{TENANT}'. This can happen if the application has not been installed "
            "by the administrator of the tenant or consented to by any user in the tenant. "
            "You may have sent your authentication request to the wrong tenant. Trace ID: 3b7e "
            "Correlation ID: 5d1a Timestamp: 2027-03-02 10:15:42Z"),
        "error_codes": [700016]}),
}


@dataclass
class Issued:
    token: str
    mailbox: str  # the one mailbox the app may open (RBAC for Applications), a local part
    expires_at: float  # time.monotonic()


@dataclass
class TokenBook:
    """What the authority knows: the app, the tokens it issued, and the failures to show.

    A client-credentials token names no user; the app is scoped to one mailbox (as the README
    tells the operator to do), so introspection answers with `mailbox`, and Dovecot logs in
    only that user."""

    mailbox: str = ""
    lifetime: float = 20.0
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    # a key of AADSTS, or (status, body) for an answer of the test's own
    fail_with: str | tuple[int, dict[str, Any]] | None = None
    denied: bool = False  # the app lost its mailbox permission: introspection says inactive
    smtp_auth_disabled: bool = False
    issued: list[Issued] = field(default_factory=list)
    token_requests: int = 0
    introspected: list[str] = field(default_factory=list)
    dovecot_saw: list[str] = field(default_factory=list)  # tokens Dovecot asked about
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, client_id: str, secret: str, entra: bool = True
              ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for a client-credentials request; `entra`: refusals as
        Entra ID words them, else as RFC 6749 §5.2 does."""
        with self.lock:
            self.token_requests += 1
            if isinstance(self.fail_with, tuple):
                return self.fail_with
            if self.fail_with:
                return AADSTS[self.fail_with]
            if client_id != self.client_id or secret != self.client_secret:
                if not entra:
                    return 401, {"error": "invalid_client",
                                 "error_description": "Client authentication failed."}
                return AADSTS["700016" if client_id != self.client_id else "7000215"]
            token = "eyJ0eXAi." + secrets.token_urlsafe(24)
            self.issued.append(Issued(token, self.mailbox, time.monotonic() + self.lifetime))
        return 200, {"token_type": "Bearer", "expires_in": int(self.lifetime),
                     "ext_expires_in": int(self.lifetime), "access_token": token}

    def user_of(self, token: str, by_dovecot: bool = False) -> str | None:
        """The mailbox a live token may open, or None (expired, unknown, or denied)."""
        with self.lock:
            self.introspected.append(token)
            if by_dovecot:
                self.dovecot_saw.append(token)
            now = time.monotonic()
            found = [i.mailbox for i in self.issued if i.token == token and i.expires_at > now]
        if not found or self.denied:
            return None
        return found[0]

    def revoke_all(self) -> None:
        """Every token issued so far stops working now (revoked before its expiry)."""
        with self.lock:
            for issued in self.issued:
                issued.expires_at = 0.0

    def reset(self, mailbox: str) -> None:
        """A fresh app for one test: `mailbox` is the one it may open; no failures."""
        with self.lock:
            self.mailbox = mailbox
            self.lifetime = 20.0
            self.fail_with = None
            self.denied = self.smtp_auth_disabled = False
            self.issued.clear()
            self.introspected.clear()
            self.dovecot_saw.clear()
            self.token_requests = 0

    @property
    def tokens(self) -> list[str]:
        with self.lock:
            return [i.token for i in self.issued]


class Endpoint:
    """One HTTP or HTTPS server for a TokenBook, on a free loopback port, in a thread."""

    def __init__(self, book: TokenBook, tls: ssl.SSLContext | None = None) -> None:
        self.book = book
        self.port = free_port()
        self.scheme = "https" if tls else "http"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(book, self))
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def start(self) -> Endpoint:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def authority(self) -> str:
        return f"{self.url}/{TENANT}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def introspect_url(self) -> str:
        return f"{self.url}/introspect"


def _handler(book: TokenBook, endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the tests read the book, not an access log

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
                base = f"{endpoint.url}/{TENANT}"
                self._json(200, {"issuer": f"{base}/v2.0",
                                 "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                                 "token_endpoint": f"{base}/oauth2/v2.0/token"})
            else:  # an unknown tenant, as Entra ID answers it
                self._json(400, {"error": "invalid_tenant",
                                 "error_description": "AADSTS90002: Tenant not found."})

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            form = self._form()
            if path in ("/token", f"/{TENANT}/oauth2/v2.0/token"):
                if form.get("grant_type") != "client_credentials":
                    self._json(400, {"error": "unsupported_grant_type"})
                    return
                client_id, secret = self._client(form)
                self._json(*book.issue(client_id, secret, entra=path != "/token"))
            elif path == "/introspect":
                agent = self.headers.get("User-Agent", "")
                user = book.user_of(form.get("token", ""), agent.startswith("dovecot"))
                self._json(200, {"active": True, "username": user} if user
                           else {"active": False})
            else:
                self._json(404, {"error": "not_found"})

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            return {key: values[0] for key, values in parse_qs(body).items()}

        def _client(self, form: dict[str, str]) -> tuple[str, str]:
            """client_id and secret from HTTP Basic (RFC 6749 §2.3.1) or the body."""
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return unquote(user.replace("+", " ")), unquote(password.replace("+", " "))
            return form.get("client_id", ""), form.get("client_secret", "")

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


# -- SMTP: XOAUTH2 against the same introspection -------------------------------------------
def introspect(url: str, token: str) -> dict[str, Any]:
    """Ask the introspection endpoint about a token, as Dovecot does (POST token=...)."""
    data = urllib.parse.urlencode({"token": token}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


class XOAuth2Handler(_Handler):
    """The test SMTP server's handler with AUTH XOAUTH2 (aiosmtpd calls a handler's
    `auth_<MECHANISM>` for that mechanism): the token must be live for the mailbox in
    `user=`, as introspection says. Refusals as Exchange Online words them."""

    def __init__(self, sink: SmtpSink, book: TokenBook, introspect_url: str) -> None:
        super().__init__(sink)
        self.book = book
        self.introspect_url = introspect_url
        self.tokens_seen: list[str] = []
        self.over_tls: list[bool] = []  # for each AUTH XOAUTH2: did it come over TLS

    async def auth_XOAUTH2(self, server: SMTPProtocol, args: list[str]) -> AuthResult:
        if len(args) > 1:
            raw: Any = base64.b64decode(args[1])
        else:
            raw = await server.challenge_auth("")
            if not isinstance(raw, bytes):
                return AuthResult(success=False, handled=True)
        fields = dict(part.split("=", 1) for part in raw.decode().split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        self.tokens_seen.append(token)
        self.over_tls.append(server.transport.get_extra_info("sslcontext") is not None)
        answer = await asyncio.to_thread(introspect, self.introspect_url, token)
        if self.book.smtp_auth_disabled:
            return AuthResult(success=False, handled=False, message=SMTP_AUTH_DISABLED)
        if not answer.get("active") or answer.get("username") != user.partition("@")[0]:
            return AuthResult(success=False, handled=False,
                              message="535 5.7.3 Authentication unsuccessful")
        return AuthResult(success=True, auth_data=user)


SMTP_AUTH_DISABLED = ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
                      "disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more "
                      "information.")


@dataclass
class XOAuth2Sink(SmtpSink):
    """The tests' SMTP server (mailworld.SmtpSink) requiring AUTH XOAUTH2 before MAIL FROM.
    Plain text on loopback, so AUTH is allowed without TLS here; `tls` adds aiosmtpd's TLS
    options (STARTTLS or implicit TLS)."""

    book: TokenBook = field(default_factory=TokenBook)
    introspect_url: str = ""
    handler: XOAuth2Handler | None = None
    tls: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        self.handler = XOAuth2Handler(self, self.book, self.introspect_url)
        # aiosmtpd warns "Requiring AUTH while not requiring TLS": on purpose, on loopback
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     **{"auth_require_tls": False, "auth_required": True,
                                        **self.tls})
        self.controller.start()


def https_endpoint(book: TokenBook, ca_file: Path, expired: bool = False) -> Endpoint:
    """An HTTPS Endpoint whose certificate a fresh trustme CA signed (`expired`: one that ran
    out yesterday); the CA's PEM is written to `ca_file` (what oauth2.ca_file points at)."""
    import datetime

    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ended = {"not_after": datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)}
    ca.issue_cert("127.0.0.1", "localhost", **(ended if expired else {})).configure_cert(context)
    ca.cert_pem.write_to_path(str(ca_file))
    return Endpoint(book, context)
