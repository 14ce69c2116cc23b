"""OAuth2 client-credentials tokens for the IMAP and SMTP logins (SASL XOAUTH2), one source per
process, shared by both when both say `auth = "oauth2"`.

- provider "microsoft": msal's ConfidentialClientApplication against the Entra ID authority
  (client secret or certificate). msal caches the token and asks for a new one when less than
  5 minutes remain (msal/application.py).
- provider "generic": one POST per token to `oauth2.token_url` with
  `grant_type=client_credentials` and the client in HTTP Basic (RFC 6749 §4.4, §2.3.1).

Both go through one urllib transport (`_Https`): TLS ≥ 1.2, the system's CAs plus
`oauth2.ca_file`, the environment's proxy. Tokens live in memory only and are renewed when less
than REFRESH_MARGIN_SECONDS (or half their lifetime) remain; a token a server refuses is dropped
with `invalidate()` and the login is tried once more with a new one.

Secrets and tokens appear in no log line, repr or error text: errors quote the provider's
error code and the first sentence of its description, which names the app, never the secret.

The errors say what to change in Danish municipal terms (Entra ID, Exchange Online
PowerShell), after Microsoft's "Authenticate an IMAP, POP or SMTP connection using OAuth".
The logins use SASL XOAUTH2 (Google's XOAUTH2 protocol), the one mechanism Exchange Online
offers; RFC 7628's OAUTHBEARER carries the same bearer token but is not offered there.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from email.message import Message
from typing import TYPE_CHECKING, Any

from mailbot.config import OAuth2Settings, Settings
from mailbot.errors import ConfigError, TransientError

if TYPE_CHECKING:
    import msal

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30
REFRESH_MARGIN_SECONDS = 300
DEFAULT_LIFETIME_SECONDS = 3600  # RFC 6749 §5.1: expires_in is only RECOMMENDED
# Exchange Online's answer to every command after AUTHENTICATE when the app may log in but
# cannot open the mailbox named in the login
NOT_CONNECTED = "User is authenticated but not connected"
_AADSTS = re.compile(r"AADSTS(\d+)")
_EXPIRY = re.compile(r"expir\w*(?:\s+(?:on|at))?:?\s*(\d{4}-\d{2}-\d{2})", re.IGNORECASE)
NEW_SECRET = ("create a new client secret in Entra ID (App registrations > the mailbot app > "
              "Certificates & secrets > New client secret), put its Value (not its Secret ID) "
              "in MAILBOT_OAUTH2__CLIENT_SECRET and restart mailbot")


class TokenEndpointDown(TransientError):
    """The token endpoint could not be reached, or answered 5xx: retried later. At start
    (`check`, the start of `run`) it is the operator's to fix: `config_error` says how."""

    def __init__(self, message: str, config_error: ConfigError) -> None:
        super().__init__(message)
        self.config_error = config_error


class TokenSource:
    """The one token of this process: `token()` returns it, renewed before it expires.

    Thread-safe (the IMAP watcher and the outbox job both log in). Raises ConfigError when
    the provider refuses the app (wrong secret, unknown client) and TokenEndpointDown when it
    cannot be reached."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.oauth2: OAuth2Settings = settings.oauth2
        self._lock = threading.Lock()
        self._token = ""
        self._renew_at = 0.0  # time.monotonic() after which token() asks for a new one
        self._expires_at = 0.0
        self._https = _Https(_context(self.oauth2), TIMEOUT_SECONDS)
        self._msal: msal.ConfidentialClientApplication | None = None

    def __repr__(self) -> str:  # never the token
        return f"TokenSource({self.oauth2.provider}, {self.oauth2.endpoint})"

    @property
    def client_id(self) -> str:
        return self.oauth2.client_id

    @property
    def expires_in(self) -> float:
        """Seconds the current token is still valid (0 without one)."""
        return max(0.0, self._expires_at - time.monotonic())

    def token(self) -> str:
        with self._lock:
            now = time.monotonic()
            if not self._token or now >= self._renew_at:
                token, lifetime = self._fetch()
                # renew 5 minutes before expiry, or at half the lifetime of a short token
                margin = min(REFRESH_MARGIN_SECONDS, lifetime / 2)
                self._token = token
                self._expires_at = now + lifetime
                self._renew_at = now + lifetime - margin
                log.info("OAuth2 token from %s, valid %.0f s", self._host(), lifetime)
            return self._token

    def invalidate(self) -> None:
        """Forget the token (a server refused it): the next token() asks the provider."""
        with self._lock:
            self._token = ""
            if self._msal is not None:
                self._msal.remove_tokens_for_client()  # else msal returns it from its cache

    # -- providers --------------------------------------------------------------------------
    def _fetch(self) -> tuple[str, float]:
        """(access token, lifetime in seconds). Raises ConfigError or TokenEndpointDown."""
        fetch = self._microsoft if self.oauth2.provider == "microsoft" else self._generic
        try:
            answer = fetch()
        except (OSError, http.client.HTTPException) as err:
            refused = _certificate_error(err)
            if refused is not None:
                raise self._untrusted(refused) from err
            raise self._down(_reason(err)) from err
        token = answer.get("access_token")
        if isinstance(token, str) and token:
            return token, _lifetime(answer.get("expires_in"))
        raise self._refused(answer)

    def _generic(self) -> dict[str, Any]:
        o = self.oauth2
        form = {"grant_type": "client_credentials"}
        if o.effective_scope:
            form["scope"] = o.effective_scope
        response = self._https.post(o.token_url, data=form, headers={
            "Authorization": _basic(o.client_id, o.client_secret.get_secret_value())})
        return self._json(response)

    def _microsoft(self) -> dict[str, Any]:
        app = self._msal or self._msal_app()
        self._msal = app
        result: dict[str, Any] = app.acquire_token_for_client(
            scopes=[self.oauth2.effective_scope])
        return result

    def _msal_app(self) -> msal.ConfidentialClientApplication:
        """msal's app; building it reads the authority's OpenID configuration (tenant
        discovery: GET <authority>/v2.0/.well-known/openid-configuration)."""
        import msal

        o = self.oauth2
        credential: str | dict[str, str] = o.client_secret.get_secret_value()
        if o.certificate_path is not None:
            credential = {"private_key": o.certificate_path.read_text(encoding="utf-8"),
                          "thumbprint": o.certificate_thumbprint.replace(":", "")}
        try:
            # instance_discovery=False: the authority is the operator's (national clouds, a
            # test authority); msal would otherwise ask login.microsoftonline.com about it
            return msal.ConfidentialClientApplication(
                o.client_id, client_credential=credential, authority=o.effective_authority,
                http_client=self._https, instance_discovery=False)
        except ValueError as err:  # the tenant is unknown, or the authority no authority
            source, key = self.settings.origin("oauth2.tenant_id")
            raise ConfigError(
                source, key, f"{o.effective_authority} has no OpenID configuration for this "
                f"tenant ({_first_line(str(err))})",
                "copy the Directory (tenant) ID from the app's Overview page in Entra ID; set "
                "oauth2.authority only for a national cloud") from err

    def _json(self, response: _Response) -> dict[str, Any]:
        if response.status_code >= 500 or response.status_code == 429:
            raise self._down(f"HTTP {response.status_code}")
        try:
            data = json.loads(response.text)
        except ValueError as err:
            raise self._down(f"HTTP {response.status_code}, not JSON") from err
        if not isinstance(data, dict):
            raise self._down(f"HTTP {response.status_code}, not a JSON object")
        return data

    # -- errors -----------------------------------------------------------------------------
    def _host(self) -> str:
        return urllib.parse.urlsplit(self.oauth2.endpoint).netloc

    def _untrusted(self, err: ssl.SSLCertVerificationError) -> TokenEndpointDown:
        """The token endpoint's certificate was refused: say why and which key fixes it (the
        same verdicts as for the IMAP and SMTP servers), not "check the firewall"."""
        from mailbot.intake.mailbox import certificate_verdict

        o = self.oauth2
        where = urllib.parse.urlsplit(o.endpoint)
        which, problem, fix = certificate_verdict(
            err, where.netloc, where.hostname or "", o.ca_file, o.endpoint_key, "oauth2.ca_file")
        source, key = self.settings.origin("oauth2.ca_file" if which == "ca_file"
                                           else o.endpoint_key)
        return TokenEndpointDown(f"token endpoint {o.endpoint}: {problem}",
                                 ConfigError(source, key, problem, fix))

    def _down(self, reason: str) -> TokenEndpointDown:
        o = self.oauth2
        source, key = self.settings.origin(o.endpoint_key)
        where = urllib.parse.urlsplit(o.endpoint)
        port = where.port or (443 if where.scheme == "https" else 80)
        error = ConfigError(
            source, key, f"cannot reach the token endpoint {o.endpoint} ({reason})",
            f"check {o.endpoint_key}, and that this server may open {where.hostname} port "
            f"{port} (ask the municipality's network team about the firewall; a proxy goes in "
            "HTTPS_PROXY)")
        return TokenEndpointDown(f"token endpoint {o.endpoint} unavailable ({reason})", error)

    def _refused(self, answer: Mapping[str, Any]) -> ConfigError:
        """The provider's refusal (an OAuth2 error response, RFC 6749 §5.2) as what to fix."""
        error = str(answer.get("error") or "no access_token in the answer")
        description = str(answer.get("error_description") or "")
        codes = {str(c) for c in answer.get("error_codes") or []} | set(
            _AADSTS.findall(description))
        detail = _first_line(description) or error
        o = self.oauth2

        def at(key: str, problem: str, fix: str) -> ConfigError:
            source, name = self.settings.origin(key)
            return ConfigError(source, name, problem, fix)

        if codes & {"7000215", "7000222"}:
            expired = "7000222" in codes
            date = _EXPIRY.search(description)
            state = ("has expired" + (f" (on {date[1]})" if date else "") if expired
                     else "is not valid")
            return at("oauth2.client_secret", f"Entra ID says the client secret {state} "
                      f"(AADSTS{'7000222' if expired else '7000215'})", NEW_SECRET)
        if "700016" in codes:
            return at("oauth2.client_id", f"Entra ID knows no application {o.client_id!r} in "
                      f"tenant {o.tenant_id or o.effective_authority!r} (AADSTS700016)",
                      "copy the Application (client) ID and the Directory (tenant) ID from the "
                      "app's Overview page in Entra ID into oauth2.client_id and "
                      "oauth2.tenant_id")
        if "90002" in codes:
            return at("oauth2.tenant_id", f"Entra ID knows no tenant {o.tenant_id!r} "
                      "(AADSTS90002)", "copy the Directory (tenant) ID from the app's Overview "
                      "page in Entra ID")
        if codes & {"700027", "700023"}:
            return at("oauth2.certificate_thumbprint", f"Entra ID does not accept the "
                      f"certificate ({detail})", "upload the certificate (public part) under "
                      "Certificates & secrets in Entra ID and copy its thumbprint here")
        if error == "invalid_scope" or "70011" in codes:
            return at("oauth2.scope", f"the token endpoint refuses the scope ({detail})",
                      f'remove oauth2.scope for Exchange Online ("{o.effective_scope}"), or '
                      "use the scope your provider documents")
        if error == "invalid_client":
            return at("oauth2.client_secret", f"the token endpoint refuses the client "
                      f"({detail})", "check oauth2.client_id and the secret in "
                      "MAILBOT_OAUTH2__CLIENT_SECRET")
        return at("oauth2.client_id", f"the token endpoint refused the app ({detail})",
                  "check oauth2.client_id, oauth2.tenant_id and the client secret against the "
                  "app registration")


def token_source(settings: Settings) -> TokenSource | None:
    """The process's token source, or None when neither IMAP nor SMTP uses OAuth2."""
    return TokenSource(settings) if settings.uses_oauth2 else None


# -- what Exchange Online's refusals mean -------------------------------------------------
def imap_refused(tokens: TokenSource, mailbox: str, server_text: str) -> ConfigError:
    """IMAP refused a token the provider granted. Exchange Online says `AUTHENTICATE failed`
    when the app's service principal is not registered in Exchange or has no FullAccess to
    the mailbox, and NOT_CONNECTED when the mailbox in the login is not one the app may
    open."""
    if NOT_CONNECTED.lower() in server_text.lower():
        return not_connected(tokens, mailbox)
    source, key = tokens.settings.origin("oauth2.client_id")
    return ConfigError(
        source, key, f"the IMAP server refused the app's token for {mailbox} ({server_text})",
        "in Exchange Online PowerShell register the app and give it the mailbox: "
        f"New-ServicePrincipal -AppId {tokens.client_id} -ObjectId <the app's Object ID under "
        f"Entra ID, Enterprise applications>, then Add-MailboxPermission -Identity {mailbox} "
        "-User <that Object ID> -AccessRights FullAccess (the app also needs IMAP.AccessAsApp "
        "with admin consent)")


def not_connected(tokens: TokenSource, mailbox: str) -> ConfigError:
    source, key = tokens.settings.origin("imap.username")
    return ConfigError(
        source, key, f"Exchange Online accepted the app's token but cannot open mailbox "
        f"{mailbox!r} ({NOT_CONNECTED})",
        "set imap.username to the primary address of the mailbox the app was given with "
        "Add-MailboxPermission (e.g. it.projekter@kommune.dk), not an alias or another "
        "mailbox")


def smtp_refused(tokens: TokenSource, mailbox: str, code: int, server_text: str
                 ) -> ConfigError:
    """SMTP refused a token the provider granted: 535 5.7.139 is SMTP AUTH switched off for
    the mailbox or the tenant; any other refusal the app's missing rights."""
    settings = tokens.settings
    reply = f"{code} {server_text}".strip()
    if "5.7.139" in server_text:
        source, key = settings.origin("smtp.auth")
        return ConfigError(
            source, key, f"Exchange Online has SMTP AUTH switched off for {mailbox} ({reply})",
            f"in Exchange Online PowerShell run Set-CASMailbox -Identity {mailbox} "
            "-SmtpClientAuthenticationDisabled $false (allowed for this one mailbox even when "
            "the tenant keeps SMTP AUTH off)")
    source, key = settings.origin("oauth2.client_id")
    return ConfigError(
        source, key, f"the SMTP server refused the app's token for {mailbox} ({reply})",
        "give the app SMTP.SendAsApp with admin consent in Entra ID, and in Exchange Online "
        f"PowerShell Add-MailboxPermission -Identity {mailbox} -User <the app's Object ID under "
        "Enterprise applications> -AccessRights FullAccess (New-ServicePrincipal first if it is "
        "not registered)")


# -- HTTP -----------------------------------------------------------------------------------
class _Response:
    """The response shape msal's HttpClient interface asks for (msal/oauth2cli/http.py)."""

    def __init__(self, status_code: int, text: str, headers: Message | None) -> None:
        self.status_code = status_code
        self.text = text
        self.headers: dict[str, str] = dict(headers.items()) if headers is not None else {}

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise OSError(f"HTTP {self.status_code}")


class _Https:
    """msal's HttpClient interface (get/post returning status_code, text, headers) on urllib,
    so both providers share one TLS policy and msal needs no `requests` session of ours."""

    def __init__(self, context: ssl.SSLContext, timeout: float) -> None:
        self.timeout = timeout
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def get(self, url: str, params: Mapping[str, str] | None = None,
            headers: Mapping[str, str] | None = None, **_: Any) -> _Response:
        return self._send(urllib.request.Request(_with_query(url, params),
                                                 headers=dict(headers or {})))

    def post(self, url: str, params: Mapping[str, str] | None = None,
             data: Mapping[str, str] | str | None = None,
             headers: Mapping[str, str] | None = None, **_: Any) -> _Response:
        body = data if isinstance(data, str) else urllib.parse.urlencode(data or {})
        request = urllib.request.Request(_with_query(url, params), data=body.encode(),
                                         headers=dict(headers or {}), method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        return self._send(request)

    def close(self) -> None:
        pass

    def _send(self, request: urllib.request.Request) -> _Response:
        """The response, also for 4xx/5xx. Raises OSError when nothing answered."""
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                return _Response(response.status, response.read().decode("utf-8", "replace"),
                                 response.headers)
        except urllib.error.HTTPError as err:
            with err:
                return _Response(err.code, err.read().decode("utf-8", "replace"), err.headers)


def _context(oauth2: OAuth2Settings) -> ssl.SSLContext:
    """Certificate verification on, TLS ≥ 1.2; oauth2.ca_file is trusted besides the
    system's CAs (a municipality's TLS-inspecting proxy, a test authority)."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if oauth2.ca_file is not None:
        context.load_verify_locations(cafile=str(oauth2.ca_file))
    return context


def _with_query(url: str, params: Mapping[str, str] | None) -> str:
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"


def _basic(user: str, password: str) -> str:
    """HTTP Basic for a client: both parts form-encoded first (RFC 6749 §2.3.1)."""
    import base64

    pair = f"{urllib.parse.quote_plus(user)}:{urllib.parse.quote_plus(password)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def _lifetime(value: object) -> float:
    """expires_in (seconds; Entra ID's v1 endpoints send it as a string)."""
    try:
        seconds = float(str(value))
    except ValueError:
        return DEFAULT_LIFETIME_SECONDS
    return seconds if seconds > 0 else DEFAULT_LIFETIME_SECONDS


def _certificate_error(err: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind `err` (urllib wraps it), if any."""
    if isinstance(err, urllib.error.URLError) and isinstance(err.reason, BaseException):
        err = err.reason
    return err if isinstance(err, ssl.SSLCertVerificationError) else None


def _reason(err: BaseException) -> str:
    """What went wrong on the wire, in one short phrase."""
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        err = err.reason if isinstance(err.reason, BaseException) else OSError(err.reason)
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return str(text)


def _first_line(text: str) -> str:
    """The first sentence of a provider's description, without trace and correlation ids."""
    head = re.split(r"(?<=\.)\s|\r|\n| Trace ID:", text.strip(), maxsplit=1)[0]
    return head.strip()
