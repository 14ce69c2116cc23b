"""`mailbot health` and its thresholds (issue #14, SCENARIOS R14): each check judged from real
rows in a real SQLite database, the exit code of the monitoring-plugin convention (0 ok,
1 warning, 2 critical), `--json`, and the `[health]` keys' validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from mailbot.config import load_settings
from mailbot.db import make_engine
from mailbot.health import CRITICAL, OK, WARNING, judge, note_imap, note_sweep
from mailbot.models import CircuitBreaker, Outbox, RawMessage
from mailbot.vocabulary import ImapState
from tests.unit.conftest import MailbotRunner, migrated_database, write_config

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def healthy(tmp_path: Path) -> Path:
    """A config and a database whose last sweep and login were a minute before NOW."""
    config = write_config(tmp_path)
    url = migrated_database(tmp_path / "data")
    engine = make_engine(url)
    note_imap(engine, ImapState.CONNECTED, NOW - timedelta(minutes=1))
    note_sweep(engine, NOW - timedelta(minutes=1), 0.4)
    return config


def _statuses(config: Path, now: datetime = NOW) -> dict[str, int]:
    settings = load_settings(config, environ={})
    report = judge(settings, make_engine(settings.database_url), now)
    return {check.name: check.status for check in report.checks}


def _add(config: Path, *rows: object) -> None:
    settings = load_settings(config, environ={})
    with Session(make_engine(settings.database_url)) as session:
        for row in rows:
            session.add(row)
        session.commit()


def _outbox(number: int, state: str, created: datetime) -> Outbox:
    return Outbox(kind="receipt", message_id=f"<r{number}@kommune.dk>",
                  recipients=["mette@kommune.dk"], raw=b"", state=state,
                  created_at=created, next_attempt_at=created)


def _quarantined(uid: int, fetched: datetime) -> RawMessage:
    return RawMessage(folder="INBOX", uidvalidity=1, uid=uid, msgid_hash=f"h{uid}",
                      raw_sha256="", content_sha256="", size=10, fetched_at=fetched,
                      state="quarantined")


def test_a_fresh_sweep_and_login_are_ok_and_exit_0(healthy: Path,
                                                    mailbot: MailbotRunner) -> None:
    assert set(_statuses(healthy).values()) == {OK}
    ran = mailbot("health", "--config", str(healthy), "--now", "2026-03-02T11:00+01:00")
    assert ran.code == 0, ran.out
    assert "database: reachable, at revision" in ran.out
    assert ran.out.rstrip().endswith("mailbot is OK")


def test_the_sweep_age_is_graded_by_the_health_thresholds(healthy: Path) -> None:
    assert _statuses(healthy, NOW + timedelta(minutes=13))["sweep"] == OK
    assert _statuses(healthy, NOW + timedelta(minutes=15))["sweep"] == WARNING
    assert _statuses(healthy, NOW + timedelta(minutes=60))["sweep"] == CRITICAL
    custom = write_config(healthy.parent, ("# [health]\n# sweep_warning_minutes = 15",
                                           "[health]\nsweep_warning_minutes = 30"))
    assert _statuses(custom, NOW + timedelta(minutes=15))["sweep"] == OK


def test_a_failed_outbox_row_is_a_warning_and_a_cancelled_one_is_not(
        healthy: Path, mailbot: MailbotRunner) -> None:
    _add(healthy, _outbox(1, "cancelled", NOW - timedelta(days=2)))
    assert _statuses(healthy)["outbox_failed"] == OK
    _add(healthy, _outbox(2, "failed", NOW - timedelta(days=2)),
         _outbox(3, "uncertain", NOW - timedelta(days=2)))
    statuses = _statuses(healthy)
    assert statuses["outbox_failed"] == statuses["outbox_uncertain"] == WARNING
    ran = mailbot("health", "--json", "--config", str(healthy),
                  "--now", "2026-03-02T11:00+01:00")
    assert ran.code == 1
    data = json.loads(ran.out)
    assert data["status"] == "warning" and data["code"] == 1
    failed = next(c for c in data["checks"] if c["name"] == "outbox_failed")
    assert failed == {"name": "outbox_failed", "status": "warning",
                      "detail": "1 failed: `mailbot outbox --state failed`"}


def test_the_oldest_unsent_row_is_graded_by_its_age(healthy: Path) -> None:
    _add(healthy, _outbox(1, "pending", NOW - timedelta(minutes=10)))
    assert _statuses(healthy)["outbox_pending"] == OK
    _add(healthy, _outbox(2, "pending", NOW - timedelta(minutes=45)))
    assert _statuses(healthy)["outbox_pending"] == WARNING
    _add(healthy, _outbox(3, "sending", NOW - timedelta(hours=5)))
    assert _statuses(healthy)["outbox_pending"] == CRITICAL


def test_quarantined_mail_counts_only_for_the_last_day(healthy: Path) -> None:
    _add(healthy, *[_quarantined(uid, NOW - timedelta(days=3)) for uid in range(1, 20)])
    assert _statuses(healthy)["quarantine"] == OK
    _add(healthy, _quarantined(50, NOW - timedelta(hours=2)))
    assert _statuses(healthy)["quarantine"] == WARNING
    _add(healthy, *[_quarantined(uid, NOW - timedelta(hours=1)) for uid in range(60, 69)])
    assert _statuses(healthy)["quarantine"] == CRITICAL


def test_an_open_circuit_breaker_and_a_refused_login_are_critical(healthy: Path) -> None:
    _add(healthy, CircuitBreaker(opened_at=NOW - timedelta(minutes=5), reason="200 mails"))
    assert _statuses(healthy)["circuit_breaker"] == CRITICAL
    settings = load_settings(healthy, environ={})
    engine = make_engine(settings.database_url)
    note_imap(engine, ImapState.UNREACHABLE, NOW, "connection refused")
    assert _statuses(healthy)["imap"] == WARNING
    note_imap(engine, ImapState.REFUSED, NOW, "imap.password: login refused")
    report = judge(settings, engine, NOW + timedelta(minutes=3))
    [imap] = [c for c in report.checks if c.name == "imap"]
    assert imap.status == CRITICAL
    assert imap.detail == "login refused for 3 min: imap.password: login refused"


def test_disk_space_is_graded_by_the_free_megabytes(healthy: Path) -> None:
    """The thresholds are set around this machine's real free space under data_dir."""
    import shutil

    free_mb = shutil.disk_usage(healthy.parent / "data").free // (1024 * 1024)
    above = write_config(healthy.parent, ("# [health]\n# sweep_warning_minutes = 15",
                                          f"[health]\ndisk_warning_mb = {free_mb + 100}\n"
                                          f"disk_critical_mb = {max(free_mb - 100, 0)}"))
    assert _statuses(above)["disk"] == WARNING
    below = write_config(healthy.parent, ("# [health]\n# sweep_warning_minutes = 15",
                                          f"[health]\ndisk_warning_mb = {free_mb + 200}\n"
                                          f"disk_critical_mb = {free_mb + 100}"))
    assert _statuses(below)["disk"] == CRITICAL


def test_an_unmigrated_database_is_critical_exit_2_and_nothing_is_created(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path)
    (tmp_path / "data").mkdir()
    make_engine(f"sqlite:///{tmp_path / 'data' / 'mailbot.sqlite3'}").connect().close()
    ran = mailbot("health", "--config", str(config))
    assert ran.code == 2
    assert "critical database:" in ran.out and "run `mailbot migrate`" in ran.out
    assert "revision none (never migrated)" in ran.out
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["mailbot.sqlite3"]


def test_the_health_thresholds_must_come_before_their_critical_ones(tmp_path: Path,
                                                                    mailbot: MailbotRunner
                                                                    ) -> None:
    config = write_config(tmp_path, ("# [health]\n# sweep_warning_minutes = 15",
                                     "[health]\nsweep_warning_minutes = 90"))
    ran = mailbot("health", "--config", str(config))
    assert ran.code == 2
    assert ran.err.strip() == (
        f"{config}: [health.sweep_warning_minutes] is 90, not below "
        "health.sweep_critical_minutes (60). Fix: set health.sweep_warning_minutes lower than "
        "health.sweep_critical_minutes")


def test_the_leader_check_names_the_holder_of_the_lock_and_a_free_lock_is_ok(
        healthy: Path) -> None:
    """Read from /proc/locks: the real flock of mailbot.leadership.file_lock, never taken by
    the check itself (a daemon starting meanwhile must not find it held)."""
    import os

    from mailbot.leadership import file_lock

    settings = load_settings(healthy, environ={})
    engine = make_engine(settings.database_url)
    with file_lock(settings.bot.data_dir):
        [held] = [c for c in judge(settings, engine, NOW).checks if c.name == "leader"]
        assert (held.status, held.detail) == (
            OK, f"process {os.getpid()} (this process) holds "
                f"{settings.bot.data_dir / 'mailbot.lock'}")
    [free] = [c for c in judge(settings, engine, NOW).checks if c.name == "leader"]
    assert free.status == OK and free.detail.startswith("nobody holds")


def test_a_deleted_or_released_mail_is_no_longer_quarantined(healthy: Path) -> None:
    from mailbot.metrics import registry_for

    hour_ago = NOW - timedelta(hours=1)
    deleted = _quarantined(1, hour_ago)
    deleted.purged_at = NOW  # `mailbot quarantine delete`'s tombstone
    released = _quarantined(2, hour_ago)
    released.state = "released"
    _add(healthy, deleted, released)
    assert _statuses(healthy)["quarantine"] == OK
    engine = make_engine(load_settings(healthy, environ={}).database_url)
    assert registry_for(engine).get_sample_value("mailbot_quarantined_mails") == 0
    _add(healthy, _quarantined(3, hour_ago))
    assert _statuses(healthy)["quarantine"] == WARNING
    assert registry_for(engine).get_sample_value("mailbot_quarantined_mails") == 1


def test_a_sweep_in_the_future_is_a_warning_not_negative_minutes(healthy: Path) -> None:
    settings = load_settings(healthy, environ={})
    engine = make_engine(settings.database_url)
    note_sweep(engine, NOW + timedelta(hours=50), 0.4)  # a run with `--now +50 h`
    [sweep] = [c for c in judge(settings, engine, NOW).checks if c.name == "sweep"]
    assert sweep.status == WARNING
    assert sweep.detail.startswith("the last sweep is in the future (the clocks differ?): "
                                   "it ended 3000 min after now")
    note_sweep(engine, NOW + timedelta(seconds=5), 0.4)  # a few seconds' skew
    [sweep] = [c for c in judge(settings, engine, NOW).checks if c.name == "sweep"]
    assert (sweep.status, sweep.detail) == (OK, "last completed 0 min ago, took 0.4 s")


def test_a_missing_data_dir_is_one_critical_and_the_disk_is_measured_above_it(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path)
    ran = mailbot("health", "--config", str(config))
    assert ran.code == 2
    assert ran.out.count("critical ") == 1 and "critical database:" in ran.out
    assert f"MiB free under {tmp_path} (data_dir {tmp_path / 'data'} does not exist yet)" \
        in ran.out
