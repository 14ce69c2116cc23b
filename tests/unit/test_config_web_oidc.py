"""[web.oidc]: what `[web] auth = "oidc"` needs, checked when the config is read, with errors
naming the file and key (or the environment variable of a nested key) and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.config import STARTER_CONFIG, load_settings
from mailbot.errors import ConfigError
from tests.unit.conftest import write_config

ISSUER = "https://login.microsoftonline.com/9f8e7d6c-1111-2222-3333-444455556666/v2.0"
CALLBACK = "https://mailbot.kommune.dk/login/oidc/callback"
SECRET = {"MAILBOT_WEB__OIDC__CLIENT_SECRET": "Hemmelig~Kode.123"}
GOOD = {"issuer": ISSUER, "client_id": "0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff",
        "redirect_url": CALLBACK}


def config(tmp_path: Path, auth: str = "oidc", users: str = '"anna@kommune.dk" = "secretary"',
           **keys: str) -> Path:
    values = {**GOOD, **keys}
    lines = "".join(f'{key} = "{value}"\n' for key, value in values.items() if value)
    path = write_config(tmp_path)
    path.write_text(path.read_text(encoding="utf-8") + f'\n[web]\nauth = "{auth}"\n'
                    f"\n[web.oidc]\n{lines}\n[web.oidc.users]\n{users}\n", encoding="utf-8")
    return path


def error_of(path: Path, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=SECRET if environ is None else environ)
    assert "Fix:" in str(caught.value) and "\n" not in str(caught.value)
    return caught.value


def test_a_complete_section_loads_with_the_secret_from_the_nested_variable(tmp_path: Path
                                                                            ) -> None:
    settings = load_settings(config(tmp_path), environ=SECRET)
    oidc = settings.web.oidc
    assert settings.web.auth == "oidc" and oidc.issuer == ISSUER
    assert oidc.client_secret.get_secret_value() == "Hemmelig~Kode.123"
    assert oidc.users == {"anna@kommune.dk": "secretary"} and oidc.groups == {}
    assert settings.origin("web.oidc.client_secret") == (
        "environment", "MAILBOT_WEB__OIDC__CLIENT_SECRET")
    assert "Hemmelig" not in repr(settings)


def test_the_ca_file_is_relative_to_the_config_and_must_hold_a_certificate(tmp_path: Path
                                                                         ) -> None:
    (tmp_path / "proxy-ca.pem").write_text("no certificate", encoding="utf-8")
    error = error_of(config(tmp_path, ca_file="proxy-ca.pem"))
    assert error.key == "web.oidc.ca_file" and str(tmp_path / "proxy-ca.pem") in error.problem


@pytest.mark.parametrize(("keys", "key", "words"), [
    ({"issuer": ""}, "web.oidc.issuer", "Directory (tenant) ID"),
    ({"issuer": "http://login.kommune.dk/adfs"}, "web.oidc.issuer", "not https"),
    ({"issuer": "https://login.microsoftonline.com/common/v2.0"}, "web.oidc.issuer",
     "any tenant"),
    ({"issuer": "https://login.microsoftonline.com/organizations/v2.0"}, "web.oidc.issuer",
     "any tenant"),
    ({"client_id": ""}, "web.oidc.client_id", "Application (client) ID"),
    ({"redirect_url": ""}, "web.oidc.redirect_url", "/login/oidc/callback"),
    ({"redirect_url": "http://mailbot.kommune.dk/login/oidc/callback"},
     "web.oidc.redirect_url", "not https"),
    ({"redirect_url": "https://mailbot.kommune.dk/"}, "web.oidc.redirect_url",
     "does not end in /login/oidc/callback"),
    ({"users": ""}, "web.oidc.users", "nobody may sign in"),
    ({"users": '"Anna@kommune.dk" = "secretary"\n"anna@kommune.dk" = "council"'},
     "web.oidc.users", "one user"),
])
def test_what_oidc_needs_is_named_with_its_key_and_fix(tmp_path: Path, keys: dict[str, str],
                                                       key: str, words: str) -> None:
    error = error_of(config(tmp_path, **keys))
    assert error.source == str(tmp_path / "mailbot.toml") and error.key == key
    assert words in f"{error.problem} {error.fix}"


def test_the_secret_is_required_and_named_by_its_variable(tmp_path: Path) -> None:
    error = error_of(config(tmp_path), environ={})
    assert error.key == "web.oidc.client_secret"
    assert "MAILBOT_WEB__OIDC__CLIENT_SECRET" in error.fix


def test_a_role_that_is_none_of_the_three_is_refused(tmp_path: Path) -> None:
    error = error_of(config(tmp_path, users='"anna@kommune.dk" = "admin"'))
    assert error.key == "web.oidc.users.anna@kommune.dk"
    assert "'secretary', 'operator' or 'council'" in error.problem


def test_a_nested_variable_is_named_in_the_error_and_a_misspelt_one_never_echoed(
        tmp_path: Path) -> None:
    error = error_of(config(tmp_path),
                     environ={**SECRET, "MAILBOT_WEB__OIDC__ISSUER": "http://idp.kommune.dk"})
    assert (error.source, error.key) == ("environment", "MAILBOT_WEB__OIDC__ISSUER")
    error = error_of(config(tmp_path), environ={"MAILBOT_WEB__OIDC__CLIENT_SECRT": "Hemmelig"})
    assert (error.source, error.key) == ("environment", "MAILBOT_WEB__OIDC__CLIENT_SECRT")
    assert "Hemmelig" not in str(error)


def test_other_sign_ins_do_not_need_the_section(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, auth="basic", issuer="", users=""), environ={})
    assert settings.web.auth == "basic" and settings.web.oidc.issuer == ""


def test_the_starter_configs_oidc_section_loads_uncommented(tmp_path: Path) -> None:
    start = STARTER_CONFIG.index("# [web.oidc]")
    section = STARTER_CONFIG[start:STARTER_CONFIG.index("\n\n", start)]
    uncommented = "\n".join(line.removeprefix("# ") for line in section.splitlines())
    path = tmp_path / "mailbot.toml"
    # the CA file of the example is not on this machine
    text = STARTER_CONFIG.replace(section, uncommented).replace(
        'ca_file = "/etc/mailbot/proxy-ca.pem"    # extra CA for the provider', "#")
    path.write_text(text + '\n[web]\nauth = "oidc"\n', encoding="utf-8")
    oidc = load_settings(path, environ={}).web.oidc
    assert oidc.redirect_url == "https://mailbot.kommune.dk/login/oidc/callback"
    assert oidc.users == {"sekretaer@kommune.dk": "secretary"}
    assert oidc.groups == {"00000000-0000-0000-0000-000000000000": "council"}
