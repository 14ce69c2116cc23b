"""Memory over a large backlog (prints figures; not a test). Needs Dovecot (run as root).

    python tests/benchmarks/bench_batch.py [--counts 1000,10000] [--sizes 200] [--tracemalloc]

For each backlog in --counts and each imap.batch_size in --sizes, a fresh mailbox gets that
many waiting mails (written straight into its Maildir `new/`, as a delivery agent does:
seconds for 10,000), and a child process runs `mailbot run --once` in process (batch after
batch) until the folder is empty, printing its peak RSS (getrusage ru_maxrss). Each run has its
own process, so one peak cannot hide the other, and "flat memory" reads as the same peak for
1,000 and for 10,000 mails at the default batch size. With --tracemalloc the child also
prints the peak of Python allocations (tracemalloc slows it about threefold). The mails are
automatic (`Auto-Submitted: auto-generated`, 20 KB each): they are fetched, stored, parsed,
screened, recorded and moved like any mail, but open no case and send nothing, so the figure
is the intake's own.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mailbot.app import build_bot  # noqa: E402
from mailbot.clock import Clock  # noqa: E402
from mailbot.config import load_settings  # noqa: E402
from mailbot.db import migrate  # noqa: E402
from mailbot.mailworld import SmtpSink, read_mailbox, settings_dict, to_toml  # noqa: E402
from mailbot.redact import configure_logging  # noqa: E402
from mailbot.service import Service  # noqa: E402
from tests.dovecot import Dovecot, dovecot_available  # noqa: E402

BODY = ("Dette er en automatisk besked fra et fagsystem. " * 400 + "\r\n")  # about 20 KB


def fill(dovecot: Dovecot, user: str, count: int) -> None:
    """`count` mails in the user's INBOX, written as Maildir files (tmp/ then new/)."""
    maildir = dovecot.root / "mail" / user
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    stamp = int(time.time())
    for n in range(count):
        raw = (f"From: fagsystem@kommune.test\r\nTo: {user}@kommune.test\r\n"
               f"Subject: Kvittering {n}\r\nMessage-ID: <bench-{n}-{stamp}@kommune.test>\r\n"
               "Date: Mon, 30 Nov 2026 09:00:00 +0100\r\nAuto-Submitted: auto-generated\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
               f"{BODY}").encode()
        name = f"{stamp}.M{n}P{os.getpid()}.bench,S={len(raw)}"
        (maildir / "tmp" / name).write_bytes(raw)
        os.rename(maildir / "tmp" / name, maildir / "new" / name)
    for path in [maildir, *maildir.rglob("*")]:
        shutil.chown(path, "nobody", "nogroup")


def child(port: int, smtp_port: int, user: str, data_dir: Path, batch_size: int,
          trace: bool) -> None:
    """One `run --once` over the backlog; prints "rss_kb traced_peak_b seconds" (-1 untraced)."""
    configure_logging("WARNING")
    config = data_dir.parent / f"{user}.toml"
    config.write_text(to_toml(settings_dict(port, smtp_port, data_dir, f"{user}@kommune.test",
                                            user, imap={"batch_size": batch_size})))
    bot = build_bot(load_settings(config, environ={}), Clock())
    migrate(bot.engine)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    Service(bot).run_once()
    seconds = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else -1
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{rss_kb} {traced_peak} {seconds:.1f}")


def run(dovecot: Dovecot, sink: SmtpSink, root: Path, count: int, size: int,
        trace: bool) -> None:
    """Fill a fresh mailbox with `count` mails, drain it in a child, print one line."""
    user = f"batch{count}x{size}"
    fill(dovecot, user, count)
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(dovecot.port), str(sink.port), user,
         str(root / user), str(size), "1" if trace else "0"],
        capture_output=True, text=True, check=True)
    rss_kb, traced, seconds = out.stdout.split()[-3:]
    left = len(read_mailbox(dovecot.port, user, "INBOX"))
    traced_text = (f", tracemalloc peak {int(traced) / 1024 / 1024:.1f} MB" if trace else "")
    print(f"{count:6} waiting mails, imap.batch_size = {size}: peak RSS "
          f"{int(rss_kb) / 1024:.0f} MB{traced_text}, {seconds} s "
          f"({count / float(seconds):.0f} msg/s); {left} left in INBOX", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1000,10000")
    parser.add_argument("--sizes", default="200")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--child", nargs=6,
                        metavar=("PORT", "SMTP", "USER", "DIR", "BATCH", "TRACE"))
    args = parser.parse_args()
    if args.child:
        port, smtp, user, folder, batch, trace = args.child
        child(int(port), int(smtp), user, Path(folder), int(batch), trace == "1")
        return
    if not dovecot_available():
        sys.exit("needs Dovecot and root (apt-get install dovecot-imapd dovecot-lmtpd)")
    dovecot = Dovecot()
    dovecot.start()
    sink = SmtpSink()
    sink.start()
    root = Path(tempfile.mkdtemp(prefix="mailbot-bench-batch-"))
    try:
        for count in (int(c) for c in args.counts.split(",")):
            for size in (int(s) for s in args.sizes.split(",")):
                run(dovecot, sink, root, count, size, args.tracemalloc)

    finally:
        sink.stop()
        dovecot.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
