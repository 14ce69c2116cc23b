"""What the bot reads in one mail, without a database or a network (`mailbot inspect`)."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Sequence
from datetime import date
from typing import Any

from mailbot.config import Settings
from mailbot.faults import crash_point
from mailbot.intake.classify import (
    AgendaReply,
    CaseFacts,
    Disposition,
    EncryptedMail,
    MachineMail,
    NewBrief,
    Quarantine,
    StrayReply,
    classify,
)
from mailbot.intake.parse import Inbound, parse
from mailbot.intake.screen import screen
from mailbot.intake.threads import ThreadMatch, find_thread
from mailbot.reading.brief import read_brief
from mailbot.reading.decisions import read_decisions
from mailbot.reading.documents import AttachmentPolicy, DocumentReading, attachment_policy
from mailbot.reading.replies import read_verdict
from mailbot.rules import Rules


def settings_without_config(address: str = "mailbot@localhost.invalid") -> Settings:
    """Settings for `mailbot inspect` without a config file: the bot's address only, no
    secretary, no reviewers (so no sender is recognised as staff)."""
    return Settings.model_validate({"bot": {"address": address},
                                    "imap": {"host": "-", "username": "-", "password": ""},
                                    "smtp": {"host": "-"}})


def inspect_mail(raw: bytes, rules: Rules, settings: Settings,
                 today: date | None = None, secret: bytes = b"") -> dict[str, Any]:
    """The reading in exactly the shape of ../shared/samples/README.md."""
    return inspect_details(raw, rules, settings, today, secret)[0]


def inspect_details(raw: bytes, rules: Rules, settings: Settings, today: date | None = None,
                    secret: bytes = b"") -> tuple[dict[str, Any], dict[str, Any]]:
    """(the sample-shaped reading, what else the bot read and what the daemon would do with
    the mail: `disposition` and `action`, for people, not for machines).

    The disposition comes from the same `classify` the daemon uses; without a database the
    named case is assumed to exist and its applicant is unknown (sender `unverified`), and
    without the signing `secret` our own ids look forged. Raises PermanentError for a mail
    that cannot be parsed."""
    limit = int(settings.imap.max_message_mb * 1024 * 1024)
    if len(raw) > limit:  # the daemon quarantines it without downloading it
        return ({"kind": None, "case_ref": None},
                {"disposition": "Quarantine",
                 "action": f"message of {len(raw)} bytes exceeds imap.max_message_mb "
                           f"({limit} bytes): quarantined unread"})
    mail = parse(raw)
    screened = screen(mail, rules, settings.bot.address)
    thread = find_thread(mail, settings.bot.domain, secret, settings.bot.address.lower(),
                         bounce=screened.category == "bounce")
    facts = CaseFacts(thread.case_ref, "") if thread.case_ref else None
    disposition = classify(mail, screened, thread, settings, rules, facts)
    shape, details = _reading(raw, mail, rules, disposition, thread, today,
                              attachment_policy(settings.attachments))
    details.update(disposition=type(disposition).__name__, action=disposition.reason)
    return shape, details


# how long a mail read alone may take before its reader is killed: the slowest real reading
# measured (a 25 MB mail with many documents) takes seconds, so this is a hang
READ_ALONE_SECONDS = 300.0


def read_alone(raw: bytes, rules: Rules, settings: Settings, today: date,
               secret: bytes = b"", timeout: float = READ_ALONE_SECONDS) -> int | None:
    """Read `raw` as `inspect_details` does (parse, screen, classify, then the brief and its
    documents, or the reply) in a forked child process, so that a mail that kills whoever
    reads it (a segfault in a parser, the OOM killer) kills the child and not the caller
    (SCENARIOS R9: the parent survives).

    Returns None when the child finished its reading, an error raised in it included (the
    caller's own attempt meets that error and counts it), or the number of the signal that
    killed the child (9 for SIGKILL). The child writes nothing (its output goes to
    /dev/null: the caller's own handling logs the same remarks, CPR redacted) and leaves
    through os._exit, so it runs none of the caller's exit handlers and touches none of its
    connections. A child still reading after `timeout` seconds is killed, and TimeoutError
    raised: the caller must not wait for ever on a reading that hangs (a lock inherited at the
    fork, a mail that makes a parser spin). Raises OSError when no process can be forked
    (ENOMEM, EAGAIN). POSIX only (os.fork)."""
    pid = os.fork()
    if pid == 0:  # the child: its exit status is the result
        code = 1
        try:
            # only this thread lives on in the child, and it takes no lock another thread
            # may have held at the fork: the reading is pure computation, logging (whose
            # locks the logging module renews at a fork) is off and the output discarded
            logging.disable(logging.CRITICAL)
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            crash_point("while_handling", raw)
            inspect_details(raw, rules, settings, today, secret)
            code = 0
        finally:
            os._exit(code)
    status = _wait_child(pid, timeout)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise TimeoutError(f"reading it alone did not finish within {timeout:.0f} s")
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None


def _wait_child(pid: int, timeout: float) -> int | None:
    """The child's wait status, or None when it still runs after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.2)  # a quick reading is seen quickly, a slow one cheaply


def _reading(raw: bytes, mail: Inbound, rules: Rules, disposition: Disposition,
             thread: ThreadMatch, today: date | None, policy: AttachmentPolicy
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    if isinstance(disposition, EncryptedMail):
        return ({"kind": "encrypted", "case_ref": thread.case_ref, "verdict": None,
                 "decisions": None}, {"reason": disposition.reason})
    if isinstance(disposition, MachineMail):
        screened = disposition.screening
        return ({"kind": screened.message_kind, "case_ref": thread.case_ref},
                {"reason": disposition.reason})
    if isinstance(disposition, AgendaReply | StrayReply):
        found = read_decisions(mail.text or mail.html_text, rules)
        if (found.decisions or found.unmapped or found.additions or found.informed
                or found.project_types):
            return ({"kind": "reply", "case_ref": None, "verdict": None,
                     "decisions": found.decisions},
                    {"unmapped": found.unmapped, "additions": found.additions,
                     "for_information": found.informed,
                     "project_types": found.project_types})
    if not isinstance(disposition, NewBrief | Quarantine):
        verdict = read_verdict(mail.text or mail.html_text, rules)
        return ({"kind": "reply", "case_ref": thread.case_ref, "verdict": verdict.verdict,
                 "decisions": None},
                {"own_text": verdict.comment, "verdict_phrase": verdict.phrase})
    return _brief(mail, rules, today, policy)


def _by_filename(documents: Sequence[DocumentReading]) -> dict[str, str]:
    """file name -> kind, the shape of ../shared/samples/README.md; a second attachment with
    the same name is listed as "name (2)" rather than lost."""
    out: dict[str, str] = {}
    for document in documents:
        name, number = document.filename, 1
        while name in out:
            number += 1
            name = f"{document.filename} ({number})"
        out[name] = document.kind
    return out


def _brief(mail: Inbound, rules: Rules, today: date | None, policy: AttachmentPolicy
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    reading = read_brief(mail, rules, today, policy)
    shape = {
        "kind": "brief",
        "case_ref": None,
        "answers": reading.answers,
        "documents": _by_filename(reading.documents),
        "not_applicable": sorted(reading.not_applicable),
        "missing": list(reading.missing),
        "strategic": reading.strategic,
        "verdict": None,
        "decisions": None,
    }
    details = {
        "answers_from": reading.answers_from,
        "from_prose": list(reading.from_prose),
        "english": reading.english,
        "document_statements": [{"kinds": list(st.kinds), "state": st.state, "text": st.text}
                                for st in reading.statements],
        "document_notes": {d.filename: d.note for d in reading.documents},
        # "encrypted (held)", "macro": what the daemon would hold or warn about
        "document_hazards": {d.filename: d.hazard + (" (held)" if d.held else "")
                             for d in reading.documents if d.hazard},
        "declarations": reading.not_applicable,
        "strategic_reason": reading.strategic_reason,
        "project_type": reading.project_type,
        "project_type_reason": reading.project_type_reason,
        "sbsys_number": reading.sbsys_number,
        "system_owner": reading.system_owner,
        "when": reading.when.as_dict() if reading.when else None,
        "amounts": [a.as_dict() for a in reading.amounts],
        "payer": reading.payer,
    }
    return shape, details

