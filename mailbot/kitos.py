"""A small client for the KITOS REST API v2: which system usage of the municipality has a given
system name, and who holds its system owner role.

The endpoints and shapes are KITOS's own (os2kitos/kitos: TokenAuthenticationController,
OrganizationV2Controller, ItSystemUsageV2Controller, BoundedPaginationQuery):

- `POST /api/authorize/GetToken` with `{"email", "password"}` answers
  `{"msg", "response": {"token", "email", "loginSuccessful", "expires"}}`: an HS256 JWT valid
  24 hours, for users of the type "API user" only. A wrong password and a user without API
  access both get 401.
- `GET /api/v2/organizations?cvrContent=<cvr>`: `[{uuid, name, cvr, organizationType}]`,
  matched on a PART of the CVR number, so the number is compared here exactly.
- `GET /api/v2/it-system-usages?organizationUuid=&systemNameContent=&page=&pageSize=`: the
  usages whose GLOBAL system name (`systemContext.name`) contains the text; `general` holds
  the local call name, `roles` the `{user{uuid,name}, role{uuid,name}}` assignments. Pages
  start at 0, `pageSize` is 1-250, and there is no paging metadata: a short page is the last.
- `GET /api/v2/organizations/<org>/users/<user>`: `{uuid, name, firstName, lastName, email,
  …}`.

Every failure (a refusal, a timeout, a connection refused, an HTML error page, bad JSON) is
one KitosError with a short technical reason; the password and the token are in no error,
log line or repr.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx

from mailbot.config import KitosSettings, Settings
from mailbot.errors import ConfigError, TransientError

log = logging.getLogger(__name__)

PAGE_SIZE = 250  # KITOS's BoundedPaginationConstraints.MaxPageSize
MAX_PAGES = 200  # 50,000 usages of one name: a server that ignores `page` cannot loop us
RENEW_BEFORE = timedelta(minutes=5)  # a token this close to `expires` is renewed first
DETAIL_CHARS = 120  # of an error body, in the technical reason (logs and `check`)


class KitosProblem(StrEnum):
    """What went wrong, for the words people read (rules/labels.yaml `kitos_reasons`)."""

    REFUSED = "refused"  # an HTTP error status (`status` says which)
    LOGIN = "login"  # GetToken refused the e-mail and password
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"  # DNS, connection refused, TLS
    BAD_ANSWER = "bad_answer"  # not JSON, or not the shape the API documents
    NO_ORGANIZATION = "no_organization"  # no organisation with exactly this CVR number


class KitosError(TransientError):
    """KITOS could not answer the question. `problem`, `status` (HTTP, for REFUSED) and the
    one-line technical `detail`; str() is `detail`. Never holds the password or the token."""

    def __init__(self, problem: KitosProblem, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.problem = problem
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Organization:
    uuid: str
    name: str
    cvr: str


@dataclass(frozen=True)
class RoleAssignment:
    role: str  # the role option's name, e.g. "Systemejer"
    user_uuid: str
    user_name: str


@dataclass(frozen=True)
class Usage:
    """One system usage of the organisation: the global system name, the local call name."""

    uuid: str
    system_name: str
    local_call_name: str
    roles: tuple[RoleAssignment, ...]


@dataclass(frozen=True)
class Person:
    name: str
    email: str  # "" when KITOS has none


def _utcnow() -> datetime:
    return datetime.now(UTC)


class KitosClient:
    """One KITOS login, reused until its token expires (renewed on a 401 too, once).

    `now` is the real clock, not the bot's: the token's expiry is KITOS's time. `transport`
    is for the tests' own server only (httpx's own transports); thread-safe."""

    def __init__(self, settings: KitosSettings, now: Callable[[], datetime] = _utcnow,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._now = now
        self._lock = threading.Lock()
        self._token = ""
        self._expires: datetime | None = None
        self._http = httpx.Client(base_url=settings.base_url.rstrip("/"),
                                  timeout=settings.timeout_seconds, transport=transport,
                                  headers={"Accept": "application/json"})

    def __repr__(self) -> str:
        return f"KitosClient({self.settings.base_url!r}, {self.settings.email!r})"

    def close(self) -> None:
        self._http.close()

    # -- the questions ------------------------------------------------------------------------
    def organization(self, cvr: str) -> Organization:
        """The organisation whose CVR number is exactly `cvr` (the API matches a part of it).

        Raises KitosError (NO_ORGANIZATION when none has exactly this number)."""
        found = self._get("/api/v2/organizations", {"cvrContent": cvr})
        for item in _list(found, "organizations"):
            if str(_field(item, "cvr") or "").replace(" ", "") == cvr:
                return Organization(str(_field(item, "uuid")), str(_field(item, "name")), cvr)
        raise KitosError(KitosProblem.NO_ORGANIZATION,
                         f"KITOS has no organisation with CVR number {cvr}")

    def usages(self, organization_uuid: str, name_content: str) -> list[Usage]:
        """Every usage in the organisation whose global system name contains `name_content`
        (KITOS compares without regard to case), page after page of PAGE_SIZE."""
        usages: list[Usage] = []
        for page in range(MAX_PAGES):
            found = _list(self._get("/api/v2/it-system-usages", {
                "organizationUuid": organization_uuid, "systemNameContent": name_content,
                "page": page, "pageSize": PAGE_SIZE}), "it-system-usages")
            usages += [_usage(item) for item in found]
            if len(found) < PAGE_SIZE:
                break
        return usages

    def find_usage(self, organization_uuid: str, search: str,
                   matches: Callable[[str], bool]) -> Usage | None:
        """The first usage found by `search` whose global system name `matches`."""
        return next((u for u in self.usages(organization_uuid, search)
                     if matches(u.system_name)), None)

    def person(self, organization_uuid: str, user_uuid: str) -> Person:
        """The user's name and e-mail address in the organisation."""
        item = self._get(f"/api/v2/organizations/{organization_uuid}/users/{user_uuid}", {})
        if not isinstance(item, dict):
            raise _bad_answer("a user is not a JSON object")
        name = str(item.get("name") or " ".join(
            str(item.get(k) or "") for k in ("firstName", "lastName")).strip())
        return Person(name, str(item.get("email") or ""))

    def owners(self, organization_uuid: str, usage: Usage, role: str) -> list[Person]:
        """The holders of `role` (compared without regard to case) on `usage`, with their
        e-mail addresses. A user KITOS will not show (403, 404) keeps the role's name."""
        people = []
        for assignment in usage.roles:
            if assignment.role.casefold() != role.casefold():
                continue
            try:
                people.append(self.person(organization_uuid, assignment.user_uuid))
            except KitosError as err:
                if err.status not in (403, 404):
                    raise
                log.warning("KITOS: user %s of %s: %s; the name only", assignment.user_uuid,
                            usage.system_name, err)
                people.append(Person(assignment.user_name, ""))
        return people

    # -- login and transport ------------------------------------------------------------------
    def login(self) -> datetime | None:
        """Get a new token; returns when it expires (None: KITOS did not say readably).

        Raises KitosError: LOGIN for 401/403 or `loginSuccessful` false."""
        with self._lock:
            return self._login()

    def _login(self) -> datetime | None:
        response = self._send("POST", "/api/authorize/GetToken", json={
            "email": self.settings.email, "password": self.settings.password.get_secret_value()})
        if response.status_code in (400, 401, 403):
            # the body may quote the request's fields: it is not repeated
            raise KitosError(KitosProblem.LOGIN,
                             f"KITOS refused the login of {self.settings.email} "
                             f"({response.status_code})", response.status_code)
        body = _json(response, "POST /api/authorize/GetToken")
        answer = body.get("response") if isinstance(body, dict) else None
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or answer.get("loginSuccessful") is False:
            raise KitosError(KitosProblem.LOGIN,
                             f"KITOS refused the login of {self.settings.email}")
        if not isinstance(token, str) or not token:
            raise _bad_answer("GetToken answered without a token")
        self._token = token
        self._expires = _expiry(answer.get("expires"))
        log.info("KITOS: logged in as %s (token until %s)", self.settings.email,
                 self._expires.isoformat() if self._expires else "KITOS refuses it")
        return self._expires

    def _bearer(self, renew: bool) -> str:
        with self._lock:
            stale = self._expires is not None and self._now() >= self._expires - RENEW_BEFORE
            if renew or not self._token or stale:
                self._token = ""
                self._login()
            return self._token

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        """The JSON of a GET with the bearer token; a 401 (expired or revoked) logs in again
        once and repeats the request."""
        for renew in (False, True):
            headers = {"Authorization": f"Bearer {self._bearer(renew)}"}
            response = self._send("GET", path, params=params, headers=headers)
            if response.status_code != 401:
                break
        return _json(response, f"GET {path}")

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as err:
            raise KitosError(KitosProblem.TIMEOUT,
                             f"KITOS did not answer {method} {path} within "
                             f"{self.settings.timeout_seconds:g} s") from err
        # connection refused, DNS, TLS, a dropped connection; InvalidURL is not an HTTPError
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            raise KitosError(KitosProblem.UNREACHABLE,
                             f"KITOS at {self.settings.base_url} could not be reached "
                             f"({type(err).__name__}: {_one_line(str(err))})") from err


def _json(response: httpx.Response, what: str) -> Any:
    """The body as JSON. Raises KitosError: REFUSED for a status >= 400 (with the start of
    a plain-text or HTML body), BAD_ANSWER for a body that is not JSON."""
    if response.status_code >= 400:
        text = _one_line(response.text)
        raise KitosError(KitosProblem.REFUSED,
                         f"KITOS answered {response.status_code} to {what}"
                         + (f": {text}" if text else ""), response.status_code)
    try:
        return response.json()
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        raise _bad_answer(f"{what} answered {response.status_code} with {kind}, not JSON"
                          ) from err


def _list(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _bad_answer(f"{what} is not a JSON array of objects")
    return value


def _field(item: dict[str, Any], key: str) -> Any:
    if key not in item:
        raise _bad_answer(f"an answer lacks `{key}`")
    return item[key]


def _usage(item: dict[str, Any]) -> Usage:
    system = _field(item, "systemContext")
    general = item.get("general") or {}
    if not isinstance(system, dict) or not isinstance(general, dict):
        raise _bad_answer("a usage's systemContext or general is not an object")
    roles = []
    for assignment in item.get("roles") or []:
        user, role = (assignment or {}).get("user"), (assignment or {}).get("role")
        if isinstance(user, dict) and isinstance(role, dict):
            roles.append(RoleAssignment(str(role.get("name") or ""), str(user.get("uuid") or ""),
                                        str(user.get("name") or "")))
    return Usage(str(item.get("uuid") or ""), str(system.get("name") or ""),
                 str(general.get("localCallName") or ""), tuple(roles))


def _expiry(value: Any) -> datetime | None:
    """`expires` as KITOS writes it (UTC, "2026-03-03T10:00:00.1234567Z"); None when absent
    or unreadable: the token is then used until KITOS refuses it."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _bad_answer(detail: str) -> KitosError:
    return KitosError(KitosProblem.BAD_ANSWER, f"KITOS: {detail}")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= DETAIL_CHARS else line[:DETAIL_CHARS - 1] + "…"


# -- `mailbot check` ----------------------------------------------------------------------------
def check_kitos(settings: Settings, transport: httpx.BaseTransport | None = None) -> str:
    """Log in and find the organisation: what `mailbot check` prints. Raises ConfigError
    naming the `[kitos]` key to change and how."""
    kitos = settings.kitos
    client = KitosClient(kitos, transport=transport)
    try:
        client.login()
        organization = client.organization(kitos.organization_cvr)
    except KitosError as err:
        raise config_error(settings, err) from err
    finally:
        client.close()
    return (f"logged in to {kitos.base_url} as {kitos.email}; organisation "
            f"{organization.name} (CVR {organization.cvr})")


def config_error(settings: Settings, err: KitosError) -> ConfigError:
    """The ConfigError for a KITOS failure at `check`: the key to look at and the fix."""
    kitos = settings.kitos
    key, fix = _FIXES.get(err.problem, _FIXES[KitosProblem.UNREACHABLE])
    if err.problem == KitosProblem.REFUSED and err.status == 403:
        key, fix = "kitos.email", (
            f"{kitos.email} may log in but lacks rights: ask KITOS's local administrator of "
            f"organisation {kitos.organization_cvr} to give the user read access (and the "
            "user type API user)")
    elif err.problem == KitosProblem.REFUSED and (err.status or 0) < 500:
        key, fix = "kitos.base_url", "check that it is KITOS's address, e.g. https://kitos.dk"
    return ConfigError(*settings.origin(key), err.detail, fix)


_FIXES: dict[KitosProblem, tuple[str, str]] = {
    KitosProblem.LOGIN: (
        "kitos.password",
        "check kitos.email and the password (MAILBOT_KITOS__PASSWORD); the user must be of "
        "the type API user in KITOS (set by the local administrator), or GetToken refuses it"),
    KitosProblem.NO_ORGANIZATION: (
        "kitos.organization_cvr",
        "write the municipality's CVR number as KITOS has it (Organisation > CVR)"),
    KitosProblem.TIMEOUT: (
        "kitos.timeout_seconds",
        "check the network and proxy towards KITOS, or raise kitos.timeout_seconds"),
    KitosProblem.UNREACHABLE: (
        "kitos.base_url",
        "check the address (https://kitos.dk), the network, DNS and any proxy towards it"),
    KitosProblem.BAD_ANSWER: (
        "kitos.base_url",
        "check that it is KITOS's address (https://kitos.dk), not a login page or a proxy"),
    KitosProblem.REFUSED: (
        "kitos.base_url",
        "KITOS itself failed: try again later; if it lasts, ask KITOS's support"),
}

