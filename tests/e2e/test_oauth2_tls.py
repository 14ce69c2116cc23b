"""Microsoft 365 end to end over TLS: the OAuth2 world of test_oauth2.py (Dovecot's oauth2
passdb and the test SMTP server both check every XOAUTH2 token at tests/oauth2_server.py's
introspection; msal asks an HTTPS authority with its own trustme CA) behind the TLS of
test_tls.py (a trustme certificate on Dovecot's STARTTLS and implicit-TLS listeners and on the
SMTP server, `ca_file` = its CA, the CLI behind the guard that refuses any address that is not
loopback). Tokens live 3 s, so the second run must log in with new ones."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Authority, Pki, wait_until
from tests.dovecot import Dovecot, started_dovecot
from tests.e2e.test_oauth2 import cases, oauth_world
from tests.e2e.test_tls import cli, imap_over_tls, logins, smtp_over_tls, smtp_tls_options

pytestmark = [pytest.mark.e2e,
              # implicit TLS: aiosmtpd counts only STARTTLS as TLS for AUTH (test_tls.py)
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]

LIFETIME = 3.0  # seconds a token lives


@pytest.fixture(scope="module")
def tls_oauth_dovecot(pki: Pki, authority: Authority) -> Iterator[Dovecot]:
    """Dovecot with the good certificate (STARTTLS on `port`, implicit TLS on `imaps_port`)
    and the oauth2 passdb asking the authority's introspection."""
    with started_dovecot("the OAuth2 over TLS tests", tls=pki.files["good"],
                         introspection_url=authority.plain.introspect_url) as server:
        yield server


# Exchange Online's own pairing first: IMAP implicit TLS (993), SMTP STARTTLS (587); then the
# other two modes with the generic provider
@pytest.mark.parametrize(("provider", "imap_security", "smtp_security"),
                         [("microsoft", "ssl", "starttls"), ("generic", "starttls", "ssl")])
def test_check_and_two_runs_over_tls_across_token_expiry(
        authority: Authority, tls_oauth_dovecot: Dovecot, pki: Pki, tmp_path: Path,
        provider: str, imap_security: str, smtp_security: str) -> None:
    with oauth_world(authority, tls_oauth_dovecot, tmp_path,
                     smtp_tls=smtp_tls_options(smtp_security, pki.certs["good"])) as ow:
        ow.book.lifetime = LIFETIME
        world, handler = ow.world, ow.sink.handler
        assert handler is not None
        world.write_config(imap=imap_over_tls(ow.dovecot, imap_security, pki.ca_file),
                           smtp=smtp_over_tls(ow.sink, smtp_security, pki.ca_file))
        # after the TLS keys: both logins XOAUTH2 as the mailbox; the generic token endpoint
        # on HTTPS too (msal's authority is), trusting the authority's CA
        ow.configure(provider, **({} if provider == "microsoft" else {
            "token_url": authority.tls.token_url, "ca_file": str(authority.ca_file)}))

        checked = cli(world, "check")
        assert checked.returncode == 0, checked.stderr
        assert f"ok    oauth2: token from {authority.tls.url}/" in checked.stdout
        assert f"ok    imap: logged in to localhost as {world.bot_address} (XOAUTH2), folders " \
               "ready" in checked.stdout
        assert f"ok    smtp: logged in to localhost as {world.bot_address} (XOAUTH2)" \
               in checked.stdout

        world.deliver(world.brief(subject="Første"))
        first = cli(world, "run", "--once")
        assert first.returncode == 0, first.stderr
        [case] = cases(world)
        [receipt] = world.received_by(world.applicant)
        assert str(receipt["Subject"]).startswith(f"[{case.ref}]")
        first_tokens = set(ow.book.tokens)
        dovecot_before, smtp_before = len(ow.book.dovecot_saw), len(handler.tokens_seen)

        # every token issued so far dies before the second brief arrives
        wait_until(lambda: all(i.expires_at <= time.monotonic() for i in ow.book.issued),
                   timeout=LIFETIME + 2)
        world.deliver(world.brief(subject="Anden"))
        second = cli(world, "run", "--once")
        assert second.returncode == 0, second.stderr

        assert len(cases(world)) == 2
        assert len(world.received_by(world.applicant)) == 2
        assert world.folder("INBOX") == [] and len(world.folder("Processed")) == 2
        # the second run logged in to IMAP and SMTP with new tokens, not the expired ones
        renewed_imap = ow.book.dovecot_saw[dovecot_before:]
        renewed_smtp = handler.tokens_seen[smtp_before:]
        assert renewed_imap and not set(renewed_imap) & first_tokens
        assert renewed_smtp and not set(renewed_smtp) & first_tokens
        # every token went over TLS: each SMTP AUTH, and each XOAUTH2 login in Dovecot's log
        # (check, then the two runs; the tests' own reads log in with a password)
        assert len(handler.over_tls) >= 3 and all(handler.over_tls)
        tokens_logins = [line for line in logins(ow.dovecot, ow.user)
                         if "method=XOAUTH2" in line]
        assert len(tokens_logins) >= 3
        assert all(", TLS," in line for line in tokens_logins), tokens_logins
