"""The overview's pages and sign-in through the real ASGI app (Starlette's TestClient drives
it over httpx in process; no browser: tests/e2e/test_web_browser.py has that): roles,
CSRF, escaping, CPR redaction, proxy trust and `mailbot web add-user`."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlmodel import Session
from starlette.testclient import TestClient

from mailbot.app import build_bot
from mailbot.clock import Clock
from mailbot.config import load_settings
from mailbot.db import make_engine
from mailbot.models import CaseDocument, CaseEvent, Outbox, RawMessage, Review
from mailbot.web.app import create_app
from mailbot.web.auth import add_user
from tests.unit.conftest import MailbotRunner, Ran, add_case, migrated_database, write_config

NOW = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
PASSWORD = "hemmeligt kodeord æøå"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config with a database holding two cases (one with `<script>` and a CPR number in
    its title), a document, a review, an event, a mail sent and a quarantined mail, and one
    user per role (all with PASSWORD)."""
    path = write_config(tmp_path)
    url = migrated_database(tmp_path / "data")
    add_case(url, "ITP-2026-0001", title="Bookingsystem <script>alert(1)</script> 010203-1234",
             status="incomplete", missing=["who", "contract_draft"])
    add_case(url, "ITP-2026-0002", title="Chatbot", status="queued",
             meeting_date=date(2026, 3, 9))
    at = datetime(2026, 3, 2, 10, 59, tzinfo=UTC)
    with Session(make_engine(url)) as session:
        session.add(Review(case_id=1, role="it_architect", recipients=["ark@kommune.dk"],
                           requested_at=at))
        session.add(RawMessage(folder="INBOX", uidvalidity=1, uid=1, msgid_hash="h",
                               raw_sha256="r", content_sha256="c", size=1, fetched_at=at,
                               state="quarantined", reason="for stor", sender="x@y.dk",
                               subject="Spam"))
        session.flush()
        session.add(CaseDocument(case_id=1, raw_message_id=1, filename="Kontrakt.pdf",
                                 kind="contract_draft", blob_sha256="", received_at=at))
        session.add(CaseEvent(case_id=1, at=at, kind="case_opened", detail="brief"))
        session.add(Outbox(case_id=1, kind="applicant_receipt", message_id="<m1@x>",
                           recipients=["mette@kommune.dk"], raw=b"", subject="Kvittering",
                           created_at=at, next_attempt_at=at, state="failed",
                           last_error="550 no such user"))
        session.commit()
    for name, role in (("sekretær", "secretary"), ("drift", "operator"),
                       ("rådet", "council")):
        add_user(path, name, role, PASSWORD)
    return path


def client(config: Path) -> TestClient:
    settings = load_settings(config, environ={})
    bot = build_bot(settings, Clock(NOW))
    return TestClient(create_app(bot), follow_redirects=False)


def sign_in(web: TestClient, name: str, password: str = PASSWORD) -> int:
    page = web.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    answer = web.post("/login", data={"csrf": token[1], "navn": name,
                                      "adgangskode": password})
    return answer.status_code


def test_every_page_needs_a_signed_in_user(config: Path) -> None:
    web = client(config)
    for path in ("/sager", "/sager/ITP-2026-0001", "/moeder", "/drift"):
        answer = web.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path
    assert sign_in(web, "sekretær", "forkert") == 401
    assert web.get("/sager").status_code == 303


def test_secretary_sees_cases_escaped_and_redacted(config: Path) -> None:
    web = client(config)
    assert sign_in(web, "SEKRETÆR") == 303
    page = web.get("/sager")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>" not in page.text
    assert "010203-1234" not in page.text and "XXXXXX-XXXX" in page.text
    assert "Hvem" in page.text and "afventer svar" in page.text
    assert page.text.index("ITP-2026-0001") < page.text.index("ITP-2026-0002")
    assert "script-src" not in page.headers["content-security-policy"]  # default 'none'
    one = web.get("/sager?status=queued").text
    assert "ITP-2026-0002" in one and "ITP-2026-0001" not in one
    case = web.get("/sager/ITP-2026-0001").text
    assert "CET" in case and "Kvittering" in case and "Kontrakt.pdf" in case
    assert web.get("/drift").status_code == 200
    meetings = web.get("/moeder")
    assert meetings.status_code == 200
    assert "Næste dagsorden, som den vil blive sendt" in meetings.text
    assert "2026-03-09" in meetings.text and "ITP-2026-0002" in meetings.text
    assert web.get("/sager/ITP-2099-0001").status_code == 404


def test_roles_decide_drift_and_downloads(config: Path) -> None:
    council = client(config)
    sign_in(council, "rådet")
    assert council.get("/sager").status_code == 200
    assert council.get("/drift").status_code == 403
    operator = client(config)
    sign_in(operator, "drift")
    drift = operator.get("/drift")
    assert drift.status_code == 200 and "550 no such user" in drift.text
    assert "for stor" in drift.text
    assert operator.get("/sager/ITP-2026-0001/dokumenter/1").status_code == 403


def test_sign_out_is_a_post_with_the_token(config: Path) -> None:
    web = client(config)
    sign_in(web, "sekretær")
    assert web.post("/logout", data={"csrf": "wrong"}).status_code == 303
    assert web.get("/sager").status_code == 200  # a forged sign-out does nothing
    token = re.search(r'name="csrf" value="([^"]+)"', web.get("/sager").text)
    assert token is not None
    web.post("/logout", data={"csrf": token[1]})
    assert web.get("/sager").status_code == 303


def test_proxy_header_is_believed_only_from_the_proxy(config: Path) -> None:
    _with_web(config, 'auth = "proxy"\nproxy_addresses = ["10.0.0.0/24"]')
    bot = build_bot(load_settings(config, environ={}), Clock(NOW))

    def get(peer: str, user: str) -> int:
        web = TestClient(create_app(bot), follow_redirects=False, client=(peer, 50000))
        # a proxy sends the name in UTF-8
        return web.get("/sager", headers={"X-Remote-User": user.encode()}).status_code

    assert get("10.0.0.5", "sekretær") == 200
    assert get("10.0.0.5", "ukendt") == 403  # named by the proxy, but given no role
    assert get("10.0.1.9", "sekretær") == 401  # anyone else may write the header


def test_add_user_appends_then_replaces_and_never_prints(config: Path,
                                                         mailbot: MailbotRunner) -> None:
    import io
    import sys

    before = tomllib.loads(config.read_text(encoding="utf-8"))["web"]["users"]
    assert [u["name"] for u in before] == ["sekretær", "drift", "rådet"]
    stdin = sys.stdin
    sys.stdin = io.StringIO("nyt kodeord\n")
    try:
        result = mailbot("--config", str(config), "web", "add-user", "drift",
                         "--role", "secretary", "--password-stdin")
    finally:
        sys.stdin = stdin
    assert result.code == 0, result.err
    assert "nyt kodeord" not in result.out + result.err
    users = tomllib.loads(config.read_text(encoding="utf-8"))["web"]["users"]
    assert [(u["name"], u["role"]) for u in users] == [
        ("sekretær", "secretary"), ("rådet", "council"), ("drift", "secretary")]
    web = client(config)
    assert sign_in(web, "drift", "nyt kodeord") == 303


def _add_user_reading(mailbot: MailbotRunner, config: Path, password: str) -> Ran:
    """`mailbot web add-user ole --role council --password-stdin` with `password` on stdin."""
    import io
    import sys

    stdin = sys.stdin
    sys.stdin = io.StringIO(password)
    try:
        return mailbot("--config", str(config), "web", "add-user", "ole", "--role", "council",
                       "--password-stdin")
    finally:
        sys.stdin = stdin


def test_add_user_without_a_config_file_says_to_write_one(tmp_path: Path,
                                                          mailbot: MailbotRunner) -> None:
    missing = tmp_path / "ny.toml"
    result = _add_user_reading(mailbot, missing, "kodeord")
    assert result.code == 2
    assert result.err.strip() == (f"{missing}: [web.users] there is no such config file. "
                                  f"Fix: write one first: mailbot init --config {missing}")
    assert not missing.exists()


@pytest.mark.parametrize("inline", ['[web]\nusers = [{name = "anne", role = "council"}]\n',
                                    "[web]\nusers = []\n"])
def test_add_user_refuses_inline_users_in_one_line(tmp_path: Path, mailbot: MailbotRunner,
                                                   inline: str) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8") + inline, encoding="utf-8")
    before = config.read_text(encoding="utf-8")
    result = _add_user_reading(mailbot, config, "kodeord")
    assert result.code == 2
    assert result.err.strip() == (f"{config}: [web.users] is written inline, so add-user "
                                  "cannot change it. Fix: write the users as [[web.users]] "
                                  "tables, one per user")
    assert config.read_text(encoding="utf-8") == before


def test_add_user_to_a_config_without_tables(tmp_path: Path, mailbot: MailbotRunner) -> None:
    config = tmp_path / "kun.toml"
    config.write_text('# kun en kommentar\n', encoding="utf-8")
    assert _add_user_reading(mailbot, config, "kodeord").code == 0
    users = tomllib.loads(config.read_text(encoding="utf-8"))["web"]["users"]
    assert [(u["name"], u["role"]) for u in users] == [("ole", "council")]


def _with_web(config: Path, lines: str) -> None:
    """Put `[web]` keys before the first `[[web.users]]` table of `config`."""
    text = config.read_text(encoding="utf-8")
    first = text.index("\n[[web.users]]") + 1
    config.write_text(text[:first] + "[web]\n" + lines + "\n\n" + text[first:], "utf-8")


@pytest.mark.parametrize(("trusted", "status"), [("127.0.0.1", 200), ("10.9.9.9", 401)])
def test_a_forwarded_for_header_makes_no_one_a_proxy(config: Path, trusted: str,
                                                     status: int) -> None:
    """Over a real socket: the peer the proxy check judges is the TCP peer, whatever
    X-Forwarded-For claims (uvicorn's proxy_headers are off)."""
    import httpx

    from mailbot.web.server import Listen, WebServer, bind

    _with_web(config, f'auth = "proxy"\nproxy_addresses = ["{trusted}"]')
    bot = build_bot(load_settings(config, environ={}), Clock(NOW))
    server = WebServer(create_app(bot), bind(Listen("127.0.0.1", 0)))
    server.start()
    try:
        answer = httpx.get(f"{server.address}/sager", headers={
            "X-Remote-User": "drift", "X-Forwarded-For": "10.9.9.9"}, timeout=10)
    finally:
        server.stop()
    assert answer.status_code == status


def test_mailbot_web_names_the_key_when_the_port_is_taken(config: Path,
                                                           mailbot: MailbotRunner) -> None:
    from mailbot.web.server import Listen, bind

    taken = bind(Listen("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        _with_web(config, f'listen = "127.0.0.1:{port}"')
        result = mailbot("--config", str(config), "web")
    finally:
        taken.close()
    assert result.code == 2
    assert "[web.listen]" in result.err and f"127.0.0.1:{port}" in result.err


def test_sign_in_returns_to_the_page_first_asked_for(config: Path) -> None:
    web = client(config)
    assert web.get("/sager/ITP-2026-0001").status_code == 303
    page = web.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    answer = web.post("/login", data={"csrf": token[1], "navn": "rådet",
                                      "adgangskode": PASSWORD})
    assert answer.status_code == 303 and answer.headers["location"] == "/sager/ITP-2026-0001"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_password_guessing_is_throttled(config: Path) -> None:
    web = client(config)
    for _ in range(10):
        assert sign_in(web, "drift", "gæt") == 401
    assert sign_in(web, "drift") == 429  # even the right password, for a while
    assert sign_in(web, "rådet") == 303  # another name is not held back


@pytest.mark.parametrize("document", ["99999999999999999999999", "9223372036854775808",
                                      "2147483648", "abc", "0", "-1", "1e3"])
def test_a_document_id_the_database_cannot_hold_is_the_danish_404(config: Path,
                                                             document: str) -> None:
    web = client(config)
    sign_in(web, "sekretær")
    page = web.get(f"/sager/ITP-2026-0001/dokumenter/{document}")
    assert page.status_code == 404 and "Ikke fundet" in page.text


def test_moeder_previews_the_meeting_mailbot_agenda_previews(config: Path) -> None:
    """At NOW (Wednesday 4 March) the 9 March deadline has passed: the preview is of the
    16 March agenda, as `mailbot agenda`'s; a skipped empty agenda is "not sent" in both
    lists."""
    from mailbot.council.meetings import CouncilCalendar
    from mailbot.models import Agenda

    settings = load_settings(config, environ={})
    chosen = CouncilCalendar(settings.council).next_meeting(NOW)  # what `mailbot agenda` uses
    assert chosen.day == date(2026, 3, 16)
    with Session(build_bot(settings, Clock(NOW)).engine) as session:
        session.add(Agenda(meeting_date=date(2026, 3, 16), version=1, message_id="",
                           case_refs=[], waiting_refs=[], created_at=NOW))
        session.commit()
    web = client(config)
    sign_in(web, "sekretær")
    page = web.get("/moeder").text
    assert "Til mødet 2026-03-16:" in page
    listed = re.search(r"2026-03-16 kl\..*?</tr>", page, re.S)
    assert listed is not None
    assert "ikke sendt (tom dagsorden)" in listed[0] and ">sendt<" not in listed[0]


def test_drift_speaks_danish_for_states_and_health(config: Path) -> None:
    """Every outbox and ledger state has a Danish word, and each health check reads in
    Danish (built from the check's facts), none of mailbot.health's English details."""
    from mailbot.health import evaluate
    from mailbot.vocabulary import LedgerState, OutboxState
    from mailbot.web.pages import environment

    bot = build_bot(load_settings(config, environ={}), Clock(NOW))
    words = environment(bot).globals["words"]
    assert set(OutboxState) <= set(words.outbox_states)
    assert set(LedgerState) <= set(words.ledger_states)
    with Session(bot.engine) as session:
        session.add(Outbox(case_id=1, kind="review", message_id="<m2@x>",
                           recipients=["it@kommune.dk"], raw=b"", subject="Vurdering",
                           created_at=NOW, next_attempt_at=NOW, state="cancelled"))
        session.commit()
    web = client(config)
    sign_in(web, "drift")
    page = web.get("/drift").text
    assert "annulleret" in page and ">cancelled<" not in page
    assert "kan læses, version" in page and "udbakke, fejlet" in page
    for check in evaluate(bot, NOW).checks:
        assert check.detail not in page, check.detail


def test_mailbot_demo_serves_on_8025_or_another_free_port() -> None:
    """README "Run": `mailbot demo --serve` serves on http://127.0.0.1:8025/, or another free
    port when that one is taken (not on the demo config's port 0 whatever is free)."""
    import socket

    from mailbot.demo import demo_socket

    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", 8025))
        free = True
    except OSError:
        free = False  # another process here holds it: only the fallback can be checked
    probe.close()
    first = demo_socket()
    try:
        assert (first.getsockname()[1] == 8025) == free
        second = demo_socket()  # 8025 is now taken (by `first` if it was free)
        assert second.getsockname()[1] not in (8025, 0)
        second.close()
    finally:
        first.close()


def test_readme_names_the_content_security_policy_sent(config: Path) -> None:
    web = client(config)
    sent = web.get("/login").headers["content-security-policy"]
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    assert f"Content-Security-Policy: {sent}`" in readme
def test_an_unknown_path_is_the_danish_not_found_page(config: Path) -> None:
    web = client(config)
    assert sign_in(web, "rådet") == 303
    for path in ("/nonexist", "/sager/ITP-2026-0001/dokumenter/..%2F..",
                 "/sager/ITP-2026-0001/dokumenter/abc"):
        answer = web.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "<h1>Ikke fundet</h1>" in answer.text and "Not Found" not in answer.text
        assert "rådet" in answer.text  # the layout with the signed-in user's menu
        assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert web.get("/healthz").status_code in (200, 503)
    assert web.get("/metrics").headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(("query", "said"), [
    ("status=nonsense", "Der er ingen status, der hedder &bdquo;nonsense&ldquo;, så ingen "
                        "sager vises."),
    ("status=%3Cscript%3E", "Der er ingen status, der hedder &bdquo;&lt;script&gt;&ldquo;"),
    ("moede=2026-99-99", "&bdquo;2026-99-99&ldquo; er ikke en mødedato (skriv ÅÅÅÅ-MM-DD), "
                         "så ingen sager vises."),
    ("moede=2026-03-16", "Ingen sager med det filter."),  # a date with no case on it
])
def test_an_unknown_filter_shows_no_case_and_says_so(config: Path, query: str,
                                                     said: str) -> None:
    web = client(config)
    assert sign_in(web, "sekretær") == 303
    page = web.get(f"/sager?{query}")
    assert page.status_code == 200
    assert said in page.text
    assert "ITP-2026-0001" not in page.text and "ITP-2026-0002" not in page.text
    assert "0 sager" in page.text
