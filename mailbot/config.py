"""One typed settings object, read from a TOML file with MAILBOT_<SECTION>__<KEY> overrides."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from mailbot.errors import ConfigError

Security = Literal["ssl", "starttls", "none"]
ENV_PREFIX = "MAILBOT_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BotSettings(_Section):
    address: str
    name: str = "IT-Projektrådet"
    data_dir: Path = Path("./data")
    database_url: str = ""
    language: Literal["da", "en"] = "da"
    log_level: str = "INFO"
    rules_dir: Path | None = None
    templates_dir: Path | None = None
    # signs the Message-IDs of the bot's mails; empty: generated once into data_dir/secret
    secret: SecretStr = SecretStr("")

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


class ImapSettings(_Section):
    host: str
    port: int = 993
    security: Security = "ssl"
    username: str
    password: SecretStr
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    idle: bool = True
    poll_seconds: int = Field(default=60, ge=1)
    timeout_seconds: int = Field(default=60, ge=1)
    max_message_mb: float = Field(default=25, gt=0)


class SmtpSettings(_Section):
    host: str
    port: int = 587
    security: Security = "starttls"
    username: str = ""
    password: SecretStr = SecretStr("")
    timeout_seconds: int = Field(default=60, ge=1)
    give_up_hours: float = Field(default=48, gt=0)


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday"]


class CouncilSettings(_Section):
    secretary: list[str] = Field(default_factory=list)
    strategic_board: list[str] = Field(default_factory=list)
    meeting_weekday: Weekday = "monday"
    meeting_time: str = Field(default="09:00", pattern=r"^\d{2}:\d{2}$")
    deadline_days_before: int = Field(default=7, ge=1, le=28)
    deadline_time: str = Field(default="12:00", pattern=r"^\d{2}:\d{2}$")
    timezone: str = "Europe/Copenhagen"
    # "move": a meeting on a public holiday moves to the next working day, a deadline on one
    # moves back to the working day before; "skip": no meeting that week
    holiday_policy: Literal["move", "skip"] = "move"
    # periods without meetings, "YYYY-MM-DD..YYYY-MM-DD" (e.g. summer and Christmas)
    no_meeting_periods: list[str] = Field(default_factory=list)
    extra_meetings: list[str] = Field(default_factory=list)  # "YYYY-MM-DD"
    empty_agenda: Literal["send", "skip"] = "send"
    agenda_zip_max_mb: float = Field(default=10, ge=0)


class ReviewerSettings(_Section):
    it_operations: list[str] = Field(default_factory=list)
    it_architect: list[str] = Field(default_factory=list)
    contract_manager: list[str] = Field(default_factory=list)
    security_coordinator: list[str] = Field(default_factory=list)


class ReviewSettings(_Section):
    reminder_working_days: int = Field(default=3, ge=1)
    max_reminders: int = Field(default=2, ge=0)
    applicant_reminder_working_days: int = Field(default=5, ge=1)
    guidance_batch_minutes: float = Field(default=5, ge=0)
    reply_tokens: bool = False


class Settings(_Section):
    bot: BotSettings
    imap: ImapSettings
    smtp: SmtpSettings
    council: CouncilSettings = Field(default_factory=CouncilSettings)
    reviewers: ReviewerSettings = Field(default_factory=ReviewerSettings)
    reviews: ReviewSettings = Field(default_factory=ReviewSettings)
    source: str = "<defaults>"

    @property
    def database_url(self) -> str:
        if self.bot.database_url:
            return self.bot.database_url
        return f"sqlite:///{(self.bot.data_dir / 'mailbot.sqlite3').resolve()}"


_FIXES = {
    "missing": "add the key to the file (see `mailbot init` for a commented example)",
    "extra_forbidden": "remove the key or check its spelling against the README",
    "literal_error": "use one of the values listed",
}


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        out.setdefault(section, {})[key] = value
    return out


def _coerce_env(value: str) -> Any:
    """Env values are strings; lists are comma separated, booleans true/false."""
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return value


def _merge(data: dict[str, Any], overrides: dict[str, dict[str, str]]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    list_keys = {
        name
        for model in (CouncilSettings, ReviewerSettings)
        for name in model.model_fields
    }
    for section, values in overrides.items():
        target = merged.setdefault(section, {})
        for key, raw in values.items():
            if key in list_keys:
                target[key] = [part.strip() for part in raw.split(",") if part.strip()]
            else:
                target[key] = _coerce_env(raw)
    return merged


def load_settings(path: Path, environ: dict[str, str] | None = None) -> Settings:
    """Read the TOML file and the environment; raise ConfigError naming the key and the fix."""
    env = dict(os.environ if environ is None else environ)
    source = str(path)
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(source, "-", f"is not valid TOML ({err})",
                              "correct the syntax") from err
    else:
        data = {}
        if not _env_overrides(env):
            raise ConfigError(
                source, "-", "the config file does not exist",
                "run `mailbot init` to write one, or pass --config PATH",
            )
    merged = _merge(data, _env_overrides(env))
    merged["source"] = source
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            source, key, first["msg"].lower(), _FIXES.get(first["type"], "correct the value")
        ) from err
    _check_addresses(settings)
    return settings


def _check_addresses(settings: Settings) -> None:
    """Every address list holds addresses; every calendar entry is a date."""
    _check_calendar(settings)
    if "@" not in settings.bot.address:
        raise ConfigError(settings.source, "bot.address", "is not an email address",
                          "set it to the project mailbox, e.g. it.projekter@kommune.dk")
    address_lists = {"council": ("secretary", "strategic_board"),
                     "reviewers": tuple(ReviewerSettings.model_fields)}
    for section, keys in address_lists.items():
        for key in keys:
            for address in getattr(getattr(settings, section), key):
                if "@" not in address:
                    raise ConfigError(settings.source, f"{section}.{key}",
                                      f"{address!r} is not an email address",
                                      "write full addresses such as anna@kommune.dk")


def _check_calendar(settings: Settings) -> None:
    from datetime import date
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    council = settings.council
    try:
        ZoneInfo(council.timezone)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ConfigError(settings.source, "council.timezone", f"{council.timezone!r} is unknown",
                          "use an IANA zone such as Europe/Copenhagen") from err
    entries = [("council.extra_meetings", text) for text in council.extra_meetings] + [
        ("council.no_meeting_periods", part) for text in council.no_meeting_periods
        for part in text.split("..")]
    for key, text in entries:
        try:
            date.fromisoformat(text.strip())
        except ValueError as err:
            raise ConfigError(settings.source, key, f"{text!r} is not a date",
                              "write YYYY-MM-DD, periods as YYYY-MM-DD..YYYY-MM-DD") from err


STARTER_CONFIG = """\
# mailbot configuration. Every key is explained in the README.
# Any key can be overridden from the environment: MAILBOT_<SECTION>__<KEY>,
# e.g. MAILBOT_IMAP__PASSWORD=... (keep secrets out of this file in production).

[bot]
address = "it.projekter@kommune.dk"   # the project mailbox; From of every mail the bot sends
name = "IT-Projektrådet"              # display name on outgoing mail
data_dir = "./data"                   # database (SQLite default), raw mail and attachments
# database_url = "postgresql+psycopg://mailbot@localhost/mailbot"  # default: SQLite in data_dir
language = "da"                       # "da" or "en": language of the bot's mails
# log_level = "INFO"
# rules_dir = "/etc/mailbot/rules"          # a local copy of rules/ (default: the shipped one)
# templates_dir = "/etc/mailbot/templates"  # templates here override the shipped ones by name
# secret = "..."                      # signs the bot's Message-IDs (default: data_dir/secret)

[imap]
host = "imap.kommune.dk"
port = 993
security = "ssl"                      # "ssl" | "starttls" | "none" (none only on loopback)
username = "it.projekter"
password = "change-me"
folder = "INBOX"                      # watched folder
processed_folder = "Processed"        # handled mail is moved here (created by `mailbot check`)
quarantine_folder = "Quarantine"      # mail that could not be handled, with its reason in the DB
idle = true                           # use IMAP IDLE when the server offers it
poll_seconds = 60                     # polling interval when IDLE is off or unavailable
# timeout_seconds = 60
# max_message_mb = 25                 # larger mails are quarantined without being downloaded

[smtp]
host = "smtp.kommune.dk"
port = 587
security = "starttls"                 # "ssl" | "starttls" | "none"
username = "it.projekter"
password = "change-me"
# timeout_seconds = 60
# give_up_hours = 48                  # a mail not delivered by then is marked failed

[council]
secretary = ["sekretaer@kommune.dk"]
strategic_board = ["sit@kommune.dk"]
meeting_weekday = "monday"
meeting_time = "09:00"
deadline_days_before = 7              # agenda items ready by ...
deadline_time = "12:00"               # ... 12:00 on the Monday the week before
timezone = "Europe/Copenhagen"
holiday_policy = "move"               # "move" or "skip" (see the README)
no_meeting_periods = ["2027-07-05..2027-08-08", "2026-12-21..2027-01-03"]
extra_meetings = []                   # ["2027-06-30"]
empty_agenda = "send"                 # "send" a short "no items" mail, or "skip"
agenda_zip_max_mb = 10                # the documents go along as one ZIP below this size

[reviewers]
it_operations = ["it-drift@kommune.dk"]
it_architect = ["it-arkitekt@kommune.dk"]
contract_manager = ["kontrakter@kommune.dk"]
security_coordinator = ["informationssikkerhed@kommune.dk"]

[reviews]
reminder_working_days = 3             # remind a reviewer after this many working days
max_reminders = 2                     # then the secretary is told
applicant_reminder_working_days = 5   # one reminder to an applicant with missing items
guidance_batch_minutes = 5            # reviewer comments within this window go out as one mail
reply_tokens = false                  # plus-address tokens in Reply-To (if the mailbox has them)
"""
