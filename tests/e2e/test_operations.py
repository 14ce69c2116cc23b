"""The operator's cockpit on real servers (issue #14, SCENARIOS R14): `mailbot health` after
a real `run --once` against Dovecot, /metrics and /healthz of a real `mailbot run` daemon
asked over HTTP, a taken `[web] listen` port, and the systemd notify protocol (READY,
WATCHDOG, STOPPING) read from a real AF_UNIX datagram socket given as NOTIFY_SOCKET, as
systemd would give it. The stuck sweep loop is the fault hook MAILBOT_HANG_AT
(mailbot/faults.py)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from mailbot.db import make_engine
from mailbot.models import Outbox
from tests.conftest import World, wait_until

pytestmark = pytest.mark.e2e


class Output:
    """The lines a spawned daemon writes, read in a thread as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stream = process.stdout
        self.thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self.thread.start()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def web_address(self) -> str:
        wait_until(lambda: "event=web_listening" in self.text, timeout=60)
        found = re.search(r"event=web_listening .* on (http://\S+)", self.text)
        assert found is not None, self.text
        return found[1]


@contextmanager
def daemon(world: World, env: dict[str, str] | None = None
           ) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    """`mailbot run` as a process; SIGTERM at the end (SIGKILL if it does not stop)."""
    process = world.spawn("run", env=env)
    output = Output(process)
    try:
        yield process, output
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        output.thread.join(timeout=10)


class NotifySocket:
    """What systemd's NOTIFY_SOCKET receives (sd_notify(3)): one datagram per message."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, str]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))

    def messages(self, text: str, since: float = 0.0) -> list[float]:
        return [at for at, message in self.received if message == text and at >= since]

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        self.sock.close()


def test_health_after_run_once_is_ok_a_failed_row_warns_an_unmigrated_database_is_critical(
        world: World) -> None:
    world.deliver(world.brief(subject="Sundhedstjek"))
    ran = world.cli("run", "--once")
    assert ran.returncode == 0, ran.stderr
    healthy = world.cli("health")
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.stdout.rstrip().endswith("mailbot is OK")
    assert "ok       imap: the last login worked" in healthy.stdout
    assert healthy.stderr == ""  # read-only: no log lines either

    with Session(world.bot().engine) as session:
        row = session.exec(select(Outbox).where(Outbox.kind == "receipt")).one()
        row.state = "failed"
        session.add(row)
        session.commit()
    warned = world.cli("health", "--json")
    assert warned.returncode == 1, warned.stdout
    assert '"name": "outbox_failed",\n      "status": "warning"' in warned.stdout

    engine = make_engine(world.settings().database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alembic_version")  # as if never migrated
    engine.dispose()
    critical = world.cli("health")
    assert critical.returncode == 2, critical.stdout
    assert "critical database:" in critical.stdout
    assert "run `mailbot migrate`" in critical.stdout


RECEIPT_SENT = 'mailbot_mails_sent_total{kind="receipt",outcome="sent"} 1.0'
FIVE_SENT = 'mailbot_outbox_rows{state="sent"} 5.0'


def test_a_scrape_after_a_brief_counts_it_and_the_daemon_tells_systemd_ready_and_stopping(
        world: World) -> None:
    notify = NotifySocket(world.tmp)
    try:
        with daemon(world, env={"NOTIFY_SOCKET": str(notify.path)}) as (process, output):
            address = output.web_address()
            wait_until(lambda: notify.messages("READY=1"), timeout=30)
            world.deliver(world.brief(subject="Målt sag"))
            wait_until(lambda: len(world.smtp.to(world.applicant)) == 1, timeout=60)
            # the four review requests go out after the receipt: a scrape
            # between them counts fewer than five (seen on PostgreSQL, whose commits are slower)
            wait_until(lambda: all(line in httpx.get(address + "/metrics", timeout=10).text
                                   for line in (RECEIPT_SENT, FIVE_SENT)), timeout=30)
            scraped = httpx.get(address + "/metrics", timeout=10).text.splitlines()
            health = httpx.get(address + "/healthz", timeout=10)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        assert 'mailbot_mails_ingested_total{kind="brief",state="processed"} 1.0' in scraped
        assert "mailbot_cases_opened_total 1.0" in scraped
        assert "mailbot_receipt_latency_seconds_count 1.0" in scraped
        assert FIVE_SENT in scraped  # receipt, 4 reviews
        assert any(line.startswith("mailbot_sweep_duration_seconds_count ")
                   and float(line.split()[1]) >= 1 for line in scraped)
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        assert notify.messages("STOPPING=1")
        assert process.returncode == 0, output.text
    finally:
        notify.close()


def test_a_taken_web_port_is_one_error_line_and_the_daemon_runs_on(world: World) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        world.write_config(web={"listen": f"127.0.0.1:{port}"})
        with daemon(world) as (process, output):
            world.deliver(world.brief(subject="Porten er optaget"))
            wait_until(lambda: len(world.smtp.to(world.applicant)) == 1, timeout=60)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    [error] = [line for line in output.lines if " ERROR " in line]
    assert f"event=web_unavailable {world.config_path}: [web.listen] cannot listen on " \
           f"127.0.0.1:{port}" in error
    assert "mailbot runs on without /healthz, /metrics and the overview" in error
    assert "Fix: stop what uses the port, or choose another HOST:PORT in [web] listen" in error
    assert process.returncode == 0, output.text


def test_watchdog_pings_come_while_the_loop_lives_and_stop_when_it_is_stuck(
        world: World) -> None:
    """WATCHDOG_USEC = 2 s: a ping every second while the IDLE loop beats; a mail on which
    the sweep hangs (MAILBOT_HANG_AT=while_handling) stops them, as systemd needs to
    restart it."""
    notify = NotifySocket(world.tmp)
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000",
           "MAILBOT_HANG_AT": "while_handling", "MAILBOT_HANG_IF": "HANG-MARKER"}
    try:
        with daemon(world, env=env) as (process, output):
            wait_until(lambda: notify.messages("READY=1"), timeout=30)
            ready = notify.messages("READY=1")[0]
            wait_until(lambda: len(notify.messages("WATCHDOG=1", ready)) >= 3, timeout=30)
            world.deliver(world.brief(subject="Hænger", body="Hvem: HANG-MARKER\n"))
            wait_until(lambda: "event=watchdog_silent" in output.text, timeout=60)
            silent = time.monotonic()
            time.sleep(4.0)
            assert notify.messages("WATCHDOG=1", silent) == []
            assert process.poll() is None  # alive but stuck: systemd's to kill
            process.kill()
    finally:
        notify.close()


def test_json_logs_of_a_real_run_name_the_case_and_the_mail_of_each_line(world: World) -> None:
    """`[bot] log_format = "json"`: every line of `run --once` is one JSON object, and the line
    that opens the case names its ref and the brief's Message-ID (set where the mail is
    handled), with a CPR number in the subject redacted."""
    world.write_config(bot={"log_format": "json"})
    world.deliver(world.brief(subject="Sag om 010190-1234", message_id="<json-log@kommune.test>"))
    ran = world.cli("run", "--once")
    assert ran.returncode == 0, ran.stderr
    lines = [json.loads(line) for line in ran.stderr.splitlines()]
    assert lines and all({"time", "level", "event", "case_ref", "message_id"} <= set(line)
                         for line in lines)
    [opened] = [line for line in lines if "opened from" in line["message"]]
    assert opened["case_ref"] and opened["case_ref"].startswith("ITP-")
    assert opened["message_id"] == "<json-log@kommune.test>"
    assert "010190-1234" not in ran.stderr
    swept = [line for line in lines if line["message"].startswith("swept:")]
    assert swept and swept[0]["case_ref"] is None  # outside the mail: no case


def test_a_secret_file_that_differs_from_the_databases_is_one_warning_at_start(
        world: World) -> None:
    """Trial 15 F12: a host whose data_dir/secret is not the secret in the database (an old
    host upgraded after another one migrated) is told once as `check`, `run --once` and `run`
    start: the file, the key bot.secret and the fix, never either secret."""
    assert world.cli("migrate").returncode == 0  # the database's secret: a random one
    (world.tmp / "data").mkdir(exist_ok=True)
    secret_file = world.tmp / "data" / "secret"
    secret_file.write_text("cd" * 32 + "\n")
    engine = make_engine(world.settings().database_url)
    with engine.connect() as conn:
        stored = str(conn.exec_driver_sql("SELECT value FROM bot_secret").scalar())
    engine.dispose()
    for args in (("check",), ("run", "--once")):
        ran = world.cli(*args)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        _one_secret_warning(ran.stdout + ran.stderr, secret_file, stored)
    daemon = world.spawn("run")
    lines: list[str] = []
    try:
        assert daemon.stdout is not None
        for line in daemon.stdout:
            lines.append(line)
            if "mailbot started" in line:
                break
    finally:
        daemon.send_signal(signal.SIGTERM)
        rest, _ = daemon.communicate(timeout=30)
    _one_secret_warning("".join(lines) + rest, secret_file, stored)


def _one_secret_warning(output: str, secret_file: Path, stored: str) -> None:
    warnings = [line for line in output.splitlines() if "is not the secret in the database"
                in line]
    assert len(warnings) == 1, output
    assert "WARNING" in warnings[0] and str(secret_file) in warnings[0], warnings
    assert "bot.secret" in warnings[0] and "Fix:" in warnings[0], warnings
    assert "cd" * 32 not in output and stored not in output
