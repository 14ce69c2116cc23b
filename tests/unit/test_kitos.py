"""The system owner from KITOS: the client against tests/kitos_server.py (our own stand-in for
KITOS on 127.0.0.1, not a mock of httpx), and the owner job against a real SQLite database.
Nothing is faked but KITOS itself, at its HTTP interface."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from mailbot.app import Bot, build_bot
from mailbot.clock import Clock
from mailbot.config import Settings, load_settings
from mailbot.council.owner import look_up_owners, owner_missing
from mailbot.db import migrate, transaction
from mailbot.kitos import KitosClient, KitosError, KitosProblem
from mailbot.models import Case, CaseEvent
from mailbot.vocabulary import CaseStatus, OwnerSource
from tests.kitos_server import CVR, EMAIL, PASSWORD, KitosData, KitosServer
from tests.unit.conftest import write_config

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@dataclass
class Kitos:
    """The stand-in's data (what KITOS knows) and its address."""

    data: KitosData
    url: str
    org: str  # Albertslund's organisation uuid
    owner: dict[str, str]  # Søren Ravn, holder of "Systemejer" on RuteNet and Økonomisystem


@pytest.fixture
def kitos() -> Iterator[Kitos]:
    data = KitosData()
    data.organization("Albertslund Kommune (gammel)", "1" + CVR)  # a CVR that contains ours
    org = data.organization("Albertslund Kommune", CVR)
    owner = data.user(org, "Søren", "Ravn", "soren.ravn@albertslund.dk")
    clerk = data.user(org, "Lise", "Bo", "lise.bo@albertslund.dk")
    data.usage(org, "RuteNet", [("Systemadministrator", clerk), ("Systemejer", owner)])
    data.usage(org, "Økonomisystem", [("SYSTEMEJER", owner)], local_call_name="ØS")
    data.usage(org, "Økonomisystem Rapportering", [("Systemejer", clerk)])
    data.usage(org, "Aula", [("Systemadministrator", clerk)])
    server = KitosServer(data).start()
    yield Kitos(data, server.url, org, owner)
    server.stop()


def kitos_toml(url: str, **extra: object) -> str:
    values: dict[str, object] = {"enabled": True, "base_url": url, "email": EMAIL,
                                 "password": PASSWORD, "organization_cvr": CVR,
                                 "timeout_seconds": 2, **extra}
    lines = [f"{k} = {v!r}".replace("'", '"') if not isinstance(v, bool)
             else f"{k} = {str(v).lower()}" for k, v in values.items()]
    return "\n[kitos]\n" + "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database at the newest revision, copied for each test (migrating takes a second)."""
    from mailbot.db import make_engine

    path = tmp_path_factory.mktemp("db") / "mailbot.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture(autouse=True)
def _database(migrated: Path, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    shutil.copyfile(migrated, tmp_path / "data" / "mailbot.sqlite3")


def make_bot(folder: Path, kitos_section: str = "") -> Bot:
    """The bot of the starter config in `folder` (its database copied from `migrated`)."""
    path = write_config(folder)
    path.write_text(path.read_text(encoding="utf-8") + kitos_section, encoding="utf-8")
    bot = build_bot(load_settings(path, environ={}), Clock(NOW))
    migrate(bot.engine)
    return bot


def add_case(bot: Bot, what: str, title: str = "Lokalebooking", **fields: Any) -> int:
    answers = dict.fromkeys(("who", "what", "where", "when", "why", "cost"), "x")
    answers["what"] = what
    with transaction(bot.engine) as session:
        number = len(session.exec(select(Case)).all()) + 1
        values: dict[str, Any] = {"status": CaseStatus.COMPLETE, **fields}
        case = Case(ref=f"ITP-2026-{number:04d}", applicant_address="mette@albertslund.dk",
                    title=title, created_at=NOW, updated_at=NOW, answers=answers, **values)
        session.add(case)
        session.flush()
        assert case.id is not None
        return case.id


def case(bot: Bot, case_id: int) -> Case:
    with Session(bot.engine) as session:
        found = session.get(Case, case_id)
        assert found is not None
        return found


def client(kitos: Kitos, tmp_path: Path, **extra: object) -> KitosClient:
    bot = make_bot(tmp_path, kitos_toml(kitos.url, **extra))
    return KitosClient(bot.settings.kitos)


# -- the client ------------------------------------------------------------------------------
def test_a_system_with_a_systemejer_role_gives_its_holder_with_the_email(
        kitos: Kitos, tmp_path: Path) -> None:
    api = client(kitos, tmp_path)
    org = api.organization(CVR)
    usage = api.find_usage(org.uuid, "rutenet", lambda name: name.casefold() == "rutenet")
    assert usage is not None and usage.system_name == "RuteNet"
    owners = api.owners(org.uuid, usage, "systemejer")
    assert [(p.name, p.email) for p in owners] == [("Søren Ravn", "soren.ravn@albertslund.dk")]
    login = kitos.data.asked("/api/authorize/GetToken")
    assert len(login) == 1  # one token for all four requests


def test_the_organisation_is_the_one_whose_cvr_is_exactly_ours(kitos: Kitos,
                                                                 tmp_path: Path) -> None:
    api = client(kitos, tmp_path)
    assert api.organization(CVR).uuid == kitos.org
    assert [o["cvr"] for o in kitos.data.organizations if CVR in o["cvr"]] == ["1" + CVR, CVR]
    with pytest.raises(KitosError) as err:
        api.organization("12345678")
    assert err.value.problem == KitosProblem.NO_ORGANIZATION


def test_usages_are_read_page_after_page_until_a_short_page(kitos: Kitos,
                                                             tmp_path: Path) -> None:
    for n in range(260):  # 260 usages whose name contains "rutenet", the real one last
        kitos.data.usage(kitos.org, f"RuteNet Tillæg {n:03d}")
    kitos.data.usages.append(kitos.data.usages.pop(0))  # RuteNet itself on the second page
    api = client(kitos, tmp_path)
    usage = api.find_usage(kitos.org, "rutenet", lambda name: name == "RuteNet")
    assert usage is not None and usage.roles[1].role == "Systemejer"
    pages = [(r.query["page"], r.query["pageSize"])
             for r in kitos.data.asked("/api/v2/it-system-usages")]
    assert pages == [("0", "250"), ("1", "250")]


def test_an_expired_token_is_renewed_once_and_the_request_repeated(kitos: Kitos,
                                                                    tmp_path: Path) -> None:
    api = client(kitos, tmp_path)
    api.organization(CVR)
    kitos.data.revoke_tokens()  # KITOS now refuses the token: 401
    assert api.organization(CVR).uuid == kitos.org
    assert len(kitos.data.asked("/api/authorize/GetToken")) == 2
    paths = [r.path for r in kitos.data.requests]
    assert paths.count("/api/v2/organizations") == 3  # ok, 401, ok after the new login


def test_a_token_near_its_expiry_is_renewed_before_it_is_used(kitos: Kitos,
                                                               tmp_path: Path) -> None:
    kitos.data.token_lifetime = timedelta(minutes=2)  # within the five minutes' margin
    api = client(kitos, tmp_path)
    api.organization(CVR)
    api.organization(CVR)
    assert len(kitos.data.asked("/api/authorize/GetToken")) == 2


def test_a_wrong_password_is_a_login_error_without_the_password(kitos: Kitos,
                                                                tmp_path: Path) -> None:
    api = client(kitos, tmp_path, password="forkert-kodeord")
    with pytest.raises(KitosError) as err:
        api.organization(CVR)
    assert err.value.problem == KitosProblem.LOGIN and err.value.status == 401
    assert "forkert-kodeord" not in str(err.value) and EMAIL in str(err.value)


@pytest.mark.parametrize(("fail", "problem", "words"), [
    ((403, "application/json", '{"msg":"Du har ikke rettigheder til at bruge denne funktion"}'),
     KitosProblem.REFUSED, "KITOS answered 403 to GET /api/v2/it-system-usages"),
    ((500, "text/plain", "Internal Server Error\r\nat Kitos.Web"), KitosProblem.REFUSED,
     "KITOS answered 500 to GET /api/v2/it-system-usages: Internal Server Error at Kitos.Web"),
    ((200, "text/html", "<html><body>Log ind</body></html>"), KitosProblem.BAD_ANSWER,
     "answered 200 with text/html, not JSON"),
    ((200, "application/json", '{"not": "a list"}'), KitosProblem.BAD_ANSWER,
     "it-system-usages is not a JSON array"),
])
def test_refusals_and_answers_that_are_not_json_are_one_typed_error(
        kitos: Kitos, tmp_path: Path, fail: tuple[int, str, str], problem: KitosProblem,
        words: str) -> None:
    kitos.data.fail["/api/v2/it-system-usages"] = fail
    api = client(kitos, tmp_path)
    with pytest.raises(KitosError) as err:
        api.usages(kitos.org, "rutenet")
    assert err.value.problem == problem and words in str(err.value)


def test_a_timeout_and_a_refused_connection_are_typed_errors(kitos: Kitos,
                                                             tmp_path: Path) -> None:
    kitos.data.delay_seconds = 1.5
    with pytest.raises(KitosError) as err:
        client(kitos, tmp_path, timeout_seconds=0.3).organization(CVR)
    assert err.value.problem == KitosProblem.TIMEOUT and "within 0.3 s" in str(err.value)
    from mailbot.mailworld import free_port

    closed = Kitos(kitos.data, f"http://127.0.0.1:{free_port()}", kitos.org, kitos.owner)
    with pytest.raises(KitosError) as err:
        client(closed, tmp_path / "b").organization(CVR)
    assert err.value.problem == KitosProblem.UNREACHABLE


# -- the owner job, on a real SQLite database -----------------------------------------------
def test_the_job_stores_the_systemejer_from_kitos_on_the_case(kitos: Kitos,
                                                              tmp_path: Path) -> None:
    bot = make_bot(tmp_path, kitos_toml(kitos.url))
    case_id = add_case(bot, "Et tilkøb til RuteNet, så chaufførerne ser ruterne på tablets.",
                       title="Udvidelse af RuteNet")
    assert look_up_owners(bot, NOW) == 1
    found = case(bot, case_id)
    assert found.system_owner == "Søren Ravn (soren.ravn@albertslund.dk)"
    assert found.system_owner_source == OwnerSource.KITOS
    assert found.system_owner_note == "fundet i KITOS: RuteNet, rolle Systemejer"
    assert not owner_missing(found)
    with Session(bot.engine) as session:
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case_id)
                              .where(col(CaseEvent.kind) == "system_owner")).all()
    assert len(events) == 1 and "kitos: Søren Ravn" in events[0].detail
    assert look_up_owners(bot, NOW) == 0  # looked up once


def test_an_inflected_name_in_the_brief_finds_the_system(kitos: Kitos, tmp_path: Path) -> None:
    bot = make_bot(tmp_path, kitos_toml(kitos.url))
    case_id = add_case(bot, "Vi vil udvide økonomisystemet med et modul til bilagsscanning.",
                       title="Bilagsscanning")
    look_up_owners(bot, NOW)
    found = case(bot, case_id)
    # "økonomisystemet" -> "økonomisystem"; "Økonomisystem Rapportering" is another system
    assert found.system_owner_note == "fundet i KITOS: Økonomisystem, rolle Systemejer"
    assert found.system_owner == "Søren Ravn (soren.ravn@albertslund.dk)"
    assert [r.query["systemNameContent"] for r in kitos.data.asked(
        "/api/v2/it-system-usages")] == ["økonomisystem"]


def test_a_system_kitos_does_not_know_leaves_the_owner_to_the_applicant(
        kitos: Kitos, tmp_path: Path) -> None:
    bot = make_bot(tmp_path, kitos_toml(kitos.url))
    unknown = add_case(bot, "Et tilkøb til FleetPlanner fra vores leverandør.",
                       title="Tilkøb til FleetPlanner")
    no_owner = add_case(bot, "Aula skal have et modul til forældremøder.", title="Aula")
    look_up_owners(bot, NOW)
    assert case(bot, unknown).system_owner_source == OwnerSource.NOT_FOUND
    assert case(bot, unknown).system_owner_note == (
        "ikke fundet i KITOS (søgt på FleetPlanner): ansøgeren skal udpege en systemejer")
    assert case(bot, no_owner).system_owner_note == (
        "Aula findes i KITOS, men uden Systemejer: ansøgeren skal udpege en systemejer")
    assert owner_missing(case(bot, unknown)) and owner_missing(case(bot, no_owner))


def test_a_new_system_asks_nothing_of_kitos(kitos: Kitos, tmp_path: Path) -> None:
    bot = make_bot(tmp_path, kitos_toml(kitos.url))
    case_id = add_case(bot, "Et nyt bookingsystem til rådhusets mødelokaler.")
    look_up_owners(bot, NOW)
    assert case(bot, case_id).system_owner_source == OwnerSource.NEW_SYSTEM
    assert owner_missing(case(bot, case_id))
    assert kitos.data.requests == []


def test_without_kitos_the_applicant_is_asked(tmp_path: Path) -> None:
    bot = make_bot(tmp_path)  # [kitos] enabled = false, the default
    case_id = add_case(bot, "Et tilkøb til RuteNet.")
    named = add_case(bot, "Et tilkøb til RuteNet.", system_owner="Lone Holm",
                     system_owner_source=OwnerSource.BRIEF)
    assert not owner_missing(case(bot, case_id))  # not looked up yet: not asked for yet
    look_up_owners(bot, NOW)
    assert case(bot, case_id).system_owner_source == OwnerSource.KITOS_DISABLED
    assert owner_missing(case(bot, case_id))
    assert case(bot, named).system_owner_source == OwnerSource.BRIEF
    assert not owner_missing(case(bot, named))


def test_cases_seen_before_kitos_was_set_up_are_looked_up_once_it_is(
        kitos: Kitos, tmp_path: Path) -> None:
    before = make_bot(tmp_path)  # [kitos] enabled = false
    case_id = add_case(before, "Et tilkøb til RuteNet, så chaufførerne ser ruterne.",
                       title="Udvidelse af RuteNet")
    look_up_owners(before, NOW)
    assert case(before, case_id).system_owner_source == OwnerSource.KITOS_DISABLED
    after = make_bot(tmp_path, kitos_toml(kitos.url))  # the operator sets KITOS up
    assert look_up_owners(after, NOW) == 1
    found = case(after, case_id)
    assert found.system_owner_source == OwnerSource.KITOS and not owner_missing(found)


@pytest.mark.parametrize(("fail", "note"), [
    ((403, "application/json", '{"msg":"Du har ikke rettigheder til at bruge denne funktion"}'),
     "systemejer ikke slået op (KITOS svarede 403)"),
    ((500, "text/plain", "Internal Server Error"),
     "systemejer ikke slået op (KITOS svarede 500)"),
    ((502, "text/html", "<html><h1>502 Bad Gateway</h1></html>"),
     "systemejer ikke slået op (KITOS svarede 502)"),
])
def test_kitos_failing_never_blocks_the_case_and_the_note_says_why(
        kitos: Kitos, tmp_path: Path, fail: tuple[int, str, str], note: str,
        caplog: pytest.LogCaptureFixture) -> None:
    kitos.data.fail["/api/v2/it-system-usages"] = fail
    bot = make_bot(tmp_path, kitos_toml(kitos.url))
    first = add_case(bot, "Et tilkøb til RuteNet.")
    second = add_case(bot, "Et tilkøb til Aula.")
    with caplog.at_level(logging.DEBUG):
        assert look_up_owners(bot, NOW) == 2
    for case_id in (first, second):
        assert case(bot, case_id).system_owner_source == OwnerSource.KITOS_ERROR
        assert case(bot, case_id).system_owner_note == note
        assert not owner_missing(case(bot, case_id))
    # one failure per run: the second case did not ask again
    assert len(kitos.data.asked("/api/v2/it-system-usages")) == 1
    assert PASSWORD not in caplog.text
    assert not any(token in caplog.text for token in kitos.data.tokens)
    # KITOS answers again: the case is looked up an hour later
    del kitos.data.fail["/api/v2/it-system-usages"]
    assert look_up_owners(bot, NOW + timedelta(minutes=30)) == 0
    assert look_up_owners(bot, NOW + timedelta(hours=1)) == 2
    assert case(bot, first).system_owner_source == OwnerSource.KITOS


def test_a_timeout_is_noted_with_the_seconds(kitos: Kitos, tmp_path: Path) -> None:
    kitos.data.delay_seconds = 1.5
    bot = make_bot(tmp_path, kitos_toml(kitos.url, timeout_seconds=0.3))
    case_id = add_case(bot, "Et tilkøb til RuteNet.")
    look_up_owners(bot, NOW)
    assert case(bot, case_id).system_owner_note == (
        "systemejer ikke slået op (KITOS svarede ikke inden for 0.3 sekunder)")


def test_a_name_is_asked_once_within_cache_hours(kitos: Kitos, tmp_path: Path) -> None:
    bot = make_bot(tmp_path, kitos_toml(kitos.url, cache_hours=24))
    add_case(bot, "Et tilkøb til RuteNet.")
    add_case(bot, "Flere licenser til RuteNet.", title="RuteNet-licenser")
    look_up_owners(bot, NOW)
    add_case(bot, "Endnu et modul til RuteNet.")
    look_up_owners(bot, NOW + timedelta(hours=23))
    assert len(kitos.data.asked("/api/v2/it-system-usages")) == 1
    add_case(bot, "Et fjerde modul til RuteNet.")
    look_up_owners(bot, NOW + timedelta(hours=25))
    assert len(kitos.data.asked("/api/v2/it-system-usages")) == 2


def test_an_owner_named_while_kitos_was_asked_is_kept(kitos: Kitos, tmp_path: Path) -> None:
    """The job stores its finding only if the case still waits for one."""
    from mailbot.council import owner as owner_module

    bot = make_bot(tmp_path, kitos_toml(kitos.url))
    case_id = add_case(bot, "Et tilkøb til RuteNet.")
    with Session(bot.engine) as session:
        pending = owner_module.pending_cases(session, NOW)
    with transaction(bot.engine) as session:
        row = session.get(Case, case_id)
        assert row is not None
        row.system_owner, row.system_owner_source = "Lone Holm", OwnerSource.APPLICANT
    finding = owner_module.Finding(OwnerSource.KITOS, "Søren Ravn", "fundet i KITOS")
    with transaction(bot.engine) as session:
        assert owner_module._store(session, pending[0], finding, NOW) == 0
    assert case(bot, case_id).system_owner == "Lone Holm"


# -- [kitos] in the config --------------------------------------------------------------------
def _load(folder: Path, section: str, environ: dict[str, str] | None = None) -> Settings:
    path = write_config(folder)
    path.write_text(path.read_text(encoding="utf-8") + section, encoding="utf-8")
    return load_settings(path, environ=environ or {})


def test_the_password_comes_from_the_environment_and_is_never_echoed(tmp_path: Path) -> None:
    from mailbot.errors import ConfigError

    section = ('\n[kitos]\nenabled = true\nemail = "api-itp@albertslund.dk"\n'
               "organization_cvr = 29189781\n")
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, section)
    assert "[kitos.password] field required" in str(err.value)
    assert "MAILBOT_KITOS__PASSWORD" in err.value.fix
    settings = _load(tmp_path, section, {"MAILBOT_KITOS__PASSWORD": PASSWORD})
    assert settings.kitos.password.get_secret_value() == PASSWORD
    assert settings.kitos.organization_cvr == CVR
    assert PASSWORD not in repr(settings)
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, section, {"MAILBOT_KITOS__PASSWORD": PASSWORD,
                                  "MAILBOT_KITOS__TIMEOUT_SECONDS": "soon"})
    assert "MAILBOT_KITOS__TIMEOUT_SECONDS" in str(err.value)


@pytest.mark.parametrize(("line", "key", "words"), [
    ('base_url = "http://kitos.dk"', "kitos.base_url", "is not https"),
    ('organization_cvr = "2918978"', "kitos.organization_cvr", "is not a CVR number"),
    ('email = "api-itp"', "kitos.email", "is not the e-mail address"),
])
def test_a_wrong_kitos_key_names_itself(tmp_path: Path, line: str, key: str,
                                        words: str) -> None:
    from mailbot.errors import ConfigError

    values = {"enabled": "true", "email": '"api-itp@albertslund.dk"',
              "password": f'"{PASSWORD}"', "organization_cvr": f'"{CVR}"'}
    values[line.split(" = ")[0]] = line.split(" = ")[1]
    section = "\n[kitos]\n" + "\n".join(f"{k} = {v}" for k, v in values.items()) + "\n"
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, section)
    assert f"[{key}]" in str(err.value) and words in str(err.value)
    assert PASSWORD not in str(err.value)


def test_kitos_is_off_by_default_and_needs_nothing(tmp_path: Path) -> None:
    settings = _load(tmp_path, "")
    assert settings.kitos.enabled is False
    assert settings.kitos.base_url == "https://kitos.dk"
    assert settings.kitos.owner_role == "Systemejer"
    assert settings.kitos.cache_hours == 24


# -- on the agenda --------------------------------------------------------------------------
def test_the_agenda_shows_the_owner_with_its_source_or_why_there_is_none(tmp_path: Path
                                                                         ) -> None:
    """The agenda's text, HTML and Word file, rendered from a real database."""
    import io
    from datetime import date

    import docx

    from mailbot.council.agenda import agenda_context
    from mailbot.council.agenda_docx import agenda_docx
    from mailbot.council.meetings import CouncilCalendar

    bot = make_bot(tmp_path)
    meeting = CouncilCalendar(bot.settings.council).meeting_on(date(2026, 3, 16))
    assert meeting is not None
    add_case(bot, "Et tilkøb til RuteNet.", status=CaseStatus.QUEUED, meeting_date=meeting.day,
             system_owner="Søren Ravn (soren.ravn@albertslund.dk)",
             system_owner_source=OwnerSource.KITOS,
             system_owner_note="fundet i KITOS: RuteNet, rolle Systemejer")
    add_case(bot, "Et tilkøb til Aula.", status=CaseStatus.QUEUED, meeting_date=meeting.day,
             system_owner_source=OwnerSource.KITOS_ERROR,
             system_owner_note="systemejer ikke slået op (KITOS svarede 403)")
    with Session(bot.engine) as session:
        context = agenda_context(session, bot, meeting, version=1)
    text, html = bot.renderer.render("da", "agenda", context)
    word = "\n".join(p.text for p in docx.Document(
        io.BytesIO(agenda_docx(bot.renderer, context))).paragraphs)
    found = ("Systemejer: Søren Ravn (soren.ravn@albertslund.dk) – fundet i KITOS: RuteNet, "
             "rolle Systemejer")
    error = "Systemejer: ikke oplyst – systemejer ikke slået op (KITOS svarede 403)"
    for shown in (text, word, html):
        assert found in shown and error in shown
