"""Dovecot from a private config on free loopback ports: the real IMAP server the tests run
against (../shared/notes/dovecot.md). Test harness only: never shipped in the package."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbot.mailworld import PASSWORD, free_port, wait_for_port

# -- Dovecot --------------------------------------------------------------------------------
DOVECOT_CONF = """\
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_username_format = %Ln
recipient_delimiter = +
mail_location = maildir:{root}/mail/%u
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_uid = nobody
mail_gid = nogroup
{auth}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={root}/mail/%u allow_all_users=yes
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
"""

PLAINTEXT = "ssl = no"
# STARTTLS on the imap port (RFC 2595), implicit TLS on the imaps port (RFC 8314). The test
# reads (read_mailbox) and LMTP stay plain: disable_plaintext_auth = no above.
TLS_CONF = """\
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
"""
# Debian's DH parameters, for DHE suites (TLS 1.2 clients that ask for them)
DH_PARAMS = Path("/usr/share/dovecot/dh.pem")


@dataclass(frozen=True)
class TlsFiles:
    """The server's certificate (chain, PEM) and its private key (PEM)."""

    cert: Path
    key: Path

    def settings(self) -> str:
        text = TLS_CONF.format(cert=self.cert, key=self.key)
        return text + (f"ssl_dh = <{DH_PARAMS}\n" if DH_PARAMS.exists() else "")


PASSWORD_AUTH = """\
auth_mechanisms = plain login
passdb {{
  driver = static
  args = password={password}
}}
"""

# Dovecot 2.3's "Open Authentication v2.0 database": XOAUTH2/OAUTHBEARER tokens are checked by
# POSTing `token=...` to the introspection URL (RFC 7662); the static passdb stays for the
# tests' own password logins. Both sides of the user check reduce to the local part (%Ln), as
# auth_username_format does for the login. Failed logins must not slow the next ones
# (../shared/notes/dovecot.md): no failure delay, no anvil penalty.
OAUTH2_AUTH = """\
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
passdb {{
  driver = static
  mechanisms = plain login
  args = password={password}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

OAUTH2_EXT = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
username_format = %Ln
active_attribute = active
active_value = true
force_introspection = yes
timeout_msecs = 5000
"""

# Exchange Online answers "BAD User is authenticated but not connected." to every command
# after a successful AUTHENTICATE when the app may not open the mailbox named in the login.
# Dovecot has no such state; a post-login script (Dovecot's own hook, run after the login
# succeeded) plays it for the users listed in {root}/not-connected: it relays the session
# between the client and the real imap process and answers every command but CAPABILITY, NOOP
# and LOGOUT as Exchange does.
POSTLOGIN = """\
service imap {{
  executable = imap imap-postlogin
}}
service imap-postlogin {{
  executable = script-login {root}/postlogin.sh
  unix_listener imap-postlogin {{
  }}
}}
"""

POSTLOGIN_SH = """\
#!/bin/sh
if grep -qxF "$USER" {root}/not-connected 2>/dev/null; then
  exec {python} {relay} "$@"
fi
exec "$@"
"""


def dovecot_available() -> bool:
    return shutil.which("dovecot") is not None and os.geteuid() == 0


@contextlib.contextmanager
def started_dovecot(needed_for: str, tls: TlsFiles | None = None,
                    introspection_url: str | None = None) -> Iterator[Dovecot]:
    """A private Dovecot, started, and removed afterwards; the test skips without Dovecot (a
    failure on CI, where it is mandatory)."""
    if not dovecot_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: Dovecot is mandatory for {needed_for}")
        pytest.skip(f"needs Dovecot (root) for {needed_for}")
    server = Dovecot(tls=tls, introspection_url=introspection_url)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


class Dovecot:
    """Dovecot from a private config on free loopback ports; every address has a mailbox.

    Plain text by default. With `tls` the imap port (`port`) offers STARTTLS and `imaps_port`
    speaks implicit TLS, both with that certificate. With `introspection_url` it also accepts
    XOAUTH2 and OAUTHBEARER tokens, checked there (see OAUTH2_AUTH); password logins keep
    working for the tests' own reads."""

    def __init__(self, extra_config: str = "", tls: TlsFiles | None = None,
                 introspection_url: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mailbot-dovecot-"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.lmtp_port = free_port()
        self.imaps_port = free_port() if tls else 0  # 0: no imaps listener
        (self.root / "mail").mkdir()
        shutil.chown(self.root / "mail", "nobody", "nogroup")
        auth = PASSWORD_AUTH.format(password=PASSWORD)
        if introspection_url is not None:
            auth = OAUTH2_AUTH.format(root=self.root, password=PASSWORD) + POSTLOGIN.format(
                root=self.root)
            (self.root / "dovecot-oauth2.conf.ext").write_text(
                OAUTH2_EXT.format(url=introspection_url))
            script = self.root / "postlogin.sh"
            script.write_text(POSTLOGIN_SH.format(
                root=self.root, python=sys.executable,
                relay=Path(__file__).with_name("exchange_not_connected.py")))
            script.chmod(0o755)
        self.conf = self.root / "dovecot.conf"
        self.conf.write_text(DOVECOT_CONF.format(
            root=self.root, auth=auth, imap_port=self.port, lmtp_port=self.lmtp_port,
            imaps_port=self.imaps_port, ssl=tls.settings() if tls else PLAINTEXT)
            + extra_config)

    @property
    def log(self) -> str:
        """Dovecot's log so far (logins show `TLS` when they came over TLS)."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def not_connected(self, users: set[str]) -> None:
        """From the next login on, these users (local parts) meet Exchange's "User is
        authenticated but not connected" after logging in (oauth2 servers only)."""
        (self.root / "not-connected").write_text("".join(f"{u}\n" for u in sorted(users)))

    def start(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.conf)], check=True)
        wait_for_port(self.port)
        wait_for_port(self.lmtp_port)
        if self.imaps_port:
            wait_for_port(self.imaps_port)

    def stop(self) -> None:
        pid_file = self.root / "run" / "master.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().strip())
        children = _children(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        # Dovecot's imap processes outlive their master for a while; a restart must cut
        # every client connection, as a real server restart does.
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.05)
        pid_file.unlink(missing_ok=True)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def user(self, address: str) -> str:
        return address.partition("@")[0].lower()

    def kick(self, user: str) -> None:
        """End the user's IMAP sessions (`* BYE`), as Exchange Online ends a session whose
        token has expired."""
        subprocess.run(["doveadm", "-c", str(self.conf), "kick", user], check=True,
                       capture_output=True)

    def doveadm(self, *args: str) -> None:
        subprocess.run(["doveadm", "-c", str(self.conf), *args], check=True,
                       capture_output=True)

    def set_uidvalidity(self, user: str, value: int, folder: str = "INBOX") -> None:
        """Give `folder` a new UIDVALIDITY, as a server migration or a rebuilt index does
        (`doveadm mailbox update --uid-validity`; SCENARIOS I1)."""
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(value), folder)

    def reset_uidnext(self, user: str, next_uid: int) -> None:
        """Make the user's INBOX hand out UIDs from `next_uid` again under the SAME
        UIDVALIDITY, as a buggy server or a botched restore does (SCENARIOS I2; RFC 3501
        section 2.3.1.1 forbids it): with Dovecot stopped, lower N in the Maildir's
        dovecot-uidlist and drop the index files, which Dovecot then rebuilds from it."""
        maildir = self.root / "mail" / user
        uidlist = maildir / "dovecot-uidlist"
        self.stop()
        header, *records = uidlist.read_text().splitlines()
        header = " ".join(f"N{next_uid}" if field.startswith("N") else field
                          for field in header.split())
        # a record of a mail moved away may linger until Dovecot compacts the file; it
        # would hold its UID: keep only the records below next_uid
        kept = [line for line in records if int(line.split()[0]) < next_uid]
        uidlist.write_text("\n".join([header, *kept]) + "\n")
        for index in maildir.glob("dovecot.index*"):
            index.unlink()
        self.start()

    def deliver(self, recipient: str, raw: bytes) -> None:
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            lmtp.sendmail("sender@test.invalid", [recipient], raw)


def _running(pid: int) -> bool:
    """Alive and not a zombie: a master that exited but was not reaped yet (a slow PID 1 in a
    container) still answers kill(pid, 0), yet it serves nothing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


