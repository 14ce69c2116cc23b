"""TLS against real servers on 127.0.0.1: Dovecot with implicit TLS (RFC 8314) and STARTTLS
(RFC 2595), aiosmtpd with STARTTLS (RFC 3207) and implicit TLS, certificates from trustme, and
a Python server that speaks only TLS 1.0/1.1. The bot runs as `mailbot check` / `mailbot run
--once` subprocesses under an audit hook that refuses (and reports) any connection to an
address that is not loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError

from mailbot.intake.mailbox import tls_context
from mailbot.mailworld import PASSWORD, SmtpSink, _Handler
from tests.conftest import ROOT, Pki, World
from tests.dovecot import Dovecot, started_dovecot

pytestmark = pytest.mark.e2e

SMTP_USER = "it.projekter"

# Runs the CLI with an audit hook: a connection to an address that is not loopback is
# refused before it leaves the machine and reported on stderr as "GUARD: ...".
GUARDED_CLI = """\
import ipaddress, socket, sys

def guard(event, args):
    if event == "socket.connect" and args[0].family in (socket.AF_INET, socket.AF_INET6):
        host = str(args[1][0]).partition("%")[0]
        if not ipaddress.ip_address(host).is_loopback:
            sys.stderr.write(f"GUARD: a connection to {host} was attempted\\n")
            raise ConnectionRefusedError(f"test guard: {host} is not loopback")

sys.addaudithook(guard)
from mailbot.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """`mailbot --config <world's> ARGS` in a fresh interpreter, behind the guard."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-c", GUARDED_CLI, "--config", str(world.config_path), *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=world.tmp)
    assert "GUARD:" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    return result


def error_line(result: subprocess.CompletedProcess[str], world: World) -> str:
    """The operator's error: exit 2, the last line of stderr, `file: [key] problem. Fix: …`."""
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"{world.config_path}: [") and ". Fix: " in line, line
    return line


# -- certificates (the `pki` fixture: tests/conftest.py) ------------------------------------
# what each refused certificate must tell the operator: (key, words of the fix)
REFUSALS = {
    "wrong_host": ("host", "to the name on the server's certificate"),
    "unknown_ca": ("ca_file", "to the PEM file of the CA that issued it"),
    "expired": ("host", "ask the server's administrator to renew the certificate"),
}


# -- servers --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_dovecot(pki: Pki) -> Iterator[Callable[[str], Dovecot]]:
    """Dovecot with a given certificate (started once per module): STARTTLS on `port`,
    implicit TLS on `imaps_port`."""
    with contextlib.ExitStack() as servers:
        started: dict[str, Dovecot] = {}

        def server(cert: str) -> Dovecot:
            if cert not in started:
                started[cert] = servers.enter_context(
                    started_dovecot("the TLS tests", tls=pki.files[cert]))
            return started[cert]

        yield server


def smtp_tls_options(mode: str, cert: trustme.LeafCert) -> dict[str, Any]:
    """aiosmtpd Controller options for TLS with `cert`: mode "starttls" offers STARTTLS and
    requires it before any mail; "ssl" speaks implicit TLS."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    if mode == "starttls":
        return {"tls_context": context, "require_starttls": True}
    # aiosmtpd counts only STARTTLS as TLS for AUTH: implicit TLS needs auth_require_tls off,
    # though the whole connection is TLS
    return {"auth_require_tls": False, "ssl_context": context}


@dataclass
class TlsSmtpSink(SmtpSink):
    """aiosmtpd with AUTH. mode "starttls": STARTTLS offered and required before any mail;
    "ssl": implicit TLS; "plain": no STARTTLS offered, and AUTH accepted in plain text, so a
    client that fell back to plain text would show up in `logins`."""

    mode: str = "starttls"
    cert: trustme.LeafCert | None = None
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, over TLS)

    def start(self) -> None:
        options: dict[str, Any] = {"auth_require_tls": False}
        if self.mode != "plain":
            assert self.cert is not None
            options = smtp_tls_options(self.mode, self.cert)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     authenticator=self._authenticate, **options)
        self.controller.start()

    def _authenticate(self, server: SMTPProtocol, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: object) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        over_tls = server.transport.get_extra_info("sslcontext") is not None
        self.logins.append((auth_data.login.decode(), over_tls))
        return AuthResult(success=auth_data.password.decode() == PASSWORD)


@contextlib.contextmanager
def smtp_sink(mode: str, cert: trustme.LeafCert | None = None,
              deliver: Callable[[str, bytes], None] | None = None) -> Iterator[TlsSmtpSink]:
    sink = TlsSmtpSink(deliver=deliver, mode=mode, cert=cert)
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


class OldTlsServer:
    """Accepts TLS 1.0 and 1.1 only (RFC 8996 deprecated both), then sends `greeting`."""

    def __init__(self, cert: trustme.LeafCert, greeting: bytes) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(self.context)
        with warnings.catch_warnings():  # the point of this server is the deprecated versions
            warnings.simplefilter("ignore", DeprecationWarning)
            self.context.minimum_version = ssl.TLSVersion.TLSv1
            self.context.maximum_version = ssl.TLSVersion.TLSv1_1
        # OpenSSL 3 negotiates TLS < 1.2 only at security level 0 (SHA-1 in the handshake)
        self.context.set_ciphers("DEFAULT:@SECLEVEL=0")
        self.greeting = greeting
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed by stop()
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError), \
                        self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(self.greeting)

    def offered_version(self) -> str | None:
        """The version a client that allows TLS 1.0/1.1 gets; None when this machine's
        OpenSSL cannot speak them at all."""
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client.minimum_version = ssl.TLSVersion.TLSv1
            client.maximum_version = ssl.TLSVersion.TLSv1_1
        client.set_ciphers("DEFAULT:@SECLEVEL=0")
        try:
            with socket.create_connection(("127.0.0.1", self.port), 5) as raw, \
                    client.wrap_socket(raw) as tls:
                return tls.version()
        except ssl.SSLError:
            return None

    def stop(self) -> None:
        self.listener.close()
        self.thread.join(5)


# -- helpers --------------------------------------------------------------------------------
def need_dovecot(world: World) -> None:
    if not world.on_dovecot:
        pytest.skip("needs Dovecot (root): pymap has no TLS listener here")


def imap_over_tls(dovecot: Dovecot, security: str, ca_file: Path | str) -> dict[str, object]:
    port = dovecot.imaps_port if security == "ssl" else dovecot.port
    return {"host": "localhost", "port": port, "security": security, "ca_file": str(ca_file)}


def smtp_over_tls(sink: SmtpSink, security: str, ca_file: Path | str) -> dict[str, object]:
    return {"host": "localhost", "port": sink.port, "security": security,
            "ca_file": str(ca_file), "username": SMTP_USER, "password": PASSWORD}


def logins(dovecot: Dovecot, user: str) -> list[str]:
    """Dovecot's log lines of successful logins by `user` (with `TLS` when over TLS)."""
    return [line for line in dovecot.log.splitlines() if f"Login: user=<{user}>" in line]


# -- a good certificate ---------------------------------------------------------------------
@pytest.mark.parametrize(("imap_security", "smtp_security"),
                         [("ssl", "starttls"), ("starttls", "ssl")])
def test_good_certificate_logs_in_and_sends(
        tls_dovecot: Callable[[str], Dovecot], pki: Pki, tmp_path: Path,
        imap_security: str, smtp_security: str) -> None:
    dovecot = tls_dovecot("good")
    # a relative ca_file: resolved from the config file's folder
    (tmp_path / "kommune-ca.pem").write_bytes(pki.ca_file.read_bytes())
    with smtp_sink(smtp_security, pki.certs["good"], deliver=dovecot.deliver) as sink:
        n = f"{imap_security}-{os.getpid()}"
        world = World(imap=dovecot, smtp=sink, bot_address=f"tlsbot-{n}@kommune.test",
                      tmp=tmp_path, applicant=f"tlsmette-{n}@kommune.test")
        world.write_config(imap=imap_over_tls(dovecot, imap_security, "kommune-ca.pem"),
                           smtp=smtp_over_tls(sink, smtp_security, "kommune-ca.pem"))

        checked = cli(world, "check")
        assert checked.returncode == 0, checked.stderr
        assert "ok    imap: logged in to localhost" in checked.stdout
        assert "ok    smtp: logged in to localhost" in checked.stdout

        world.deliver(world.brief())
        ran = cli(world, "run", "--once")
        assert ran.returncode == 0, ran.stderr
        [receipt] = world.received_by(world.applicant)
        assert "Projektforslag" in str(receipt["Subject"])

        user = dovecot.user(world.bot_address)
        bot_logins = logins(dovecot, user)
        assert len(bot_logins) >= 2 and all(", TLS," in line for line in bot_logins)
        assert sink.logins and all(entry == (SMTP_USER, True) for entry in sink.logins)


# -- refused certificates -------------------------------------------------------------------
@pytest.mark.parametrize("security", ["ssl", "starttls"])
@pytest.mark.parametrize("cert", sorted(REFUSALS))
def test_imap_refuses_a_bad_certificate(world: World, tls_dovecot: Callable[[str], Dovecot],
                                        pki: Pki, security: str, cert: str) -> None:
    need_dovecot(world)
    dovecot = tls_dovecot(cert)
    world.write_config(imap=imap_over_tls(dovecot, security, pki.ca_file))

    line = error_line(cli(world, "check"), world)

    key, fix = REFUSALS[cert]
    assert f"[imap.{key}]" in line and fix in line.partition(". Fix: ")[2]
    assert logins(dovecot, dovecot.user(world.bot_address)) == []


def test_run_refuses_a_bad_imap_certificate_at_start(
        world: World, tls_dovecot: Callable[[str], Dovecot], pki: Pki) -> None:
    need_dovecot(world)
    world.write_config(imap=imap_over_tls(tls_dovecot("expired"), "ssl", pki.ca_file))

    line = error_line(cli(world, "run", "--once"), world)

    assert "[imap.host]" in line and "has expired" in line and "renew" in line


def test_unknown_ca_without_ca_file_names_the_key(
        world: World, tls_dovecot: Callable[[str], Dovecot]) -> None:
    need_dovecot(world)
    dovecot = tls_dovecot("good")  # signed by a CA the system store does not hold
    world.write_config(imap={"host": "127.0.0.1", "port": dovecot.imaps_port,
                             "security": "ssl"})

    line = error_line(cli(world, "check"), world)

    assert "[imap.ca_file]" in line and "the system does not trust its issuer" in line


@pytest.mark.parametrize("security", ["ssl", "starttls"])
@pytest.mark.parametrize("cert", sorted(REFUSALS))
def test_smtp_refuses_a_bad_certificate(world: World, pki: Pki, security: str,
                                        cert: str) -> None:
    with smtp_sink(security, pki.certs[cert]) as sink:
        world.write_config(smtp=smtp_over_tls(sink, security, pki.ca_file))

        line = error_line(cli(world, "check"), world)

    key, fix = REFUSALS[cert]
    assert f"[smtp.{key}]" in line and fix in line.partition(". Fix: ")[2]
    assert sink.logins == [] and sink.history == []


def test_run_logs_a_bad_smtp_certificate_and_keeps_the_mail(world: World, pki: Pki) -> None:
    """`run` starts when only SMTP fails (mail waits in the outbox, as for an SMTP server
    that is down); the TLS error is its one-line warning."""
    with smtp_sink("starttls", pki.certs["wrong_host"]) as sink:
        world.write_config(smtp=smtp_over_tls(sink, "starttls", pki.ca_file))
        world.deliver(world.brief())

        ran = cli(world, "run", "--once")

    assert ran.returncode == 0, ran.stderr
    warning = next(line for line in ran.stderr.splitlines() if "[smtp.host]" in line)
    assert "WARNING" in warning and "name on the server's certificate" in warning
    assert sink.logins == [] and sink.history == []


def test_implicit_tls_to_a_plain_text_port_names_the_security_key(world: World) -> None:
    need_dovecot(world)  # the shared Dovecot answers in plain text
    world.write_config(imap={"security": "ssl"})

    line = error_line(cli(world, "check"), world)

    assert "[imap.security]" in line and "does not answer with TLS" in line
    assert 'use security = "starttls"' in line


@pytest.mark.parametrize("section", ["imap", "smtp"])
@pytest.mark.parametrize(("content", "problem"), [(None, "does not exist"),
                                                  ("no certificate here\n", "no PEM")])
def test_check_refuses_a_missing_or_unreadable_ca_file(
        world: World, section: str, content: str | None, problem: str) -> None:
    ca_file = world.tmp / "kommune-ca.pem"
    if content is not None:
        ca_file.write_text(content)
    world.write_config(**{section: {"ca_file": "kommune-ca.pem"}})

    result = cli(world, "check")
    line = error_line(result, world)

    assert line.startswith(f"{world.config_path}: [{section}.ca_file] {ca_file} ")
    assert problem in line and "PEM" in line.partition(". Fix: ")[2]
    assert "ok    config" not in result.stdout


# -- TLS 1.0 / 1.1 --------------------------------------------------------------------------
@pytest.mark.parametrize("section", ["imap", "smtp"])
def test_a_server_without_tls_1_2_is_refused(world: World, pki: Pki, section: str) -> None:
    greeting = b"* OK IMAP4rev1 ready\r\n" if section == "imap" else b"220 old ESMTP\r\n"
    server = OldTlsServer(pki.certs["good"], greeting)
    try:
        offered = server.offered_version()
        world.write_config(**{section: {"host": "127.0.0.1", "port": server.port,
                                        "security": "ssl", "ca_file": str(pki.ca_file)}})
        line = error_line(cli(world, "check"), world)
    finally:
        server.stop()

    assert tls_context().minimum_version == ssl.TLSVersion.TLSv1_2
    assert f"[{section}.host]" in line
    if offered is None:
        # this OpenSSL cannot speak 1.0/1.1 at all: the refusal above (a client whose minimum
        # is 1.2 against a server whose maximum is 1.1) is all that can be shown here
        return
    assert offered == "TLSv1.1"  # the server really speaks TLS 1.1 ...
    assert "offers only TLS older than 1.2" in line  # ... and the bot refuses it
    assert "TLS 1.2 or newer" in line.partition(". Fix: ")[2]


# -- STARTTLS not offered -------------------------------------------------------------------
def test_imap_without_starttls_is_refused_without_a_login(world: World) -> None:
    need_dovecot(world)  # the shared Dovecot has ssl = no: it offers no STARTTLS
    with IMAPClient("127.0.0.1", port=world.imap.port, ssl=False) as client, \
            pytest.raises(CapabilityError, match="STARTTLS"):
        client.starttls(tls_context())  # imapclient fails loudly, it does not skip TLS
    world.write_config(imap={"security": "starttls"})

    line = error_line(cli(world, "check"), world)

    assert "[imap.security]" in line and "does not offer STARTTLS (RFC 2595" in line
    assert 'use security = "ssl"' in line
    assert isinstance(world.imap, Dovecot)
    assert logins(world.imap, world.imap.user(world.bot_address)) == []


def test_smtp_without_starttls_is_refused_without_a_login(world: World) -> None:
    with smtp_sink("plain") as sink:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, start_tls=True,
                                 tls_context=tls_context(), timeout=10)
        with pytest.raises(aiosmtplib.SMTPException, match="STARTTLS"):
            asyncio.run(client.connect())  # aiosmtplib fails loudly, it does not skip TLS
        world.write_config(smtp={"host": "127.0.0.1", "port": sink.port,
                                 "security": "starttls", "username": SMTP_USER,
                                 "password": PASSWORD})

        line = error_line(cli(world, "check"), world)

    assert "[smtp.security]" in line and "does not offer STARTTLS (RFC 3207" in line
    # the server would have taken a plain-text AUTH: none came
    assert sink.logins == [] and sink.history == []


# -- security = "none" ----------------------------------------------------------------------
@pytest.mark.parametrize("command", [("check",), ("run", "--once")])
@pytest.mark.parametrize("section", ["imap", "smtp"])
def test_plaintext_to_a_remote_host_is_refused_before_connecting(
        world: World, section: str, command: tuple[str, ...]) -> None:
    # 192.0.2.1 (TEST-NET-1, RFC 5737): the guard reports any attempt to reach it
    world.write_config(**{section: {"host": "192.0.2.1", "security": "none"}})

    result = cli(world, *command)
    line = error_line(result, world)

    assert line.startswith(f"{world.config_path}: [{section}.security] ")
    assert "192.0.2.1" in line and f"{section}.allow_plaintext_remote = true" in line
    assert "ok    config" not in result.stdout  # refused while loading the settings


def loopback_alias() -> str:
    """A name for this machine that is not literally `localhost` and resolves to loopback
    only (the machine's own name, from /etc/hosts): remote by the literal rule, yet every
    packet stays on this machine."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
    except OSError:
        addresses = set()
    if name.lower() == "localhost" or not addresses or not all(
            address.startswith("127.") or address == "::1" for address in addresses):
        pytest.skip(f"{name!r} does not resolve to loopback only ({addresses})")
    if "127.0.0.1" not in addresses:
        pytest.skip(f"{name!r} does not resolve to 127.0.0.1, where the servers listen")
    return name


@pytest.mark.parametrize("command", [("check",), ("run", "--once")])
def test_plaintext_remote_allowed_with_a_warning_at_every_start(
        world: World, command: tuple[str, ...]) -> None:
    alias = loopback_alias()
    world.write_config(imap={"host": alias, "allow_plaintext_remote": True},
                       smtp={"host": alias, "allow_plaintext_remote": True})

    result = cli(world, *command)

    assert result.returncode == 0, result.stderr
    for section in ("imap", "smtp"):
        [warning] = [line for line in result.stderr.splitlines()
                     if f'{section}.security = "none"' in line]
        assert "WARNING" in warning and alias in warning and "unencrypted" in warning
