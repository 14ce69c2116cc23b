"""A stand-in for KITOS of our own (not a mock of an HTTP library): `http.server` in a thread on
127.0.0.1 and a free port, answering exactly the four requests mailbot.kitos makes, with the
shapes of KITOS's REST API v2 as its source has them (os2kitos/kitos:
TokenAuthenticationController, OrganizationV2Controller, ItSystemUsageV2Controller,
BoundedPaginationQuery, QueryBySystemNameContent). Test harness only.

- POST /api/authorize/GetToken `{"email", "password"}` -> 200 `{"msg", "response": {"token",
  "email", "loginSuccessful", "expires"}}`, or 401 `{"msg": "...", "response": {}}`;
- GET /api/v2/organizations?cvrContent= -> the organisations whose CVR CONTAINS the text;
- GET /api/v2/it-system-usages?organizationUuid=&systemNameContent=&page=&pageSize= -> the
  usages whose global system name contains the text (without regard to case, as SQL Server's
  collation does), page `page` (from 0) of `pageSize` (1-250, else 400), no paging metadata;
- GET /api/v2/organizations/<org>/users/<user> -> the user, or 404.

Every GET wants `Authorization: Bearer <a token this server issued and has not revoked>`, else
401. Switches for the tests: `revoke_tokens()` (an expired token), `fail` (path prefix -> a
status, content type and body: 403 JSON, a plain-text 500, an HTML page), `delay_seconds` (a
timeout), `requests` (what was asked, in order).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EMAIL = "api-itp@albertslund.dk"
PASSWORD = "Kitos-Hemmelig-2026!"
CVR = "29189781"
UNAUTHORIZED = "Du har ikke adgang til denne funktion log ind med en bruger og prøv igen"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]


@dataclass
class KitosData:
    """What the stand-in knows. Fill it with `organization`, `usage` and `user`."""

    email: str = EMAIL
    password: str = PASSWORD
    organizations: list[dict[str, Any]] = field(default_factory=list)
    usages: list[dict[str, Any]] = field(default_factory=list)
    users: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    token_lifetime: timedelta = timedelta(hours=24)
    tokens: set[str] = field(default_factory=set)
    fail: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    delay_seconds: float = 0.0
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def organization(self, name: str, cvr: str) -> str:
        org = {"uuid": str(uuid.uuid4()), "name": name, "cvr": cvr,
               "organizationType": "Kommune"}
        self.organizations.append(org)
        return str(org["uuid"])

    def user(self, org: str, first: str, last: str, email: str) -> dict[str, str]:
        """A user of `org`; returns the {uuid, name} a role assignment names."""
        user_uuid, name = str(uuid.uuid4()), f"{first} {last}"
        self.users[(org, user_uuid)] = {
            "uuid": user_uuid, "name": name, "firstName": first, "lastName": last,
            "email": email, "phoneNumber": None, "apiAccess": False, "roles": ["User"]}
        return {"uuid": user_uuid, "name": name}

    def usage(self, org: str, system: str, roles: Sequence[tuple[str, dict[str, str]]] = (),
              local_call_name: str | None = None) -> dict[str, Any]:
        """A usage of the global system `system` in `org`, with (role name, user) roles."""
        organization = next(o for o in self.organizations if o["uuid"] == org)
        someone = {"uuid": str(uuid.uuid4()), "name": "Lokal Administrator"}
        item = {
            "uuid": str(uuid.uuid4()), "createdBy": someone, "lastModified":
            "2026-01-15T09:12:44.1234567Z", "lastModifiedBy": someone,
            "systemContext": {"uuid": str(uuid.uuid4()), "name": system},
            "organizationContext": {k: organization[k] for k in ("uuid", "name", "cvr")},
            "general": {"localSystemId": None, "localCallName": local_call_name,
                        "dataClassification": None, "notes": None, "systemVersion": None,
                        "numberOfExpectedUsers": None, "mainContract": None,
                        "validity": {"valid": True, "validAccordingToValidityPeriod": True,
                                     "validAccordingToLifeCycle": True,
                                     "validAccordingToMainContract": True,
                                     "validFrom": None, "validTo": None,
                                     "lifeCycleStatus": None}},
            "roles": [{"user": user, "role": {"uuid": str(uuid.uuid4()), "name": role}}
                      for role, user in roles],
            "organizationUsage": {"usingOrganizationUnits": [], "responsibleOrganizationUnit":
                                  None},
            "localKLEDeviations": {"addedKLE": [], "removedKLE": []},
            "externalReferences": [], "archiving": {}, "gdpr": {},
            "outgoingSystemRelations": []}
        self.usages.append(item)
        return item

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (as an expired one is)."""
        with self.lock:
            self.tokens.clear()

    def asked(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


class _Handler(BaseHTTPRequestHandler):
    data: KitosData

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._answer("POST")

    def do_GET(self) -> None:
        self._answer("GET")

    def _answer(self, method: str) -> None:
        data = self.data
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with data.lock:
            data.requests.append(Request(method, parts.path, query))
        if data.delay_seconds:
            time.sleep(data.delay_seconds)
        for prefix, (status, content_type, body) in data.fail.items():
            if parts.path.startswith(prefix):
                return self._send(status, body.encode(), content_type)
        if method == "POST" and parts.path == "/api/authorize/GetToken":
            return self._token()
        if method != "GET":
            return self._send(405, b"")
        if self._bearer() not in data.tokens:
            return self._send(401, b"")
        return self._json(*self._route(parts.path, query))

    def _token(self) -> None:
        data = self.data
        length = int(self.headers.get("Content-Length") or 0)
        try:
            sent = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._json(400, {"msg": "", "response": "Invalid JSON"})
        if sent.get("email") != data.email or sent.get("password") != data.password:
            return self._json(401, {"msg": UNAUTHORIZED, "response": {}})
        token = f"eyJ.{uuid.uuid4().hex}.sig"
        with data.lock:
            data.tokens.add(token)
        expires = datetime.now(UTC) + data.token_lifetime
        # Newtonsoft writes DateTime (UTC) with seven decimals and a Z
        return self._json(200, {"msg": "", "response": {
            "token": token, "email": data.email, "loginSuccessful": True,
            "expires": expires.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"}})

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        data = self.data
        segments = path.strip("/").split("/")
        if path == "/api/v2/organizations":
            cvr = query.get("cvrContent", "")
            return 200, [o for o in data.organizations if cvr in (o["cvr"] or "")]
        if path == "/api/v2/it-system-usages":
            return self._usages(query)
        if len(segments) == 6 and segments[:3] == ["api", "v2", "organizations"] \
                and segments[4] == "users":
            user = data.users.get((segments[3], segments[5]))
            return (200, user) if user else (404, {"msg": "Not found"})
        return 404, {"msg": "Not found"}

    def _usages(self, query: dict[str, str]) -> tuple[int, Any]:
        page, size = int(query.get("page", 0)), int(query.get("pageSize", 250))
        if not 1 <= size <= 250 or page < 0:
            return 400, {"msg": "pageSize must be 1-250"}
        org, content = query.get("organizationUuid"), query.get("systemNameContent", "")
        found = [u for u in self.data.usages
                 if (org is None or u["organizationContext"]["uuid"] == org)
                 and content.casefold() in u["systemContext"]["name"].casefold()]
        return 200, found[page * size:(page + 1) * size]

    def _bearer(self) -> str:
        header = self.headers.get("Authorization") or ""
        return header.removeprefix("Bearer ").strip()

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)  # the client may have given up (a timeout test)


class KitosServer:
    """Start with `start()`, stop with `stop()`; `url` is the base_url for `[kitos]`."""

    def __init__(self, data: KitosData | None = None) -> None:
        self.data = data or KitosData()
        handler = type("Handler", (_Handler,), {"data": self.data})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        # a short poll: stop() returns at once
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> KitosServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
