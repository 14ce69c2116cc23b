"""Sign-in to the overview with the municipality's Entra ID: `[web] auth = "oidc"` (issue #14).

OpenID Connect's authorization-code flow with PKCE (OpenID Connect Core 1.0 §3.1, RFC 7636
with S256) through authlib's Starlette client:

- GET /login/oidc sends the browser to the provider's authorization endpoint (read from its
  discovery document, `issuer` + /.well-known/openid-configuration) with a fresh state, nonce
  and code challenge; authlib keeps them and the code verifier in the signed session cookie
  (Starlette's SessionMiddleware, installed by mailbot.web.app) until the callback.
- GET /login/oidc/callback takes the code to the token endpoint with the verifier and the
  client secret, and checks the ID token (Core §3.1.3.7): signed by a key of the provider's
  JWKS, iss = [web.oidc] issuer, aud = client_id, not expired, the nonce of this browser's
  sign-in. The user's name or one of their groups gives the role (user_for); the session then
  holds {"name", "role"} and the browser goes to "/".

Anything else leaves nobody signed in and shows a Danish page (templates/web/
oidc_refused.html.j2): 403 for a user without a role or a sign-in that failed a check, 502
when the provider cannot be reached.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mailbot.app import template_folders
from mailbot.config import OIDC_CALLBACK
from mailbot.delivery.compose import genitive
from mailbot.intake.mailbox import tls_context

if TYPE_CHECKING:
    from mailbot.app import Bot
    from mailbot.config import OidcSettings

with warnings.catch_warnings():
    # authlib 1.9 asks for httpx2 and works on httpx (mailbot's HTTP client, whose errors are
    # caught below); it says so at every import, to stderr: authlib.deprecate sets its
    # warnings to "always" when imported, so this filter goes in front of that one
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.starlette_client import OAuth, OAuthError

log = logging.getLogger(__name__)

LOGIN = "/login/oidc"
SESSION_USER = "user"  # request.session["user"] = {"name": ..., "role": ...}
SCOPE = "openid profile email"
# The claims that name the user, in this order: `email` last, because Entra ID does not
# verify it (Microsoft identity platform, "Secure applications and APIs by validating claims")
NAME_CLAIMS = ("preferred_username", "upn", "email")
TIMEOUT_SECONDS = 30.0  # per request to the provider
TEMPLATE = "web/oidc_refused.html.j2"


def sign_in_name(claims: Mapping[str, Any]) -> str:
    """The user's name from an ID token's `claims`: the first of NAME_CLAIMS there, or ""."""
    return next((str(claims[key]).strip() for key in NAME_CLAIMS if claims.get(key)), "")


def user_for(oidc: OidcSettings, claims: Mapping[str, Any]) -> dict[str, str] | None:
    """The session user {"name": str, "role": "secretary"|"operator"|"council"} for a checked
    ID token's `claims`, or None when [web.oidc] gives this user no role (or no name).

    A name (sign_in_name) in `users` decides before the groups, case not counting (as in
    Entra ID's user principal names); otherwise the first entry of `groups` whose object ID
    is in the `groups` claim."""
    name = sign_in_name(claims)
    if not name:
        return None
    role = next((role for user, role in oidc.users.items()
                 if user.casefold() == name.casefold()), None)
    member_of = claims.get("groups")
    if role is None and isinstance(member_of, list):
        role = next((role for group, role in oidc.groups.items() if group in member_of), None)
    return None if role is None else {"name": name, "role": role}


def groups_left_out(claims: Mapping[str, Any]) -> bool:
    """True when the ID token names no groups because the user is in too many: Entra ID's
    "groups overage" (more than 200), a `_claim_names` entry for "groups" instead of the claim
    (Microsoft identity platform, "Configure group claims for applications")."""
    names = claims.get("_claim_names")
    return "groups" not in claims and isinstance(names, dict) and "groups" in names


def client(oidc: OidcSettings) -> Any:
    """authlib's Starlette client for [web.oidc]: endpoints and keys from the provider's
    discovery document (fetched at the first sign-in, the JWKS again for an unknown key id),
    PKCE with S256, the client secret in the token request's body (as Microsoft's
    authorization-code flow documents it), the system's CAs plus `ca_file`."""
    return OAuth().register(
        name="oidc",
        client_id=oidc.client_id,
        client_secret=oidc.client_secret.get_secret_value(),
        server_metadata_url=f"{oidc.issuer.rstrip('/')}/.well-known/openid-configuration",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256",
                       "token_endpoint_auth_method": "client_secret_post",
                       "verify": tls_context(oidc.ca_file), "timeout": TIMEOUT_SECONDS})


def routes(bot: Bot) -> list[BaseRoute]:
    """/login/oidc and /login/oidc/callback for `bot.settings.web.oidc` (module docstring).
    Needs a SessionMiddleware in front of them."""
    oidc = bot.settings.web.oidc
    provider = client(oidc)
    pages = Environment(loader=FileSystemLoader([str(f) for f in template_folders(bot.settings)]),
                        autoescape=True, undefined=StrictUndefined)
    pages.filters["genitive"] = genitive

    def refused(reason: str, status: int = 403) -> Response:
        """The Danish page for `reason` ("not_allowed", "no_name", "cancelled", "failed",
        "unreachable")."""
        html = pages.get_template(TEMPLATE).render(reason=reason, login=LOGIN,
                                                   bot_name=bot.settings.bot.name)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    async def login(request: Request) -> Response:
        try:
            redirect: Response = await provider.authorize_redirect(request, oidc.redirect_url)
        except (httpx.HTTPError, ValueError) as err:  # ValueError: not JSON
            log.error("event=web_oidc_unreachable the discovery document of web.oidc.issuer "
                      "%s could not be read: %s", oidc.issuer, type(err).__name__)
            return refused("unreachable", 502)
        return redirect

    async def callback(request: Request) -> Response:
        # a fresh dict each time: authlib pops from the options it is given
        options = {"iss": {"essential": True, "value": oidc.issuer},
                   "aud": {"essential": True, "value": oidc.client_id}}
        try:
            token = await provider.authorize_access_token(request, claims_options=options)
        except OAuthError as err:
            # err.error is a code from RFC 6749 §4.1.2.1 or §5.2; its description is the
            # provider's text and may echo what the browser sent, so it is not logged
            log.warning("event=web_oidc_refused the sign-in failed: %s", err.error)
            return refused("cancelled" if err.error == "access_denied" else "failed")
        except JoseError as err:
            # joserfc's text names the check ("invalid_claim: Invalid claim: 'aud'"), never
            # a claim's value
            log.warning("event=web_oidc_refused the ID token failed a check: %s", err)
            return refused("failed")
        except (httpx.HTTPError, ValueError) as err:
            log.error("event=web_oidc_unreachable the provider of web.oidc.issuer %s did not "
                      "answer: %s", oidc.issuer, type(err).__name__)
            return refused("unreachable", 502)
        claims = token.get("userinfo")
        if not claims:  # no ID token, or no nonce to check it by: authlib checked nothing
            log.warning("event=web_oidc_refused the token response had no ID token")
            return refused("failed")
        user = user_for(oidc, claims)
        if user is None:
            name = sign_in_name(claims)
            if groups_left_out(claims):
                log.warning("event=web_oidc_groups_overage %s is in too many groups for the "
                            "ID token to list them: in Entra ID, emit only the groups "
                            "assigned to the application", name)
            log.warning("event=web_oidc_not_allowed %s has no role in [web.oidc] users or "
                        "groups", name or "a user without a name claim")
            return refused("not_allowed" if name else "no_name")
        # nothing of the sign-in (state, nonce, verifier) outlives it
        request.session.clear()
        request.session[SESSION_USER] = user
        log.info("event=web_oidc_signed_in %s signed in as %s", user["name"], user["role"])
        return RedirectResponse("/", status_code=303)

    return [Route(LOGIN, login, name="oidc_login"),
            Route(OIDC_CALLBACK, callback, name="oidc_callback")]
