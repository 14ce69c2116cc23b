"""One typed settings object, read from a TOML file with MAILBOT_<SECTION>__<KEY> overrides.

Relative paths (`bot.data_dir`, `bot.rules_dir`, `bot.templates_dir`, a relative SQLite file in
`bot.database_url`, `imap.ca_file`, `smtp.ca_file`) are resolved from the folder of the config
file, so every command finds the same database whatever the current directory; without a file
(environment only) from the current directory.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)

from mailbot.errors import ConfigError

log = logging.getLogger(__name__)

Security = Literal["ssl", "starttls", "none"]
ImapAuth = Literal["password", "oauth2"]
SmtpAuth = Literal["password", "oauth2", "none"]
ENV_PREFIX = "MAILBOT_"
# Exchange Online's resource for IMAP and SMTP with client credentials (Microsoft's
# "Authenticate an IMAP, POP or SMTP connection using OAuth", client credentials flow)
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
MICROSOFT_LOGIN = "https://login.microsoftonline.com"


def _number_as_text(value: object) -> object:
    """`organization_cvr = 12345678` written as a TOML number is the CVR number as well."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


# `info` and `Info` are accepted too: the logging module's names are upper case
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BotSettings(_Section):
    address: str
    name: str = "IT-Projektrådet"
    data_dir: Path = Path("./data")
    database_url: str = ""
    language: Literal["da", "en"] = "da"
    log_level: LogLevel = "INFO"
    # "text": one line per record; "json": one JSON object per line (mailbot.logs)
    log_format: Literal["text", "json"] = "text"
    rules_dir: Path | None = None
    templates_dir: Path | None = None
    # signs the Message-IDs of the bot's mails; empty: generated once and kept in the
    # database (all hosts on one database share it; issue #15)
    secret: SecretStr = SecretStr("")
    # where raw mail and attachments live: "database" (every host on the database reads
    # them: no shared disk) or "files" (data_dir/blobs); "" : "database" on PostgreSQL,
    # "files" on SQLite (issue #15)
    blob_store: Literal["", "database", "files"] = ""
    # PostgreSQL: a standby takes the leadership within this many seconds of the leader's
    # database session ending (it tries the advisory lock every takeover_seconds / 3)
    takeover_seconds: float = Field(default=15, ge=1, le=3600)

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


class ImapSettings(_Section):
    host: str
    port: int = Field(default=993, ge=1, le=65535)
    security: Security = "ssl"
    # "oauth2": SASL XOAUTH2 with a token from [oauth2]; username is the mailbox address
    auth: ImapAuth = "password"
    username: str
    # required with auth = "password" (load_settings checks it: it may be set but empty)
    password: SecretStr = SecretStr("")
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    idle: bool = True
    poll_seconds: int = Field(default=60, ge=1)
    timeout_seconds: int = Field(default=60, ge=1)
    max_message_mb: float = Field(default=25, gt=0)
    # a sweep fetches and stores at most this many new mails, processes and moves them, then
    # takes the next batch: memory stays flat over any backlog (SCENARIOS R12, I12)
    batch_size: int = Field(default=200, ge=1)
    # the first sweep of a folder this database has never seen: "now" records the mail
    # already there without answering it (a mailbox with years of old mail); "all" handles it
    start_from: Literal["now", "all"] = "now"
    # a PEM bundle trusted besides the system's CAs (a municipal CA)
    ca_file: Path | None = None
    # security = "none" towards a host that is not this machine (refused unless true)
    allow_plaintext_remote: bool = False
    # deprecated: the old name of security.authserv_id, read as that key with one warning
    authserv_id: list[str] = Field(default_factory=list)
    # a new IDLE at least this often (RFC 2177 section 3: at most 29 minutes); a connection
    # silently dropped by a NAT or firewall is noticed within this plus timeout_seconds (I7)
    idle_renew_seconds: int = Field(default=240, ge=1, le=1740)


class SmtpSettings(_Section):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Security = "starttls"
    # default: "password" when username is set, else "none" (no AUTH), as before the key
    auth: SmtpAuth = "none"
    username: str = ""
    password: SecretStr = SecretStr("")
    timeout_seconds: int = Field(default=60, ge=1)
    give_up_hours: float = Field(default=48, gt=0)
    ca_file: Path | None = None
    allow_plaintext_remote: bool = False

    @model_validator(mode="before")
    @classmethod
    def _default_auth(cls, data: Any) -> Any:
        if isinstance(data, dict) and "auth" not in data:
            return {**data, "auth": "password" if data.get("username") else "none"}
        return data


class OAuth2Settings(_Section):
    """The app registration whose client-credentials token IMAP and SMTP present (XOAUTH2).

    provider "microsoft": msal against `authority` (Entra ID); "generic": a plain
    client-credentials POST to `token_url` (RFC 6749 §4.4)."""

    provider: Literal["microsoft", "generic"] = "microsoft"
    tenant_id: str = ""
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    certificate_path: Path | None = None  # PEM with the private key (microsoft only)
    certificate_thumbprint: str = ""  # as Entra ID shows it under "Certificates & secrets"
    token_url: str = ""  # generic only
    scope: str = ""  # default for microsoft: MICROSOFT_SCOPE
    authority: str = ""  # microsoft; default MICROSOFT_LOGIN/<tenant_id>
    ca_file: Path | None = None  # extra CA certificates (PEM) for the token endpoint

    @property
    def effective_scope(self) -> str:
        return self.scope or (MICROSOFT_SCOPE if self.provider == "microsoft" else "")

    @property
    def effective_authority(self) -> str:
        return (self.authority or f"{MICROSOFT_LOGIN}/{self.tenant_id}").rstrip("/")

    @property
    def endpoint_key(self) -> str:
        """The key an unreachable token endpoint is reported under."""
        return "oauth2.authority" if self.provider == "microsoft" else "oauth2.token_url"

    @property
    def endpoint(self) -> str:
        return self.effective_authority if self.provider == "microsoft" else self.token_url


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday"]


class CouncilSettings(_Section):
    secretary: list[str] = Field(default_factory=list)
    strategic_board: list[str] = Field(default_factory=list)
    meeting_weekday: Weekday = "monday"
    meeting_time: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    deadline_days_before: int = Field(default=7, ge=1, le=28)
    deadline_time: str = Field(default="12:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "Europe/Copenhagen"
    # "move": a meeting on a public holiday moves to the next working day, a deadline on one
    # moves back to the working day before; "skip": no meeting that week
    holiday_policy: Literal["move", "skip"] = "move"
    # periods without meetings, "YYYY-MM-DD..YYYY-MM-DD" (e.g. summer and Christmas)
    no_meeting_periods: list[str] = Field(default_factory=list)
    extra_meetings: list[str] = Field(default_factory=list)  # "YYYY-MM-DD"
    empty_agenda: Literal["send", "skip"] = "send"
    agenda_zip_max_mb: float = Field(default=10, ge=0)
    # the council's page: 2 = guidance on the drafts, then the applicant's klarmelding with
    # the final documents and the project description for final approval; 1 = a case goes on
    # the agenda by itself when nothing is missing and every review is approved
    phases: int = Field(default=2, ge=1, le=2)


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
    # a reply on a review request (its signed Message-ID or reply token) issued more than this
    # many days ago is no verdict: the secretary is told (SCENARIOS A4)
    token_days: int = Field(default=120, ge=1)


class SecuritySettings(_Section):
    """Who sent a mail: what the bot believes beyond the From header (README "Who sent it")."""

    # the authserv-ids of our own receiving server's Authentication-Results headers (RFC 8601
    # section 2.5); empty: those headers are not read. Set: a mail our server found failing
    # DMARC is unauthenticated: no verdict, decision or follow-up is applied from it, and a
    # new brief from it is quarantined (SCENARIOS A5, A6)
    authserv_id: list[str] = Field(default_factory=list)


class LimitSettings(_Section):
    """Brakes against mail loops (SCENARIOS L6): an autoresponder without automation headers
    that answers every answer on a case's thread."""

    # answers to one address about one case (status, update, ask-back, list-back) in 24 hours;
    # mail the council process starts itself (requests, reminders, agenda) does not count
    answers_per_case_per_day: int = Field(default=3, ge=1)
    # the circuit breaker: more mails to applicants than this within breaker_minutes pauses
    # all mail to applicants until `mailbot outbox resume` (a busy day is far below it)
    breaker_mails: int = Field(default=200, ge=1)
    breaker_minutes: int = Field(default=10, ge=1)


class AttachmentSettings(_Section):
    """Attachments that may hurt a reviewer, and the per-mail caps (issue #13 item 4,
    SCENARIOS F3, F5; mailbot.reading.documents.read_attachments)."""

    # a file with VBA macros: "warn" forwards it with a visible warning, "quarantine"
    # holds it and asks the applicant for a version without macros
    macros: Literal["warn", "quarantine"] = "warn"
    max_count: int = Field(default=40, ge=1)  # attachments read per mail; later ones are not
    max_total_mb: float = Field(default=50, gt=0)  # decoded size of a mail's attachments


class OperatorSettings(_Section):
    """Who hears about trouble (mailbot.alerts): one mail per kind of incident, at most one
    per `alert_hours`; every incident is also an ERROR line with a stable `event=` name."""

    addresses: list[str] = Field(default_factory=list)  # empty: log lines only
    alert_hours: float = Field(default=6, gt=0)


class KitosSettings(_Section):
    """The municipality's KITOS (REST API v2): where the bot looks up the system owner of a
    system named in a brief (mailbot.kitos, mailbot.council.owner). Off by default."""

    enabled: bool = False
    base_url: str = "https://kitos.dk"
    # a KITOS user of type "API-bruger" (only those get a token from /api/authorize/GetToken)
    email: str = ""
    password: SecretStr = SecretStr("")  # keep it in MAILBOT_KITOS__PASSWORD
    # the municipality's CVR number, 8 digits
    organization_cvr: Annotated[str, BeforeValidator(_number_as_text)] = ""
    # the role of a system usage that names its owner; option names vary per organisation
    owner_role: str = "Systemejer"
    timeout_seconds: float = Field(default=30, gt=0)
    cache_hours: float = Field(default=24, ge=0)  # one lookup per system name per this


class RetentionSettings(_Section):
    """How long mailbot keeps personal data (mailbot.privacy.retention; GDPR Art. 5(1)(e),
    storage limitation). Days are counted from the case's decision or withdrawal, or, for
    mail with no case and quarantined mail, from its arrival."""

    # At most 36500 days (100 years): longer means "keep", and `now - days` before
    # year 1 raises OverflowError in datetime (it did for raw_days = 100000000).
    raw_days: int = Field(default=90, ge=1, le=36500)  # raw mail and attachments, closed case
    case_days: int = Field(default=730, ge=1, le=36500)  # the closed case anonymised
    machine_days: int = Field(default=30, ge=1, le=36500)  # quarantined mail, machine mail


WebRole = Literal["secretary", "operator", "council"]


class WebUserSettings(_Section):
    """One `[[web.users]]` table: who may sign in to the overview and with which role. The
    password hash (argon2, `mailbot web add-user`) is for `auth = "basic"`; with "proxy" the
    name alone gives the role."""

    name: str = Field(min_length=1)
    role: WebRole
    password_hash: SecretStr = SecretStr("")


class OidcSettings(_Section):
    """[web.oidc]: sign-in to the overview with the municipality's Entra ID, or another
    OpenID Connect provider (mailbot.web.oidc; README "Sign-in with Entra ID (oidc)")."""

    issuer: str = ""  # https://login.microsoftonline.com/<tenant id>/v2.0
    client_id: str = ""  # the app registration's Application (client) ID
    client_secret: SecretStr = SecretStr("")  # keep it in MAILBOT_WEB__OIDC__CLIENT_SECRET
    redirect_url: str = ""  # the callback as the browser reaches it (behind the proxy)
    users: dict[str, WebRole] = Field(default_factory=dict)  # sign-in name -> role
    groups: dict[str, WebRole] = Field(default_factory=dict)  # group object ID -> role
    ca_file: Path | None = None  # extra CA certificates (PEM) for the provider (a TLS proxy)


class HealthSettings(_Section):
    """[health]: when `mailbot health`, /healthz and the Drift page call a check a warning or
    critical (mailbot.health). The sweep thresholds stand on `imap.idle_renew_seconds`
    (240 s): a healthy daemon completes a sweep at least every 4 minutes, and a dropped
    connection costs at most one IDLE cycle plus `imap.timeout_seconds`."""

    sweep_warning_minutes: int = Field(default=15, ge=1)  # about three missed IDLE cycles
    sweep_critical_minutes: int = Field(default=60, ge=1)
    pending_warning_minutes: int = Field(default=30, ge=1)  # the oldest unsent outbox row
    pending_critical_minutes: int = Field(default=240, ge=1)
    quarantine_warning: int = Field(default=1, ge=1)  # quarantined mails in the last 24 h
    quarantine_critical: int = Field(default=10, ge=1)
    disk_warning_mb: int = Field(default=1024, ge=0)  # free under data_dir (MiB)
    disk_critical_mb: int = Field(default=200, ge=0)


class WebSettings(_Section):
    """[web]: the monitoring endpoints and the overview (mailbot.web, issue #14)."""

    listen: str = "127.0.0.1:8025"  # HOST:PORT; empty: no web endpoints
    # -- the overview's sign-in (mailbot.web.auth; README "The web view") --
    auth: Literal["proxy", "basic", "oidc"] = "basic"
    users: list[WebUserSettings] = Field(default_factory=list)  # [[web.users]] tables
    secure_cookie: bool = False  # true: the session cookie goes over HTTPS only
    session_hours: float = Field(default=12, gt=0, le=24 * 30)  # a sign-in lasts this long
    proxy_user_header: str = "X-Remote-User"  # auth = "proxy": the header naming the user
    # auth = "proxy": the header is believed only from these addresses or networks
    proxy_addresses: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    oidc: OidcSettings = Field(default_factory=OidcSettings)  # [web.oidc], auth = "oidc"


class Settings(_Section):
    bot: BotSettings
    imap: ImapSettings
    smtp: SmtpSettings
    council: CouncilSettings = Field(default_factory=CouncilSettings)
    reviewers: ReviewerSettings = Field(default_factory=ReviewerSettings)
    reviews: ReviewSettings = Field(default_factory=ReviewSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    attachments: AttachmentSettings = Field(default_factory=AttachmentSettings)
    oauth2: OAuth2Settings = Field(default_factory=OAuth2Settings)
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    kitos: KitosSettings = Field(default_factory=KitosSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    web: WebSettings = Field(default_factory=WebSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    source: str = "<defaults>"
    # "imap.port" -> "MAILBOT_IMAP__PORT" for the values the environment set
    _env_names: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _authserv_id_moved(self) -> Settings:
        """`imap.authserv_id` (its old place) is read as `security.authserv_id`, the one key
        the code reads; load_settings warns about it, and refuses both set differently."""
        if self.imap.authserv_id and not self.security.authserv_id:
            self.security.authserv_id = list(self.imap.authserv_id)
        return self

    def origin(self, key: str) -> tuple[str, str]:
        """(source, key) for a ConfigError about `key` ("bot.database_url"): the file and the
        key, or "environment" and the variable that set it."""
        name = self._env_names.get(key)
        return ("environment", name) if name else (self.source, key)

    @property
    def uses_oauth2(self) -> bool:
        return self.imap.auth == "oauth2" or self.smtp.auth == "oauth2"

    @property
    def database_url(self) -> str:
        if self.bot.database_url:
            return self.bot.database_url
        return f"sqlite:///{(self.bot.data_dir / 'mailbot.sqlite3').resolve()}"

    @property
    def on_postgresql(self) -> bool:
        """The database is PostgreSQL (leadership by advisory lock, blobs in the database
        by default); else SQLite (one host, a file lock)."""
        return self.database_url.startswith("postgresql")

    @property
    def blob_store(self) -> Literal["database", "files"]:
        """bot.blob_store, "" resolved: "database" on PostgreSQL, "files" on SQLite."""
        if self.bot.blob_store:
            return self.bot.blob_store
        return "database" if self.on_postgresql else "files"


_FIXES = {
    "missing": "add the key to the file (see `mailbot init` for a commented example)",
    "extra_forbidden": "remove the key or check its spelling against the README",
    "literal_error": "use one of the values listed",
}
_ENV_FIXES = {
    "extra_forbidden": "unset it, or check its spelling: MAILBOT_<SECTION>__<KEY> as in the README",
}
# values never echoed in an error message
_SECRET_KEYS = ("password", "secret")


@dataclass
class _Origins:
    """Where each value came from, so an error names the file or the environment variable."""

    source: str
    env_names: dict[str, str] = field(default_factory=dict)  # "imap.port" -> "MAILBOT_IMAP__PORT"

    def env_name(self, loc: tuple[str | int, ...]) -> str | None:
        if len(loc) >= 2:
            # the longest key that names a variable: "web.oidc.issuer" (a nested table) before
            # "council.secretary" for ("council", "secretary", 0) (an item of a list)
            keys = (".".join(str(part) for part in loc[:end]) for end in range(len(loc), 1, -1))
            return next((self.env_names[key] for key in keys if key in self.env_names), None)
        # an unknown section: the first variable that names it
        return next((name for key, name in self.env_names.items()
                     if loc and key.partition(".")[0] == loc[0]), None)

    def error(self, key: str, problem: str, fix: str) -> ConfigError:
        """ConfigError naming `key` in the file, or the variable that set it."""
        name = self.env_name(tuple(key.split(".")))
        if name is None:
            return ConfigError(self.source, key, problem, fix)
        return ConfigError("environment", name, problem, fix)


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, tuple[str, str]]]:
    """{section: {key: (value, variable name)}} from MAILBOT_<SECTION>__<KEY> variables; a
    key of a nested table is dotted: MAILBOT_WEB__OIDC__CLIENT_SECRET is ("web",
    "oidc.client_secret")."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for name, value in environ.items():
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        out.setdefault(section, {})[key.replace("__", ".")] = (value, name)
    return out


def _is_list_field(section: str, key: str) -> bool:
    """True when the model declares `section.key` as a list (from its annotation)."""
    section_field = Settings.model_fields.get(section)
    model = section_field.annotation if section_field else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return False
    key_field = model.model_fields.get(key)
    return key_field is not None and get_origin(key_field.annotation) is list


def _env_value(section: str, key: str, raw: str) -> str | list[str]:
    """A list field splits on commas; every other value stays the string it is, and pydantic
    converts it by the field's type (`true`/`false` for a bool, digits for an int), so a
    string such as a display name may hold commas and the word "true"."""
    if _is_list_field(section, key):
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _merge(data: dict[str, Any], overrides: dict[str, dict[str, tuple[str, str]]]
           ) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for section, values in overrides.items():
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            continue  # `section = 3` in the file: validation names it
        for key, (raw, _name) in values.items():
            *tables, last = key.split(".")
            table = target
            for name in tables:  # a nested table ([web.oidc]): copied, then set
                inner = table.get(name, {})
                if not isinstance(inner, dict):
                    break  # `oidc = 3` in the file: validation names it
                table[name] = dict(inner)
                table = table[name]
            else:
                table[last] = _env_value(section, key, raw)
    return merged


def _read_file(path: Path, has_env: bool) -> dict[str, Any]:
    """The TOML table of `path`; {} when it is absent but the environment configures."""
    source = str(path)
    if not path.exists():
        if has_env:
            return {}
        raise ConfigError(source, "-", "the config file does not exist",
                          "run `mailbot init` to write one, or pass --config PATH")
    if not path.is_file():
        raise ConfigError(source, "-", "is not a file", "pass the path of the TOML file itself")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(source, "-", f"is not valid TOML ({err})",
                          "correct the syntax") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(source, "-", f"cannot be read ({err})",
                          "check the file's permissions and that it is UTF-8 text") from err


def load_settings(path: Path, environ: dict[str, str] | None = None) -> Settings:
    """Read the TOML file and the environment into Settings with absolute paths.

    Raises ConfigError naming the file (or `environment` and the variable) and the key.
    """
    overrides = _env_overrides(dict(os.environ if environ is None else environ))
    origins = _Origins(str(path), {f"{section}.{key}": name for section, values
                                   in overrides.items() for key, (_, name) in values.items()})
    data = _read_file(path, has_env=bool(overrides))
    merged = _merge(data, overrides)
    merged["source"] = str(path)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as err:
        raise _validation_error(err, merged, origins) from err
    base = path.absolute().parent if path.exists() else Path.cwd()
    settings = _resolve_paths(settings, base)
    settings._env_names = dict(origins.env_names)
    _check_paths(settings, origins)
    _check_addresses(settings, origins)
    _check_transport(settings, origins)
    _check_blob_store(settings, origins)
    _check_auth(settings, origins)
    _check_kitos(settings.kitos, origins)
    _check_web(settings.web, origins)
    _check_retention(settings.retention, origins)
    if settings.web.auth == "oidc":
        _check_oidc(settings.web.oidc, origins)
    _check_health(settings.health, origins)
    _check_listen(settings.web, origins)
    if settings.imap.authserv_id:
        if settings.imap.authserv_id != settings.security.authserv_id:
            raise origins.error("imap.authserv_id", "is set beside security.authserv_id, with "
                                "other values", "remove imap.authserv_id (its old name) and "
                                "keep [security] authserv_id")
        log.warning("%s: imap.authserv_id is deprecated; it is read as security.authserv_id: "
                    "move it to [security] authserv_id", origins.source)
    return settings


def _validation_error(err: ValidationError, merged: dict[str, Any], origins: _Origins
                      ) -> ConfigError:
    """The first problem pydantic found, as one ConfigError line with the value as written."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(p) for p in loc)
    message = str(first["msg"])
    problem = message[:1].lower() + message[1:]
    given = _written(merged, loc)
    # an unknown key may be a misspelled secret (client_secrt, pasword): never echo its value
    secret = first["type"] == "extra_forbidden" or any(word in key for word in _SECRET_KEYS)
    if isinstance(given, str | int | float | bool) and not secret:
        problem += f" (got {given!r})"
    name = origins.env_name(tuple(str(p) for p in loc))
    if name is None:
        return ConfigError(origins.source, key, problem,
                           _FIXES.get(first["type"], "correct the value"))
    return ConfigError("environment", name, problem,
                       _ENV_FIXES.get(first["type"], f"correct the value of {name}, or unset it"))


def _written(merged: dict[str, Any], loc: tuple[str | int, ...]) -> object:
    """The value at `loc` as the file or the environment gave it (None when absent)."""
    value: object = merged
    for part in loc:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            return None
    return value


_SQLITE_FILE = re.compile(r"^(sqlite(?:\+\w+)?:///)([^?]*)(\?.*)?$")


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Relative paths made absolute from `base` (the config file's folder, or the cwd)."""

    def absolute(path: Path) -> Path:
        return base / path.expanduser()  # base / an absolute path is that path

    bot = settings.bot
    update: dict[str, Any] = {"data_dir": absolute(bot.data_dir)}
    if bot.rules_dir is not None:
        update["rules_dir"] = absolute(bot.rules_dir)
    if bot.templates_dir is not None:
        update["templates_dir"] = absolute(bot.templates_dir)
    sqlite = _SQLITE_FILE.match(bot.database_url)
    if sqlite and sqlite[2] and sqlite[2] != ":memory:" and not sqlite[2].startswith("file:"):
        update["database_url"] = f"{sqlite[1]}{absolute(Path(sqlite[2]))}{sqlite[3] or ''}"
    servers: dict[str, Any] = {}
    for section in ("imap", "smtp"):
        server: ImapSettings | SmtpSettings = getattr(settings, section)
        if server.ca_file is not None:
            servers[section] = server.model_copy(update={"ca_file": absolute(server.ca_file)})
    oauth2 = settings.oauth2
    files = {key: absolute(path) for key in ("certificate_path", "ca_file")
             if (path := getattr(oauth2, key)) is not None}
    web = settings.web
    if web.oidc.ca_file is not None:
        oidc = web.oidc.model_copy(update={"ca_file": absolute(web.oidc.ca_file)})
        web = web.model_copy(update={"oidc": oidc})
    return settings.model_copy(update={"bot": bot.model_copy(update=update), **servers,
                                       "oauth2": oauth2.model_copy(update=files), "web": web})


def _check_paths(settings: Settings, origins: _Origins) -> None:
    """data_dir is a folder or can become one; rules_dir and templates_dir are folders."""
    data_dir = settings.bot.data_dir
    if data_dir.exists() and not data_dir.is_dir():
        raise origins.error("bot.data_dir", f"{data_dir} is a file, not a folder",
                            "point bot.data_dir at a folder (mailbot creates it if missing)")
    folders = {"bot.rules_dir": (settings.bot.rules_dir, "rules/"),
               "bot.templates_dir": (settings.bot.templates_dir, "templates/")}
    for key, (folder, shipped) in folders.items():
        if folder is not None and not folder.is_dir():
            state = "is not a folder" if folder.exists() else "does not exist"
            raise origins.error(key, f"{folder} {state}",
                                f"copy the shipped {shipped} there, or remove {key} to use "
                                "the shipped one")


def _check_addresses(settings: Settings, origins: _Origins) -> None:
    """Every address list holds addresses; every calendar entry is a date."""
    _check_calendar(settings, origins)
    if "@" not in settings.bot.address:
        raise origins.error("bot.address", "is not an email address",
                            "set it to the project mailbox, e.g. it.projekter@kommune.dk")
    address_lists = {"council": ("secretary", "strategic_board"),
                     "reviewers": tuple(ReviewerSettings.model_fields),
                     "operator": ("addresses",)}
    for section, keys in address_lists.items():
        for key in keys:
            for address in getattr(getattr(settings, section), key):
                if not is_one_address(address):
                    raise origins.error(f"{section}.{key}",
                                        f"{address!r} is not one email address",
                                        "write one full address per list entry, e.g. "
                                        '["anna@kommune.dk", "bo@kommune.dk"]')


_ONE_ADDRESS = re.compile(r"[^\s@,;<>()\[\]\\\"]+@[^\s@,;<>()\[\]\\\"]+\.[^\s@,;<>()\[\]\\\".]+")


def is_one_address(value: str) -> bool:
    """True for exactly one bare address (local@domain.tld): no display name, no second
    address after a comma, no white space or line break (which would end up in a header)."""
    return _ONE_ADDRESS.fullmatch(value) is not None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also as [::1] or ::ffff:127.x) and `localhost`.

    Read from the literal host, never from DNS: a name that resolves to 127.0.0.1 today may
    resolve elsewhere tomorrow (or for an attacker who controls the resolver)."""
    name = host.strip().lower()
    if name in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _check_transport(settings: Settings, origins: _Origins) -> None:
    """Each server's ca_file is a readable PEM bundle; security = "none" only towards this
    machine unless allow_plaintext_remote says otherwise (RFC 8314 section 5: mail clients
    use TLS). Checked at load, so `check` and `run` refuse before any connection."""
    for section in ("imap", "smtp"):
        server: ImapSettings | SmtpSettings = getattr(settings, section)
        if server.ca_file is not None:
            _check_ca_file(server.ca_file, f"{section}.ca_file", origins)
        if (server.security == "none" and not is_loopback(server.host)
                and not server.allow_plaintext_remote):
            raise origins.error(
                f"{section}.security",
                f'"none" would send the login (password or token) and the mail to '
                f"{server.host} unencrypted",
                f'use "ssl" or "starttls"; only if the network to {server.host} is protected '
                f"otherwise (a VPN, a tunnel), set {section}.allow_plaintext_remote = true")


def _check_blob_store(settings: Settings, origins: _Origins) -> None:
    """bot.blob_store = "database" only on PostgreSQL: SQLite serves one host, so the table
    would share nothing, and the attachments a case stores from inside its write transaction
    would wait on that same file's lock (SQLite allows one writer)."""
    if settings.bot.blob_store == "database" and not settings.on_postgresql:
        raise origins.error(
            "bot.blob_store", '"database" needs PostgreSQL; with SQLite (one host) raw mail '
            "and attachments live in data_dir/blobs",
            'remove the key (or write "files"), or set bot.database_url to PostgreSQL')


def _check_ca_file(path: Path, key: str, origins: _Origins) -> None:
    """`path` holds at least one certificate OpenSSL can load (PEM)."""
    import ssl  # only here: most commands never need it

    fix = (f"set {key} to the PEM file of the CA that issued the server's certificate "
           "(the municipality's CA, text starting -----BEGIN CERTIFICATE-----); a relative "
           "path is relative to the config file's folder")
    if not path.exists():
        raise origins.error(key, f"{path} does not exist", fix)
    if not path.is_file():
        raise origins.error(key, f"{path} is not a file", fix)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as err:  # before OSError: it is one
        raise origins.error(key, f"{path} holds no PEM certificate ({err.reason})",
                            fix) from err
    except OSError as err:
        raise origins.error(key, f"{path} cannot be read ({err.strerror or err})",
                            "make it readable by the user mailbot runs as") from err
def _check_auth(settings: Settings, origins: _Origins) -> None:
    """Each login has what its `auth` needs; [oauth2] is complete when IMAP or SMTP uses it.

    Raises ConfigError naming the missing or wrong key (or its environment variable)."""
    imap, smtp = settings.imap, settings.smtp
    if imap.auth == "password" and "password" not in imap.model_fields_set:
        raise origins.error("imap.password", "field required",
                            'add the password, or set imap.auth = "oauth2" (Microsoft 365)')
    if smtp.auth in ("password", "oauth2") and not smtp.username:
        raise origins.error("smtp.username", f'is empty, but smtp.auth is "{smtp.auth}"',
                            "set it to the mailbox address (e.g. it.projekter@kommune.dk), "
                            'or set smtp.auth = "none" for a relay without login')
    oauth2 = settings.oauth2
    if oauth2.token_url:
        _check_token_url(oauth2.token_url, origins)
    if not settings.uses_oauth2:
        return
    for key, login in (("imap.username", imap), ("smtp.username", smtp)):
        if login.auth == "oauth2" and "@" not in login.username:
            raise origins.error(key, f"{login.username!r} is not the mailbox address",
                                "with auth = \"oauth2\" write the mailbox's full address, "
                                "e.g. it.projekter@kommune.dk")
    if oauth2.provider == "microsoft":
        _check_microsoft(oauth2, origins)
    else:
        _check_generic(oauth2, origins)
    if oauth2.ca_file is not None:
        _check_ca_file(oauth2.ca_file, "oauth2.ca_file", origins)


def _check_microsoft(oauth2: OAuth2Settings, origins: _Origins) -> None:
    if not oauth2.tenant_id and not oauth2.authority:
        raise origins.error("oauth2.tenant_id", "field required",
                            "copy the Directory (tenant) ID from the app's overview page in "
                            "Entra ID")
    if not oauth2.client_id:
        raise origins.error("oauth2.client_id", "field required",
                            "copy the Application (client) ID from the app's overview page in "
                            "Entra ID")
    if oauth2.token_url:
        raise origins.error("oauth2.token_url", 'is for provider = "generic"',
                            "remove it; for Microsoft set oauth2.tenant_id (and oauth2.authority "
                            "only for a national cloud)")
    authority = urlsplit(oauth2.effective_authority)
    if authority.scheme != "https" or not authority.hostname or authority.path in ("", "/"):
        raise origins.error("oauth2.authority",
                            f"{oauth2.effective_authority!r} is not an https URL with a tenant",
                            f"remove it to use {MICROSOFT_LOGIN}/<tenant_id>, or write "
                            "https://<login host>/<tenant_id>")
    secret = bool(oauth2.client_secret.get_secret_value())
    if oauth2.certificate_path is not None:
        if secret:
            where = origins.env_name(("oauth2", "client_secret")) or "oauth2.client_secret"
            raise origins.error("oauth2.certificate_path", f"is set together with {where}",
                                f"use one: remove the certificate keys or unset {where}")
        _check_private_key(oauth2.certificate_path, origins)
        if not oauth2.certificate_thumbprint:
            raise origins.error("oauth2.certificate_thumbprint", "field required",
                                "copy the thumbprint shown under Certificates & secrets in "
                                "Entra ID")
    elif not secret:
        raise origins.error("oauth2.client_secret", "field required",
                            "set MAILBOT_OAUTH2__CLIENT_SECRET to the secret's Value from "
                            "Entra ID (Certificates & secrets), or use certificate_path")


def _check_private_key(path: Path, origins: _Origins) -> None:
    """`path` is a PEM file with an unencrypted RSA private key: what msal signs its client
    assertion with (RS256). Checked at load, so a wrong file is one line, not a traceback
    from deep inside msal at the first login."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = "oauth2.certificate_path"
    fix = ("point it at the PEM file with the certificate's private key: RSA, without a "
           "password (e.g. `openssl rsa -in key.pem -out mailbot-app.pem`)")
    if not path.exists():
        raise origins.error(key, f"{path} does not exist", fix)
    if not path.is_file():
        raise origins.error(key, f"{path} is not a file", fix)
    try:
        private = load_pem_private_key(path.read_bytes(), password=None)
    except TypeError as err:  # "Password was not given but private key is encrypted"
        raise origins.error(key, f"{path} holds an encrypted private key", fix) from err
    except (ValueError, OSError) as err:
        raise origins.error(key, f"{path} holds no PEM private key", fix) from err
    if not isinstance(private, RSAPrivateKey):
        raise origins.error(key, f"{path} holds a {type(private).__name__.removeprefix('_')} "
                            "key, not an RSA key", fix)


def _check_generic(oauth2: OAuth2Settings, origins: _Origins) -> None:
    for key in ("token_url", "client_id"):
        if not getattr(oauth2, key):
            raise origins.error(f"oauth2.{key}", "field required",
                                "copy it from your identity provider's client registration")
    if not oauth2.client_secret.get_secret_value():
        raise origins.error("oauth2.client_secret", "field required",
                            "set MAILBOT_OAUTH2__CLIENT_SECRET to the client's secret")
    if oauth2.certificate_path is not None:
        raise origins.error("oauth2.certificate_path", 'is for provider = "microsoft"',
                            "remove it and use client_secret")


def _check_token_url(url: str, origins: _Origins) -> None:
    """https, except on a loopback address (a local test or proxy): the client secret goes
    in this request."""
    _check_secret_url(url, "oauth2.token_url", "write the token endpoint's full URL, "
                      "https://.../token", "the client secret", origins)


def _check_secret_url(url: str, key: str, example: str, secret: str,
                      origins: _Origins) -> None:
    """`url` is http(s) with a host, and https unless the host is a loopback address: `secret`
    is sent to it. Raises ConfigError naming `key`."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise origins.error(key, f"{url!r} is not an http(s) URL", example)
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise origins.error(key, f"{url!r} is not https", f"use https: {secret} is sent to it "
                            "(plain http only on a loopback address)")


def _check_retention(retention: RetentionSettings, origins: _Origins) -> None:
    """case_days is not less than raw_days: both count from the decision or withdrawal, and
    a case is anonymised only once its raw mail is due (mailbot.privacy.retention.due), so a
    smaller case_days would silently act as raw_days."""
    if retention.case_days < retention.raw_days:
        raise origins.error(
            "retention.case_days", f"is {retention.case_days} days, less than "
            f"retention.raw_days ({retention.raw_days}); both count from the decision",
            f"set retention.case_days to at least {retention.raw_days}, or lower "
            "retention.raw_days")


def _check_health(health: HealthSettings, origins: _Origins) -> None:
    """Each warning threshold comes before its critical one (for disk space: more free space
    than the critical threshold), else the warning state could never be reached."""
    pairs = (("sweep_warning_minutes", "sweep_critical_minutes"),
             ("pending_warning_minutes", "pending_critical_minutes"),
             ("quarantine_warning", "quarantine_critical"),
             ("disk_critical_mb", "disk_warning_mb"))
    for low, high in pairs:
        if getattr(health, low) >= getattr(health, high):
            raise origins.error(f"health.{low}", f"is {getattr(health, low)}, not below "
                                f"health.{high} ({getattr(health, high)})",
                                f"set health.{low} lower than health.{high}")


def _check_listen(web: WebSettings, origins: _Origins) -> None:
    """`[web] listen` is HOST:PORT or empty (mailbot.web.server.Listen)."""
    if not web.listen.strip():
        return
    from mailbot.web.server import Listen

    try:
        Listen.parse(web.listen)
    except ValueError as err:
        raise origins.error("web.listen", str(err), 'write HOST:PORT, e.g. "127.0.0.1:8025" '
                            '(loopback) or "[::1]:8025"; "" turns the web endpoints off') from err


def _check_kitos(kitos: KitosSettings, origins: _Origins) -> None:
    """With `enabled`, the keys a login needs are there and base_url is https (the password
    goes in the first request; plain http only on a loopback address)."""
    if not kitos.enabled:
        return
    _check_secret_url(kitos.base_url, "kitos.base_url",
                      "write KITOS's address, e.g. https://kitos.dk", "the KITOS password",
                      origins)
    if "@" not in kitos.email:
        raise origins.error("kitos.email", "is not the e-mail address of a KITOS user",
                            "write the address the API user logs in to KITOS with")
    if not kitos.password.get_secret_value():
        raise origins.error("kitos.password", "field required",
                            "set MAILBOT_KITOS__PASSWORD to the API user's KITOS password")
    if not re.fullmatch(r"\d{8}", kitos.organization_cvr):
        raise origins.error("kitos.organization_cvr",
                            f"{kitos.organization_cvr!r} is not a CVR number",
                            "write the municipality's CVR number, 8 digits, e.g. \"12345678\"")
    if not kitos.owner_role.strip():
        raise origins.error("kitos.owner_role", "is empty",
                            'write the name of the system owner role in KITOS ("Systemejer")')


def _check_web(web: WebSettings, origins: _Origins) -> None:
    """`proxy_addresses` are addresses or networks (ipaddress), user names are unique (case
    does not count), and a password hash is argon2's encoded form (`mailbot web add-user`)."""
    for text in web.proxy_addresses:
        try:
            ipaddress.ip_network(text.strip(), strict=False)
        except ValueError as err:
            raise origins.error("web.proxy_addresses", f"{text!r} is not an IP address or "
                                "network", 'write e.g. "10.0.0.5" or "10.0.0.0/24"') from err
    seen: set[str] = set()
    for user in web.users:
        if user.name.casefold() in seen:
            raise origins.error("web.users", f"the user {user.name!r} is there twice",
                                "keep one [[web.users]] table per name")
        seen.add(user.name.casefold())
        hashed = user.password_hash.get_secret_value()
        if hashed and not hashed.startswith("$argon2"):
            raise origins.error("web.users", f"the password_hash of {user.name!r} is not an "
                                "argon2 hash", "set it with `mailbot web add-user NAME --role "
                                "ROLE --password-stdin`")


# Entra ID's endpoints for any tenant: their tokens carry each user's own tenant as issuer,
# so they cannot be pinned to the municipality (Microsoft identity platform, "OpenID
# Connect on the Microsoft identity platform", the issuer value)
_ENTRA_ANY_TENANT = ("common", "organizations", "consumers")
OIDC_CALLBACK = "/login/oidc/callback"


def _check_oidc(oidc: OidcSettings, origins: _Origins) -> None:
    """With `[web] auth = "oidc"`: issuer, client_id, client_secret and redirect_url are there,
    issuer names one tenant (never Entra's common endpoints), both URLs are https (http only
    on a loopback address), and someone may sign in (users or groups)."""
    entra = f"{MICROSOFT_LOGIN}/<tenant id>/v2.0"
    if not oidc.issuer:
        raise origins.error("web.oidc.issuer", 'field required with [web] auth = "oidc"',
                            f"write {entra} with the Directory (tenant) ID from the app "
                            "registration's overview in Entra ID")
    _check_secret_url(oidc.issuer, "web.oidc.issuer", f"write {entra}", "the client secret",
                      origins)
    parts = urlsplit(oidc.issuer)
    if parts.hostname == urlsplit(MICROSOFT_LOGIN).hostname and (
            parts.path.strip("/").split("/")[0].lower() in _ENTRA_ANY_TENANT):
        raise origins.error("web.oidc.issuer", f"{oidc.issuer!r} lets users of any tenant in",
                            f"write {entra} with the municipality's Directory (tenant) ID")
    if not oidc.client_id:
        raise origins.error("web.oidc.client_id", 'field required with [web] auth = "oidc"',
                            "copy the Application (client) ID from the app registration's "
                            "overview in Entra ID")
    if not oidc.client_secret.get_secret_value():
        raise origins.error("web.oidc.client_secret",
                            'field required with [web] auth = "oidc"',
                            "set MAILBOT_WEB__OIDC__CLIENT_SECRET to the value of a client "
                            "secret (Certificates & secrets in the app registration)")
    example = f"write the callback as users' browsers reach it, https://<host>{OIDC_CALLBACK}"
    if not oidc.redirect_url:
        raise origins.error("web.oidc.redirect_url", 'field required with [web] auth = "oidc"',
                            example)
    _check_secret_url(oidc.redirect_url, "web.oidc.redirect_url", example, "the sign-in code",
                      origins)
    if not urlsplit(oidc.redirect_url).path.endswith(OIDC_CALLBACK):
        raise origins.error("web.oidc.redirect_url",
                            f"{oidc.redirect_url!r} does not end in {OIDC_CALLBACK}", example)
    if not oidc.users and not oidc.groups:
        raise origins.error("web.oidc.users", "is empty, and so is web.oidc.groups: nobody "
                            "may sign in", 'add e.g. "anna@kommune.dk" = "secretary" under '
                            "[web.oidc.users], or a group's object ID under [web.oidc.groups]")
    seen: dict[str, str] = {}
    for name in oidc.users:
        if name.casefold() in seen:
            raise origins.error("web.oidc.users", f"{seen[name.casefold()]!r} and {name!r} are "
                                "one user (case does not count)", "keep one of them")
        seen[name.casefold()] = name
    if oidc.ca_file is not None:
        _check_ca_file(oidc.ca_file, "web.oidc.ca_file", origins)


def _check_calendar(settings: Settings, origins: _Origins) -> None:
    from datetime import date
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    council = settings.council
    try:
        ZoneInfo(council.timezone)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise origins.error("council.timezone", f"{council.timezone!r} is unknown",
                            "use an IANA zone such as Europe/Copenhagen") from err
    entries = [("council.extra_meetings", text) for text in council.extra_meetings] + [
        ("council.no_meeting_periods", part) for text in council.no_meeting_periods
        for part in text.split("..")]
    for key, text in entries:
        try:
            date.fromisoformat(text.strip())
        except ValueError as err:
            raise origins.error(key, f"{text!r} is not a date",
                                "write YYYY-MM-DD, periods as YYYY-MM-DD..YYYY-MM-DD") from err
    for text in council.no_meeting_periods:
        first, dots, last = text.partition("..")
        if dots and date.fromisoformat(first.strip()) > date.fromisoformat(last.strip()):
            raise origins.error("council.no_meeting_periods",
                                f"{text!r} ends before it starts",
                                "write FIRST..LAST, e.g. 2027-07-05..2027-08-08 (one day: "
                                "2027-07-05)")


STARTER_CONFIG = """\
# mailbot configuration. Every key is explained in the README.
# Any key can be overridden from the environment: MAILBOT_<SECTION>__<KEY>,
# e.g. MAILBOT_IMAP__PASSWORD=... (keep secrets out of this file in production).

[bot]
address = "it.projekter@kommune.dk"   # the project mailbox; From of every mail the bot sends
name = "IT-Projektrådet"              # display name on outgoing mail
data_dir = "./data"                   # database (SQLite default), raw mail and attachments;
                                      # a relative path is relative to this file's folder
# database_url = "postgresql+psycopg://mailbot@localhost/mailbot"  # default: SQLite in data_dir
language = "da"                       # "da" or "en": language of the bot's mails
# log_level = "INFO"                  # DEBUG, INFO, WARNING or ERROR
# log_format = "text"                 # "json": one JSON object per line (time, level, event,
#                                     # case ref, Message-ID), for a log collector
# rules_dir = "/etc/mailbot/rules"          # a local copy of rules/ (default: the shipped one)
# templates_dir = "/etc/mailbot/templates"  # templates here override the shipped ones by name
# secret = "..."                      # signs the bot's Message-IDs (default: generated
#                                     # once and kept in the database)
# blob_store = "database"             # raw mail and attachments: "database" or "files"
#                                     # (data_dir/blobs); default database on PostgreSQL
# takeover_seconds = 15               # PostgreSQL, two hosts: a standby takes over this soon

[imap]
host = "imap.kommune.dk"
port = 993
security = "ssl"                      # "ssl" | "starttls" | "none" (none only on loopback)
username = "it.projekter"
password = "change-me"
# auth = "password"                   # or "oauth2" (Microsoft 365, see [oauth2] below): then
                                      # username is the mailbox address and no password is used
# ca_file = "kommune-ca.pem"          # a CA to trust besides the system's (PEM); relative to
#                                     # this file's folder
# allow_plaintext_remote = false      # true: security = "none" also to a host that is not
#                                     # this machine (a warning at every start)
folder = "INBOX"                      # watched folder
processed_folder = "Processed"        # handled mail is moved here (created by `mailbot check`)
quarantine_folder = "Quarantine"      # mail that could not be handled, with its reason in the DB
idle = true                           # use IMAP IDLE when the server offers it
poll_seconds = 60                     # polling interval when IDLE is off or unavailable
# timeout_seconds = 60
# max_message_mb = 25                 # larger mails are quarantined without being downloaded
# start_from = "now"                  # first start: mail already in the folder is recorded,
#                                     # not answered; "all" answers it too
# idle_renew_seconds = 240            # a new IDLE at least this often; a dropped connection
#                                     # is noticed within this plus timeout_seconds

[smtp]
host = "smtp.kommune.dk"
port = 587
security = "starttls"                 # "ssl" | "starttls" | "none" (none only on loopback)
username = "it.projekter"
password = "change-me"
# auth = "password"                   # "password" (default with a username), "none" (no AUTH)
                                      # or "oauth2" (the same token as IMAP)
# ca_file = "kommune-ca.pem"          # as in [imap]
# allow_plaintext_remote = false      # as in [imap]
# timeout_seconds = 60
# give_up_hours = 48                  # a mail not delivered by then is marked failed

# Microsoft 365 (Exchange Online): set imap.auth and smtp.auth to "oauth2", the usernames to
# it.projekter@kommune.dk, and uncomment this (the README says how to register the app).
# [oauth2]
# provider = "microsoft"              # or "generic": any OAuth2 server, with token_url
# tenant_id = "00000000-0000-0000-0000-000000000000"   # Directory (tenant) ID
# client_id = "00000000-0000-0000-0000-000000000000"   # Application (client) ID
# client_secret = "..."               # better: MAILBOT_OAUTH2__CLIENT_SECRET in the environment
# certificate_path = "mailbot-app.pem"     # instead of a secret: the certificate's private key
# certificate_thumbprint = "..."           # ... and its thumbprint as Entra ID shows it
# scope = "https://outlook.office365.com/.default"     # the default for microsoft
# authority = "https://login.microsoftonline.com/<tenant_id>"  # only for a national cloud
# token_url = "https://login.example.dk/token"  # generic only; https except on loopback
# ca_file = "/etc/mailbot/proxy-ca.pem"    # extra CA for the token endpoint (a TLS proxy)

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
phases = 2                            # 2: guidance, then klarmelding for final approval;
                                      # 1: on the agenda once every review is approved

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
# token_days = 120                    # a reply on a review request older than this is no
#                                     # verdict: the secretary is told

[attachments]
macros = "warn"                       # a file with macros: "warn" (forwarded with a warning)
                                      # or "quarantine" (held; the applicant asked for another)
max_count = 40                        # attachments read per mail; later ones are refused
max_total_mb = 50                     # their decoded size together; the one that passes it
                                      # and every later one are refused (the text is read)

[limits]
answers_per_case_per_day = 3          # answers to one address about one case in 24 hours
breaker_mails = 200                   # more mails to applicants than this within ...
breaker_minutes = 10                  # ... these minutes pause them until `outbox resume`

# Who sent it (README "Who sent it"): your own receiving server's Authentication-Results.
# [security]
# authserv_id = ["mx.kommune.dk"]     # its authserv-id: a mail it found failing DMARC is no
#                                     # verdict or decision (the secretary is told once), and
#                                     # a new brief from it is quarantined, never answered

# KITOS: the bot proposes the registered "Systemejer" of a system named in a brief (README
# "The system owner"). Needs a KITOS user of type API user; keep its password in the
# environment: MAILBOT_KITOS__PASSWORD=...
# [kitos]
# enabled = false                     # true: look the system owner up in KITOS
# base_url = "https://kitos.dk"
# email = "api-itp@kommune.dk"        # the KITOS API user
# organization_cvr = "12345678"       # the municipality's CVR number
# owner_role = "Systemejer"           # the role (of a system usage) that names its owner
# timeout_seconds = 30                # per request to KITOS
# cache_hours = 24                    # a system name is looked up at most once this often

# /healthz and /metrics (no sign-in: keep them on loopback or a management network) and the
# secretary's overview, served by `mailbot run` and `mailbot web` (README "Operating mailbot");
# who signs in to the overview, and how (README "The web view").
# [web]
# listen = "127.0.0.1:8025"           # HOST:PORT, "[::1]:8025" for IPv6; "" = no web endpoints
# auth = "basic"                      # "basic": [[web.users]] with passwords; "proxy": the
#                                     # reverse proxy's user header; "oidc": Entra ID
# secure_cookie = false               # true when users reach it over HTTPS (they should)
# session_hours = 12                  # a sign-in lasts this long
# proxy_user_header = "X-Remote-User" # auth = "proxy": the header that names the user ...
# proxy_addresses = ["127.0.0.1", "::1"]  # ... believed only from these addresses/networks
# One table per user (`mailbot web add-user NAME --role ROLE --password-stdin` writes them);
# role: "secretary", "operator" or "council"; with auth = "proxy" no password_hash is needed.
# [[web.users]]
# name = "sekretariat"
# role = "secretary"
# password_hash = "$argon2id$v=19$m=65536,t=3,p=4$..."

# How long personal data is kept (README "Personal data"); a daily job removes what is due,
# `mailbot retention run --dry-run` shows what that is.
# [retention]
# raw_days = 90                       # raw mail and attachments, after the decision/withdrawal
# case_days = 730                     # after the decision/withdrawal (>= raw_days): the case is
#                                     # anonymised (ref, dates, decision stay); each at most 36500
# machine_days = 30                   # quarantined and machine mail, after arrival

# Sign-in to the overview with the municipality's Entra ID, for [web] auth = "oidc" (README
# "Sign-in with Entra ID (oidc)"); keep the secret in MAILBOT_WEB__OIDC__CLIENT_SECRET=...
# [web.oidc]
# issuer = "https://login.microsoftonline.com/<tenant id>/v2.0"  # one tenant, never common
# client_id = "00000000-0000-0000-0000-000000000000"   # Application (client) ID
# client_secret = "..."               # better: MAILBOT_WEB__OIDC__CLIENT_SECRET
# redirect_url = "https://mailbot.kommune.dk/login/oidc/callback"  # as browsers reach it
# ca_file = "/etc/mailbot/proxy-ca.pem"    # extra CA for the provider (a TLS proxy)
# [web.oidc.users]                    # sign-in name (UPN) = "secretary", "operator", "council"
# "sekretaer@kommune.dk" = "secretary"
# [web.oidc.groups]                   # group object ID = role; the first listed group wins
# "00000000-0000-0000-0000-000000000000" = "council"

# When `mailbot health` (and /healthz) call something a warning or critical (README "Health").
# [health]
# sweep_warning_minutes = 15          # no completed mailbox sweep for this long (a daemon
# sweep_critical_minutes = 60         #   sweeps at least every imap.idle_renew_seconds)
# pending_warning_minutes = 30        # the oldest outbox row not yet sent is this old
# pending_critical_minutes = 240
# quarantine_warning = 1              # mails quarantined in the last 24 hours
# quarantine_critical = 10
# disk_warning_mb = 1024              # free space under data_dir (MiB)
# disk_critical_mb = 200

# Who is mailed when something needs a person (the README's "Alerts"); without it, only the
# ERROR log lines with event=... tell.
# [operator]
# addresses = ["it-drift@kommune.dk"] # alert mails go here (Danish): what happened, what to do
# alert_hours = 6                     # at most one alert mail per kind of incident this often
"""
