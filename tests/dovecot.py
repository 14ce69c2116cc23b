"""Dovecot from a private config on free loopback ports: the real IMAP server the tests run
against (../shared/notes/dovecot.md). Test harness only: never shipped in the package."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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
auth_mechanisms = plain login
auth_username_format = %Ln
recipient_delimiter = +
mail_location = maildir:{root}/mail/%u
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_uid = nobody
mail_gid = nogroup
passdb {{
  driver = static
  args = password={password}
}}
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


def dovecot_available() -> bool:
    return shutil.which("dovecot") is not None and os.geteuid() == 0


class Dovecot:
    """Dovecot from a private config on free loopback ports; every address has a mailbox.

    Plain text by default. With `tls` the imap port (`port`) offers STARTTLS and `imaps_port`
    speaks implicit TLS, both with that certificate."""

    def __init__(self, extra_config: str = "", tls: TlsFiles | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mailbot-dovecot-"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.lmtp_port = free_port()
        self.imaps_port = free_port() if tls else 0  # 0: no imaps listener
        (self.root / "mail").mkdir()
        shutil.chown(self.root / "mail", "nobody", "nogroup")
        self.conf = self.root / "dovecot.conf"
        self.conf.write_text(DOVECOT_CONF.format(
            root=self.root, password=PASSWORD, imap_port=self.port, lmtp_port=self.lmtp_port,
            imaps_port=self.imaps_port, ssl=tls.settings() if tls else PLAINTEXT)
            + extra_config)

    @property
    def log(self) -> str:
        """Dovecot's log so far (logins show `TLS` when they came over TLS)."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

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
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        pid_file.unlink(missing_ok=True)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def user(self, address: str) -> str:
        return address.partition("@")[0].lower()

    def deliver(self, recipient: str, raw: bytes) -> None:
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            lmtp.sendmail("sender@test.invalid", [recipient], raw)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


