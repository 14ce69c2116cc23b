from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.config import STARTER_CONFIG, load_settings
from mailbot.errors import ConfigError


def write(tmp_path: Path, text: str = STARTER_CONFIG) -> Path:
    path = tmp_path / "mailbot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_starter_config_loads_with_every_section(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path), environ={})
    assert settings.imap.folder == "INBOX" and settings.imap.idle is True
    assert settings.reviewers.security_coordinator == ["informationssikkerhed@kommune.dk"]
    assert settings.database_url.startswith("sqlite:///")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path), environ={
        "MAILBOT_IMAP__PASSWORD": "fra-miljøet",
        "MAILBOT_IMAP__IDLE": "false",
        "MAILBOT_IMAP__PORT": "1143",
        "MAILBOT_COUNCIL__SECRETARY": "a@k.dk, b@k.dk",
    })
    assert settings.imap.password.get_secret_value() == "fra-miljøet"
    assert settings.imap.idle is False and settings.imap.port == 1143
    assert settings.council.secretary == ["a@k.dk", "b@k.dk"]


def test_secrets_are_masked_in_repr(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path), environ={"MAILBOT_SMTP__PASSWORD": "hemmelig"})
    assert "hemmelig" not in repr(settings) and "hemmelig" not in str(settings.model_dump())


@pytest.mark.parametrize(("old", "new", "key"), [
    ('security = "ssl"', 'security = "tls"', "imap.security"),
    ('poll_seconds = 60', 'poll_seconds = 0', "imap.poll_seconds"),
    ('address = "it.projekter@kommune.dk"', 'address = "it.projekter"', "bot.address"),
    ('it_architect = ["it-arkitekt@kommune.dk"]', 'it_architect = ["arkitekten"]',
     "reviewers.it_architect"),
    ('idle = true', 'idle = true\nidel = true', "imap.idel"),
])
def test_errors_name_file_key_and_fix(tmp_path: Path, old: str, new: str, key: str) -> None:
    path = write(tmp_path, STARTER_CONFIG.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert str(path) in message and f"[{key}]" in message and "Fix:" in message


def test_authserv_id_and_idle_renew_seconds(tmp_path: Path) -> None:
    """imap.authserv_id is a list (commas in the environment) and off by default; a new IDLE
    at most every 29 minutes (RFC 2177 section 3)."""
    path = write(tmp_path)
    settings = load_settings(path, environ={})
    assert settings.imap.authserv_id == [] and settings.imap.idle_renew_seconds == 240
    settings = load_settings(path, environ={"MAILBOT_IMAP__AUTHSERV_ID": "mx1.k.dk, mx2.k.dk",
                                            "MAILBOT_IMAP__IDLE_RENEW_SECONDS": "30"})
    assert settings.imap.authserv_id == ["mx1.k.dk", "mx2.k.dk"]
    assert settings.imap.idle_renew_seconds == 30
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={"MAILBOT_IMAP__IDLE_RENEW_SECONDS": "1800"})
    assert "MAILBOT_IMAP__IDLE_RENEW_SECONDS" in str(err.value)


@pytest.mark.parametrize("value", [
    '"drift@kommune.dk, vagt@kommune.dk"',  # two addresses in one entry: only one got mail
    '"drift@kommune.dk\\nBcc: x@evil.example"',  # a line break would end up in a header
    '"Drift <drift@kommune.dk>"',
    '"drift"',
])
def test_an_address_list_entry_is_exactly_one_address(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, STARTER_CONFIG + f"\n[operator]\naddresses = [{value}]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert "[operator.addresses]" in message and "one full address per list entry" in message
    assert len(message.strip().splitlines()) == 1  # one line, the line break shown escaped


def test_operator_addresses_from_the_environment_are_split_at_commas(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path), environ={
        "MAILBOT_OPERATOR__ADDRESSES": "drift@kommune.dk, vagt@kommune.dk"})
    assert settings.operator.addresses == ["drift@kommune.dk", "vagt@kommune.dk"]


def test_starter_config_explains_operator_and_it_loads_uncommented(tmp_path: Path) -> None:
    """`mailbot init` shows where alerts go: a commented [operator] section that loads as
    written once the comment signs are taken away; commented, nobody is mailed."""
    section = STARTER_CONFIG[STARTER_CONFIG.index("# [operator]"):]
    assert [line.split("#")[1].split("=")[0].strip() for line in section.splitlines()[1:]] \
        == ["addresses", "alert_hours"]
    assert all(" # " in line for line in section.splitlines()[1:])  # each explained
    assert load_settings(write(tmp_path), environ={}).operator.addresses == []
    uncommented = STARTER_CONFIG.replace("# [operator]", "[operator]").replace(
        "# addresses =", "addresses =").replace("# alert_hours =", "alert_hours =")
    operator = load_settings(write(tmp_path, uncommented), environ={}).operator
    assert operator.addresses == ["it-drift@kommune.dk"] and operator.alert_hours == 6
