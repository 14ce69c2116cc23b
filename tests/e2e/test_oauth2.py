"""Microsoft 365 style logins end to end: IMAP and SMTP with `auth = "oauth2"` on real servers.

What is real: Dovecot 2.3 checks every XOAUTH2 token with its oauth2 passdb; msal (provider
`microsoft`) and urllib (`generic`) fetch the tokens over HTTP(S); imapclient and aiosmtplib
speak the protocols. What is ours, small and faked at the one interface the bot has with it:
the identity provider (tests/oauth2_server.py: a token endpoint, msal's tenant discovery on an
HTTPS authority with a trustme CA, and the introspection endpoint Dovecot asks), the test SMTP
server's XOAUTH2 check against that same introspection, and a Dovecot post-login script that
answers as Exchange Online does for a mailbox the app may not open
(tests/exchange_not_connected.py). Tokens live a few seconds, so they expire mid-test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from mailbot.delivery.smtpcheck import check_smtp
from mailbot.intake.mailbox import Mailbox
from mailbot.mailworld import free_port
from mailbot.models import Case
from tests.conftest import Authority, World, wait_until
from tests.dovecot import Dovecot, started_dovecot
from tests.oauth2_server import CLIENT_ID, CLIENT_SECRET, TENANT, TokenBook, XOAuth2Sink

pytestmark = [pytest.mark.e2e,
              # the test SMTP server takes AUTH without TLS, on loopback, on purpose
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]
SECRET_ENV = {"MAILBOT_OAUTH2__CLIENT_SECRET": CLIENT_SECRET}


@pytest.fixture(scope="module")
def oauth_dovecot(authority: Authority) -> Iterator[Dovecot]:
    with started_dovecot("its oauth2 passdb",
                         introspection_url=authority.plain.introspect_url) as server:
        yield server


@dataclass
class OAuthWorld:
    world: World
    book: TokenBook
    authority: Authority
    dovecot: Dovecot
    sink: XOAuth2Sink

    @property
    def user(self) -> str:
        return self.dovecot.user(self.world.bot_address)

    def configure(self, provider: str = "generic", **oauth2: Any) -> None:
        """Both logins on OAuth2 with the mailbox address. The secret is in the file for the
        in-process runs (they read no environment); the CLI runs get it from
        MAILBOT_OAUTH2__CLIENT_SECRET too, which wins, as in production."""
        a = self.authority
        section: dict[str, Any] = (
            {"provider": "generic", "client_id": CLIENT_ID, "token_url": a.plain.token_url}
            if provider == "generic" else
            {"provider": "microsoft", "tenant_id": TENANT, "client_id": CLIENT_ID,
             "authority": a.tls.authority, "ca_file": str(a.ca_file)})
        section["client_secret"] = CLIENT_SECRET
        section.update(oauth2)
        address = self.world.bot_address
        self.world.write_config(imap={"auth": "oauth2", "username": address},
                                smtp={"auth": "oauth2", "username": address},
                                oauth2=section)

    def check(self, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        result = self.world.cli("check", env=SECRET_ENV if env is None else env, timeout=60)
        print(result.stdout, result.stderr)  # pytest shows it when a test fails
        return result.returncode, result.stdout, result.stderr


@contextlib.contextmanager
def oauth_world(authority: Authority, dovecot: Dovecot, tmp_path: Path,
                smtp_tls: dict[str, Any] | None = None) -> Iterator[OAuthWorld]:
    """A fresh app and mailbox on an oauth2 Dovecot, and an XOAUTH2 SMTP server (`smtp_tls`:
    its TLS options, tests/e2e/test_tls.py's smtp_tls_options)."""
    n = time.monotonic_ns()
    address = f"ms{n}-{os.getpid()}@kommune.test"
    authority.book.reset(mailbox=dovecot.user(address))
    dovecot.not_connected(set())
    sink = XOAuth2Sink(deliver=dovecot.deliver, book=authority.book,
                       introspect_url=authority.plain.introspect_url, tls=smtp_tls or {})
    sink.start()
    world = World(imap=dovecot, smtp=sink, bot_address=address, tmp=tmp_path,
                  applicant=f"mette{n}-{os.getpid()}@kommune.test")
    try:
        yield OAuthWorld(world, authority.book, authority, dovecot, sink)
    finally:
        sink.stop()


@pytest.fixture
def ow(authority: Authority, oauth_dovecot: Dovecot, tmp_path: Path) -> Iterator[OAuthWorld]:
    with oauth_world(authority, oauth_dovecot, tmp_path) as world:
        yield world


def cases(world: World) -> list[Case]:
    with Session(world.bot().engine) as session:
        return list(session.exec(select(Case)).all())


# -- a brief in, a receipt out ------------------------------------------------------------
@pytest.mark.parametrize("provider", ["generic", "microsoft"])
def test_brief_in_receipt_out_with_one_token_for_imap_and_smtp(ow: OAuthWorld,
                                                               provider: str) -> None:
    ow.configure(provider)
    ow.world.deliver(ow.world.brief())

    ow.world.run_once()

    [case] = cases(ow.world)
    [receipt] = ow.world.received_by(ow.world.applicant)
    assert receipt["Subject"].startswith(f"[{case.ref}]")
    assert ow.world.folder("INBOX") == [] and len(ow.world.folder("Processed")) == 1
    # Dovecot and the SMTP server were shown the same, one token
    assert ow.book.token_requests == 1
    assert len(set(ow.book.introspected)) == 1
    assert ow.sink.handler is not None and ow.sink.handler.tokens_seen == ow.book.tokens


def test_two_runs_further_apart_than_the_token_lives(ow: OAuthWorld) -> None:
    ow.book.lifetime = 3
    ow.configure()
    ow.world.deliver(ow.world.brief(subject="Første"))
    first = ow.world.cli("run", "--once", env=SECRET_ENV)
    assert first.returncode == 0, first.stderr
    time.sleep(3.5)  # the first token is dead now
    ow.world.deliver(ow.world.brief(subject="Anden"))
    second = ow.world.cli("run", "--once", env=SECRET_ENV)
    assert second.returncode == 0, second.stderr
    assert len(cases(ow.world)) == 2
    assert len(ow.world.received_by(ow.world.applicant)) == 2
    assert ow.world.folder("INBOX") == []
    assert len(set(ow.book.tokens)) >= 2


def test_a_running_daemon_outlives_its_token(ow: OAuthWorld) -> None:
    """The IDLE session outlives its token until the server ends it (Exchange Online says
    `* BYE Session invalidated - AccessTokenExpired`; here `doveadm kick`); the reconnect logs
    in with a new token, and the outbox's SMTP logins renew theirs. No mail lost, no exit."""
    ow.book.lifetime = 4
    ow.configure()
    daemon = ow.world.spawn("run", env=SECRET_ENV)
    try:
        ow.world.deliver(ow.world.brief(subject="Før udløb"))
        wait_until(lambda: len(ow.sink.to(ow.world.applicant)) == 1, timeout=30)
        first_tokens, dovecot_before = set(ow.book.tokens), len(ow.book.dovecot_saw)
        time.sleep(4.5)  # every token so far has expired while the daemon IDLEs
        ow.dovecot.kick(ow.user)
        ow.world.deliver(ow.world.brief(subject="Efter udløb"))
        wait_until(lambda: len(ow.sink.to(ow.world.applicant)) == 2, timeout=45)
        assert daemon.poll() is None, "the daemon exited"
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, out
    # the IMAP login after the restart presented a token issued after the first ones expired
    assert set(ow.book.dovecot_saw[dovecot_before:]) - first_tokens
    assert ow.book.dovecot_saw[0] in first_tokens
    assert "reconnecting" in out and "Traceback" not in out
    assert len(cases(ow.world)) == 2


def test_mail_waits_while_smtp_refuses_the_token_and_goes_after_the_fix(ow: OAuthWorld
                                                                       ) -> None:
    ow.book.smtp_auth_disabled = True
    ow.configure()
    ow.world.deliver(ow.world.brief())
    first = ow.world.cli("run", "--once", env=SECRET_ENV)
    assert first.returncode == 0, first.stderr
    assert ow.world.received_by(ow.world.applicant) == []
    assert "ERROR" in first.stderr and "-SmtpClientAuthenticationDisabled $false" in first.stderr
    assert "mail waits in the outbox" in first.stderr
    ow.book.smtp_auth_disabled = False  # the administrator ran Set-CASMailbox
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()  # past the retry backoff
    second = ow.world.cli("run", "--once", "--now", later, env=SECRET_ENV)
    assert second.returncode == 0, second.stderr
    assert len(ow.world.received_by(ow.world.applicant)) == 1


def test_a_refused_token_is_renewed_once_before_the_login_fails(ow: OAuthWorld) -> None:
    """A token revoked before its expiry (the provider rotated keys, say): IMAP and SMTP get a
    new one and log in; only a second refusal would be the operator's problem."""
    ow.configure()
    bot = ow.world.bot()
    assert bot.tokens is not None
    bot.tokens.token()
    ow.book.revoke_all()
    mailbox = Mailbox(bot.settings.imap, bot.settings.source, bot.tokens)
    mailbox.open()
    mailbox.close()
    assert ow.book.token_requests == 2
    ow.book.revoke_all()
    check_smtp(bot.settings.smtp, bot.settings.source, bot.tokens)
    assert ow.book.token_requests == 3


# -- mailbot check: the real Microsoft failures -------------------------------------------
def test_check_with_msal_against_an_https_authority(ow: OAuthWorld) -> None:
    ow.configure("microsoft")
    code, out, err = ow.check()
    assert code == 0, err
    assert f"ok    oauth2: token from {ow.authority.tls.authority}" in out
    assert "(XOAUTH2), folders ready" in out and f"as {ow.world.bot_address} (XOAUTH2)" in out


@pytest.mark.parametrize("provider", ["generic", "microsoft"])
def test_check_token_endpoint_unreachable(ow: OAuthWorld, provider: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    ow.configure(provider, **({"token_url": f"http://{dead}/token"} if provider == "generic"
                              else {"authority": f"https://{dead}/{TENANT}"}))
    code, out, err = ow.check()
    key = "oauth2.token_url" if provider == "generic" else "oauth2.authority"
    assert code == 2 and f"[{key}] cannot reach the token endpoint" in err
    assert "network team" in err and "ok    templates" in out and "ok    imap" not in out


@pytest.mark.parametrize(("code", "words"), [
    ("7000215", "the client secret is not valid (AADSTS7000215)"),
    ("7000222", "the client secret has expired (AADSTS7000222)"),
])
def test_check_secret_refused_by_entra_id(ow: OAuthWorld, code: str, words: str) -> None:
    ow.book.fail_with = code
    ow.configure("microsoft")
    status, _, err = ow.check()
    assert status == 2, err
    assert err.startswith(f"environment: [MAILBOT_OAUTH2__CLIENT_SECRET] Entra ID says {words}")
    assert "New client secret" in err and "restart mailbot" in err
    assert CLIENT_SECRET not in err


def test_check_unknown_client_id(ow: OAuthWorld) -> None:
    ow.configure("microsoft", client_id="11111111-2222-3333-4444-555555555555")
    code, _, err = ow.check()
    assert code == 2
    assert "[oauth2.client_id] Entra ID knows no application '11111111-" in err
    assert "AADSTS700016" in err and "oauth2.tenant_id" in err


def test_check_token_granted_but_imap_authenticate_failed(ow: OAuthWorld) -> None:
    ow.book.denied = True  # Exchange does not let the app in: no service principal/FullAccess
    ow.configure("microsoft")
    code, out, err = ow.check()
    assert code == 2 and "ok    oauth2" in out
    assert "[oauth2.client_id] the IMAP server refused the app's token" in err
    assert f"New-ServicePrincipal -AppId {CLIENT_ID}" in err
    assert f"Add-MailboxPermission -Identity {ow.world.bot_address}" in err
    assert "FullAccess" in err
    assert ow.book.token_requests == 2  # renewed once before giving up


def test_check_smtp_auth_disabled_5_7_139(ow: OAuthWorld) -> None:
    ow.book.smtp_auth_disabled = True
    ow.configure("microsoft")
    code, out, err = ow.check()
    assert code == 2 and "ok    imap" in out
    assert "[smtp.auth] Exchange Online has SMTP AUTH switched off" in err
    assert "535 5.7.139" in err
    assert (f"Set-CASMailbox -Identity {ow.world.bot_address} "
            "-SmtpClientAuthenticationDisabled $false") in err


def test_check_user_is_authenticated_but_not_connected(ow: OAuthWorld) -> None:
    ow.dovecot.not_connected({ow.user})
    ow.configure("microsoft")
    code, _, err = ow.check()
    assert code == 2
    assert "[imap.username] Exchange Online accepted the app's token but cannot open" in err
    assert "User is authenticated but not connected" in err
    assert "Add-MailboxPermission" in err


# -- nothing secret in any output --------------------------------------------------------
def test_secret_and_tokens_appear_in_no_log_or_error(ow: OAuthWorld) -> None:
    ow.configure("microsoft")
    ow.world.write_config(bot={"log_level": "DEBUG"})
    ow.world.deliver(ow.world.brief())
    outputs = []
    for args in (("check",), ("run", "--once")):
        result = ow.world.cli(*args, env=SECRET_ENV)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    ow.book.fail_with = "7000215"
    failed = ow.world.cli("check", env=SECRET_ENV)
    assert failed.returncode == 2
    outputs.append(failed.stdout + failed.stderr)
    text = "\n".join(outputs)
    assert "DEBUG" in text and "OAuth2 token from" in text  # the logs were there to read
    assert ow.book.tokens and len(ow.world.received_by(ow.world.applicant)) == 1
    assert CLIENT_SECRET not in text
    assert [token for token in ow.book.tokens if token in text] == []
    assert [token for token in ow.book.tokens if token.split(".", 1)[1] in text] == []
