"""Backend benchmark (prints figures; not a test). Needs Dovecot (run as root) and
PostgreSQL (Debian's `postgresql` package; tests/postgres.py starts a private cluster).

    python tests/benchmarks/bench_backends.py [--briefs N] [--rounds R]

The same N complete briefs (default 300; tests/mails.py, four attachments each, so every
brief opens a case and sends five mails: the receipt and four review requests) wait in a
mailbox of a real Dovecot for each backend; then a real `mailbot run --once` subprocess
drains it:

- sqlite / files: the default single host (SQLite in data_dir, raw mail in data_dir/blobs);
- postgresql / database: the two-host default (raw mail and attachments in the blob table);
- postgresql / files: PostgreSQL with the blobs on local disk, to show what the database
  blob store costs.

The PostgreSQL cluster runs with fsync, synchronous_commit and full_page_writes ON (the
test suite's cluster turns them off), on the same disk as the SQLite file: each commit is
durable as in production. Migration is done before the clock starts; the wall time includes
the process start (about 0.3 s). One table: briefs/s, mails sent/s, wall seconds and the CPU
seconds of the mailbot process (the rest is waiting: on the database's fsync, the servers).
With --rounds R > 1 each backend runs R times (a fresh mailbox and database each) and the
median is shown.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mailbot.mailworld import SmtpSink, settings_dict, to_toml  # noqa: E402
from tests.dovecot import Dovecot, dovecot_available  # noqa: E402
from tests.mails import brief  # noqa: E402
from tests.postgres import Postgres, postgres_available  # noqa: E402

BACKENDS = (("sqlite", "files"), ("postgresql", "database"), ("postgresql", "files"))
_TEST_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
_DURABLE_OPTIONS = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"


class DurablePostgres(Postgres):
    """The test harness's cluster with production durability: every commit fsync'd."""

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        changed = [str(a).replace(_TEST_OPTIONS, _DURABLE_OPTIONS) for a in args]
        if "start" in changed:
            assert any(_DURABLE_OPTIONS in a for a in changed), \
                "tests/postgres.py's options changed: update bench_backends.py"
        return super()._run(*changed)


@dataclass
class Figures:
    backend: str
    blob_store: str
    wall: float  # seconds of `mailbot run --once`
    cpu: float  # user + system seconds of that process
    mails: int  # mails the SMTP server accepted

    def briefs_per_second(self, briefs: int) -> float:
        return briefs / self.wall


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "mailbot.cli", *args, "--config",
                           str(config)], env=env, capture_output=True, text=True,
                          timeout=3600, check=False)


def one_run(dovecot: Dovecot, sink: SmtpSink, postgres: Postgres | None, root: Path,
            backend: str, blob_store: str, briefs: int, label: str) -> Figures:
    address = f"{label}@kommune.test"
    for i in range(briefs):
        dovecot.deliver(address, brief(sender=f"{label}-a{i}@kommune.test", to=address))
    bot: dict[str, object] = {"blob_store": blob_store, "log_level": "WARNING"}
    # N receipts within minutes would trip the circuit breaker (limits.breaker_mails, 200)
    limits = {"breaker_mails": 10 * briefs + 1000}
    if backend == "postgresql":
        assert postgres is not None
        bot["database_url"] = postgres.new_database(migrated=False)
    config = root / f"{label}.toml"
    config.write_text(to_toml(settings_dict(dovecot.port, sink.port, root / label, address,
                                            dovecot.user(address), bot=bot,
                                            limits=limits)))
    migrated = cli(config, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    before = len(sink.received)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = cli(config, "run", "--once")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr[-2000:]
    receipts = sum(1 for d in sink.received[before:]
                   if d.recipients[0].startswith(f"{label}-a"))
    assert receipts == briefs, f"{label}: {receipts} receipts for {briefs} briefs"
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return Figures(backend, blob_store, wall, cpu, len(sink.received) - before)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--briefs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if not dovecot_available():
        sys.exit("needs Dovecot and root (apt-get install dovecot-imapd dovecot-lmtpd)")
    if not postgres_available():
        sys.exit("needs PostgreSQL (apt-get install postgresql) and psycopg "
                 "(pip install -e '.[test]')")
    dovecot = Dovecot()
    dovecot.start()
    sink = SmtpSink()
    sink.start()
    postgres = DurablePostgres()
    postgres.start()
    root = Path(tempfile.mkdtemp(prefix="mailbot-bench-backends-"))
    results: dict[tuple[str, str], list[Figures]] = {b: [] for b in BACKENDS}
    try:
        for round_ in range(args.rounds):
            for n, (backend, blob_store) in enumerate(BACKENDS):
                label = f"r{round_}b{n}"
                figures = one_run(dovecot, sink, postgres, root, backend, blob_store,
                                  args.briefs, label)
                results[(backend, blob_store)].append(figures)
                print(f"  round {round_ + 1}: {backend} / {blob_store}: {figures.wall:.1f} s",
                      flush=True)
    finally:
        sink.stop()
        postgres.stop()
        dovecot.cleanup()
    load = os.getloadavg()[0]
    print(f"\n{args.briefs} briefs, `mailbot run --once`, {os.cpu_count()} cores, "
          f"load {load:.1f}, median of {args.rounds} round(s):\n")
    print("| backend | blob store | briefs/s | mails sent/s | wall s | mailbot CPU s |")
    print("|---|---|---|---|---|---|")
    for (backend, blob_store), runs in results.items():
        wall = statistics.median(f.wall for f in runs)
        cpu = statistics.median(f.cpu for f in runs)
        mails = runs[0].mails
        print(f"| {backend} | {blob_store} | {args.briefs / wall:.1f} | {mails / wall:.1f} | "
              f"{wall:.1f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
