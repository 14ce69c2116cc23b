"""The system owner end to end: briefs through the real IMAP and SMTP servers of the test world,
`mailbot run --once`, and KITOS as tests/kitos_server.py (our own stand-in on 127.0.0.1 with
KITOS's endpoints and shapes); `mailbot check` against it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest

from mailbot.clock import COPENHAGEN
from mailbot.mailworld import free_port
from mailbot.vocabulary import OwnerSource
from tests.conftest import World
from tests.e2e.records import cases
from tests.kitos_server import CVR, EMAIL, PASSWORD, KitosData, KitosServer

pytestmark = pytest.mark.e2e

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=COPENHAGEN)
RUTENET_BRIEF = """Hej

Hvem: Mette Holm, Vej og Park. Brugerne er 40 chauffører.
Hvad: Et tilkøb til RuteNet, så chaufførerne kan se dagens ruter på en tablet.
Hvor: Vej og Park.
Hvornår: 1. marts 2027.
Hvorfor: Papirlister bliver væk.
Hvor meget: 80.000 kr., betales af Vej og Park.

Med venlig hilsen
Mette
"""


@pytest.fixture
def kitos() -> Iterator[KitosServer]:
    data = KitosData()
    org = data.organization("Albertslund Kommune", CVR)
    owner = data.user(org, "Søren", "Ravn", "soren.ravn@albertslund.dk")
    data.usage(org, "RuteNet", [("Systemejer", owner)])
    server = KitosServer(data).start()
    yield server
    server.stop()


def kitos_section(kitos: KitosServer, **extra: object) -> dict[str, object]:
    return {"enabled": True, "base_url": kitos.url, "email": EMAIL, "password": PASSWORD,
            "organization_cvr": CVR, "timeout_seconds": 2, **extra}


def case_json(world: World, ref: str) -> dict[str, object]:
    result = world.cli("case", ref, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_check_logs_in_to_kitos_and_finds_the_organisation(world: World,
                                                           kitos: KitosServer) -> None:
    world.write_config(kitos=kitos_section(kitos))
    result = world.cli("check")
    assert result.returncode == 0, result.stderr
    assert (f"ok    kitos: logged in to {kitos.url} as {EMAIL}; organisation "
            f"Albertslund Kommune (CVR {CVR})") in result.stdout


def test_check_with_a_wrong_kitos_password_names_the_key_and_the_fix(
        world: World, kitos: KitosServer) -> None:
    world.write_config(kitos=kitos_section(kitos, password="forkert-kodeord"))
    result = world.cli("check")
    assert result.returncode == 2
    assert "[kitos.password] KITOS refused the login of api-itp@albertslund.dk (401)" \
        in result.stderr
    assert "Fix: check kitos.email and the password (MAILBOT_KITOS__PASSWORD)" in result.stderr
    assert "API user" in result.stderr
    assert "forkert-kodeord" not in result.stderr + result.stdout
    assert "ok    smtp" in result.stdout  # the steps before it passed
    # the password from the environment: the variable is named
    section = kitos_section(kitos)
    del section["password"]
    world.write_config(kitos=section)
    result = world.cli("check", env={"MAILBOT_KITOS__PASSWORD": "forkert-kodeord"})
    assert "environment: [MAILBOT_KITOS__PASSWORD] KITOS refused the login" in result.stderr


def test_check_when_kitos_refuses_the_user_names_the_rights(world: World,
                                                            kitos: KitosServer) -> None:
    kitos.data.fail["/api/v2/organizations"] = (
        403, "application/json", '{"msg":"Du har ikke rettigheder til at bruge denne funktion"}')
    world.write_config(kitos=kitos_section(kitos))
    result = world.cli("check")
    assert result.returncode == 2
    assert "[kitos.email] KITOS answered 403 to GET /api/v2/organizations" in result.stderr
    assert "local administrator" in result.stderr


def test_check_when_kitos_is_unreachable(world: World, kitos: KitosServer) -> None:
    world.write_config(kitos=kitos_section(kitos, base_url=f"http://127.0.0.1:{free_port()}"))
    result = world.cli("check")
    assert result.returncode == 2
    assert "[kitos.base_url] KITOS at http://127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_brief_about_a_system_in_kitos_gets_its_systemejer(world: World,
                                                             kitos: KitosServer) -> None:
    world.write_config(kitos=kitos_section(kitos))
    world.deliver(world.brief(subject="Projektforslag: Udvidelse af RuteNet",
                              body=RUTENET_BRIEF))
    world.run_once(NOW)
    [case] = cases(world)
    data = case_json(world, case.ref)
    assert data["system_owner"] == "Søren Ravn (soren.ravn@albertslund.dk)"
    assert data["system_owner_source"] == OwnerSource.KITOS
    assert data["system_owner_note"] == "fundet i KITOS: RuteNet, rolle Systemejer"
    text = world.cli("case", case.ref).stdout
    assert ("owner:     Søren Ravn (soren.ravn@albertslund.dk) (kitos: fundet i KITOS: "
            "RuteNet, rolle Systemejer)") in text
    assert len(world.received_by(world.applicant)) == 1  # the receipt went out as always


def test_kitos_down_never_holds_up_the_mail(world: World, kitos: KitosServer) -> None:
    kitos.data.fail["/api/authorize/GetToken"] = (503, "text/html", "<h1>Service Unavailable</h1>")
    world.write_config(kitos=kitos_section(kitos))
    world.deliver(world.brief(subject="Projektforslag: Udvidelse af RuteNet",
                              body=RUTENET_BRIEF))
    world.run_once(NOW)
    [case] = cases(world)
    data = case_json(world, case.ref)
    assert data["system_owner"] is None
    assert data["system_owner_source"] == OwnerSource.KITOS_ERROR
    assert data["system_owner_note"] == "systemejer ikke slået op (KITOS svarede 503)"
    assert len(world.received_by(world.applicant)) == 1


def test_without_kitos_a_new_system_or_a_named_owner(world: World) -> None:
    """KITOS disabled (the default): "nyt system" is new_system, a named owner is the
    brief's, another system is kitos_disabled; a later "Systemejer: …" is the applicant's."""
    world.deliver(world.brief())  # "Hvad: Et nyt system til booking af mødelokaler."
    world.deliver(world.brief(subject="Projektforslag: Udvidelse af RuteNet",
                              body=RUTENET_BRIEF.replace(
                                  "Med venlig", "Systemejer: Lone Holm\n\nMed venlig")))
    world.deliver(world.brief(subject="Projektforslag: RuteNet på tablets",
                              body=RUTENET_BRIEF))
    world.run_once(NOW)
    new, named, other = cases(world)
    assert case_json(world, new.ref)["system_owner_source"] == OwnerSource.NEW_SYSTEM
    assert case_json(world, named.ref)["system_owner"] == "Lone Holm"
    assert case_json(world, named.ref)["system_owner_source"] == OwnerSource.BRIEF
    assert case_json(world, other.ref)["system_owner_source"] == OwnerSource.KITOS_DISABLED

    receipt = next(m for m in world.received_by(world.applicant)
                   if other.ref in str(m["Subject"]))
    world.deliver(world.brief(subject=f"SV: {receipt['Subject']}",
                              body="Systemejer: Bo Jensen, Vej og Park", attachments=(),
                              headers={"In-Reply-To": str(receipt["Message-ID"])}))
    world.run_once(NOW)
    data = case_json(world, other.ref)
    assert data["system_owner"] == "Bo Jensen"
    assert data["system_owner_source"] == OwnerSource.APPLICANT
    assert data["system_owner_note"] == "oplyst af ansøgeren"
