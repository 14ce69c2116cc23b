"""The soak (issue 10, item 8; SCENARIOS R12 with R1, R2, R4, O1, O7 hit at random).

500 briefs wait in INBOX. A real `mailbot run` daemon is started, killed with SIGKILL after a
seeded random delay, and started again, TARGET_KILLS times while there is work left (at least
MIN_KILLS must fall there); then it runs until INBOX is empty, every ledger row is handled and
moved and the outbox is drained, and stops on SIGTERM. Afterwards every brief has exactly one
case (numbered in delivery order) and the SMTP server received exactly one receipt for it;
nothing is in INBOX or Quarantine. An `uncertain` receipt (the kill fell inside its SMTP
DATA) counts as delivered when the server did receive it; one that the server never received
is a lost receipt and fails the test.

The seed comes from MAILBOT_SOAK_SEED or is drawn at random; it and the figures are written
to the terminal whatever pytest's capture setting. Run alone: `pytest -m soak`.
"""

from __future__ import annotations

import imaplib
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from mailbot.db import make_engine
from mailbot.mailworld import PASSWORD
from tests.conftest import World
from tests.e2e.records import cases, every_outbox_row, rows

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

BRIEFS = 500
MIN_KILLS = 20
TARGET_KILLS = 24  # kills while there is work left; then one start runs to the end
# Most kills fall at a random moment after the daemon is up (logged in, watching INBOX): up to
# twice the time its share of the work left should take, so the kills spread over fetching,
# handling, moving and sending, and about a tenth of the work is left for the last start.
# The others fall while it starts (imports, the migration check, outbox recovery, login).
KILL_WHILE_STARTING = 0.15  # the share of kills that fall while the daemon starts
START_SECONDS = (0.2, 1.5)  # those fall this long after the start
SPREAD = 1.5  # aim the kills at 1/SPREAD of the work left
FIRST_RATE = 10.0  # work units/s guessed before the first measurement (a unit: one brief
# handled, or five mails sent)
MIN_RATE = 2.0  # a slower measurement (a start that only fetched) is taken as this
DEADLINE_SECONDS = 600  # a guard against a hang: a run takes 2-5 minutes


@dataclass
class Progress:
    """Where the work stood at one moment (read from the database and the IMAP server)."""

    inbox: int
    stored: int
    handled: int
    moved: int
    outbox: Counter[str]

    @property
    def phase(self) -> str:
        """The step the daemon was in when it died (the steps of a sweep come in order)."""
        if self.stored < BRIEFS:
            return "fetching"
        if self.handled < BRIEFS:
            return "handling"
        if self.moved < BRIEFS or self.inbox:
            return "moving"
        if self.outbox["pending"] or self.outbox["sending"]:
            return "sending"
        return "drained"

    @property
    def drained(self) -> bool:
        return self.phase == "drained"

    @property
    def work_left(self) -> float:
        """In units: a brief still to handle is two (itself and its five mails to send)."""
        return 2 * (BRIEFS - self.handled) + (self.outbox["pending"]
                                              + self.outbox["sending"]) / 5


@dataclass
class Figures:
    seed: int
    kills: Counter[str] = field(default_factory=Counter)  # phase -> kills in it
    starts: int = 0
    delivered_seconds: float = 0.0
    drained_seconds: float = 0.0
    up_seconds: list[float] = field(default_factory=list)  # start -> watching INBOX
    notes: list[str] = field(default_factory=list)

    @property
    def kills_with_work_left(self) -> int:
        return sum(n for phase, n in self.kills.items() if phase != "drained")

    def lines(self) -> list[str]:
        rate = BRIEFS / self.drained_seconds if self.drained_seconds else 0.0
        kills = ", ".join(f"{n} {phase}" for phase, n in self.kills.most_common())
        up = sorted(self.up_seconds)
        return [f"soak: seed {self.seed} (repeat with MAILBOT_SOAK_SEED={self.seed}; the "
                "delays repeat, the moments they hit depend on the machine's speed)",
                f"soak: {BRIEFS} briefs delivered in {self.delivered_seconds:.1f} s",
                f"soak: {sum(self.kills.values())} SIGKILLs ({kills or 'none'}), "
                f"{self.starts} starts ({max(0, self.starts - 1)} restarts); start to "
                f"watching INBOX: median {up[len(up) // 2] if up else 0:.2f} s",
                f"soak: drained in {self.drained_seconds:.1f} s wall time from the first "
                f"start: {rate:.1f} briefs/s", *self.notes]


class Daemon:
    """`mailbot run` as a subprocess whose output is drained into a log file (a full pipe
    would stall it); `up` is set when it logs that it watches the folder."""

    def __init__(self, world: World, log: Path, number: int) -> None:
        self.started = time.monotonic()
        self.process = world.spawn("run")
        self.log = log
        self.up = threading.Event()
        self.up_at = 0.0
        with log.open("a", encoding="utf-8") as out:
            out.write(f"==== start {number}, pid {self.process.pid}\n")
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        with self.log.open("a", encoding="utf-8") as out:
            for line in self.process.stdout:
                out.write(line)
                if not self.up.is_set() and "watching INBOX" in line:
                    self.up_at = time.monotonic()
                    self.up.set()

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, seconds: float) -> None:
        """Let it run `seconds`; it must not exit by itself meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            assert self.alive(), f"the daemon exited by itself:\n{self.tail()}"
            time.sleep(min(0.05, left))

    def wait_up(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not self.up.wait(0.05):
            assert self.alive(), f"the daemon exited by itself:\n{self.tail()}"
            assert time.monotonic() < deadline, f"not up after {seconds} s:\n{self.tail()}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self._wait()
        assert self.process.returncode == -signal.SIGKILL, self.tail()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self._wait()

    def _wait(self) -> int:
        code = self.process.wait(timeout=60)
        self.reader.join(timeout=10)
        return code

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8").splitlines()[-lines:])


def folder_size(world: World, folder: str) -> int:
    """Messages in a folder of the bot's mailbox (0 for a folder that does not exist yet)."""
    imap = imaplib.IMAP4("127.0.0.1", world.imap.port)
    try:
        imap.login(world.imap.user(world.bot_address), PASSWORD)
        status, data = imap.status(f'"{folder}"', "(MESSAGES)")
        if status != "OK":
            return 0
        found = re.search(rb"MESSAGES (\d+)", data[0] if isinstance(data[0], bytes) else b"")
        return int(found[1]) if found else 0
    finally:
        imap.logout()


def progress(world: World, engine: Engine) -> Progress:
    try:
        with engine.connect() as db:
            stored, handled, moved = db.execute(text(
                "SELECT count(*), coalesce(sum(state != 'received'), 0), count(moved_at) "
                "FROM raw_message")).one()
            outbox = Counter({state: n for state, n in db.execute(text(
                "SELECT state, count(*) FROM outbox GROUP BY state")).all()})
    except OperationalError:  # no tables yet: the first start has not migrated
        stored = handled = moved = 0
        outbox = Counter()
    return Progress(folder_size(world, "INBOX"), stored, handled, moved, outbox)


def say(capsys: pytest.CaptureFixture[str], lines: list[str]) -> None:
    """Straight to the terminal, with or without `-s`: CI logs show the seed and figures."""
    with capsys.disabled():
        print()
        for line in lines:
            print(line, flush=True)


def test_500_briefs_under_random_sigkills_give_one_case_and_one_receipt_each(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    if not world.on_dovecot:
        pytest.skip("the soak needs Dovecot (pymap keeps its mailbox in one process's memory)")
    seed = int(os.environ.get("MAILBOT_SOAK_SEED") or random.SystemRandom().randrange(2**32))
    figures = Figures(seed)
    say(capsys, [f"soak: seed {seed}"])
    rng = random.Random(seed)
    # 500 receipts within minutes is a backlog, not a loop: the circuit breaker (200 mails to
    # applicants in 10 minutes by default) would hold them until `mailbot outbox resume`.
    world.write_config(limits={"breaker_mails": 10 * BRIEFS})
    # the SMTP server records what it accepted (what the checks count); storing each of the
    # 2,500 mails in Dovecot as well would only slow the server down
    world.smtp.deliver = None
    engine = make_engine(world.settings().database_url)
    briefs = {}  # applicant -> (Message-ID, subject), in delivery order
    began = time.monotonic()
    for number in range(BRIEFS):
        applicant = f"soak{number:03d}-{world.applicant}"
        message_id = f"<soak-{seed}-{number}@kommune.test>"
        subject = f"Projektforslag {number:03d}: Ny mødebooking"
        world.deliver(world.brief(sender=f"Ansøger {number} <{applicant}>", subject=subject,
                                  message_id=message_id))
        briefs[applicant] = (message_id, subject)
    figures.delivered_seconds = time.monotonic() - began
    log = world.tmp / "daemon.log"
    try:
        began = time.monotonic()
        done, busy = 0.0, 0.0  # work units done, and seconds the daemon was up for them
        now = progress(world, engine)
        while figures.kills_with_work_left < TARGET_KILLS:
            figures.starts += 1
            daemon = Daemon(world, log, figures.starts)
            if rng.random() < KILL_WHILE_STARTING:
                daemon.wait(rng.uniform(*START_SECONDS))
            else:
                daemon.wait_up()
                figures.up_seconds.append(daemon.up_at - daemon.started)
                rate = max(done / busy, MIN_RATE) if busy > 1 and done > 0 else FIRST_RATE
                left = TARGET_KILLS - figures.kills_with_work_left
                daemon.wait(rng.uniform(0, 2 * now.work_left / rate / left / SPREAD))
            was_up = daemon.up.is_set()
            daemon.kill()
            if was_up:
                busy += time.monotonic() - daemon.up_at
            before, now = now, progress(world, engine)
            done += before.work_left - now.work_left
            figures.kills[now.phase if was_up or now.drained else "starting"] += 1
            if now.drained:
                break  # the work was done before this kill
        # the last start runs undisturbed until everything is handled, moved and sent
        figures.starts += 1
        daemon = Daemon(world, log, figures.starts)
        daemon.wait_up()  # so that it has its SIGTERM handler when it is stopped
        while not (now := progress(world, engine)).drained:
            assert time.monotonic() - began < DEADLINE_SECONDS, (
                f"not drained within {DEADLINE_SECONDS} s (seed {seed}): {now}\n"
                f"{daemon.tail()}")
            daemon.wait(0.5)
        figures.drained_seconds = time.monotonic() - began
        assert daemon.stop() == 0, daemon.tail()
        check(world, briefs, figures)
    finally:
        say(capsys, figures.lines())
        engine.dispose()
    assert figures.kills_with_work_left >= MIN_KILLS, (
        f"only {figures.kills_with_work_left} kills fell while there was work left "
        f"(seed {seed})")


def check(world: World, briefs: dict[str, tuple[str, str]], figures: Figures) -> None:
    """Exactly one case and one receipt per brief; nothing left behind anywhere."""
    seed = figures.seed
    # the ledger: one row per brief, each handled (not quarantined) and moved
    ledger = rows(world)
    assert len(ledger) == BRIEFS, f"{len(ledger)} ledger rows for {BRIEFS} briefs (seed {seed})"
    states = Counter(r.state for r in ledger)
    assert states == {"processed": BRIEFS}, (
        f"ledger states {dict(states)} (seed {seed}); not processed: "
        + "; ".join(f"{r.id} attempts {r.attempts}: {r.reason}" for r in ledger
                    if r.state != "processed"))
    assert all(r.moved_at is not None for r in ledger)
    attempts = Counter(r.attempts for r in ledger)
    figures.notes.append("soak: handling attempts per brief: " + ", ".join(
        f"{n} × {a}" for a, n in sorted(attempts.items())))
    # one case per brief, numbered in delivery order (FIFO, R12)
    by_applicant: dict[str, list[str]] = {}
    for case in cases(world):
        by_applicant.setdefault(case.applicant_address, []).append(case.ref)
    wrong = {a: refs for a, refs in by_applicant.items() if len(refs) != 1}
    assert not wrong and set(by_applicant) == set(briefs), (
        f"cases per applicant not exactly one (seed {seed}): {wrong or 'briefs without case'}")
    numbers = [int(by_applicant[a][0].rsplit("-", 1)[1]) for a in briefs]
    assert numbers == list(range(1, BRIEFS + 1)), f"case numbers out of order (seed {seed})"
    # what the SMTP server actually received, by Message-ID and by recipient
    headers = BytesHeaderParser()
    received: Counter[str] = Counter()
    receipts: dict[str, list[str]] = {}  # applicant -> In-Reply-To of each mail received
    for delivered in world.smtp.history:
        head = headers.parsebytes(delivered.raw)
        received[str(head["Message-ID"]).strip()] += 1
        for rcpt in delivered.recipients:
            if rcpt in briefs:
                receipts.setdefault(rcpt, []).append(str(head["In-Reply-To"]).strip())
    wrong = {a: got for a in briefs if (got := receipts.get(a, [])) != [briefs[a][0]]}
    # the outbox: nothing pending; an `uncertain` row is fine only if the server got it
    outbox = every_outbox_row(world)
    by_state = Counter((r.kind, r.state) for r in outbox)
    uncertain = [r for r in outbox if r.state == "uncertain"]
    lost = [r for r in uncertain if not received[r.message_id]]
    resent = sum(received[r.message_id] - 1 for r in outbox if received[r.message_id] > 1)
    figures.notes += [
        f"soak: the SMTP server received {len(world.smtp.history)} mails "
        f"({len(world.smtp.history) / figures.drained_seconds:.1f}/s); outbox rows "
        + ", ".join(f"{kind} {state}: {n}" for (kind, state), n in sorted(by_state.items())),
        f"soak: uncertain rows: {len(uncertain)} ({len(uncertain) - len(lost)} reached the "
        f"server, {len(lost)} did not); at-least-once mails received twice or more: {resent}"]
    assert not lost, ("uncertain rows whose mail never reached the SMTP server, i.e. lost "
                      f"(seed {seed}): " + "; ".join(f"{r.kind} {r.message_id} {r.last_error}"
                                                     for r in lost))
    assert not wrong, (f"{len(wrong)} applicants did not receive exactly one receipt for "
                       f"their brief (seed {seed}): {dict(list(wrong.items())[:5])}")
    unsent = [r for r in outbox if r.state not in ("sent", "uncertain")]
    assert not unsent, f"outbox rows not sent (seed {seed}): {[(r.kind, r.state) for r in unsent]}"
    never = [r for r in outbox if not received[r.message_id]]
    assert not never, f"{len(never)} outbox mails never reached the server (seed {seed})"
    # the mailbox: INBOX and Quarantine empty, every brief in Processed
    assert folder_size(world, "INBOX") == 0
    assert folder_size(world, "Quarantine") == 0
    assert folder_size(world, "Processed") == BRIEFS

