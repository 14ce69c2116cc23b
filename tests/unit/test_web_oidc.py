"""`[web] auth = "oidc"`: sign-in to the overview with Entra ID, as a browser goes through it.

Entra ID is not reachable here, so the provider is tests/oidc_provider.py, a fake at our own
interface with it (HTTPS on 127.0.0.1 with a trustme certificate; discovery, authorize, token,
JWKS in Entra ID's shapes). Everything else is real: mailbot.web.oidc's routes behind
Starlette's SessionMiddleware, served by mailbot.web.server.WebServer (uvicorn), authlib and
httpx talking to the provider over TLS, and an httpx client following the redirects with its
own cookie jar like a browser. The pages themselves are the web helper's: "/" here only shows
who the session says is signed in.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailbot.app import build_bot
from mailbot.clock import Clock
from mailbot.config import load_settings
from mailbot.web import oidc
from mailbot.web.server import Listen, WebServer, bind
from tests.conftest import Pki
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, TENANT, Provider, TlsServer, s256
from tests.unit.conftest import write_config

NOW = datetime(2027, 5, 14, 8, 0, tzinfo=UTC)
COUNCIL_GROUP = "5c1d2f0e-7a3b-4c4d-9e8f-0a1b2c3d4e5f"
OPERATOR_GROUP = "0f9e8d7c-6b5a-4939-8271-605f4e3d2c1b"
ENV = {"MAILBOT_WEB__OIDC__CLIENT_SECRET": CLIENT_SECRET}


def oidc_config(folder: Path, issuer: str, redirect_url: str, ca_file: Path | None) -> Path:
    """The starter config with `[web] auth = "oidc"`: two users by name, two groups."""
    path = write_config(folder)
    ca_line = f'ca_file = "{ca_file}"\n' if ca_file else ""
    path.write_text(path.read_text(encoding="utf-8") + f"""
[web]
auth = "oidc"

[web.oidc]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
redirect_url = "{redirect_url}"
{ca_line}
[web.oidc.users]
"anna@kommune.dk" = "secretary"
"Drift.Bo@Kommune.dk" = "operator"

[web.oidc.groups]
"{OPERATOR_GROUP}" = "operator"
"{COUNCIL_GROUP}" = "council"
""", encoding="utf-8")
    return path


async def whoami(request: Request) -> Response:
    return JSONResponse({"user": request.session.get("user"), "keys": sorted(request.session)})


def serve(folder: Path, issuer: str, ca_file: Path | None) -> WebServer:
    """mailbot.web.oidc's routes for a config with this issuer, served on 127.0.0.1."""
    sock = bind(Listen("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = load_settings(oidc_config(folder, issuer,
                                         f"http://127.0.0.1:{port}/login/oidc/callback",
                                         ca_file), environ=ENV)
    app = Starlette(routes=[*oidc.routes(build_bot(settings, Clock(NOW))), Route("/", whoami)],
                    middleware=[Middleware(SessionMiddleware, secret_key="test-session-key")])
    server = WebServer(app, sock)
    server.start()
    return server


@dataclass
class Site:
    provider: Provider
    app: str  # http://127.0.0.1:PORT of mailbot's routes
    trust: ssl.SSLContext  # the browser trusts the provider's certificate

    def browser(self) -> httpx.Client:
        """A new browser: its own cookie jar, following redirects."""
        return httpx.Client(verify=self.trust, follow_redirects=True, timeout=30)

    def sign_in(self, **claims: object) -> httpx.Response:
        """The whole flow in a new browser, with the provider's user having `claims`; the
        last response (the page after the callback, or the callback's refusal) with the
        session's user read back from "/" as `.extensions["user"]`."""
        self.provider.user = dict(claims)
        with self.browser() as browser:
            response = browser.get(f"{self.app}/login/oidc")
            response.extensions["user"] = browser.get(f"{self.app}/").json()["user"]
        return response


@pytest.fixture(scope="module")
def site(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    provider = Provider(redirect_uri="")
    tls = TlsServer(provider.app(), pki.files["good"].cert, pki.files["good"].key).start()
    provider.base = f"https://127.0.0.1:{tls.port}"
    server = serve(tmp_path_factory.mktemp("oidc"), provider.issuer, pki.ca_file)
    provider.redirect_uri = f"{server.address}/login/oidc/callback"
    trust = ssl.create_default_context(cafile=str(pki.ca_file))
    yield Site(provider, server.address, trust)
    server.stop()
    tls.stop()


@pytest.fixture
def fresh(site: Site) -> Site:
    site.provider.reset()
    return site


def danish_page(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("text/html")
    assert '<html lang="da">' in response.text
    return re.sub(r"\s+", " ", response.text)


def test_a_user_named_in_the_config_signs_in_with_pkce_and_gets_the_role(fresh: Site) -> None:
    response = fresh.sign_in(preferred_username="anna@kommune.dk", name="Anna Andersen")
    assert response.status_code == 200
    assert str(response.url) == f"{fresh.app}/"
    assert response.extensions["user"] == {"name": "anna@kommune.dk", "role": "secretary"}
    # nothing of the sign-in (state, nonce, code verifier) is left in the session
    assert response.json()["keys"] == ["user"]
    # the browser went to the provider's authorize endpoint over https, with PKCE S256 ...
    asked = fresh.provider.authorize_requests[0]
    assert urlsplit(str(response.history[1].url)).scheme == "https"
    assert asked["code_challenge_method"] == "S256" and asked["state"] and asked["nonce"]
    assert asked["scope"].split() == ["openid", "profile", "email"]
    # ... and the token request proved it holds the verifier behind that challenge
    token_request = fresh.provider.token_requests[0]
    assert s256(token_request["code_verifier"]) == asked["code_challenge"]
    assert fresh.provider.token_refusals == []


def test_names_are_matched_without_case_and_upn_serves_when_preferred_username_is_missing(
        fresh: Site) -> None:
    assert fresh.sign_in(upn="DRIFT.BO@kommune.dk").extensions["user"] == {
        "name": "DRIFT.BO@kommune.dk", "role": "operator"}


def test_a_user_whom_the_config_does_not_name_is_refused_with_a_danish_403(fresh: Site
                                                                          ) -> None:
    response = fresh.sign_in(preferred_username="fremmed@kommune.dk", groups=["a-group"])
    assert response.status_code == 403
    page = danish_page(response)
    assert "Du har ikke adgang til oversigten" in page
    assert "ingen rolle i IT-Projektrådets oversigt" in page  # [bot] name, in the genitive
    assert response.extensions["user"] is None


def test_a_token_without_a_name_signs_nobody_in(fresh: Site) -> None:
    response = fresh.sign_in(name="Anna Andersen", groups=[COUNCIL_GROUP])
    assert response.status_code == 403
    assert "sendte ikke dit brugernavn" in danish_page(response)
    assert response.extensions["user"] is None


def test_a_group_member_gets_the_groups_role_and_a_named_user_keeps_their_own(fresh: Site
                                                                             ) -> None:
    member = fresh.sign_in(preferred_username="carl@kommune.dk",
                           groups=["1111-not-ours", COUNCIL_GROUP])
    assert member.extensions["user"] == {"name": "carl@kommune.dk", "role": "council"}
    # in two groups: the first of [web.oidc.groups] decides
    both = fresh.sign_in(preferred_username="dora@kommune.dk",
                         groups=[COUNCIL_GROUP, OPERATOR_GROUP])
    assert both.extensions["user"] == {"name": "dora@kommune.dk", "role": "operator"}
    named = fresh.sign_in(preferred_username="anna@kommune.dk", groups=[COUNCIL_GROUP])
    assert named.extensions["user"]["role"] == "secretary"


def test_a_user_in_too_many_groups_is_told_no_and_the_operator_why(
        fresh: Site, caplog: pytest.LogCaptureFixture) -> None:
    # Entra ID's groups overage: the claim is replaced by a pointer to Microsoft Graph
    response = fresh.sign_in(preferred_username="eva@kommune.dk",
                             _claim_names={"groups": "src1"},
                             _claim_sources={"src1": {"endpoint": "https://graph.microsoft."
                                                      "com/v1.0/users/x/getMemberObjects"}})
    assert response.status_code == 403
    assert "event=web_oidc_groups_overage" in caplog.text
    assert "assigned to the application" in caplog.text


def _an_hour_ago() -> dict[str, object]:
    now = int(time.time())
    return {"iat": now - 3600, "nbf": now - 3600, "exp": now - 600}


@pytest.mark.parametrize(("change", "check"), [
    pytest.param({"id_token_claims": {"nonce": "another-sign-in"}}, "'nonce'",
                 id="wrong nonce"),
    pytest.param({"id_token_claims": {"aud": "another-app"}}, "'aud'", id="wrong audience"),
    # authlib alone would accept this one (azp names us): mailbot asks for aud = client_id
    pytest.param({"id_token_claims": {"aud": ["another-app"], "azp": CLIENT_ID}}, "'aud'",
                 id="wrong audience, azp ours"),
    pytest.param({"id_token_claims": {"iss": "https://login.microsoftonline.com/"
                                             "00000000-0000-0000-0000-000000000000/v2.0"}},
                 "'iss'", id="another tenant"),
    pytest.param({"id_token_claims": "expired"}, "expired_token", id="expired"),
    pytest.param({"tamper": True}, "bad_signature", id="payload changed after signing"),
    pytest.param({"foreign_key": True}, "bad_signature", id="signed by a key not in the JWKS"),
])
def test_an_id_token_that_fails_a_check_signs_nobody_in(
        fresh: Site, change: dict[str, object], check: str,
        caplog: pytest.LogCaptureFixture) -> None:
    for knob, value in change.items():
        setattr(fresh.provider, knob, _an_hour_ago() if value == "expired" else value)
    response = fresh.sign_in(preferred_username="anna@kommune.dk")
    assert response.status_code == 403
    assert "Login afvist" in danish_page(response)
    assert response.extensions["user"] is None
    refusals = [line for line in caplog.messages if "event=web_oidc_refused" in line]
    assert len(refusals) == 1 and check in refusals[0]
    assert CLIENT_SECRET not in caplog.text


def test_a_new_signing_key_of_the_provider_is_fetched_when_a_token_names_it(fresh: Site
                                                                           ) -> None:
    """Entra ID rolls its signing keys; mailbot keeps the JWKS it read, and reads it again
    when an ID token names a key id it does not hold."""
    assert fresh.sign_in(preferred_username="anna@kommune.dk").status_code == 200
    fetched = fresh.provider.jwks_fetches
    assert fresh.sign_in(preferred_username="anna@kommune.dk").status_code == 200
    assert fresh.provider.jwks_fetches == fetched  # kept
    fresh.provider.rotate()
    response = fresh.sign_in(preferred_username="anna@kommune.dk")
    assert response.status_code == 200
    assert fresh.provider.jwks_fetches == fetched + 1
    assert response.extensions["user"] == {"name": "anna@kommune.dk", "role": "secretary"}


def test_the_provider_redeems_a_code_only_with_the_pkce_verifier(fresh: Site) -> None:
    """What PKCE is for: a code caught on its way back to mailbot is worth nothing without
    the verifier, which never left mailbot's session."""
    fresh.provider.user = {"preferred_username": "anna@kommune.dk"}
    with httpx.Client(verify=fresh.trust, follow_redirects=False, timeout=30) as browser:
        to_provider = browser.get(f"{fresh.app}/login/oidc")
        assert to_provider.status_code == 302
        back = browser.get(to_provider.headers["location"])
        caught = parse_qs(urlsplit(back.headers["location"]).query)
        token_endpoint = f"{fresh.provider.base}/{TENANT}/oauth2/v2.0/token"
        stolen = browser.post(token_endpoint, data={
            "grant_type": "authorization_code", "code": caught["code"][0],
            "redirect_uri": fresh.provider.redirect_uri, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET})
        assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
        # the code is spent; the browser's own callback now fails too, and says so
        refused = browser.get(back.headers["location"])
        assert refused.status_code == 403 and "Login afvist" in danish_page(refused)
        assert browser.get(f"{fresh.app}/").json()["user"] is None
    assert fresh.provider.token_refusals == ["invalid_grant", "invalid_grant"]


def test_a_callback_started_in_another_browser_is_refused(fresh: Site) -> None:
    """Login CSRF (RFC 6749 §10.12): a victim's browser handed an attacker's code and state
    is not signed in as the attacker."""
    fresh.provider.user = {"preferred_username": "anna@kommune.dk"}
    with fresh.browser() as attacker:
        attacker.follow_redirects = False
        to_provider = attacker.get(f"{fresh.app}/login/oidc")
        callback = attacker.get(to_provider.headers["location"]).headers["location"]
    with fresh.browser() as victim:
        response = victim.get(callback)
        assert response.status_code == 403 and "Login afvist" in danish_page(response)
        assert victim.get(f"{fresh.app}/").json()["user"] is None
    assert fresh.provider.token_requests == []  # the code was never even redeemed


def test_a_user_who_cancels_at_the_provider_is_told_so(fresh: Site) -> None:
    fresh.provider.deny = "access_denied"
    response = fresh.sign_in(preferred_username="anna@kommune.dk")
    assert response.status_code == 403
    assert "Login blev afbrudt" in danish_page(response)
    assert response.extensions["user"] is None


def test_a_provider_whose_certificate_is_not_trusted_is_never_asked(
        site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Without web.oidc.ca_file the provider's test CA is unknown: the TLS check stops the
    sign-in before anything is sent (502, in Danish), and a closed port does the same."""
    issuers = (site.provider.issuer, f"https://127.0.0.1:{_closed_port()}/{TENANT}/v2.0")
    for number, issuer in enumerate(issuers):
        server = serve(tmp_path / str(number), issuer, ca_file=None)
        try:
            with site.browser() as browser:
                response = browser.get(f"{server.address}/login/oidc")
        finally:
            server.stop()
        assert response.status_code == 502
        assert "Kommunens login svarer ikke" in danish_page(response)
        assert "event=web_oidc_unreachable" in caplog.text


def _closed_port() -> int:
    sock = bind(Listen("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def test_the_overview_sends_a_visitor_to_entra_id_and_shows_the_cases_after(
        fresh: Site, pki: Pki, tmp_path: Path) -> None:
    """The whole app as the daemon and `mailbot web` serve it (mailbot.web.app.create_app), not
    the routes alone: the sign-in page leads to /login/oidc, and after the provider the
    visitor lands on Sager, signed in with the role the config gives."""
    from mailbot.db import migrate
    from mailbot.web.app import create_app

    sock = bind(Listen("127.0.0.1", 0))
    callback = f"http://127.0.0.1:{sock.getsockname()[1]}/login/oidc/callback"
    settings = load_settings(oidc_config(tmp_path, fresh.provider.issuer, callback,
                                         pki.ca_file), environ=ENV)
    bot = build_bot(settings, Clock(NOW))
    migrate(bot.engine, quiet=True)
    server = WebServer(create_app(bot), sock)
    server.start()
    site_callback, fresh.provider.redirect_uri = fresh.provider.redirect_uri, callback
    try:
        with fresh.browser() as browser:
            login = browser.get(f"{server.address}/")
            assert urlsplit(str(login.url)).path == "/login"
            assert 'href="/login/oidc"' in login.text
            fresh.provider.user = {"preferred_username": "anna@kommune.dk"}
            page = browser.get(f"{server.address}/login/oidc")
            assert page.status_code == 200
            assert urlsplit(str(page.url)).path == "/sager"
            text = danish_page(page)
            assert "anna@kommune.dk (sekretariat)" in text and "Sager" in text
    finally:
        fresh.provider.redirect_uri = site_callback
        server.stop()
        bot.engine.dispose()
