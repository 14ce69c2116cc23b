"""A small OpenID Connect provider of our own for the tests of `[web] auth = "oidc"`. Test
harness only.

Entra ID is not reachable from the tests, so this fakes it at the one interface mailbot has
with it, HTTPS, in the shapes Entra ID uses for a tenant `https://HOST/<tenant>/v2.0`:

- GET  /<tenant>/v2.0/.well-known/openid-configuration (OpenID Connect Discovery 1.0);
- GET  /<tenant>/oauth2/v2.0/authorize: consents at once for `user` (no login form) and
  sends the browser back with a code, or with `error` (RFC 6749 §4.1.2.1); it requires a
  PKCE challenge with S256 (RFC 7636 §4.3), which Entra ID would let a web app leave out;
- POST /<tenant>/oauth2/v2.0/token: redeems a code once, for the right client secret and
  redirect URI, and only with the code verifier whose S256 hash is the challenge (RFC 7636
  §4.6); answers an ID token signed RS256 with `key` (made here with cryptography);
- GET  /<tenant>/discovery/v2.0/keys: the public key as a JWK set (RFC 7517).

The ID token is signed here by hand (cryptography, not authlib or joserfc), so the code under
test checks tokens that its own library did not make. Knobs for the refusal tests:
`id_token_claims` replaces claims (a wrong nonce, audience, expiry), `tamper` changes the
payload after signing, `foreign_key` signs with a key the JWKS does not hold.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import uvicorn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from mailbot.web.server import Listen, bind

TENANT = "9f8e7d6c-1111-2222-3333-444455556666"
CLIENT_ID = "0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff"
CLIENT_SECRET = "Hemmelig~Kode.1234567890abcdefXYZ"
KID = "test-key-1"  # the first signing key's id; rotate() makes the next


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _number(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def sign(claims: dict[str, Any], key: rsa.RSAPrivateKey, kid: str = KID) -> str:
    """A compact JWS, RS256 (RFC 7515, RFC 7518 §3.3)."""
    header = b64url(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode("ascii"), padding.PKCS1v15(),
                         hashes.SHA256())
    return f"{header}.{payload}.{b64url(signature)}"


@dataclass
class Grant:
    challenge: str
    nonce: str
    redirect_uri: str
    claims: dict[str, Any]


@dataclass
class Provider:
    """The provider's state; `base` is https://127.0.0.1:PORT once served."""

    redirect_uri: str
    base: str = ""
    user: dict[str, Any] = field(default_factory=dict)  # who consents at /authorize
    deny: str = ""  # an error code for /authorize to answer instead of a code
    id_token_claims: dict[str, Any] = field(default_factory=dict)
    tamper: bool = False
    foreign_key: bool = False
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    kid: str = KID
    grants: dict[str, Grant] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    token_refusals: list[str] = field(default_factory=list)
    jwks_fetches: int = 0

    @property
    def issuer(self) -> str:
        return f"{self.base}/{TENANT}/v2.0"

    def rotate(self) -> None:
        """A new signing key under a new key id, as Entra ID rolls its keys: the JWKS has
        only the new one from now on."""
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"test-key-{int(self.kid.rpartition('-')[2]) + 1}"

    def reset(self) -> None:
        self.user, self.deny, self.id_token_claims = {}, "", {}
        self.tamper = self.foreign_key = False
        self.authorize_requests.clear()
        self.token_requests.clear()
        self.token_refusals.clear()

    # -- the endpoints ------------------------------------------------------------------------
    async def discovery(self, request: Request) -> Response:
        return JSONResponse({
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base}/{TENANT}/oauth2/v2.0/authorize",
            "token_endpoint": f"{self.base}/{TENANT}/oauth2/v2.0/token",
            "jwks_uri": f"{self.base}/{TENANT}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                      "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        })

    async def jwks(self, request: Request) -> Response:
        self.jwks_fetches += 1
        numbers = self.key.public_key().public_numbers()
        return JSONResponse({"keys": [{"kty": "RSA", "use": "sig", "kid": self.kid, "alg": "RS256",
                                       "n": _number(numbers.n), "e": _number(numbers.e)}]})

    async def authorize(self, request: Request) -> Response:
        query = dict(request.query_params)
        self.authorize_requests.append(query)
        if query.get("client_id") != CLIENT_ID or query.get("redirect_uri") != self.redirect_uri:
            # never redirect to an unregistered URI (RFC 6749 §4.1.2.1)
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        back = query["redirect_uri"]
        state = {"state": query["state"]} if "state" in query else {}
        if self.deny:
            return RedirectResponse(f"{back}?{urlencode({'error': self.deny, **state})}")
        if (query.get("response_type") != "code" or query.get("code_challenge_method") != "S256"
                or len(query.get("code_challenge", "")) != 43):
            error = {"error": "invalid_request", "error_description": "PKCE S256 required"}
            return RedirectResponse(f"{back}?{urlencode({**error, **state})}")
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(query["code_challenge"], query.get("nonce", ""), back,
                                  dict(self.user))
        return RedirectResponse(f"{back}?{urlencode({'code': code, **state})}")

    async def token(self, request: Request) -> Response:
        # parsed here: Starlette's request.form() needs python-multipart
        form = dict(parse_qsl((await request.body()).decode("ascii")))
        self.token_requests.append(form)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return self._refuse("invalid_client", 401)
        grant = self.grants.pop(form.get("code", ""), None)  # a code works once
        if form.get("grant_type") != "authorization_code" or grant is None:
            return self._refuse("invalid_grant")
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._refuse("invalid_grant")
        verifier = form.get("code_verifier", "")
        if not verifier or s256(verifier) != grant.challenge:
            return self._refuse("invalid_grant")  # Entra ID: AADSTS501481
        return JSONResponse({"token_type": "Bearer", "scope": "openid profile email",
                             "expires_in": 3600, "access_token": secrets.token_urlsafe(32),
                             "id_token": self.id_token(grant)},
                            headers={"Cache-Control": "no-store"})

    def _refuse(self, error: str, status: int = 400) -> Response:
        self.token_refusals.append(error)
        return JSONResponse({"error": error}, status_code=status)

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVr",
                  "iat": now, "nbf": now, "exp": now + 3600, "nonce": grant.nonce,
                  "tid": TENANT, "ver": "2.0", **grant.claims, **self.id_token_claims}
        key = self.key
        if self.foreign_key:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = sign(claims, key, self.kid)
        if self.tamper:
            header, _, signature = token.split(".")
            changed = {**claims, "preferred_username": "direktoer@kommune.dk"}
            token = f"{header}.{b64url(json.dumps(changed).encode())}.{signature}"
        return token

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route(f"/{TENANT}/v2.0/.well-known/openid-configuration", self.discovery),
            Route(f"/{TENANT}/oauth2/v2.0/authorize", self.authorize),
            Route(f"/{TENANT}/oauth2/v2.0/token", self.token, methods=["POST"]),
            Route(f"/{TENANT}/discovery/v2.0/keys", self.jwks),
        ])


class TlsServer:
    """uvicorn serving `app` over TLS (certificate and key files) on 127.0.0.1, in a thread."""

    def __init__(self, app: Starlette, cert: Path, key: Path) -> None:
        self.sock = bind(Listen("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                ssl_certfile=str(cert), ssl_keyfile=str(key))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> TlsServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
