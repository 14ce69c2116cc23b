"""Memory of one large mail (prints figures; not a test). Needs Dovecot (run as root).

    python tests/benchmarks/bench_memory.py [--mb 25]

Three mailboxes of a real Dovecot, each drained by a real `mailbot run --once` subprocess
(after `mailbot migrate`), whose peak RSS (ru_maxrss) and CPU time are read with os.wait4:

- idle: an empty INBOX, so the peak is the started process and an empty sweep;
- small: one complete brief with four small attachments (tests/mails.py): a case opens and
  the receipt and four review requests go out, so the peak adds what processing and
  sending loads (templates, composing) once;
- large: the same brief whose technical description is a PDF of random (incompressible)
  bytes sized so that the whole message is --mb MB (10^6 bytes) as fetched, within the
  default `imap.max_message_mb` (25 MiB). Its review requests carry that PDF (base64)
  to the reviewers who read technical descriptions.

Prints the three peaks, the large run's peak over the idle one as a multiple of the message
size (issue #16 target: below 3), and over the small one (the part that grows with the
message), with the number and size of the mails the SMTP server accepted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mailbot.mailworld import SmtpSink, settings_dict, to_toml  # noqa: E402
from tests.dovecot import Dovecot, dovecot_available  # noqa: E402
from tests.mails import COMPLETE_BODY, brief, payload_for  # noqa: E402

MB = 1_000_000
LARGE_NAME = "Teknisk beskrivelse.pdf"
SMALL_NAMES = ("Udkast til kontrakt.docx", "Databehandleraftale udkast.pdf",
               "Business case.docx")


@dataclass
class Run:
    label: str
    peak_kb: int  # ru_maxrss of the `mailbot run --once` process (KiB on Linux)
    cpu: float  # its user + system seconds
    mails: int  # mails the SMTP server accepted during the run
    sent_bytes: int  # their size together


def large_brief(to: str, size: int) -> bytes:
    """A complete brief of `size` bytes (within a few hundred): its technical description
    is a PDF header and random bytes, the other three documents small."""
    def build(pdf_bytes: int) -> bytes:
        msg = EmailMessage(policy=SMTP)
        msg["From"] = "Mette Holm <mette.holm@kommune.test>"
        msg["To"] = to
        msg["Subject"] = "Projektforslag: Ny mødebooking"
        msg["Date"] = "Mon, 02 Nov 2026 09:00:00 +0100"
        msg["Message-ID"] = f"<bench-memory-{size}@kommune.test>"
        msg.set_content(COMPLETE_BODY)
        msg.add_attachment(b"%PDF-1.4\n%" + os.urandom(max(pdf_bytes, 0)),
                           maintype="application", subtype="pdf", filename=LARGE_NAME)
        for name in SMALL_NAMES:
            msg.add_attachment(payload_for(name), maintype="application",
                               subtype="octet-stream", filename=name)
        return msg.as_bytes()

    empty = len(build(0))
    # base64 makes 4 bytes of 3, plus CRLF after every 76 characters
    return build((size - empty) * 3 * 76 // (4 * 78))


def cli(config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen([sys.executable, "-m", "mailbot.cli", *args, "--config",
                             str(config)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def waited(child: subprocess.Popen[bytes]) -> os.struct_rusage:
    """The child's rusage once it ended. Raises RuntimeError when it failed."""
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        assert child.stderr is not None
        raise RuntimeError(f"{child.args} exited {child.returncode}: "
                           f"{child.stderr.read().decode()[-2000:]}")
    return usage


def one_run(dovecot: Dovecot, sink: SmtpSink, root: Path, label: str,
            raw: bytes | None) -> Run:
    address = f"mem{label}@kommune.test"
    if raw is not None:
        dovecot.deliver(address, raw)
    config = root / f"{label}.toml"
    config.write_text(to_toml(settings_dict(dovecot.port, sink.port, root / label, address,
                                            dovecot.user(address),
                                            bot={"log_level": "WARNING"})))
    waited(cli(config, "migrate"))
    before = len(sink.received)
    usage = waited(cli(config, "run", "--once"))
    sent = sink.received[before:]
    return Run(label, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, len(sent),
               sum(len(d.raw) for d in sent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=25)
    args = parser.parse_args()
    if not dovecot_available():
        sys.exit("needs Dovecot and root (apt-get install dovecot-imapd dovecot-lmtpd)")
    dovecot = Dovecot()
    dovecot.start()
    sink = SmtpSink()
    sink.start()
    size = int(args.mb * MB)
    try:
        with tempfile.TemporaryDirectory(prefix="mailbot-bench-memory-") as folder:
            root = Path(folder)
            large = large_brief("memlarge@kommune.test", size)
            runs = [one_run(dovecot, sink, root, "idle", None),
                    one_run(dovecot, sink, root, "small",
                            brief(to="memsmall@kommune.test")),
                    one_run(dovecot, sink, root, "large", large)]
    finally:
        sink.stop()
        dovecot.cleanup()
    print(f"`mailbot run --once`, one mailbox each ({os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}):\n")
    print("| run | peak RSS | CPU s | mails sent | their size |")
    print("|---|---|---|---|---|")
    for run in runs:
        print(f"| {run.label} | {run.peak_kb / 1024:.0f} MiB | {run.cpu:.1f} | {run.mails} | "
              f"{run.sent_bytes / MB:.1f} MB |")
    idle, small, big = runs
    over_idle = (big.peak_kb - idle.peak_kb) * 1024
    over_small = (big.peak_kb - small.peak_kb) * 1024
    mark = "✔" if over_idle < 3 * len(large) else "✘"
    print(f"\nlarge message {len(large) / MB:.1f} MB: peak over idle "
          f"{over_idle / MB:.0f} MB = {over_idle / len(large):.2f}× its size "
          f"(target < 3× {mark}); over the small brief {over_small / MB:.0f} MB = "
          f"{over_small / len(large):.2f}×")


if __name__ == "__main__":
    main()
