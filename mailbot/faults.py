"""Named crash points for the crash-safety tests.

A test starts a real `mailbot run` subprocess with MAILBOT_CRASH_AT=<name>; when the process
reaches that point it kills itself with SIGKILL, exactly as an OOM kill or a power cut would.
Without the variable these calls do nothing.
"""

from __future__ import annotations

import os
import signal

CRASH_POINTS = ("after_fetch", "after_commit", "after_smtp", "building_agenda")


def crash_point(name: str) -> None:
    if os.environ.get("MAILBOT_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
