"""Intake benchmark (prints figures; not a test). Needs Dovecot (run as root).

    python tests/benchmarks/bench_intake.py [--latency N] [--backlog N]

1. Latency with IDLE: the daemon idles on Dovecot; each brief is delivered by LMTP and timed
   until its receipt reaches the SMTP server. Median and p95 over N briefs (default 50).
2. Backlog: N briefs (default 500) wait in the mailbox. First the floor - a bare imapclient
   fetch of all N plus mail-parser parsing each - then `run --once` on the same mailbox.
   Messages per second for both and the ratio bot/floor, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import mailparser
from imapclient import IMAPClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mailbot.app import build_bot  # noqa: E402
from mailbot.clock import Clock  # noqa: E402
from mailbot.config import load_settings  # noqa: E402
from mailbot.db import migrate  # noqa: E402
from mailbot.mailworld import PASSWORD, SmtpSink, settings_dict, to_toml  # noqa: E402
from mailbot.redact import configure_logging  # noqa: E402
from mailbot.service import Service  # noqa: E402
from tests.dovecot import Dovecot, dovecot_available  # noqa: E402
from tests.mails import brief  # noqa: E402


def make_bot(dovecot: Dovecot, sink: SmtpSink, root: Path, address: str) -> Service:
    config = root / f"{address}.toml"
    config.write_text(to_toml(settings_dict(dovecot.port, sink.port, root / address, address,
                                            dovecot.user(address))))
    bot = build_bot(load_settings(config, environ={}), Clock())
    migrate(bot.engine)
    return Service(bot)


def latency(dovecot: Dovecot, sink: SmtpSink, root: Path, count: int) -> list[float]:
    address = "latency@kommune.test"
    service = make_bot(dovecot, sink, root, address)
    thread = threading.Thread(target=service.run_forever, daemon=True)
    thread.start()
    time.sleep(1.0)  # connected and idling
    samples = []
    for i in range(count):
        applicant = f"lat{i}@kommune.test"
        dovecot.deliver(address, brief(sender=applicant, to=address))
        started = time.perf_counter()
        while not sink.to(applicant):
            time.sleep(0.002)
        samples.append(time.perf_counter() - started)
    service.stop()
    thread.join(timeout=30)
    return samples


def floor(dovecot: Dovecot, user: str, count: int) -> float:
    started = time.perf_counter()
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False) as client:
        client.login(user, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        assert len(uids) == count, (len(uids), count)
        for start in range(0, len(uids), 50):
            data = client.fetch(uids[start:start + 50], ["BODY.PEEK[]"])
            for item in data.values():
                mailparser.parse_from_bytes(item[b"BODY[]"])
    return time.perf_counter() - started


def backlog(dovecot: Dovecot, sink: SmtpSink, root: Path,
            count: int) -> tuple[float, float, int]:
    address = "backlog@kommune.test"
    for i in range(count):
        dovecot.deliver(address, brief(sender=f"b{i}@kommune.test", to=address))
    floor_seconds = floor(dovecot, dovecot.user(address), count)
    service = make_bot(dovecot, sink, root, address)
    started = time.perf_counter()
    service.run_once()
    bot_seconds = time.perf_counter() - started
    sent = sum(1 for d in sink.received if d.recipients[0].startswith("b"))
    assert sent == count, f"{sent} receipts for {count} briefs"
    return floor_seconds, bot_seconds, len(sink.received)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=int, default=50)
    parser.add_argument("--backlog", type=int, default=500)
    args = parser.parse_args()
    if not dovecot_available():
        sys.exit("needs Dovecot and root (apt-get install dovecot-imapd dovecot-lmtpd)")
    configure_logging("WARNING")
    dovecot = Dovecot()
    dovecot.start()
    sink = SmtpSink()
    sink.start()
    root = Path(tempfile.mkdtemp(prefix="mailbot-bench-"))
    try:
        samples = latency(dovecot, sink, root, args.latency)
        samples.sort()
        p95 = samples[max(0, round(0.95 * len(samples)) - 1)]
        print(f"latency over {len(samples)} briefs (delivery -> receipt at SMTP server): "
              f"median {statistics.median(samples) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
              f"max {samples[-1] * 1000:.0f} ms")
        sink.received.clear()
        floor_s, bot_s, mails = backlog(dovecot, sink, root, args.backlog)
        n = args.backlog
        print(f"backlog of {n}: floor (imapclient fetch + mail-parser) {n / floor_s:.0f} msg/s "
              f"({floor_s:.2f} s); bot run --once {n / bot_s:.0f} msg/s ({bot_s:.2f} s); "
              f"ratio bot/floor {bot_s / floor_s:.2f}; the bot sent {mails} mails "
              f"(receipts and review requests with attachments)")
    finally:
        sink.stop()
        dovecot.cleanup()


if __name__ == "__main__":
    main()
