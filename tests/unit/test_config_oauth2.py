"""The [oauth2] section and the `auth` keys of [imap] and [smtp]: defaults, what each provider
needs, the https rule for token_url, and errors that name the key (or the variable) and the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from mailbot.config import STARTER_CONFIG, OAuth2Settings, load_settings
from mailbot.errors import ConfigError

MICROSOFT = """
[oauth2]
tenant_id = "9f8e7d6c-1111-2222-3333-444455556666"
client_id = "0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff"
"""
SECRET = {"MAILBOT_OAUTH2__CLIENT_SECRET": "Hemmelig~Kode.123"}


def config(tmp_path: Path, *replacements: tuple[str, str], oauth2: str = MICROSOFT,
           imap_auth: str = "oauth2", smtp_auth: str | None = "oauth2") -> Path:
    """The starter config with both logins on OAuth2 (unless told otherwise), the usernames
    as addresses, the password keys gone, and `oauth2` as the [oauth2] section."""
    text = STARTER_CONFIG.replace('username = "it.projekter"',
                                  'username = "it.projekter@kommune.dk"')
    text = text.replace('password = "change-me"\n', "")
    text = text.replace('# auth = "password"                   # or "oauth2" (Microsoft',
                        f'auth = "{imap_auth}"  # (Microsoft', 1)
    if smtp_auth is not None:
        text = text.replace('# auth = "password"                   # "password" (default',
                            f'auth = "{smtp_auth}"  # (default', 1)
    text += oauth2
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "mailbot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=SECRET if environ is None else environ)
    message = str(caught.value)
    assert "Fix:" in message and "\n" not in message
    return message


def test_defaults_keep_password_logins_and_no_smtp_auth_without_username(tmp_path: Path
                                                                         ) -> None:
    path = tmp_path / "mailbot.toml"
    path.write_text(STARTER_CONFIG, encoding="utf-8")
    settings = load_settings(path, environ={})
    assert settings.imap.auth == "password" and settings.smtp.auth == "password"
    assert not settings.uses_oauth2
    path.write_text(STARTER_CONFIG.replace('username = "it.projekter"\npassword = "change-me"\n'
                                           '# auth = "password"                   # "password"',
                                           '# auth = "password"                   # "password"'),
                    encoding="utf-8")
    assert load_settings(path, environ={}).smtp.auth == "none"  # no username: no AUTH


def test_microsoft_needs_no_password_and_has_exchange_defaults(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path), environ=SECRET)
    assert settings.imap.auth == "oauth2" and settings.smtp.auth == "oauth2"
    oauth2 = settings.oauth2
    assert oauth2.effective_scope == "https://outlook.office365.com/.default"
    assert oauth2.effective_authority == (
        "https://login.microsoftonline.com/9f8e7d6c-1111-2222-3333-444455556666")
    assert oauth2.client_secret.get_secret_value() == "Hemmelig~Kode.123"
    assert "Hemmelig" not in repr(settings) and "Hemmelig" not in str(settings.model_dump())


def test_relative_certificate_and_ca_file_are_read_from_the_config_folder(tmp_path: Path
                                                                         ) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    (tmp_path / "app.pem").write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # a real, usable key
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "proxy-ca.pem"))  # a real PEM
    path = config(tmp_path, oauth2=MICROSOFT + 'certificate_path = "app.pem"\n'
                  'certificate_thumbprint = "AB:CD"\nca_file = "proxy-ca.pem"\n')
    oauth2 = load_settings(path, environ={}).oauth2
    assert oauth2.certificate_path == tmp_path / "app.pem"
    assert oauth2.ca_file == tmp_path / "proxy-ca.pem"


@pytest.mark.parametrize("url", ["https://idp.kommune.dk/token", "http://127.0.0.1:8080/token",
                                 "http://localhost/token", "http://[::1]:9/token"])
def test_token_url_is_https_or_loopback(tmp_path: Path, url: str) -> None:
    path = config(tmp_path, oauth2=f'[oauth2]\nprovider = "generic"\nclient_id = "mailbot"\n'
                  f'token_url = "{url}"\n')
    assert load_settings(path, environ=SECRET).oauth2.token_url == url


@pytest.mark.parametrize(("oauth2", "key", "words"), [
    ('[oauth2]\nprovider = "generic"\nclient_id = "m"\ntoken_url = "http://idp.kommune.dk/t"\n',
     "oauth2.token_url", "is not https"),
    ('[oauth2]\nprovider = "generic"\nclient_id = "m"\ntoken_url = "ftp://idp/t"\n',
     "oauth2.token_url", "not an http(s) URL"),
    ('[oauth2]\nprovider = "generic"\nclient_id = "m"\n', "oauth2.token_url", "field required"),
    ('[oauth2]\nclient_id = "0a1b"\n', "oauth2.tenant_id", "Directory (tenant) ID"),
    ('[oauth2]\ntenant_id = "9f8e"\n', "oauth2.client_id", "Application (client) ID"),
    (MICROSOFT + 'authority = "http://login.microsoftonline.com/9f8e"\n', "oauth2.authority",
     "not an https URL"),
    (MICROSOFT + 'token_url = "https://idp/token"\n', "oauth2.token_url", "generic"),
    (MICROSOFT + 'ca_file = "nowhere.pem"\n', "oauth2.ca_file", "does not exist"),
    (MICROSOFT + 'certificate_path = "nowhere.pem"\n', "oauth2.certificate_path",
     "is set together with MAILBOT_OAUTH2__CLIENT_SECRET"),
    (MICROSOFT + 'provider = "entra"\n', "oauth2.provider", "microsoft"),
])
def test_oauth2_errors_name_the_key(tmp_path: Path, oauth2: str, key: str, words: str) -> None:
    message = error_of(config(tmp_path, oauth2=oauth2))
    assert f"[{key}]" in message and words in message
    assert "Hemmelig" not in message


def test_a_missing_secret_says_to_set_the_variable(tmp_path: Path) -> None:
    message = error_of(config(tmp_path), environ={})
    assert "[oauth2.client_secret] field required" in message
    assert "MAILBOT_OAUTH2__CLIENT_SECRET" in message


def test_oauth2_needs_the_mailbox_address_as_username(tmp_path: Path) -> None:
    path = config(tmp_path, ('username = "it.projekter@kommune.dk"', 'username = "it.projekter"'))
    assert "[imap.username] 'it.projekter' is not the mailbox address" in error_of(path)


def test_smtp_oauth2_without_username_is_refused(tmp_path: Path) -> None:
    path = config(tmp_path)
    text = path.read_text().replace('username = "it.projekter@kommune.dk"\nauth = "oauth2"  # '
                                    '(default', 'auth = "oauth2"  # (default')
    path.write_text(text)
    assert "[smtp.username] is empty, but smtp.auth is \"oauth2\"" in error_of(path)


def test_password_login_still_needs_the_password(tmp_path: Path) -> None:
    message = error_of(config(tmp_path, imap_auth="password"))
    assert "[imap.password] field required" in message and 'imap.auth = "oauth2"' in message


def test_an_environment_value_is_named_by_its_variable(tmp_path: Path) -> None:
    path = config(tmp_path, oauth2='[oauth2]\nprovider = "generic"\nclient_id = "m"\n')
    message = error_of(path, {**SECRET, "MAILBOT_OAUTH2__TOKEN_URL": "http://idp.kommune.dk/t"})
    assert message.startswith("environment: [MAILBOT_OAUTH2__TOKEN_URL] ")


def test_starter_config_shows_every_auth_key() -> None:
    keys = [*OAuth2Settings.model_fields]
    assert [key for key in keys if f"# {key} = " not in STARTER_CONFIG] == []
    assert STARTER_CONFIG.count('# auth = "password"') == 2  # [imap] and [smtp]


@pytest.mark.parametrize(("content", "problem"), [
    (b"garbage", "holds no PEM private key"),
    ("ec", "not an RSA key"),
    ("encrypted", "holds an encrypted private key"),
])
def test_a_certificate_key_msal_cannot_use_is_one_line(tmp_path: Path, content: object,
                                                        problem: str) -> None:
    """A wrong certificate_path fails at load with the key named, not as a traceback from
    msal at the first login."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key_file = tmp_path / "app.pem"
    if content == "ec":
        key_file.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    elif content == "encrypted":
        key_file.write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw")))
    else:
        assert isinstance(content, bytes)
        key_file.write_bytes(content)
    path = config(tmp_path, oauth2=MICROSOFT + 'certificate_path = "app.pem"\n'
                  'certificate_thumbprint = "AB:CD"\n')
    message = error_of(path, environ={})
    assert "[oauth2.certificate_path]" in message and problem in message
