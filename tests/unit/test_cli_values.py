"""Values that look right but are not: refused at load with one line, never a traceback
later (found by trying the CLI as a new operator)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.conftest import MailbotRunner, migrated_database, write_config
from tests.unit.test_cli_errors import one_error_line


@pytest.mark.parametrize(("variable", "value", "key"), [
    ("MAILBOT_COUNCIL__MEETING_TIME", "25:00", "MAILBOT_COUNCIL__MEETING_TIME"),
    ("MAILBOT_COUNCIL__MEETING_TIME", "09:60", "MAILBOT_COUNCIL__MEETING_TIME"),
    ("MAILBOT_COUNCIL__DEADLINE_TIME", "24:00", "MAILBOT_COUNCIL__DEADLINE_TIME"),
    ("MAILBOT_IMAP__PORT", "99999", "MAILBOT_IMAP__PORT"),
    ("MAILBOT_SMTP__PORT", "0", "MAILBOT_SMTP__PORT"),
    ("MAILBOT_COUNCIL__NO_MEETING_PERIODS", "2027-08-08..2027-07-05",
     "MAILBOT_COUNCIL__NO_MEETING_PERIODS"),
])
def test_impossible_values_are_one_line(tmp_path: Path, mailbot: MailbotRunner,
                                        variable: str, value: str, key: str) -> None:
    config = write_config(tmp_path)
    result = mailbot("--config", str(config), "calendar", "--year", "2027",
                     env={variable: value})
    line = one_error_line(result)
    assert f"[{key}]" in line and "Fix:" in line


def test_agenda_send_without_a_secretary_is_refused(tmp_path: Path,
                                                    mailbot: MailbotRunner) -> None:
    config = write_config(tmp_path, ('secretary = ["sekretaer@kommune.dk"]', "secretary = []"))
    migrated_database(tmp_path / "data")
    result = mailbot("--config", str(config), "--now", "2027-03-01T11:00", "agenda", "--send")
    line = one_error_line(result)
    assert "[council.secretary]" in line and "nobody" in line
    assert mailbot("--config", str(config), "outbox").out.strip() == "outbox is empty"


def test_inspect_says_a_mail_without_from_is_quarantined(tmp_path: Path,
                                                         mailbot: MailbotRunner) -> None:
    mail = tmp_path / "nofrom.eml"
    mail.write_text("Subject: Projektforslag\nTo: it.projekter@kommune.dk\n\nHvem: Anna\n")
    result = mailbot("inspect", str(mail))
    assert result.code == 0
    assert "daemon:    Quarantine: no single, well-formed From address" in result.out


def test_inspect_refuses_a_device_instead_of_hanging(mailbot: MailbotRunner) -> None:
    line = one_error_line(mailbot("inspect", "/dev/zero"))
    assert "/dev/zero" in line and "not a regular file" in line


@pytest.mark.parametrize("variable", ["MAILBOT_OAUTH2__CLIENT_SECRT", "MAILBOT_IMAP__PASWORD",
                                      "MAILBOT_OAUTH2__KLIENT_HEMMELIGHED"])
def test_a_misspelled_secret_is_never_printed(tmp_path: Path, mailbot: MailbotRunner,
                                              variable: str) -> None:
    config = write_config(tmp_path)
    secret = "Sup3rS3cr3t~Value.xyz987"
    result = mailbot("--config", str(config), "calendar", env={variable: secret})
    line = one_error_line(result)
    assert f"[{variable}]" in line and secret not in result.err + result.out


def test_a_misspelled_secret_in_the_file_is_never_printed(tmp_path: Path,
                                                          mailbot: MailbotRunner) -> None:
    secret = "Sup3rS3cr3t~Value.xyz987"
    config = write_config(tmp_path, ('password = "change-me"',
                                     f'pasword = "{secret}"\npassword = "x"'))
    result = mailbot("--config", str(config), "calendar")
    one_error_line(result)
    assert secret not in result.err + result.out


def test_starttls_on_an_implicit_tls_port_names_the_security_key(
        tmp_path: Path, mailbot: MailbotRunner) -> None:
    """The likely typo: security = "starttls" on a port that waits for a TLS handshake and so
    never sends a plain greeting. The error names imap.security, not reachability."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    config = write_config(tmp_path, ('host = "imap.kommune.dk"', 'host = "127.0.0.1"'),
                          ("port = 993", f"port = {port}\ntimeout_seconds = 1"),
                          ('security = "ssl" ', 'security = "starttls" '))
    try:
        line = one_error_line(mailbot("--config", str(config), "check"))
    finally:
        server.close()
        for conn in accepted:
            conn.close()
    assert "[imap.security]" in line and "implicit-TLS" in line and 'security = "ssl"' in line
