"""systemd's service watchdog (sd_notify(3), systemd.service(5) `Type=notify`,
`WatchdogSec=`): READY=1 once the daemon's loop runs, WATCHDOG=1 only while the sweep loop
is alive, STOPPING=1 on shutdown.

The sweep loop calls `HEARTBEAT.beat()` at each IDLE slice, each wait slice, each mail and
each outgoing mail; a pinger thread sends WATCHDOG=1 every half interval while the last beat
is younger than the interval systemd gave (WATCHDOG_USEC). A loop stuck in one step (a hung
sweep) stops the pings and systemd restarts the daemon; a long batch does not, since every
mail beats. Outside systemd (no NOTIFY_SOCKET) nothing is sent.
"""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger(__name__)


class Heartbeat:
    """The sweep loop's last sign of life (time.monotonic seconds). Cheap: one comparison
    and one assignment.

    `loop`: the thread of the sweep loop, once the daemon names it (Service._watch); from
    then on only it beats, so the scheduler's jobs, which share the outbox code that beats,
    cannot hide a stuck loop. Before that (`run --once`, the tests) any thread beats."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.loop: threading.Thread | None = None

    def beat(self) -> None:
        if self.loop is None or threading.current_thread() is self.loop:
            self.last = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.last


HEARTBEAT = Heartbeat()


def watchdog_seconds(environ: dict[str, str] | None = None) -> float | None:
    """The watchdog interval systemd asks for (WATCHDOG_USEC, microseconds), or None when
    there is none or it is meant for another process (WATCHDOG_PID; sd_watchdog_enabled(3))."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000


class Watchdog:
    """READY, WATCHDOG and STOPPING for systemd through sdnotify (a no-op without
    NOTIFY_SOCKET)."""

    def __init__(self, heartbeat: Heartbeat = HEARTBEAT) -> None:
        import sdnotify

        self.heartbeat = heartbeat
        self.notifier = sdnotify.SystemdNotifier()
        self.interval = watchdog_seconds()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._ping, name="watchdog", daemon=True)

    def ready(self) -> None:
        """The loop runs: READY=1, and the pings start when systemd asked for them. Safe to
        call again (a standby is ready while it waits, and again when it leads)."""
        self.heartbeat.last = time.monotonic()  # the start counts as life, whoever calls
        self.notifier.notify("READY=1")
        if self.interval is not None and not self.thread.is_alive():
            log.info("systemd watchdog: a ping every %.1f s while the sweep loop is alive",
                     self.interval / 2)
            self.thread.start()

    def stopping(self) -> None:
        self.stopped.set()
        self.notifier.notify("STOPPING=1")

    def _ping(self) -> None:
        assert self.interval is not None
        silent = False
        while not self.stopped.wait(self.interval / 2):
            if self.heartbeat.age() < self.interval:
                self.notifier.notify("WATCHDOG=1")
                silent = False
            elif not silent:
                silent = True
                log.error("event=watchdog_silent the sweep loop has shown no sign of life for "
                          "%.0f s; no watchdog ping, so systemd restarts mailbot",
                          self.heartbeat.age())
