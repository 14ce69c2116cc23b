"""Named crash points for the crash-safety tests.

A test starts a real `mailbot run` subprocess with MAILBOT_CRASH_AT=<name>; when the process
reaches that point it kills itself with SIGKILL, exactly as an OOM kill or a power cut would.
With MAILBOT_CRASH_IF=<text> as well, it dies there only for a mail whose raw bytes contain
<text> (a "poison" mail: SCENARIOS R9; at after_smtp, the outgoing mail: O2). Without the
variables these calls do nothing.

MAILBOT_HANG_AT=<name> (with MAILBOT_HANG_IF=<text> likewise) makes the process stop there
for good instead, as a step that never returns would (a server that never answers, a
parser in an endless loop): the systemd watchdog test's stuck sweep loop.

MAILBOT_STOP_AT=<name> makes the process SIGSTOP itself the first time it reaches a crash
point of that name, frozen as a paused virtual machine or a host cut off from the network
would be, until the test sends SIGCONT: the outbox takeover tests (a second process takes
the frozen one's row over; the frozen one must then not finish the send).
"""

from __future__ import annotations

import os
import signal
import time

CRASH_POINTS = ("after_fetch", "after_commit", "after_smtp", "building_agenda",
                "while_handling", "before_data", "before_final_dot")


_stopped: set[str] = set()  # the points this process has stopped at (MAILBOT_STOP_AT)


def crash_point(name: str, data: bytes = b"") -> None:
    """SIGKILL this process at `name` when the test asked for it (and `data` holds the
    MAILBOT_CRASH_IF marker, when one is set); SIGSTOP it there once with MAILBOT_STOP_AT."""
    if os.environ.get("MAILBOT_STOP_AT") == name and name not in _stopped:
        _stopped.add(name)
        os.kill(os.getpid(), signal.SIGSTOP)
    if os.environ.get("MAILBOT_CRASH_AT") != name:
        return
    marker = os.environ.get("MAILBOT_CRASH_IF", "").encode()
    if not marker or marker in data:
        os.kill(os.getpid(), signal.SIGKILL)


def hang_point(name: str, data: bytes = b"") -> None:
    """Never return from `name` when the test asked for it (MAILBOT_HANG_AT, and
    MAILBOT_HANG_IF in `data` when set); the thread sleeps until the process ends."""
    if os.environ.get("MAILBOT_HANG_AT") != name:
        return
    marker = os.environ.get("MAILBOT_HANG_IF", "").encode()
    if not marker or marker in data:
        while True:
            time.sleep(60)
