"""/healthz and /metrics (issue #14, SCENARIOS R14) over real HTTP: the app served by
mailbot.web.server.WebServer on a free loopback port, asked with httpx; a real SQLite
database with real rows. A taken port is one ListenError, and `[web] listen` is validated."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from mailbot.app import Bot, build_bot
from mailbot.clock import Clock
from mailbot.config import load_settings
from mailbot.health import note_imap, note_sweep
from mailbot.models import CircuitBreaker, Outbox
from mailbot.vocabulary import ImapState
from mailbot.web.app import create_app
from mailbot.web.server import Listen, ListenError, WebServer, bind
from tests.unit.conftest import MailbotRunner, migrated_database, write_config

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def bot(tmp_path: Path) -> Bot:
    migrated_database(tmp_path / "data")
    settings = load_settings(write_config(tmp_path), environ={})
    bot = build_bot(settings, Clock(NOW), read_only=True)
    note_imap(bot.engine, ImapState.CONNECTED, NOW)
    note_sweep(bot.engine, NOW - timedelta(seconds=30), 1.5)
    return bot


@pytest.fixture
def served(bot: Bot) -> Iterator[str]:
    server = WebServer(create_app(bot, pages=False), bind(Listen.parse("127.0.0.1:0")))
    server.start()
    try:
        for _ in range(100):  # uvicorn starts in its thread
            try:
                httpx.get(server.address + "/healthz", timeout=2)
                break
            except httpx.TransportError:
                import time

                time.sleep(0.05)
        yield server.address
    finally:
        server.stop()


def test_healthz_is_200_with_every_check_while_healthy(served: str) -> None:
    answer = httpx.get(served + "/healthz", timeout=10)
    assert answer.status_code == 200
    data = answer.json()
    assert data["status"] == "ok"
    assert {c["name"] for c in data["checks"]} == {
        "database", "sweep", "imap", "outbox_pending", "outbox_failed", "outbox_uncertain",
        "quarantine", "circuit_breaker", "leader", "disk"}


def test_healthz_is_503_when_critical_and_200_on_a_warning(bot: Bot, served: str) -> None:
    with Session(bot.engine) as session:
        session.add(Outbox(kind="receipt", message_id="<f@k.dk>", recipients=["a@k.dk"],
                           raw=b"", state="failed", created_at=NOW, next_attempt_at=NOW))
        session.commit()
    warned = httpx.get(served + "/healthz", timeout=10)
    assert (warned.status_code, warned.json()["status"]) == (200, "warning")
    with Session(bot.engine) as session:
        session.add(CircuitBreaker(opened_at=NOW, reason="200 mails to applicants"))
        session.commit()
    critical = httpx.get(served + "/healthz", timeout=10)
    assert (critical.status_code, critical.json()["status"]) == (503, "critical")


def test_metrics_is_the_prometheus_text_format_with_the_database_gauges(bot: Bot,
                                                                        served: str) -> None:
    with Session(bot.engine) as session:
        for number, state in enumerate(("pending", "failed", "failed")):
            session.add(Outbox(kind="receipt", message_id=f"<m{number}@k.dk>",
                               recipients=["a@k.dk"], raw=b"", state=state, created_at=NOW,
                               next_attempt_at=NOW))
        session.commit()
    answer = httpx.get(served + "/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = answer.text.splitlines()
    assert 'mailbot_outbox_rows{state="failed"} 2.0' in lines
    assert 'mailbot_outbox_rows{state="pending"} 1.0' in lines
    assert 'mailbot_outbox_rows{state="sent"} 0.0' in lines
    assert "mailbot_quarantined_mails 0.0" in lines
    assert "mailbot_cases 0.0" in lines
    [last] = [line.split()[1] for line in lines
              if line.startswith("mailbot_last_sweep_timestamp_seconds ")]
    assert float(last) == (NOW - timedelta(seconds=30)).timestamp()
    assert not any("_created" in line for line in lines)  # no per-series creation times
    for family in ("mailbot_mails_ingested_total", "mailbot_cases_opened_total",
                   "mailbot_mails_sent_total", "mailbot_sweep_duration_seconds",
                   "mailbot_imap_reconnects_total", "mailbot_receipt_latency_seconds"):
        assert any(line.startswith(f"# TYPE {family} ")
                   for line in lines), family


def test_a_taken_port_is_one_listen_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind(Listen(host="127.0.0.1", port=port))


@pytest.mark.parametrize("value", ["8025", "localhost", "127.0.0.1:99999", ":8025",
                                   "http://127.0.0.1:8025", "127.0.0.1:8025/", "::1:8025",
                                   "[not-v6]:8025", "300.1.1.1:8025", "foo bar:8025"])
def test_a_listen_address_that_is_not_host_port_is_a_config_error(
        tmp_path: Path, mailbot: MailbotRunner, value: str) -> None:
    config = write_config(tmp_path, ('# [web]\n# listen = "127.0.0.1:8025"',
                                      f'[web]\nlisten = "{value}"'))
    ran = mailbot("health", "--config", str(config))
    assert ran.code == 2
    assert ran.err.startswith(f"{config}: [web.listen] {value!r} is not HOST:PORT")
    assert 'Fix: write HOST:PORT, e.g. "127.0.0.1:8025"' in ran.err


@pytest.mark.parametrize("value", ["localhost:8025", "mailbot.kommune.dk:0", "[::1]:0",
                                   "0.0.0.0:8025"])
def test_a_plain_host_and_port_pass(value: str) -> None:
    assert Listen.parse(value).port in (0, 8025)


def test_mailbot_web_names_the_environment_variable_that_set_listen(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path)
    migrated_database(tmp_path / "data")
    ran = mailbot("web", "--config", str(config), env={"MAILBOT_WEB__LISTEN": ""})
    assert (ran.code, ran.err) == (2, "environment: [MAILBOT_WEB__LISTEN] is empty: the web "
                                      'endpoints are off. Fix: set it to HOST:PORT, e.g. '
                                      '"127.0.0.1:8025"\n')
