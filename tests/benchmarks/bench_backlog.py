"""A backlog of N briefs, side by side: mailbot, its floor and a peer (prints figures; not a
test). Needs Dovecot (run as root); PostgreSQL only for --backend postgresql.

    python tests/benchmarks/bench_backlog.py [--sizes 100,300,1000] [--peer]
        [--backend sqlite|postgresql] [--startup-runs 5]

For each N, the same N realistic briefs (Danish bodies answering the six questions, different
senders, four real attachments each with the brief's number in their text, so no two briefs
share bytes: a 5-page PDF technical description, a DOCX contract, a 3-page PDF data
processing agreement, a DOCX business case; about 110 KB a brief) are written into a fresh
mailbox of one Dovecot for each contender (straight into the Maildir's new/, as a delivery
agent does), and each contender drains it in its own process:

- mailbot: `mailbot run --once` after `mailbot migrate` (not timed), the whole job: intake,
  reading every attachment, cases, receipts and review requests sent over SMTP;
- floor: the same work with the libraries mailbot uses and no database, each step once:
  imapclient FETCH BODY.PEEK[] in chunks, mail-parser parse, the text of every attachment
  (pypdf, python-docx; as far as mailbot reads: its MAX_PDF_PAGES, MAX_DOCX_PARAGRAPHS and
  MAX_CHARS), composing as many mails as mailbot sent (a receipt per brief and
  review requests with one document attached each; EmailMessage) and sending them over ONE
  aiosmtplib connection;
- peer (--peer): django-helpdesk's `manage.py get_email` (one ticket and one acknowledgement
  per mail; attachments stored, not read), installed by this script into a reusable venv
  (~/.cache/mailbot-bench/peer-venv); skipped with a one-line reason when it cannot be.

The SMTP sink (aiosmtpd, counting mails only) runs in a process of its own, so no contender is
charged for receiving its mails. Columns: briefs/s and mails sent/s over the contender's wall
time (process start to exit, so mailbot's and the peer's start-up is in it), CPU seconds
(user + system of that process, from os.wait4), peak RSS (ru_maxrss of that process, taken
by a small wrapper so it is not the benchmark's own; the floor holds every step's output at
once, so its RSS grows with N and is no floor for mailbot's), the
ratios of its wall time and of its CPU seconds to the floor's and to the peer's (on a busy
machine the CPU ratio is the steadier one). Then the seconds per brief at each N
(linear cost means a flat row), and the start-up table of bench_startup.py (median wall time
of `mailbot --help` and `mailbot inspect`). The briefs are generated once and kept in
~/.cache/mailbot-bench/briefs-v1 (delete it to make new ones).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mailbot.mailworld import PASSWORD, free_port, settings_dict, to_toml, wait_for_port  # noqa: E402
from tests.dovecot import Dovecot, dovecot_available  # noqa: E402

CACHE = Path.home() / ".cache" / "mailbot-bench"
BRIEFS = CACHE / "briefs-v1"
PEER_VENV = CACHE / "peer-venv"
PEER_VERSION = "2.6.1"  # the version issue 16 measured
APPLICANT = "ansoger"  # local part prefix of every brief's sender: their mails are receipts
DOCUMENTS = ("Teknisk beskrivelse.pdf", "Udkast til kontrakt.docx",
             "Databehandleraftale udkast.pdf", "Business case.docx")
FETCH_CHUNK = 100
TARGET_BRIEFS_PER_S = 24.0  # issue 16, on the 300
TARGET_FLOOR_RATIO = 2.0


# -- briefs ------------------------------------------------------------------------------------
FIRST = ("Mette", "Jens", "Anne", "Lars", "Sofie", "Peter", "Karen", "Mads", "Louise", "Henrik")
LAST = ("Holm", "Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Larsen", "Sørensen")
UNITS = ("Borgerservice", "Jobcenter", "Skole og Dagtilbud", "Teknik og Miljø", "Ældreplejen",
         "Kultur og Fritid", "Økonomi", "HR")
WHATS = ("booking af mødelokaler", "digital post til borgere", "vagtplanlægning",
         "sagsbehandling af byggesager", "elevfravær", "udlån af hjælpemidler")


def brief_raw(i: int, to: str) -> bytes:
    """Brief number `i`: a complete Danish brief with four real attachments whose text (and so
    bytes) carries `i`; the sender is unique to it."""
    from tests.docs import docx, pdf

    name = f"{FIRST[i % len(FIRST)]} {LAST[i % len(LAST)]}"
    unit, what = UNITS[i % len(UNITS)], WHATS[i % len(WHATS)]
    filler = f"Projekt {i}: {what} i {unit}. " + "Løsningen driftes af leverandøren. " * 25
    msg = EmailMessage(policy=SMTP)
    msg["From"] = f"{name} <{APPLICANT}{i}@kommune.test>"
    msg["To"] = to
    msg["Subject"] = f"Projektforslag {i}: Nyt system til {what}"
    msg["Date"] = "Mon, 02 Nov 2026 09:00:00 +0100"
    msg["Message-ID"] = f"<brief-{i}@bench.kommune.test>"
    msg.set_content(textwrap.dedent(f"""\
        Hej

        Hvem: {name}, {unit}. Brugerne er {10 + i % 40} medarbejdere.
        Hvad: Et nyt system til {what} (forslag nummer {i}).
        Hvor: {unit}.
        Hvornår: 1. marts 2027.
        Hvorfor: Manuelle arbejdsgange og fejl i dag.
        Hvor meget: {50 + i % 200}.000 kr., betales af {unit}.

        Med venlig hilsen
        {name}
        """))
    bodies = {
        DOCUMENTS[0]: pdf(f"Teknisk beskrivelse {i}", filler, pages=5),
        DOCUMENTS[1]: docx(f"Kontrakt {i}", "\n".join(f"§ {p}. {filler}" for p in range(30))),
        DOCUMENTS[2]: pdf(f"Databehandleraftale {i}", filler, pages=3),
        DOCUMENTS[3]: docx(f"Business case {i}", "\n".join(f"{p}. {filler}" for p in range(10))),
    }
    for filename, payload in bodies.items():
        msg.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename=filename)
    return msg.as_bytes()


def briefs(count: int) -> list[Path]:
    """Files of briefs 0..count-1, generated on first use (about 30 ms each)."""
    BRIEFS.mkdir(parents=True, exist_ok=True)
    paths = [BRIEFS / f"{i:05}.eml" for i in range(count)]
    for i, path in enumerate(paths):
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(brief_raw(i, "it.projekter@kommune.test"))
            tmp.rename(path)
    return paths


def fill(dovecot: Dovecot, user: str, paths: list[Path]) -> None:
    """The briefs in the user's INBOX, as Maildir files (tmp/ then new/: a delivery agent's
    way, as bench_batch.py does), in order."""
    maildir = dovecot.root / "mail" / user
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    stamp = int(time.time())
    for n, path in enumerate(paths):
        raw = path.read_bytes()
        name = f"{stamp + n}.M{n}P{os.getpid()}.bench,S={len(raw)}"
        (maildir / "tmp" / name).write_bytes(raw)
        os.rename(maildir / "tmp" / name, maildir / "new" / name)
    for entry in [maildir, *maildir.rglob("*")]:
        shutil.chown(entry, "nobody", "nogroup")


# -- the SMTP sink, in its own process ---------------------------------------------------------
class _Counting:
    def __init__(self, mails: Synchronized[int], receipts: Synchronized[int]) -> None:
        self.mails, self.receipts = mails, receipts

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.mails.get_lock():
            self.mails.value += 1
        if any(r.lower().startswith(APPLICANT) for r in envelope.rcpt_tos):
            with self.receipts.get_lock():
                self.receipts.value += 1
        return "250 OK"


def _sink_main(port: int, mails: Synchronized[int], receipts: Synchronized[int],
               stop: Any) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(_Counting(mails, receipts), hostname="127.0.0.1", port=port,
                            data_size_limit=64 * 1024 * 1024)
    controller.start()
    stop.wait()
    controller.stop()


class Sink:
    """aiosmtpd in a child process that only counts: mails, and those to an applicant."""

    def __init__(self) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.port = free_port()
        self.mails: Synchronized[int] = spawn.Value("i", 0)
        self.receipts: Synchronized[int] = spawn.Value("i", 0)
        self.stop_event = spawn.Event()
        self.process = spawn.Process(target=_sink_main, daemon=True, args=(
            self.port, self.mails, self.receipts, self.stop_event))

    def start(self) -> None:
        self.process.start()
        wait_for_port(self.port)

    def counts(self) -> tuple[int, int]:
        return self.mails.value, self.receipts.value

    def stop(self) -> None:
        self.stop_event.set()
        self.process.join(10)


# -- one contender's process -------------------------------------------------------------------
@dataclass
class Run:
    wall: float  # seconds, process start to exit
    cpu: float  # user + system seconds of that process
    rss_kb: int  # its peak RSS (ru_maxrss, KiB)
    mails: int  # mails the sink took during the run
    receipts: int  # of them, to an applicant
    detail: str = ""  # the floor's steps


# Linux carries the parent's peak RSS into a child at exec (exec_mmap keeps the larger of
# signal->maxrss and the old mm's high-water mark), and this process is large after making the
# briefs: a small wrapper forks the contender, so what it inherits is the wrapper's few MB.
WAIT4 = """\
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execve(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    out.write(f"{wall} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def timed(argv: list[str], sink: Sink, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> tuple[Run, str]:
    """Runs argv (argv[0] an absolute path) to its end; its wall time, CPU and peak RSS from
    os.wait4 (getrusage(2) of that child alone, taken by the WAIT4 wrapper) and what the sink
    took meanwhile. Raises RuntimeError when it fails."""
    before = sink.counts()
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as figures:
        done = subprocess.run([sys.executable, "-S", "-c", WAIT4, figures.name, *argv],
                              stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                              check=False)
        out.seek(0)
        output = out.read().decode(errors="replace")
        wall, cpu, rss_kb = figures.read().split()
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited {done.returncode}: {output[-1500:]}")
    after = sink.counts()
    run = Run(float(wall), float(cpu), int(rss_kb), after[0] - before[0], after[1] - before[1])
    return run, output


def mailbot_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_mailbot(dovecot: Dovecot, sink: Sink, root: Path, paths: list[Path], label: str,
                database_url: str | None) -> Run:
    address = f"{label}@kommune.test"
    fill(dovecot, dovecot.user(address), paths)
    bot: dict[str, object] = {"log_level": "WARNING"}
    if database_url:
        bot["database_url"] = database_url
    # N receipts within minutes would trip the circuit breaker (limits.breaker_mails, 200)
    limits = {"breaker_mails": 10 * len(paths) + 1000}
    config = root / f"{label}.toml"
    config.write_text(to_toml(settings_dict(dovecot.port, sink.port, root / label, address,
                                            dovecot.user(address), bot=bot, limits=limits)))
    cli = [sys.executable, "-m", "mailbot.cli"]
    migrated = subprocess.run([*cli, "migrate", "--config", str(config)], env=mailbot_env(),
                              capture_output=True, text=True, check=False)
    if migrated.returncode != 0:
        raise RuntimeError(f"mailbot migrate: {migrated.stderr[-1500:]}")
    run, _ = timed([*cli, "run", "--once", "--config", str(config)], sink, env=mailbot_env())
    if run.receipts != len(paths):
        raise RuntimeError(f"mailbot: {run.receipts} receipts for {len(paths)} briefs")
    return run


def run_floor(dovecot: Dovecot, sink: Sink, paths: list[Path], label: str, mails: int) -> Run:
    address = f"{label}@kommune.test"
    fill(dovecot, dovecot.user(address), paths)
    run, output = timed([sys.executable, __file__, "--floor-child", str(dovecot.port),
                         dovecot.user(address), str(sink.port), str(mails)], sink,
                        env=mailbot_env())
    run.detail = output.strip().splitlines()[-1]
    return run


# -- the floor: the same work, libraries only --------------------------------------------------
def floor_child(imap_port: int, user: str, smtp_port: int, mails: int) -> None:
    """Fetch, parse, read, compose and send as mailbot does, without mailbot or a database;
    prints the seconds of each step as one line of JSON (the parent prints it)."""
    import aiosmtplib
    import docx
    import mailparser
    import pypdf
    from imapclient import IMAPClient

    # the same caps as mailbot's reading: the floor reads what mailbot reads, no more
    from mailbot.reading.extract import MAX_CHARS, MAX_DOCX_PARAGRAPHS, MAX_PDF_PAGES

    steps: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        steps[step] = now - clock
        clock = now

    raws: list[bytes] = []
    with IMAPClient("127.0.0.1", imap_port, ssl=False) as imap:
        imap.login(user, PASSWORD)
        imap.select_folder("INBOX")
        uids = imap.search("ALL")
        for start in range(0, len(uids), FETCH_CHUNK):
            data = imap.fetch(uids[start:start + FETCH_CHUNK], ["BODY.PEEK[]", "INTERNALDATE"])
            raws += [data[uid][b"BODY[]"] for uid in sorted(data)]
    lap("fetch")
    parsed = [mailparser.parse_from_bytes(raw) for raw in raws]
    lap("parse")
    documents: list[list[tuple[str, bytes]]] = []
    for mail in parsed:
        mine = []
        for part in mail.message.walk():
            filename = part.get_filename()
            if filename:
                mine.append((filename, part.get_payload(decode=True)))
        documents.append(mine)
    texts = 0
    for mine in documents:
        for filename, payload in mine:
            if filename.endswith(".pdf"):
                pages = pypdf.PdfReader(io.BytesIO(payload)).pages[:MAX_PDF_PAGES]
                text = "\n".join(p.extract_text() or "" for p in pages)
            else:
                paragraphs = docx.Document(io.BytesIO(payload)).paragraphs
                text = "\n".join(p.text for p in paragraphs[:MAX_DOCX_PARAGRAPHS])
            texts += len(text[:MAX_CHARS])
    lap("text")
    # mails per brief as mailbot sent them: a receipt, then review requests each with one of
    # the brief's documents (in turn), the remainder spread over the first briefs
    each, extra = divmod(mails, len(parsed))
    messages: list[EmailMessage] = []
    for n, mail in enumerate(parsed):
        for k in range(each + (1 if n < extra else 0)):
            msg = EmailMessage()
            msg["From"] = f"{user}@kommune.test"
            msg["Subject"] = f"{'Kvittering' if k == 0 else 'Til vurdering'}: {mail.subject}"
            msg["Message-ID"] = f"<floor-{n}-{k}@kommune.test>"
            if k == 0:
                msg["To"] = mail.from_[0][1]
                msg.set_content("Tak for dit projektforslag. Vi har modtaget det.\n" * 5)
            else:
                filename, payload = documents[n][(k - 1) % len(documents[n])]
                msg["To"] = "drift@kommune.test"
                msg.set_content(f"Vurder venligst {filename}.\n" * 5)
                msg.add_attachment(payload, maintype="application", subtype="octet-stream",
                                   filename=filename)
            messages.append(msg)
    lap("compose")

    async def send() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, start_tls=False)
        await smtp.connect()
        for msg in messages:
            await smtp.send_message(msg)
        await smtp.quit()

    asyncio.run(send())
    lap("send")
    print(json.dumps({k: round(v, 2) for k, v in steps.items()}
                     | {"steps": round(sum(steps.values()), 2), "chars": texts,
                        "mails": len(messages)}))


# -- the peer: django-helpdesk -----------------------------------------------------------------
PEER_SETTINGS = """\
SECRET_KEY = "bench"
USE_TZ = True
SITE_ID = 1
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
                  "django.contrib.messages", "django.contrib.staticfiles", "django.contrib.sites",
                  "django.contrib.humanize", "rest_framework", "helpdesk"]
MIDDLEWARE = []
ROOT_URLCONF = "urls"
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
TEMPLATES = [{{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
              "OPTIONS": {{"context_processors": [
                  "django.template.context_processors.request",
                  "django.contrib.auth.context_processors.auth",
                  "django.contrib.messages.context_processors.messages"]}}}}]
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = {smtp_port}
DEFAULT_FROM_EMAIL = "helpdesk@kommune.test"
STATIC_URL = "/static/"
MEDIA_ROOT = {media!r}
# teams mode needs pinax-teams; the knowledge base is off with it (helpdesk/settings.py)
HELPDESK_TEAMS_MODE_ENABLED = False
"""
PEER_URLS = """\
from django.urls import include, path
urlpatterns = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]
"""
# helpdesk.models.Queue: a queue reads its own mailbox when allow_email_submission is set and
# email_box_type is given (helpdesk/email.py process_email); interval 0 reads it at once
PEER_QUEUE = """\
from helpdesk.models import Queue
Queue.objects.all().delete()
Queue.objects.create(title="Projekter", slug="projekter", email_address={address!r},
    allow_email_submission=True, email_box_type="imap", email_box_host="127.0.0.1",
    email_box_port={port}, email_box_ssl=False, email_box_user={user!r},
    email_box_pass={password!r}, email_box_imap_folder="INBOX", email_box_interval=0)
"""


class Peer:
    """django-helpdesk in a venv of its own and a minimal Django project (SQLite)."""

    def __init__(self, root: Path, smtp_port: int) -> None:
        self.project = root / "peer"
        self.python = PEER_VENV / "bin" / "python"
        self.smtp_port = smtp_port
        self.template_db = self.project / "migrated.sqlite3"
        self.version = ""

    def prepare(self) -> str:
        """Installs (once) and migrates (once); "" when ready, else why not."""
        if not self.python.exists():
            made = subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)],
                                  capture_output=True, text=True, check=False)
            if made.returncode != 0:
                return f"cannot make a venv: {made.stderr.strip()[-200:]}"
        version = self._installed()
        if not version:
            for wanted in (f"django-helpdesk=={PEER_VERSION}", "django-helpdesk"):
                subprocess.run([str(self.python), "-m", "pip", "install", "-q", wanted],
                               capture_output=True, text=True, check=False, timeout=900)
                version = self._installed()
                if version:
                    break
        if not version:
            return "pip could not install django-helpdesk"
        self.version = version
        self.project.mkdir(parents=True, exist_ok=True)
        (self.project / "urls.py").write_text(PEER_URLS)
        done = self._manage("migrate", "-v0", db=self.template_db)
        return "" if done.returncode == 0 else f"migrate failed: {done.stdout[-300:]}"

    def _installed(self) -> str:
        shown = subprocess.run([str(self.python), "-m", "pip", "show", "django-helpdesk"],
                               capture_output=True, text=True, check=False)
        for line in shown.stdout.splitlines():
            if line.startswith("Version:"):
                return line.split()[1]
        return ""

    def _settings(self, db: Path) -> None:
        (self.project / "settings.py").write_text(PEER_SETTINGS.format(
            db=str(db), smtp_port=self.smtp_port, media=str(db.with_suffix(".media"))))

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL"))}
        env["DJANGO_SETTINGS_MODULE"] = "settings"
        env["PYTHONPATH"] = str(self.project)
        return env

    def _manage(self, *args: str, db: Path) -> subprocess.CompletedProcess[str]:
        self._settings(db)
        return subprocess.run([str(self.python), "-m", "django", *args], cwd=self.project,
                              env=self._env(), capture_output=True, text=True, check=False)

    def run(self, dovecot: Dovecot, sink: Sink, paths: list[Path], label: str) -> Run:
        address = f"{label}@kommune.test"
        user = dovecot.user(address)
        fill(dovecot, user, paths)
        db = self.project / f"{label}.sqlite3"
        shutil.copy(self.template_db, db)
        made = self._manage("shell", "-c", PEER_QUEUE.format(
            address=address, port=dovecot.port, user=user, password=PASSWORD), db=db)
        if made.returncode != 0:
            raise RuntimeError(f"helpdesk queue: {made.stdout[-500:]}{made.stderr[-500:]}")
        run, _ = timed([str(self.python), "-m", "django", "get_email", "--quiet"], sink,
                       env=self._env(), cwd=self.project)
        return run


# -- the tables --------------------------------------------------------------------------------
def row(name: str, n: int, run: Run | None, floor: Run | None, peer: Run | None) -> str:
    if run is None:
        return f"| {n} | {name} | - | - | - | - | - | - | - |"

    def ratio(other: Run | None) -> str:
        if other is None:
            return "-"
        return f"{run.wall / other.wall:.2f} / {run.cpu / max(other.cpu, 0.01):.2f}"

    return (f"| {n} | {name} | {n / run.wall:.1f} | {run.mails / run.wall:.1f} | "
            f"{run.wall:.1f} | {run.cpu:.1f} | {run.rss_kb / 1024:.0f} | {ratio(floor)} | "
            f"{ratio(peer)} |")


def startup_table(runs: int) -> None:
    """Median and fastest wall time (and median CPU, where bench_startup measures it) of
    `mailbot --help` and `mailbot inspect` of a small brief, each in fresh processes."""
    import bench_startup

    cases = {"--help": ["--help"],
             f"inspect {bench_startup.FIXTURE.name}": ["inspect", str(bench_startup.FIXTURE)]}
    targets = {"--help": 0.3, f"inspect {bench_startup.FIXTURE.name}": 0.5}

    def measure(args: list[str], count: int, cwd: Path) -> tuple[list[float], list[float]]:
        # bench_startup's timed_runs gives (wall, CPU); its first version only wall_times
        if hasattr(bench_startup, "timed_runs"):
            walls, cpus = bench_startup.timed_runs(args, count, cwd)
            return list(walls), list(cpus)
        return list(bench_startup.wall_times(args, count, cwd)), []

    print(f"\nStart-up (bench_startup.py, {runs} fresh processes each, no config):\n")
    print("| command | median wall s | min wall s | median CPU s | target s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        for args in cases.values():
            measure(args, 1, cwd)  # compile the .pyc files first
        for label, args in cases.items():
            walls, cpus = measure(args, runs, cwd)
            cpu = f"{statistics.median(cpus):.2f}" if cpus else "-"
            print(f"| mailbot {label} | {statistics.median(walls):.2f} | {min(walls):.2f} | "
                  f"{cpu} | < {targets[label]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument("--peer", action="store_true")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument("--floor-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        port, user, smtp, mails = args.floor_child
        floor_child(int(port), user, int(smtp), int(mails))
        return
    if not dovecot_available():
        sys.exit("needs Dovecot and root (apt-get install dovecot-imapd dovecot-lmtpd)")
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"generating/reading {max(sizes)} briefs in {BRIEFS} ...", flush=True)
    all_briefs = briefs(max(sizes))
    size_kb = sum(p.stat().st_size for p in all_briefs) / len(all_briefs) / 1024
    dovecot = Dovecot()
    dovecot.start()
    sink = Sink()
    sink.start()
    root = Path(tempfile.mkdtemp(prefix="mailbot-bench-backlog-"))
    postgres = None
    if args.backend == "postgresql":
        from bench_backends import DurablePostgres

        postgres = DurablePostgres()
        postgres.start()
    peer = Peer(root, sink.port) if args.peer else None
    peer_note = ""
    if peer is not None:
        print("preparing django-helpdesk ...", flush=True)
        peer_note = peer.prepare()
        if peer_note:
            print(f"peer skipped: {peer_note}", flush=True)
            peer = None
    results: dict[int, dict[str, Run | None]] = {}
    try:
        for n in sizes:
            paths = all_briefs[:n]
            got: dict[str, Run | None] = {"mailbot": None, "floor": None, "peer": None}
            url = postgres.new_database(migrated=False) if postgres is not None else None
            try:
                got["mailbot"] = run_mailbot(dovecot, sink, root, paths, f"bot{n}", url)
            except RuntimeError as err:
                print(f"mailbot failed at N={n}: {err}", flush=True)
            mailbot = got["mailbot"]
            sent = mailbot.mails if mailbot is not None else 5 * n
            got["floor"] = run_floor(dovecot, sink, paths, f"floor{n}", sent)
            if peer is not None:
                try:
                    got["peer"] = peer.run(dovecot, sink, paths, f"peer{n}")
                except RuntimeError as err:
                    print(f"peer failed at N={n}: {str(err)[:300]}", flush=True)
            results[n] = got
            print(f"  N={n}: " + ", ".join(f"{k} {v.wall:.1f} s" for k, v in got.items()
                                           if v is not None), flush=True)
    finally:
        sink.stop()
        if postgres is not None:
            postgres.stop()
        dovecot.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()
    print(f"\nBacklog of N briefs ({size_kb:.0f} KB each, 4 attachments), backend "
          f"{args.backend}, {os.cpu_count()} cores, load average {load[0]:.1f} / "
          f"{load[1]:.1f} at the end (other work on the machine makes wall times longer)."
          + (f"\nPeer: django-helpdesk {peer.version} `manage.py get_email`." if peer else "")
          + (f"\nPeer skipped: {peer_note}" if peer_note else ""))
    print("\n| N | contender | briefs/s | mails sent/s | wall s | CPU s | peak RSS MB | "
          "÷ floor wall / CPU | ÷ peer wall / CPU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, got in results.items():
        for name in ("mailbot", "floor", "peer"):
            if name == "peer" and not args.peer:
                continue
            print(row(name, n, got[name], got["floor"], got["peer"]))
    print("\nFloor steps (s):")
    for n, got in results.items():
        floor = got["floor"]
        print(f"  N={n}: {floor.detail if floor else '-'}")
    print("\nSeconds per brief, wall / CPU (linear cost: the same at every N):\n")
    print("| contender | " + " | ".join(f"N={n}" for n in results) + " |")
    print("|---|" + "---|" * len(results))
    for name in ("mailbot", "floor", "peer"):
        cells = [f"{r.wall / n:.3f} / {r.cpu / n:.3f}" if (r := got[name]) else "-"
                 for n, got in results.items()]
        if any(c != "-" for c in cells):
            print(f"| {name} | " + " | ".join(cells) + " |")
    at_300 = results.get(300, {})
    bot300, floor300 = at_300.get("mailbot"), at_300.get("floor")
    if bot300 is not None and floor300 is not None:
        print(f"\nTargets at N=300: ≥ {TARGET_BRIEFS_PER_S:.0f} briefs/s (measured "
              f"{300 / bot300.wall:.1f}), mailbot ÷ floor ≤ {TARGET_FLOOR_RATIO:.0f} (measured "
              f"{bot300.wall / floor300.wall:.2f} in wall time, "
              f"{bot300.cpu / floor300.cpu:.2f} in CPU time).")
    startup_table(args.startup_runs)


if __name__ == "__main__":
    main()
