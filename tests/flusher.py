"""A second sending process for the outbox tests (tests/e2e/test_outbox_takeover.py): builds
the bot from a config file and calls Sender.recover and Sender.flush, nothing else. Test
harness only.

Not `mailbot send`: that command takes the leader lock (the file lock in data_dir, or on
PostgreSQL the advisory lock), so two of them never flush at once. Two processes flush the
same outbox at once only around a takeover: the old leader still in its SMTP transaction
when the new one starts. This script is that second process without the lock.

    python -m tests.flusher CONFIG [--later SECONDS] [--gate FILE]

--later: the clock runs SECONDS ahead (a lease that has run out for this process).
--gate: print "ready", then wait for FILE to exist before sending (two flushers start
together). The last line printed is the FlushReport as JSON, with this process's lease
owner.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from mailbot.app import build_bot
from mailbot.clock import Clock, utcnow
from mailbot.config import load_settings
from mailbot.redact import configure_logging


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("--later", type=float, default=0.0)
    parser.add_argument("--gate", type=Path)
    args = parser.parse_args(argv)
    configure_logging("INFO")
    bot = build_bot(load_settings(args.config),
                    Clock(utcnow() + timedelta(seconds=args.later)))
    if args.gate is not None:
        print("ready", flush=True)
        while not args.gate.exists():
            time.sleep(0.01)
    bot.sender.recover(bot.clock.now())  # as a daemon's start does (service.Service)
    report = bot.sender.flush(bot.clock.now())
    print(json.dumps({**asdict(report), "owner": bot.sender.owner}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
