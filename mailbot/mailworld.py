"""An embedded mail world on loopback: pymap (an IMAP server) and an aiosmtpd SMTP server that
delivers into it. Used by `mailbot demo` (no root needed) and, with Dovecot in its place
(tests/dovecot.py), by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any, Protocol

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope, Session

PASSWORD = "secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class ImapServer(Protocol):
    port: int

    def user(self, address: str) -> str: ...
    def deliver(self, recipient: str, raw: bytes) -> None: ...
    def stop(self) -> None: ...
    def start(self) -> None: ...


# -- pymap ----------------------------------------------------------------------------------
class Pymap:
    """pymap's in-memory backend: one user (the bot's mailbox); no root needed."""

    def __init__(self, username: str) -> None:
        self.username = username
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("pymap")
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "pymap"]
        self.process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(self.port), "--no-tls",
             "dict", "--demo-user", self.username, "--demo-password", PASSWORD],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def cleanup(self) -> None:
        self.stop()

    def user(self, address: str) -> str:
        return self.username

    def deliver(self, recipient: str, raw: bytes) -> None:
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        try:
            imap.login(self.username, PASSWORD)
            imap.append("INBOX", "", imaplib.Time2Internaldate(time.time()), raw)
        finally:
            imap.logout()


# -- SMTP -----------------------------------------------------------------------------------
@dataclass
class Delivered:
    sender: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> Message:
        return message_from_bytes(self.raw)


@dataclass
class SmtpSink:
    """aiosmtpd on a free port. Records every message; hands it to `deliver` per recipient.
    `reply_code` makes it answer every RCPT with that code (421/451/550 scenarios);
    `rcpt_codes` does so for single recipients (greylisting one of them); `stall_after_data`
    seconds of silence after a message was taken make the client time out without knowing
    (SCENARIOS O7)."""

    deliver: Callable[[str, bytes], None] | None = None
    port: int = field(default_factory=free_port)
    received: list[Delivered] = field(default_factory=list)
    history: list[Delivered] = field(default_factory=list)  # never cleared
    reply_code: int | None = None
    rcpt_codes: dict[str, int] = field(default_factory=dict)
    stall_after_data: float = 0.0
    controller: Controller | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Delivered]:
        with self.lock:
            return [d for d in self.received if address.lower() in
                    (r.lower() for r in d.recipients)]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: SMTPProtocol, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        code = self.sink.rcpt_codes.get(address.lower(), self.sink.reply_code)
        if code is not None:
            return f"{code} test server says no"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPProtocol, session: Session,
                          envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        item = Delivered(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(raw))
        with self.sink.lock:
            self.sink.received.append(item)
            self.sink.history.append(item)
        if self.sink.deliver is not None:
            try:
                for rcpt in envelope.rcpt_tos:
                    self.sink.deliver(rcpt, item.raw)
            except (OSError, smtplib.SMTPException, imaplib.IMAP4.error) as err:
                # the mailbox server is away: a temporary failure, as a real MTA answers
                with self.sink.lock:
                    self.sink.received.remove(item)
                    self.sink.history.remove(item)
                return f"451 4.3.0 mailbox unavailable: {type(err).__name__}"
        if self.sink.stall_after_data:
            await asyncio.sleep(self.sink.stall_after_data)  # taken, but the answer is late
        return "250 Message accepted for delivery"


def read_mailbox(port: int, user: str, folder: str = "INBOX") -> list[bytes]:
    """Every message in a folder, for the tests and the demo (plain imaplib, as any client)."""
    imap = imaplib.IMAP4("127.0.0.1", port)
    try:
        imap.login(user, PASSWORD)
        status, _ = imap.select(f'"{folder}"', readonly=True)
        if status != "OK":
            return []
        _, data = imap.uid("SEARCH", "ALL")
        out = []
        for uid in data[0].split():
            _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            for part in parts:
                if isinstance(part, tuple):
                    out.append(bytes(part[1]))
        return out
    finally:
        imap.logout()


def settings_dict(imap_port: int, smtp_port: int, data_dir: Path, bot_address: str,
                  username: str, **extra: Any) -> dict[str, Any]:
    """A config for a bot inside this mail world."""
    config: dict[str, Any] = {
        "bot": {"address": bot_address, "data_dir": str(data_dir)},
        "imap": {"host": "127.0.0.1", "port": imap_port, "security": "none",
                 "username": username, "password": PASSWORD, "poll_seconds": 1,
                 # this world's mail is delivered before the bot first looks
                 "start_from": "all"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
        # any free port: worlds side by side (and a daemon beside them) never collide on
        # the default 8025; the daemon logs the address it got (event=web_listening)
        "web": {"listen": "127.0.0.1:0"},
        "council": {"secretary": ["sekretaer@kommune.test"],
                    "strategic_board": ["sit@kommune.test"]},
        "reviewers": {"it_operations": ["drift@kommune.test"],
                      "it_architect": ["arkitekt@kommune.test"],
                      "contract_manager": ["kontrakt@kommune.test"],
                      "security_coordinator": ["sikkerhed@kommune.test"]},
    }
    for section, values in extra.items():
        config.setdefault(section, {}).update(values)
    return config


def to_toml(config: dict[str, Any]) -> str:
    lines: list[str] = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
