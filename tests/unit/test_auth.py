"""The token source (mailbot/auth.py) against a small token endpoint of our own
(tests/oauth2_server.py, plain HTTP on loopback for `generic`, HTTPS with a trustme CA for
msal's `microsoft`): tokens are cached, renewed before expiry and after invalidate(), and
every refusal becomes one line that says what to fix. Nothing here mocks msal or urllib:
they talk HTTP(S) to that endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbot.auth import TokenEndpointDown, TokenSource
from mailbot.config import Settings
from mailbot.errors import ConfigError
from mailbot.mailworld import free_port
from tests.oauth2_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT,
    Endpoint,
    TokenBook,
    https_endpoint,
)


@pytest.fixture
def book() -> TokenBook:
    return TokenBook(mailbox="it.projekter")


@pytest.fixture
def plain(book: TokenBook) -> Iterator[Endpoint]:
    endpoint = Endpoint(book).start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def tls(book: TokenBook, tmp_path: Path) -> Iterator[Endpoint]:
    endpoint = https_endpoint(book, tmp_path / "ca.pem").start()
    yield endpoint
    endpoint.stop()


def settings(**oauth2: Any) -> Settings:
    return Settings.model_validate({
        "bot": {"address": "it.projekter@kommune.dk"},
        "imap": {"host": "127.0.0.1", "auth": "oauth2", "username": "it.projekter@kommune.dk"},
        "smtp": {"host": "127.0.0.1", "auth": "oauth2", "username": "it.projekter@kommune.dk"},
        "oauth2": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **oauth2},
    })


def generic(endpoint: Endpoint, **extra: Any) -> TokenSource:
    return TokenSource(settings(provider="generic", token_url=endpoint.token_url, **extra))


def microsoft(endpoint: Endpoint, tmp_path: Path, **extra: Any) -> TokenSource:
    return TokenSource(settings(tenant_id=TENANT, authority=endpoint.authority,
                                ca_file=str(tmp_path / "ca.pem"), **extra))


def refusal(source: TokenSource) -> str:
    with pytest.raises(ConfigError) as caught:
        source.token()
    return str(caught.value)


def test_generic_token_is_cached_then_renewed_at_half_its_lifetime(book: TokenBook,
                                                                   plain: Endpoint) -> None:
    book.lifetime = 2
    source = generic(plain)
    first = source.token()
    assert source.token() == first and book.token_requests == 1
    time.sleep(1.1)  # past half of 2 s: renewed before it expires
    second = source.token()
    assert second != first and book.token_requests == 2
    assert book.user_of(second) == "it.projekter"


def test_invalidate_asks_again(book: TokenBook, plain: Endpoint, tls: Endpoint,
                               tmp_path: Path) -> None:
    for source in (generic(plain), microsoft(tls, tmp_path)):
        first = source.token()
        source.invalidate()
        assert source.token() != first
    assert book.token_requests == 4


def test_microsoft_through_msal_on_a_local_https_authority(book: TokenBook, tls: Endpoint,
                                                           tmp_path: Path) -> None:
    book.lifetime = 3600
    source = microsoft(tls, tmp_path)
    token = source.token()
    assert book.user_of(token) == "it.projekter" and 3500 < source.expires_in <= 3600
    assert source.token() == token and book.token_requests == 1
    assert token not in repr(source) and CLIENT_SECRET not in repr(source)


def test_an_untrusted_authority_is_refused_and_ca_file_named(book: TokenBook, tls: Endpoint
                                                             ) -> None:
    source = TokenSource(settings(tenant_id=TENANT, authority=tls.authority))
    with pytest.raises(TokenEndpointDown) as caught:
        source.token()
    message = str(caught.value.config_error)
    assert "[oauth2.ca_file]" in message and "the system does not trust its issuer" in message
    assert "firewall" not in message


def test_an_expired_authority_certificate_is_named_with_the_right_fix(
        book: TokenBook, tmp_path: Path) -> None:
    """With oauth2.ca_file right, an expired certificate is not "set oauth2.ca_file" or
    "check the firewall": it names the authority and asks for a renewal."""
    endpoint = https_endpoint(book, tmp_path / "ca.pem", expired=True).start()
    try:
        source = microsoft(endpoint, tmp_path)
        with pytest.raises(TokenEndpointDown) as caught:
            source.token()
    finally:
        endpoint.stop()
    message = str(caught.value.config_error)
    assert "[oauth2.authority]" in message and "has expired" in message
    assert "renew" in message and "firewall" not in message


@pytest.mark.parametrize("provider", ["generic", "microsoft"])
def test_an_unreachable_endpoint_names_its_key(provider: str, tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    source = TokenSource(settings(provider="generic", token_url=f"http://{dead}/token")
                         if provider == "generic" else
                         settings(tenant_id=TENANT, authority=f"https://{dead}/{TENANT}"))
    with pytest.raises(TokenEndpointDown) as caught:
        source.token()
    key = "oauth2.token_url" if provider == "generic" else "oauth2.authority"
    assert f"[{key}] cannot reach the token endpoint" in str(caught.value.config_error)
    assert "refused" in str(caught.value.config_error).lower()


@pytest.mark.parametrize(("code", "key", "words"), [
    ("7000215", "oauth2.client_secret", "client secret is not valid (AADSTS7000215)"),
    ("7000222", "oauth2.client_secret", "client secret has expired (AADSTS7000222)"),
    ("700016", "oauth2.client_id", f"knows no application '{CLIENT_ID}' in tenant"),
])
def test_entra_id_refusals_say_what_to_do(book: TokenBook, tls: Endpoint, tmp_path: Path,
                                          code: str, key: str, words: str) -> None:
    book.fail_with = code
    message = refusal(microsoft(tls, tmp_path))
    assert f"[{key}] Entra ID" in message and words in message
    if key == "oauth2.client_secret":
        assert "New client secret" in message and "MAILBOT_OAUTH2__CLIENT_SECRET" in message
    assert "Trace ID" not in message and CLIENT_SECRET not in message


def test_an_expiry_date_in_the_answer_is_shown(book: TokenBook, plain: Endpoint) -> None:
    """Entra ID's AADSTS7000222 text carries no date today; when an answer names one, the
    operator sees it."""
    book.fail_with = (401, {"error": "invalid_client", "error_codes": [7000222],
                            "error_description": "AADSTS7000222: The provided client secret "
                            "keys for app 'x' are expired on 2027-02-28. Timestamp: "
                            "2027-03-02 10:15:42Z"})
    assert "has expired (on 2027-02-28) (AADSTS7000222)" in refusal(generic(plain))


def test_an_unknown_tenant_is_named(book: TokenBook, tls: Endpoint, tmp_path: Path) -> None:
    source = TokenSource(settings(tenant_id="nope", authority=f"{tls.url}/nope",
                                  ca_file=str(tmp_path / "ca.pem")))
    assert "[oauth2.tenant_id]" in refusal(source)


def test_a_generic_refusal_names_the_secret(book: TokenBook, plain: Endpoint) -> None:
    source = TokenSource(settings(provider="generic", token_url=plain.token_url,
                                  client_secret="forkert"))
    message = refusal(source)
    assert "[oauth2.client_secret] the token endpoint refuses the client" in message
    assert "forkert" not in message


def test_a_server_error_is_transient(book: TokenBook, plain: Endpoint) -> None:
    book.fail_with = (503, {"error": "temporarily_unavailable"})
    with pytest.raises(TokenEndpointDown):
        generic(plain).token()
