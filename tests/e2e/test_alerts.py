"""The operator's alerts (issue #10, item 7) against Dovecot and aiosmtpd: one mail per kind of
incident, rate-limited, never answered, never looping, and an ERROR line for every incident."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlmodel import Session, col, select

from mailbot.models import Alert, Outbox, RawMessage
from mailbot.vocabulary import Incident
from tests.conftest import World
from tests.e2e.records import case_count, rows

pytestmark = pytest.mark.e2e


def operator_of(world: World) -> str:
    return f"drift-{world.applicant}"


def with_operator(world: World, alert_hours: float = 6, **extra: dict[str, object]) -> str:
    operator = operator_of(world)
    world.write_config(operator={"addresses": [operator], "alert_hours": alert_hours}, **extra)
    return operator


def run_until_alive(world: World, env: dict[str, str]) -> str:
    """`run --once` restarted after each death, as a supervisor would; returns all stderr."""
    logs = ""
    for _ in range(10):
        result = world.cli("run", "--once", env=env)
        logs += result.stderr
        if result.returncode == 0:
            return logs
        assert result.returncode == -signal.SIGKILL, result.stderr
    raise AssertionError("the daemon never got past the poison mail")


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_two_poison_mails_give_two_error_lines_and_one_mail(world: World) -> None:
    operator = with_operator(world)
    for subject in ("Giftig 1", "Giftig 2"):
        world.deliver(world.brief(subject=subject, body="Hvem: POISON-MARKER\n"))
    world.deliver(world.brief(subject="Sund"))
    logs = run_until_alive(world, {"MAILBOT_CRASH_AT": "while_handling",
                                   "MAILBOT_CRASH_IF": "POISON-MARKER"})
    assert logs.count("event=poison_mail") == 2
    [alert] = world.received_by(operator)
    assert alert["Auto-Submitted"] == "auto-generated"
    assert "karantæne" in str(alert["Subject"])
    text = text_of(alert)
    assert "died 3 times" in text and "mailbot messages --state quarantined" in text
    with Session(world.bot().engine) as session:
        row = session.get(Alert, "poison_mail")
        assert row is not None and row.since_mail == 1  # the second one waits for the next mail
    [receipt] = world.received_by(world.applicant)  # the daemon went on
    assert "Sund" in str(receipt["Subject"])


def test_the_next_mail_after_the_interval_counts_what_happened_meanwhile(
        world: World) -> None:
    operator = with_operator(world, alert_hours=1)
    now = world.bot().clock.now()
    for minutes in (0, 10, 20):
        world.bot(now + timedelta(minutes=minutes)).alerts.raise_alert(
            Incident.OUTBOX_FAILURES, f"test incident at +{minutes} min")
    later = world.bot(now + timedelta(hours=1, minutes=1))
    later.alerts.raise_alert(Incident.OUTBOX_FAILURES, "after the hour")
    later.sender.flush(later.clock.now())
    first, second = world.received_by(operator)
    assert "+0 min" in text_of(first)
    assert "after the hour" in text_of(second) and "2 gange mere" in text_of(second)


def test_a_reply_to_an_alert_is_recorded_and_not_answered(world: World) -> None:
    operator = with_operator(world, limits={"breaker_mails": 1, "breaker_minutes": 10})
    for number in range(3):
        world.deliver(world.brief(subject=f"Forslag {number}", attachments=()))
    assert world.cli("run", "--once").returncode == 0
    [alert] = world.received_by(operator)
    assert "pause" in str(alert["Subject"])
    reply = world.brief(sender=f"Drift <{operator}>", subject=f"SV: {alert['Subject']}",
                        attachments=(), body="Det kigger jeg på.\n",
                        headers={"In-Reply-To": str(alert["Message-ID"]).strip()})
    world.deliver(reply)
    assert world.cli("run", "--once").returncode == 0
    assert len(world.received_by(operator)) == 1
    with Session(world.bot().engine) as session:
        last = session.exec(select(RawMessage).order_by(col(RawMessage.id).desc())).first()
        assert last is not None and last.state == "ignored"


def test_a_failed_alert_raises_no_alert_about_itself(world: World) -> None:
    operator = with_operator(world)
    world.smtp.rcpt_codes = {world.applicant.lower(): 550, operator.lower(): 550}
    world.deliver(world.brief(attachments=()))
    result = world.cli("run", "--once")
    assert result.returncode == 0, result.stderr
    world.cli("run", "--once")
    assert result.stderr.count("event=outbox_failures") == 1  # the receipt, not the alert
    assert world.received_by(operator) == []


def test_mail_from_the_operator_that_names_no_case_opens_nothing(world: World) -> None:
    """A ticket system behind the operator's address answers an alert with a subject of its
    own, and In-Reply-To only: no case, no receipt, no loop."""
    operator = with_operator(world, limits={"breaker_mails": 1, "breaker_minutes": 10})
    for number in range(3):
        world.deliver(world.brief(subject=f"Forslag {number}", attachments=()))
    assert world.cli("run", "--once").returncode == 0
    [alert] = world.received_by(operator)
    world.deliver(world.brief(sender=f"Helpdesk <{operator}>", attachments=(),
                              subject="Sag 4711 oprettet", body="Vi har oprettet sag 4711.\n",
                              headers={"In-Reply-To": str(alert["Message-ID"]).strip()}))
    world.deliver(world.brief(sender=f"Helpdesk <{operator}>", attachments=(),
                              subject="Ugentlig statistik", body="Hvem: ingen\n"))
    cases_before = case_count(world)
    assert world.cli("run", "--once").returncode == 0
    assert case_count(world) == cases_before
    assert len(world.received_by(operator)) == 1
    assert [r.state for r in rows(world)[-2:]] == ["ignored", "ignored"]


def test_an_smtp_outage_of_a_quarter_of_an_hour_is_one_alert_and_one_recovery(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    operator = with_operator(world)
    world.smtp.stop()
    world.deliver(world.brief(attachments=()))
    bot = world.run_once()
    now = bot.clock.now()
    assert "event=smtp_failing" not in caplog.text  # a short outage is no incident
    for minutes in (16, 17, 30):
        bring_forward(world, now + timedelta(minutes=minutes))
        bot.sender.flush(now + timedelta(minutes=minutes))
    assert caplog.text.count("event=smtp_failing") == 1
    world.smtp.start()
    bring_forward(world, now + timedelta(minutes=31))
    bot.sender.flush(now + timedelta(minutes=31))
    assert "event=smtp_recovered" in caplog.text
    [alert] = world.received_by(operator)
    assert "SMTP" in text_of(alert) and "unavailable since" in text_of(alert)
    assert len(world.received_by(world.applicant)) == 1


def bring_forward(world: World, when: datetime) -> None:
    """Make every waiting outbox row due at `when` (the retry backoff would wait longer)."""
    with Session(world.bot().engine) as session:
        for row in session.exec(select(Outbox).where(Outbox.state == "pending")):
            row.next_attempt_at = when
            session.add(row)
        session.commit()
