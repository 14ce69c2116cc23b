"""The systemd notify protocol of mailbot.watchdog on a real AF_UNIX datagram socket given as
NOTIFY_SOCKET (as systemd gives it): READY=1, WATCHDOG=1 only while the heartbeat is fresh,
STOPPING=1. The heartbeat is ours and driven by the test; the daemon's own loop is the e2e
test's (tests/e2e/test_operations.py)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from mailbot.watchdog import Heartbeat, Watchdog, watchdog_seconds


def _drain(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_pings_come_while_the_heartbeat_is_fresh_and_stop_when_it_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "400000")  # 0.4 s: a ping every 0.2 s
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        heartbeat = Heartbeat()
        watchdog = Watchdog(heartbeat)
        watchdog.ready()
        for _ in range(12):  # a live loop: it beats every 0.1 s for 1.2 s
            heartbeat.beat()
            time.sleep(0.1)
        alive = _drain(sock)
        assert alive[0] == "READY=1"
        assert alive[1:].count("WATCHDOG=1") >= 3
        time.sleep(0.8)  # the loop stops beating: the last pings while it was still fresh
        _drain(sock)
        time.sleep(1.0)
        assert _drain(sock) == []
        for _ in range(8):  # alive again: the pings come back
            heartbeat.beat()
            time.sleep(0.1)
        assert "WATCHDOG=1" in _drain(sock)
        watchdog.stopping()
        assert _drain(sock) == ["STOPPING=1"]


def test_the_watchdog_interval_is_watchdog_usec_for_this_process_only() -> None:
    assert watchdog_seconds({}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    mine = {"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_seconds(mine) == 5.0
    assert watchdog_seconds({**mine, "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "0"}) is None


def test_once_the_daemon_names_its_loop_other_threads_do_not_feed_the_watchdog() -> None:
    """The scheduler's outbox job runs the same sending code as the loop: its beats must not
    hide a loop that is stuck."""
    heartbeat = Heartbeat()
    heartbeat.last = 0.0
    loop = threading.Thread(target=heartbeat.beat)
    heartbeat.loop = loop
    heartbeat.beat()  # this thread is not the loop
    assert heartbeat.last == 0.0
    loop.start()
    loop.join()
    assert heartbeat.last > 0.0
