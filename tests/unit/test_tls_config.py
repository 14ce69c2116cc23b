"""TLS settings at load: `ca_file` (resolved like data_dir, a readable PEM bundle) and
`security = "none"` refused towards anything but this machine unless allow_plaintext_remote;
the one client context tls_context(ca_file). No connection is made here (tests/e2e/test_tls.py
talks to real TLS servers)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from mailbot.config import STARTER_CONFIG, is_loopback, load_settings
from mailbot.errors import ConfigError
from mailbot.intake.mailbox import tls_context

IMAP_SECURITY = 'security = "ssl"  '
SMTP_SECURITY = 'security = "starttls"'


def write(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = STARTER_CONFIG
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "mailbot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ or {})
    message = str(caught.value)
    assert "\n" not in message and "Fix:" in message
    return message


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("LOCALHOST", True), ("localhost.", True), ("127.0.0.1", True),
    ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
    ("192.0.2.1", False), ("10.0.0.1", False), ("0.0.0.0", False), ("imap.kommune.dk", False),
    # resolves to 127.0.0.1 on many machines, but only the literal host counts
    ("localhost.localdomain", False), ("my-localhost", False), ("", False),
])
def test_loopback_is_read_from_the_literal_host(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(("section", "old"), [("imap", IMAP_SECURITY), ("smtp", SMTP_SECURITY)])
def test_plaintext_to_a_remote_host_is_refused_at_load(tmp_path: Path, section: str,
                                                        old: str) -> None:
    path = write(tmp_path, (old, 'security = "none"'))
    message = refused(path)
    host = f"{section}.kommune.dk"
    assert message.startswith(f"{path}: [{section}.security] ")
    assert host in message and f"{section}.allow_plaintext_remote = true" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_plaintext_on_loopback_is_allowed(tmp_path: Path, host: str) -> None:
    path = write(tmp_path, (IMAP_SECURITY, 'security = "none"'),
                 ('host = "imap.kommune.dk"', f'host = "{host}"'))
    assert load_settings(path, environ={}).imap.security == "none"


def test_allow_plaintext_remote_lets_it_load(tmp_path: Path) -> None:
    path = write(tmp_path, (SMTP_SECURITY, 'security = "none"\nallow_plaintext_remote = true'))
    settings = load_settings(path, environ={})
    assert settings.smtp.security == "none" and settings.smtp.allow_plaintext_remote
    assert settings.imap.allow_plaintext_remote is False  # per server, not global


def test_plaintext_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    message = refused(write(tmp_path), {"MAILBOT_IMAP__SECURITY": "none"})
    assert message.startswith("environment: [MAILBOT_IMAP__SECURITY] ")
    settings = load_settings(write(tmp_path), environ={
        "MAILBOT_IMAP__SECURITY": "none", "MAILBOT_IMAP__ALLOW_PLAINTEXT_REMOTE": "true"})
    assert settings.imap.allow_plaintext_remote is True


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_relative_ca_file_is_relative_to_the_config_folder(tmp_path: Path, ca: trustme.CA,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    ca.cert_pem.write_to_path(str(folder / "kommune-ca.pem"))
    path = write(folder, ('# ca_file = "kommune-ca.pem"          # a CA',
                          'ca_file = "kommune-ca.pem"          # a CA'),
                 ('# ca_file = "kommune-ca.pem"          # as in [imap]',
                  'ca_file = "../etc/kommune-ca.pem"'))
    monkeypatch.chdir(tmp_path)
    settings = load_settings(path, environ={})
    assert settings.imap.ca_file == folder / "kommune-ca.pem"
    assert settings.smtp.ca_file is not None
    assert settings.smtp.ca_file.resolve() == folder / "kommune-ca.pem"


@pytest.mark.parametrize(("content", "problem"), [
    (None, "does not exist"),
    ("", "is not a file"),
    ("not a certificate\n", "holds no PEM certificate"),
])
def test_a_bad_ca_file_is_one_line_naming_the_key(tmp_path: Path, content: str | None,
                                                  problem: str) -> None:
    target = tmp_path / "kommune-ca.pem"
    if content == "":
        target.mkdir()
    elif content is not None:
        target.write_text(content)
    path = write(tmp_path, ('# ca_file = "kommune-ca.pem"          # as in [imap]',
                            'ca_file = "kommune-ca.pem"'))
    message = refused(path)
    assert message.startswith(f"{path}: [smtp.ca_file] {target} {problem}")
    assert "PEM" in message.partition("Fix:")[2]


def test_tls_context_adds_the_ca_to_the_system_store(tmp_path: Path, ca: trustme.CA) -> None:
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    system = ssl.create_default_context()
    context = tls_context(pem)
    assert context.cert_store_stats()["x509_ca"] == system.cert_store_stats()["x509_ca"] + 1
    for made in (context, tls_context()):
        assert made.verify_mode == ssl.CERT_REQUIRED and made.check_hostname
        assert made.minimum_version == ssl.TLSVersion.TLSv1_2
