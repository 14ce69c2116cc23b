"""The command line: the only place that parses argv and decides the exit code.

Only typer and the standard library are imported here at start: the database, the mail
clients and the scheduler load inside the commands that use them, so `mailbot --help` and
`mailbot inspect` start in a fraction of a second.

Errors: a command raises MailbotError (ConfigError reads `source: [key] problem. Fix: ...`);
main() prints it as one line on stderr and exits 2.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from mailbot.clock import COPENHAGEN, Clock
from mailbot.errors import COMMAND_LINE, ConfigError, MailbotError, PermanentError
from mailbot.redact import redact_cpr

if TYPE_CHECKING:
    import socket

    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from mailbot.app import Bot
    from mailbot.config import Settings
    from mailbot.db import Schema
    from mailbot.delivery.breaker import Breaker
    from mailbot.models import Agenda, Outbox, RawMessage
    from mailbot.service import Service

# rich_markup_mode=None, here and on every sub-app: help and usage errors in click's plain
# layout, without importing Rich's markdown, syntax and traceback modules for them (half of
# `mailbot --help`'s start-up; tests/benchmarks/bench_startup.py)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="mailbot: email intake for the municipality's IT project council.")
log = logging.getLogger("mailbot")


# Years the calendar, --year and --now accept: wide enough for any real use, and far from
# the ends of datetime, where date arithmetic overflows.
YEARS = range(2000, 2101)
MESSAGE_STATES = ("received", "processed", "ignored", "duplicate", "quarantined", "released")


class Options:
    config: Path = Path("mailbot.toml")
    now: datetime | None = None


OPTIONS = Options()


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option("--config", envvar="MAILBOT_CONFIG",
                                         help="Config file (TOML).")] = Path("mailbot.toml"),
    now: Annotated[str | None, typer.Option("--now", envvar="MAILBOT_NOW",
                                            help="Run as if the clock showed this ISO time.")]
    = None,
) -> None:
    OPTIONS.config = config
    source = ctx.get_parameter_source("now")
    from_env = source is not None and source.name == "ENVIRONMENT"
    OPTIONS.now = _parse_now(now, "MAILBOT_NOW" if from_env else "--now") if now else None


def _parse_now(value: str, name: str) -> datetime:
    """An ISO date-time in YEARS. Raises ConfigError naming `name` (--now or MAILBOT_NOW)."""
    source = "environment" if name.startswith("MAILBOT_") else COMMAND_LINE
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise ConfigError(source, name, f"{value!r} is not an ISO date-time",
                          "write it as 2026-03-02T11:59 (Copenhagen time) or with an offset, "
                          "2026-03-02T11:59+01:00") from err
    if parsed.year not in YEARS:
        raise ConfigError(source, name, f"{value!r} is outside the years {YEARS[0]}..{YEARS[-1]}",
                          "give a date-time in those years")
    return parsed


# `mailbot init --config PATH` as much as `mailbot --config PATH init`: each command takes
# --config and --now too, and the one after the command wins.
ConfigAfter = Annotated[Path | None, typer.Option(
    "--config", show_default=False, help="Config file (TOML); also accepted before the command.")]
NowAfter = Annotated[str | None, typer.Option(
    "--now", show_default=False, help="Run as if the clock showed this ISO time; also accepted "
    "before the command.")]


def _use(config: Path | None, now: str | None) -> None:
    """Apply --config/--now given after the command name. Raises ConfigError for a bad --now."""
    if config is not None:
        OPTIONS.config = config
    if now is not None:
        OPTIONS.now = _parse_now(now, "--now")


def _settings() -> Settings:
    from mailbot.config import load_settings

    return load_settings(OPTIONS.config)


def _bot(settings: Settings | None = None, report: list[str] | None = None) -> Bot:
    """The bot of `run`, `check` and `agenda --send`: the database is migrated first.

    report: given, the migration is quiet and the revisions applied are added to it; else
    alembic logs them (the daemon's journal). A database at head is not touched (no alembic
    lines before a refusal). Raises ConfigError, as `migrate` does, for a database that
    cannot be reached or read, or that a newer mailbot migrated.
    """
    from mailbot.app import build_bot
    from mailbot.db import migrate, reachable_schema, schema_error
    from mailbot.redact import configure_logging

    settings = settings or _settings()
    configure_logging(settings.bot.log_level, settings.bot.log_format)
    bot = build_bot(settings, Clock(OPTIONS.now))
    before = reachable_schema(bot.engine, settings.database_url)
    if not before.known:
        bot.engine.dispose()
        raise schema_error(settings.database_url, before)
    applied = [] if before.up_to_date else migrate(
        bot.engine, quiet=report is not None, secret_file=settings.bot.data_dir / "secret")
    if report is not None:
        report.extend(applied)
    # read at start, not at the first signature: a data_dir/secret that differs from the
    # database's is then one WARNING as the process starts (load_secret; cached after)
    _ = bot.secret
    return bot


def _writer() -> Bot:
    """The bot of an admin command that changes rows (mailbot.admin): like _database it
    never migrates (ConfigError, fix `mailbot migrate`, when the database is behind)."""
    from mailbot.app import build_bot

    settings, engine = _database()
    return build_bot(settings, Clock(OPTIONS.now), engine)


def _database(settings: Settings | None = None) -> tuple[Settings, Engine]:
    """Settings and an engine for a read-only command: it never migrates and creates nothing.

    Raises ConfigError (fix: `mailbot migrate`) when the database is missing or behind.
    """
    from mailbot.db import open_current
    from mailbot.redact import configure_logging

    settings = settings or _settings()
    configure_logging(settings.bot.log_level, settings.bot.log_format)
    return settings, open_current(settings.database_url, *settings.origin("bot.database_url"),
                                  takeover_seconds=settings.bot.takeover_seconds)


# -- run ------------------------------------------------------------------------------------
@app.command()
def run(once: Annotated[bool, typer.Option("--once", help="Process what waits, then exit.")]
        = False, config: ConfigAfter = None, now: NowAfter = None) -> None:
    """Run the daemon (foreground; stops cleanly on SIGTERM/SIGINT). On PostgreSQL a second
    daemon waits as a standby and takes over when the leader's session ends."""
    from mailbot.leadership import lead
    from mailbot.service import Service

    _use(config, now)

    bot = _bot()
    if once:
        with lead(bot.settings, bot.engine) as lock:
            _preflight(bot)
            Service(bot, lock).run_once()
        return
    _daemon(bot)


# the exit code of a daemon that lost the leader lock: not a configuration problem (2), so
# systemd's Restart=on-failure starts it again, as a standby
LOST_LEADERSHIP = 3


def _daemon(bot: Bot) -> None:
    """Lead (or wait as a standby until the lock comes free, mailbot.leadership), then run
    until SIGTERM; losing the lock ends the process with LOST_LEADERSHIP."""
    import threading

    from mailbot.leadership import let_go, wait_to_lead
    from mailbot.service import Service
    from mailbot.watchdog import HEARTBEAT, Watchdog

    stop = threading.Event()
    running: list[Service] = []

    def stopping() -> None:
        stop.set()
        for service in running:
            service.stop()

    _install_signal_handlers(stopping)
    watchdog = Watchdog()
    if bot.settings.on_postgresql:
        watchdog.ready()  # systemd's start ends here: a standby is a started service
    lock = wait_to_lead(bot.settings, bot.engine, stop, HEARTBEAT.beat)
    if lock is None:  # SIGTERM while a standby
        watchdog.stopping()
        log.info("mailbot stopped (it was a standby)")
        return
    try:
        _preflight(bot)
        service = Service(bot, lock)
        running.append(service)
        if stop.is_set():
            service.stop()
        log.info("mailbot started for %s", bot.address)
        service.run_forever(watchdog)
    finally:
        let_go(bot.engine, lock)
    if service.lost.is_set():
        log.error("mailbot stopped: it lost the leadership (exit %s; under systemd it starts "
                  "again and waits as a standby)", LOST_LEADERSHIP)
        raise typer.Exit(LOST_LEADERSHIP)
    log.info("mailbot stopped")


def _preflight(bot: Bot) -> None:
    """Fail fast on what only the operator can fix; a server down later is retried."""
    from mailbot.delivery.smtpcheck import check_smtp
    from mailbot.intake.mailbox import Mailbox

    _compile_local_templates(bot)
    mailbox = Mailbox(bot.settings.imap, bot.settings.source, bot.tokens)
    try:
        mailbox.open(at_start=True)
    finally:
        mailbox.close()
    try:
        check_smtp(bot.settings.smtp, bot.settings.source, bot.tokens)
    except ConfigError as err:
        # Mail waits in the outbox until the SMTP server answers.
        log.warning("%s", err)


def _install_signal_handlers(stopping: Callable[[], None]) -> None:
    import signal
    from types import FrameType

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current step", signal.Signals(signum).name)
        stopping()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


# -- check / init / migrate -----------------------------------------------------------------
@app.command()
def check(config: ConfigAfter = None, now: NowAfter = None) -> None:
    """Validate config, rules and templates; log in to IMAP, SMTP (and KITOS); migrate the
    database."""
    from mailbot.app import rules_folder
    from mailbot.db import where
    from mailbot.delivery.smtpcheck import check_smtp, probe_plus_addressing
    from mailbot.intake.mailbox import Mailbox
    from mailbot.kitos import check_kitos
    from mailbot.rules import load_rules

    _use(config, now)

    steps: list[tuple[str, Any]] = []
    try:
        settings = _settings()
        steps.append(("config", f"{settings.source} is valid"))
        rules = load_rules(rules_folder(settings))
        steps.append(("rules", f"{len(rules.questions)} questions, {len(rules.kinds)} kinds"))
        applied: list[str] = []
        bot = _bot(settings, report=applied)
        revisions = ", ".join(step.split()[0] for step in applied)
        steps.append(("database", f"{where(settings.database_url)} reachable and migrated"
                      + (f" (applied {revisions})" if applied else " (up to date)")))
        steps.extend(_check_leadership(bot))
        _check_templates(bot)
        steps.append(("templates", "render"))
        if bot.tokens is not None:
            steps.append(("oauth2", _check_token(bot)))
        mailbox = Mailbox(settings.imap, settings.source, bot.tokens)
        try:
            mailbox.open(at_start=True)
        finally:
            mailbox.close()
        steps.append(("imap", f"logged in to {settings.imap.host} as {settings.imap.username}"
                      f"{' (XOAUTH2)' if settings.imap.auth == 'oauth2' else ''}, folders ready"))
        check_smtp(settings.smtp, settings.source, bot.tokens)
        steps.append(("smtp", _smtp_step(settings)))
        if settings.reviews.reply_tokens:
            probe_plus_addressing(settings, tokens=bot.tokens)
            steps.append(("reply tokens", "plus-addressed mail reaches the mailbox"))
        if settings.kitos.enabled:
            steps.append(("kitos", check_kitos(settings)))
    finally:  # what passed, also when a later step fails (main prints that error)
        for name, detail in steps:
            typer.echo(f"ok    {name}: {detail}")


def _check_leadership(bot: Bot) -> list[tuple[str, str]]:
    """`check`'s backend and leader lines, as `mailbot status` prints them."""
    from mailbot.db import schema
    from mailbot.leadership import leader_state

    data = {**_backend_data(bot.settings), "migration": _migration_data(schema(bot.engine)),
            **leader_state(bot.settings, bot.engine).as_dict()}
    return [line for line in _status_lines(data) if line[0] != "migration"]


def _check_token(bot: Bot) -> str:
    """Ask the provider for a token now: its refusals (AADSTS...) are told before any mail
    server is asked. Raises ConfigError."""
    from mailbot.auth import TokenEndpointDown

    assert bot.tokens is not None
    try:
        bot.tokens.token()
    except TokenEndpointDown as err:
        raise err.config_error from err
    oauth2 = bot.settings.oauth2
    left = bot.tokens.expires_in
    valid = f"{left / 60:.0f} min" if left >= 120 else f"{left:.0f} s"
    return (f"token from {oauth2.endpoint} for {oauth2.effective_scope or 'the default scope'}"
            f" (valid {valid})")


def _smtp_step(settings: Settings) -> str:
    smtp = settings.smtp
    if smtp.auth == "none":
        return f"connected to {smtp.host} (no login: smtp.auth = \"none\")"
    how = " (XOAUTH2)" if smtp.auth == "oauth2" else ""
    return f"logged in to {smtp.host} as {smtp.username}{how}"


def _check_templates(bot: Bot) -> None:
    """Compile every template in bot.templates_dir, then render every mail with sample data.

    Raises ConfigError (key bot.templates_dir) naming the template file and line.
    """
    import jinja2

    from mailbot.rehearsal import rehearse

    _compile_local_templates(bot)
    try:
        rehearse(bot)  # undefined names show only when rendering: every mail, both languages
    except jinja2.TemplateError as err:
        raise _template_error(bot.settings, err) from err


def _compile_local_templates(bot: Bot) -> None:
    """Compile every template in bot.templates_dir (the shipped ones are tested): a syntax
    error stops `run` at start, named by file and line, instead of making every mail that
    uses the template fail three times and go to quarantine (issue #16 trial).

    Raises ConfigError (key bot.templates_dir)."""
    import jinja2

    folder = bot.settings.bot.templates_dir
    env = bot.renderer.env  # the same filters (genitive, oneline) as when mail is rendered
    names = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*.j2"))] \
        if folder else []
    try:
        for name in names:
            env.get_template(name)  # compiles it: syntax errors, unknown filters
    except jinja2.TemplateError as err:
        raise _template_error(bot.settings, err) from err
    except UnicodeDecodeError as err:
        raise ConfigError(bot.settings.source, "bot.templates_dir",
                          f"a template is not UTF-8 text ({err.reason} at byte {err.start})",
                          "save the templates as UTF-8") from err


def _template_error(settings: Settings, err: Exception) -> ConfigError:
    """`source: [bot.templates_dir] da/x.txt.j2 line 3: problem. Fix: ...`"""
    import jinja2

    path, line = (err.filename, err.lineno) if isinstance(err, jinja2.TemplateSyntaxError) \
        else _template_frame(err)
    folder = settings.bot.templates_dir
    shown = path or "a template"
    if path and folder and Path(path).is_relative_to(folder):
        shown = Path(path).relative_to(folder).as_posix()
    message = (err.message if isinstance(err, jinja2.TemplateError) and err.message
               else str(err)).rstrip(".")
    message = message[:1].lower() + message[1:]
    return ConfigError(settings.source, "bot.templates_dir",
                       f"{shown}{f' line {line}' if line else ''}: {message}",
                       "correct the template, or delete it to use the shipped one")


def _template_frame(err: BaseException) -> tuple[str | None, int | None]:
    """The innermost template (file, line) in a rendering traceback: jinja2 rewrites its
    frames to point at the .j2 file."""
    found: tuple[str | None, int | None] = (None, None)
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


@app.command()
def init(force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
         config: ConfigAfter = None) -> None:
    """Write a commented starter config to --config (its folder is created; mode 0600)."""
    import os

    from mailbot.config import STARTER_CONFIG

    _use(config, None)

    path = OPTIONS.config
    if path.exists() and not force:
        raise ConfigError(str(path), "--config", "the file exists already",
                          "pass --force to overwrite it, or choose another --config path")
    path.parent.mkdir(parents=True, exist_ok=True)
    # it will hold passwords: readable by its owner only, from the first byte on
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # --force on an existing file keeps its old mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(STARTER_CONFIG)
    typer.echo(f"wrote {path}; edit it, then run `mailbot --config {path} check`")


@app.command("migrate")
def migrate_command(config: ConfigAfter = None, now: NowAfter = None) -> None:
    """Create the database, or bring it to this mailbot's schema; print what was done."""
    from mailbot.db import make_engine, migrate, reachable_schema, schema_error, where
    from mailbot.redact import configure_logging

    _use(config, now)

    settings = _settings()
    configure_logging(settings.bot.log_level, settings.bot.log_format)
    engine = make_engine(settings.database_url, *settings.origin("bot.database_url"),
                         takeover_seconds=settings.bot.takeover_seconds)
    before = reachable_schema(engine, settings.database_url)
    if not before.known:
        raise schema_error(settings.database_url, before)
    applied = migrate(engine, quiet=True, secret_file=settings.bot.data_dir / "secret")
    database = where(settings.database_url)
    if not applied:
        typer.echo(f"{database}: already at revision {before.head}, nothing to do")
        return
    typer.echo(f"{database}: migrated from revision {before.current or 'none'} "
               f"to {before.head}")
    for step in applied:
        typer.echo(f"  applied {step}")


# -- status (issue #15) -----------------------------------------------------------------------
@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False,
           config: ConfigAfter = None, now: NowAfter = None) -> None:
    """The database (SQLite or PostgreSQL, where), its migration state, and who leads since
    when (and the standbys, on PostgreSQL). Read-only: never migrates, creates nothing."""
    from mailbot.db import make_engine, reachable_schema, sqlite_path
    from mailbot.leadership import leader_state
    from mailbot.redact import configure_logging

    _use(config, now)
    settings = _settings()
    configure_logging(settings.bot.log_level, settings.bot.log_format)
    url = settings.database_url
    path = sqlite_path(url)
    engine = None if path is not None and not path.is_file() else \
        make_engine(url, *settings.origin("bot.database_url"),
                    takeover_seconds=settings.bot.takeover_seconds)
    try:
        state = reachable_schema(engine, url) if engine is not None else None
    except ConfigError as err:
        if as_json:  # a monitoring program parses JSON, also when the database is down
            from mailbot.db import head_revision

            _echo_json({**_backend_data(settings), "migration": {
                "state": "unreachable", "current": None, "head": head_revision()},
                "lock": None, "leader": None, "standbys": [], "error": _one_line(str(err))})
        raise
    data = {**_backend_data(settings), "migration": _migration_data(state),
            **leader_state(settings, engine).as_dict()}
    if engine is not None:
        engine.dispose()
    if as_json:
        _echo_json(data)
        return
    typer.echo("\n".join(f"{name + ':':<11}{line}" for name, line in _status_lines(data)))


def _backend_data(settings: Settings) -> dict[str, Any]:
    from mailbot.db import where

    backend = "postgresql" if settings.on_postgresql else "sqlite"
    return {"backend": backend, "database": where(settings.database_url),
            "takeover_seconds": settings.bot.takeover_seconds if settings.on_postgresql
            else None}


def _migration_data(state: Schema | None) -> dict[str, Any]:
    """{"state": "up to date" | "behind" | "ahead" | "missing", "current", "head"}."""
    from mailbot.db import head_revision

    if state is None:
        return {"state": "missing", "current": None, "head": head_revision()}
    word = "up to date" if state.up_to_date else "ahead" if not state.known else "behind"
    return {"state": word, "current": state.current, "head": state.head}


def _status_lines(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The text of `status` (and the extra lines of `check`) from its JSON data."""
    from mailbot.leadership import Holder, LeaderState

    backend = data["backend"]
    how = (f"leadership by advisory lock; a standby takes over within "
           f"{data['takeover_seconds']:g} s" if backend == "postgresql"
           else "one host, leadership by a file lock")
    migration = data["migration"]
    words = {"up to date": f"up to date (revision {migration['head']})",
             "behind": f"behind: at {migration['current'] or 'none (never migrated)'}, this "
                       f"mailbot needs {migration['head']}; run `mailbot migrate`",
             "ahead": f"ahead: at {migration['current']}, which this mailbot does not know "
                      f"(it needs {migration['head']}): a newer mailbot migrated it",
             "missing": f"no database yet; `mailbot migrate` creates it at {migration['head']}"}
    leader = data["leader"]
    state = LeaderState(backend, data["lock"], error=data["error"] or "", holder=None if
                        leader is None else Holder(leader["holder"], _when(leader["since"])),
                        standbys=[Holder(s["holder"], _when(s["since"]))
                                  for s in data["standbys"]])
    lines = [("backend", f"{backend} {data['database']} ({how})"),
             ("migration", words[migration["state"]]), ("leader", state.text())]
    return lines


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# -- looking inside (read-only: never migrates, creates nothing) ----------------------------
@app.command()
def cases(status: Annotated[str | None, typer.Option(
        help="Only cases with this status (e.g. incomplete, queued, decided).")] = None,
          meeting: Annotated[str | None, typer.Option(
              help="Only the cases on the agenda of this meeting (YYYY-MM-DD), in reference "
              "order.")] = None,
          as_json: Annotated[bool, typer.Option("--json")] = False,
          config: ConfigAfter = None, now: NowAfter = None) -> None:
    """All cases, newest first; `--meeting` lists one meeting's cases, oldest ref first."""
    from sqlmodel import Session, col, select

    from mailbot import views
    from mailbot.models import Case

    _use(config, now)
    day = _meeting_day(meeting) if meeting is not None else None
    settings, engine = _database()
    with Session(engine) as session:
        query = select(Case).order_by(col(Case.id).desc())
        if status is not None:
            query = query.where(Case.status == status.strip().lower())
        if day is not None:
            # the order the secretary reads the agenda's cases in
            query = select(Case).where(Case.meeting_date == day).order_by(col(Case.ref))
            if status is not None:
                query = query.where(Case.status == status.strip().lower())
        rows = list(session.exec(query).all())
        if as_json:
            _echo_json(views.cases_data(rows, _zone(settings)))
        elif day is not None and not rows:
            _show(f"no cases on the agenda of {day}"
                  + (f" with status {status!r}" if status is not None else ""))
        elif status is not None and not rows:
            in_use = sorted(set(session.exec(select(Case.status)).all()))
            _show(f"no cases with status {status!r}"
                  + (f" (statuses in use: {', '.join(in_use)})" if in_use else ""))
        else:
            _show(views.cases_table(rows))


def _meeting_day(value: str) -> date:
    """--meeting as a date. Raises ConfigError."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError as err:
        raise ConfigError(COMMAND_LINE, "--meeting", f"{value!r} is not a date",
                          "write YYYY-MM-DD, a day from `mailbot calendar`") from err


@app.command()
def case(ref: str, as_json: Annotated[bool, typer.Option("--json")] = False,
         withdraw: Annotated[bool, typer.Option(
             "--withdraw", help="Withdraw the case (as the applicant's \"træk tilbage\"): off "
             "the agenda, no reminders, the applicant told. Refused while the daemon runs.")]
         = False,
         config: ConfigAfter = None, now: NowAfter = None) -> None:
    """One case: its data, reviews, meeting, decision and timeline."""
    from sqlmodel import Session

    from mailbot import views
    from mailbot.cases.lookup import find_case

    _use(config, now)
    if withdraw:
        _withdraw(ref, as_json)
        return
    settings, engine = _database()
    with Session(engine) as session:
        found = find_case(session, ref)
        if found is None:
            raise ConfigError(COMMAND_LINE, "REF", f"there is no case {ref}",
                              "`mailbot cases` lists them")
        data = views.case_data(session, found, _zone(settings))
        if as_json:
            _echo_json(data)
        else:
            _show(views.case_text(session, found, data, _zone(settings)))


_CASE_FIX = ("systemctl stop mailbot, run this again, systemctl start mailbot (the daemon "
             "changes cases too)")


def _withdraw(ref: str, as_json: bool) -> None:
    """`mailbot case REF --withdraw`, under the leader lock (README "Admin commands")."""
    from sqlmodel import Session

    from mailbot import views
    from mailbot.admin import withdraw_case

    bot = _writer()
    with _exclusive(bot, None, _CASE_FIX):
        withdrawn, cancelled = withdraw_case(bot, ref, bot.clock.now())
    if as_json:
        with Session(bot.engine) as session:
            _echo_json(views.case_data(session, withdrawn, _zone(bot.settings)))
        return
    stopped = ("; unsent mail to reviewers cancelled: "
               + ", ".join(f"outbox {row.id} ({row.kind} to {', '.join(row.recipients)})"
                           for row in cancelled) if cancelled else "")
    _show(f"{withdrawn.ref} withdrawn: off the agenda, no more reminders{stopped}; the mail "
          "telling the applicant is in the outbox (the daemon sends it once started again)")


@app.command()
def document(ref: str, filename: Annotated[str, typer.Argument(
        help="The document's name as `mailbot case REF` shows it.")],
             kind: Annotated[str, typer.Option(
                 "--kind", help="Its right kind: technical_description, contract_draft, "
                 "dpa_draft, business_case, project_description, other (rules/documents.yaml)."
             )],
             as_json: Annotated[bool, typer.Option("--json")] = False,
             config: ConfigAfter = None, now: NowAfter = None) -> None:
    """Correct a misread document's kind: the case's missing list follows, and the reviewers
    of the new kind get it. Refused while the daemon runs."""
    from sqlmodel import Session

    from mailbot import views
    from mailbot.admin import correct_kind

    _use(config, now)
    bot = _writer()
    with _exclusive(bot, None, _CASE_FIX):
        change = correct_kind(bot, ref, filename, kind.strip(), bot.clock.now())
    if as_json:
        with Session(bot.engine) as session:
            _echo_json({**views.case_data(session, change.case, _zone(bot.settings)),
                        "corrected": {"filename": change.document.filename,
                                      "old_kind": change.old_kind, "kind": kind,
                                      "version": change.document.version,
                                      "missing_before": change.missing_before,
                                      "review_requests": [r.role for r in change.requested]}})
        return
    roles = ", ".join(r.role for r in change.requested) or "none (no reviewer for this kind)"
    _show(f"{change.case.ref}: {change.document.filename} is {kind} (v{change.document.version}"
          f"), was {change.old_kind}; missing: {', '.join(change.case.missing) or 'nothing'} "
          f"(was: {', '.join(change.missing_before) or 'nothing'}); review requests queued: "
          f"{roles}")


def _zone(settings: Settings) -> ZoneInfo:
    """The council's zone: times people read are local (config validated the name)."""
    return ZoneInfo(settings.council.timezone)


def _show(text: str) -> None:
    """One text for the operator on stdout, CPR numbers redacted (SCENARIOS G1): every
    command that prints case or mail data prints through this or _echo_json."""
    typer.echo(redact_cpr(text))


def _echo_json(data: Any) -> None:
    """JSON on stdout as UTF-8 (RFC 8259) whatever the locale or PYTHONIOENCODING says, so
    æøå arrive as written when the output goes to a file or another program; CPR numbers
    redacted (SCENARIOS G1; JSON never escapes digits, spaces or "-", so the text is
    redacted as it is written)."""
    text = redact_cpr(json.dumps(data, ensure_ascii=False, indent=2, default=str)) + "\n"
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a stream without bytes underneath: it takes text as it is
        typer.echo(text, nl=False)
        return
    sys.stdout.flush()
    buffer.write(text.encode("utf-8"))
    buffer.flush()


@app.command()
def messages(state: Annotated[str | None, typer.Option(
        help="Only this state: received, processed, ignored, duplicate, quarantined, "
        "released.")] = None,
             limit: Annotated[int, typer.Option(min=1)] = 50,
             as_json: Annotated[bool, typer.Option("--json")] = False,
             config: ConfigAfter = None, now: NowAfter = None) -> None:
    """The ledger: every mail the bot has fetched, with its state, sender, subject and reason."""
    from sqlalchemy import func
    from sqlmodel import Session, col, select

    from mailbot import views
    from mailbot.models import RawMessage

    _use(config, now)

    if state is not None and state not in MESSAGE_STATES:
        raise ConfigError(COMMAND_LINE, "--state", f"{state!r} is not a state",
                          f"use one of {', '.join(MESSAGE_STATES)}")
    settings, engine = _database()
    with Session(engine) as session:
        query = select(RawMessage).order_by(col(RawMessage.id).desc()).limit(limit)
        counted = select(func.count()).select_from(RawMessage)
        if state:
            query = query.where(RawMessage.state == state)
            counted = counted.where(RawMessage.state == state)
        rows = list(session.exec(query).all())
        if as_json:
            _echo_json(views.messages_data(session, rows, _zone(settings)))
        else:
            _show(views.messages_table(rows, session.exec(counted).one()))


OUTBOX_STATES = ("pending", "sending", "sent", "failed", "uncertain", "cancelled")
OUTBOX_ACTIONS = ("list", "show", "resume", "retry", "cancel")
_TAKES_ID = ("show", "retry", "cancel")


@app.command()
def outbox(action: Annotated[str | None, typer.Argument(
        help="`list` (the default): the outbox; `show ID`: one mail with its text, to send it "
        "by hand; `retry ID`: a failed or uncertain mail back to pending; `cancel ID`: a "
        "pending, failed or uncertain mail is never sent; `resume`: send mail to applicants "
        "again after the circuit breaker opened.")] = None,
           row_id: Annotated[str | None, typer.Argument(
               metavar="ID", help="The outbox row for `show`, `retry`, `cancel` (the id "
               "column).")] = None,
           state: Annotated[str | None, typer.Option(
               help="Only this state (all such rows unless --limit): pending, sending, sent, "
               "failed, uncertain, cancelled.")] = None,
           limit: Annotated[int | None, typer.Option(
               min=1, help="At most this many rows, newest first (default: 50 without "
               "--state, all with it).", show_default=False)] = None,
           not_delivered: Annotated[bool, typer.Option(
               "--not-delivered", help="`retry` of an uncertain mail: you checked that it did "
               "not arrive (the SMTP server may have delivered it).")] = False,
           as_json: Annotated[bool, typer.Option("--json")] = False,
           config: ConfigAfter = None, now: NowAfter = None) -> None:
    """Outgoing mail: state, attempts, last error; `outbox show ID` prints one mail;
    `outbox retry ID` / `outbox cancel ID` correct one; `outbox resume` closes the breaker."""
    from sqlmodel import Session

    from mailbot.delivery.breaker import Breaker

    _use(config, now)

    if action is not None and action not in OUTBOX_ACTIONS:
        raise ConfigError(COMMAND_LINE, "ACTION", f"{action!r} is not an outbox action",
                          "use `mailbot outbox list`, `show ID`, `retry ID`, `cancel ID` or "
                          "`resume`")
    if row_id is not None and action not in _TAKES_ID:
        raise ConfigError(COMMAND_LINE, "ID", f"`outbox {action or 'list'}` takes no ID",
                          "use `mailbot outbox show ID` to see one mail")
    if state is not None and state not in OUTBOX_STATES:
        raise ConfigError(COMMAND_LINE, "--state", f"{state!r} is not an outbox state",
                          f"use one of {', '.join(OUTBOX_STATES)}")
    settings, engine = _database()
    if action == "show":
        _outbox_show(settings, engine, row_id, as_json)
        return
    if action in ("retry", "cancel"):
        _outbox_change(settings, engine, action, _row_id(row_id, f"outbox {action}"),
                       not_delivered, as_json)
        return
    breaker = Breaker(engine, settings.limits)
    if action == "resume":
        reason = breaker.resume(Clock(OPTIONS.now).now())
        _show(f"circuit breaker closed (it was open: {reason}); mail to applicants goes "
              "out again" if reason else "circuit breaker was not open; nothing to do")
        return
    with Session(engine) as session:
        _outbox_list(session, breaker, state, limit, as_json, settings)


def _row_id(value: str | None, command: str) -> int:
    """The ID argument of `mailbot {command} ID` as a number: the one parser of every admin
    command's row id. Raises ConfigError for a missing, non-decimal or too large id (above
    mailbot.db.MAX_ROW_ID, which the database would refuse with an error of its own)."""
    from mailbot.db import MAX_ROW_ID

    listing = f"`mailbot {command.split()[0]} list`"
    if value is None:
        raise ConfigError(COMMAND_LINE, "ID", f"`{command}` needs the row's id",
                          f"{listing} lists them (the id column), e.g. `mailbot {command} 7`")
    digits = value.strip()
    # isdigit() also accepts "²" and other digits int() refuses: ASCII decimals only
    if not (digits.isascii() and digits.isdigit()):
        raise ConfigError(COMMAND_LINE, "ID", f"{value!r} is not an id",
                          f"give the number from the id column of {listing}")
    if int(digits) > MAX_ROW_ID:
        raise ConfigError(COMMAND_LINE, "ID", f"{digits} is larger than any row id",
                          f"give the number from the id column of {listing}")
    return int(digits)


def _outbox_change(settings: Settings, engine: Engine, action: str, row_id: int,
                   not_delivered: bool, as_json: bool) -> None:
    """`outbox retry|cancel ID`: one conditional UPDATE with its audit event, safe beside a
    running daemon (mailbot.admin; README "Admin commands")."""
    from sqlmodel import Session

    from mailbot import views
    from mailbot.admin import cancel_outbox, retry_outbox

    moment = Clock(OPTIONS.now).now()
    if action == "retry":
        row, before = retry_outbox(engine, row_id, moment, not_delivered)
        told = "it goes out at the daemon's next send (`mailbot run --once` sends it now)"
    else:
        row, before = cancel_outbox(engine, row_id, moment)
        told = "it is never sent" + _review_left_waiting(engine, row)
    if as_json:
        with Session(engine) as session:
            _echo_json({**views.outbox_data(session, [row], _zone(settings))[0],
                        "previous_state": before})
        return
    _show(f"outbox {row.id} ({row.kind} to {', '.join(row.recipients)}): {before} -> "
          f"{row.state}; {told}")


def _review_left_waiting(engine: Engine, row: Outbox) -> str:
    """What a cancelled review request leaves behind, for `outbox cancel`'s line ("" for
    other mail)."""
    from sqlmodel import Session

    from mailbot.admin import waiting_review

    with Session(engine) as session:
        review = waiting_review(session, row)
    if review is None:
        return ""
    return (f". The review of {review.role} ({', '.join(review.recipients)}) still waits for "
            "an answer, and none can come: the reviewer never got the request and is not "
            "reminded of it; a new request goes out when the applicant sends a new version "
            "of its documents")


def _outbox_list(session: Session, breaker: Breaker, state: str | None, limit: int | None,
                 as_json: bool, settings: Settings) -> None:
    """The outbox listing, newest first: `state` keeps one state (every such row unless
    `limit`); without it the newest `limit` (50) rows, and a line naming the failed and
    uncertain rows that did not fit."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from mailbot import views
    from mailbot.models import Outbox

    query = select(Outbox).order_by(col(Outbox.id).desc())
    if state is not None:
        query = query.where(Outbox.state == state)
    if limit is not None or state is None:
        query = query.limit(limit or 50)
    rows = list(session.exec(query).all())
    if as_json:
        _echo_json(views.outbox_data(session, rows, _zone(settings)))
        return
    opened = breaker.state(session)
    if opened.opened_at is not None:
        _show(f"CIRCUIT BREAKER OPEN since {views.stamp(opened.opened_at, _zone(settings))}: "
              f"{opened.reason}; mail to applicants waits. After checking for a loop: "
              "mailbot outbox resume\n")
    counted = select(func.count()).select_from(Outbox)
    if state is not None:
        counted = counted.where(Outbox.state == state)
    total = session.exec(counted).one()
    note = ""
    if total > len(rows):
        note = f"newest {len(rows)} of {total} shown"
        if state is None:  # rows is the newest `limit`: the others are older
            oldest = min(r.id or 0 for r in rows)
            hidden = session.exec(
                select(Outbox.state, func.count()).where(
                    col(Outbox.state).in_(("failed", "uncertain")), col(Outbox.id) < oldest)
                .group_by(Outbox.state)).all()
            note += "".join(f"; {count} more {name}: `mailbot outbox --state {name}`"
                            for name, count in sorted(hidden))
        else:
            note += f"; `--limit {total}` shows all"
    if state is not None and not rows:
        typer.echo(f"no outbox rows in state {state}")
        return
    _show(views.outbox_table(rows, note))


def _outbox_show(settings: Settings, engine: Engine, row_id: str | None,
            as_json: bool) -> None:
    """`mailbot outbox show ID`: one row, its per-recipient results and its text part."""
    from sqlmodel import Session

    from mailbot import views
    from mailbot.admin import outbox_row

    number = _row_id(row_id, "outbox show")
    with Session(engine) as session:
        row = outbox_row(session, number)
        data = views.outbox_row_data(session, row, _zone(settings))
        if as_json:
            _echo_json(data)
        else:
            _show(views.outbox_row_text(row, data, _zone(settings)))


@app.command("calendar")
def calendar_command(year: Annotated[int | None, typer.Option(help="Default: this year.")]
                     = None, config: ConfigAfter = None, now: NowAfter = None) -> None:
    """The council's meetings and their agenda deadlines for a year."""
    from mailbot import views
    from mailbot.council.meetings import CouncilCalendar

    _use(config, now)

    if year is not None and year not in YEARS:
        raise ConfigError(COMMAND_LINE, "--year", f"{year} is outside {YEARS[0]}..{YEARS[-1]}",
                          "give a year such as 2027")
    settings = _settings()
    year = year or Clock(OPTIONS.now).now().astimezone(COPENHAGEN).year
    meetings = CouncilCalendar(settings.council).meetings(date(year, 1, 1), date(year, 12, 31))
    typer.echo(views.calendar_table(meetings))


@app.command()
def agenda(meeting: Annotated[str | None, typer.Option(
        help="YYYY-MM-DD; default: the next meeting whose deadline is still ahead.")] = None,
           send: Annotated[bool, typer.Option("--send", help="Send it now.")] = False,
           config: ConfigAfter = None, now: NowAfter = None) -> None:
    """Print the agenda as it would be sent (read-only), or send it now."""
    from sqlmodel import Session

    from mailbot.app import build_bot
    from mailbot.council.agenda import agenda_context, next_agenda_version, send_agenda
    from mailbot.council.meetings import CouncilCalendar
    from mailbot.db import transaction

    _use(config, now)

    if send:
        if not _settings().council.secretary:
            raise ConfigError(_settings().source, "council.secretary", "is empty: the agenda "
                              "would go to nobody", "set the secretary's address(es)")
        bot = _bot()
    else:
        settings, engine = _database()
        bot = build_bot(settings, Clock(OPTIONS.now), engine, read_only=True)
    calendar = CouncilCalendar(bot.settings.council)
    moment = bot.clock.now()
    try:
        chosen = (calendar.meeting_on(date.fromisoformat(meeting)) if meeting
                  else calendar.next_meeting(moment))
    except ValueError as err:
        raise ConfigError("command line", "--meeting", f"{meeting!r} is not a date ({err})",
                          "write YYYY-MM-DD, a day from `mailbot calendar`") from err
    if chosen is None:
        raise ConfigError("command line", "--meeting",
                          f"there is no council meeting on {meeting}",
                          "pick a day from `mailbot calendar`")
    if not send:
        with Session(bot.engine) as session:
            context = agenda_context(session, bot, chosen, version=1)
            _show(bot.renderer.render("da", "agenda", context)[0])
        return
    with transaction(bot.engine) as session:
        version = next_agenda_version(session, chosen.day)
        agenda_row = send_agenda(session, bot, chosen, moment, version)
    typer.echo(f"agenda for {chosen.day} (version {version}) to "
               f"{', '.join(bot.settings.council.secretary)}: {_deliver_now(bot, agenda_row)}")


def _deliver_now(bot: Bot, agenda_row: Agenda | None) -> str:
    """Send the outbox now when no daemon runs here (under its leader lock, so a running
    daemon's in-flight rows are never touched); else leave it to the daemon."""
    from sqlmodel import Session, select

    from mailbot.leadership import AlreadyRunning, lead
    from mailbot.models import Outbox
    from mailbot.service import Service

    if agenda_row is None:
        return "not sent (nothing on it and council.empty_agenda = \"skip\")"
    try:
        with lead(bot.settings, bot.engine) as lock:
            Service(bot, lock).flush_outbox()
    except AlreadyRunning:
        return "queued; the running daemon sends it"
    with Session(bot.engine) as session:
        row = session.exec(select(Outbox).where(Outbox.message_id == agenda_row.message_id)
                           ).first()
    state = row.state if row is not None else "missing"
    if state == "sent":
        return "sent"
    return (f"queued ({state}); the outbox sends it when the SMTP server answers "
            "(`mailbot outbox` shows it)")


# -- health (issue #14) -------------------------------------------------------------------
@app.command()
def health(as_json: Annotated[bool, typer.Option("--json")] = False,
           config: ConfigAfter = None, now: NowAfter = None) -> None:
    """Is mailbot healthy? Each check and the whole state; exit 0 ok, 1 warning, 2 critical
    (the monitoring-plugin convention). Read-only: it never migrates."""
    from mailbot import health as judged

    _use(config, now)
    settings = _settings()
    at = Clock(OPTIONS.now).now()
    try:
        _, engine = _database(settings)
    except ConfigError as err:  # missing, unreachable or not migrated: critical, not a crash
        report = judged.unreadable(settings, _one_line(str(err)))
    else:
        report = judged.judge(settings, engine, at)
    if as_json:
        _echo_json(report.as_dict())
    else:
        _show(report.text())
    raise typer.Exit(report.status)


@app.command("inspect")
def inspect_command(file: Path, as_json: Annotated[bool, typer.Option("--json")] = False,
                    details: Annotated[bool, typer.Option(
                        "--details", help="With --json: add the reading's details (where each "
                        "answer came from, from_prose, document notes, the normalised date and "
                        "amounts, project type, system owner, what the daemon would do)")
                    ] = False,
                    config: ConfigAfter = None, now: NowAfter = None) -> None:
    """Read one .eml as the bot would (no database, no network)."""
    from mailbot import views
    from mailbot.app import rules_folder
    from mailbot.intake.inspection import inspect_details, settings_without_config
    from mailbot.redact import configure_logging
    from mailbot.rules import load_rules

    _use(config, now)
    # the libraries' remarks on odd parts ("Email content 'pdf' not handled", pypdf's
    # "EOF marker not found") are not the reading: the reading says what matters
    configure_logging("ERROR")

    raw = _read_mail_file(file)
    settings = _settings() if OPTIONS.config.exists() else settings_without_config()
    rules = load_rules(rules_folder(settings))
    today = Clock(OPTIONS.now).now().astimezone(COPENHAGEN).date()
    try:
        result, extra = inspect_details(raw, rules, settings, today)
    except PermanentError as err:  # what the bot does with it too: quarantine, with the reason
        result = {"kind": None, "case_ref": None}
        extra = {"error": str(err), "disposition": "Quarantine",
                 "action": f"quarantined: {err}"}
    if as_json:
        _echo_json({**result, "details": extra} if details else result)
    else:
        _show(views.inspect_text(result, extra))


# what a file starts with when it is certainly not a mail
_MAGIC = {b"\x89PNG": "a PNG image", b"%PDF-": "a PDF", b"GIF8": "a GIF image",
          b"PK\x03\x04": "a ZIP archive or an Office file", b"\xff\xd8\xff": "a JPEG image",
          b"\x7fELF": "a program", b"MZ\x90": "a Windows program"}


def _read_mail_file(file: Path) -> bytes:
    """The bytes of `file`. Raises ConfigError when it cannot be read, is empty or is binary."""
    fix = "give a mail saved as an .eml file (the raw message, RFC 5322 text)"
    if file.exists() and not file.is_file():  # a folder, a device or a pipe: never read it
        raise ConfigError(str(file), "FILE", "is not a regular file", fix)
    try:
        raw = file.read_bytes()
    except OSError as err:
        raise ConfigError(str(file), "FILE", f"cannot be read ({err.strerror or err})",
                          fix) from err
    if not raw.strip():
        raise ConfigError(str(file), "FILE", "the file is empty", fix)
    kind = _binary_kind(raw[:8192])
    if kind:
        raise ConfigError(str(file), "FILE", f"is {kind}, not a mail", fix)
    return raw


def _binary_kind(head: bytes) -> str | None:
    """What binary thing `head` starts, or None for text (a mail is text, even in 8 bit)."""
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    if b"\x00" in head:
        return "binary data"
    controls = sum(1 for byte in head if (byte < 32 and byte not in b"\t\n\r\f") or byte == 127)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        # 8-bit Latin-1 mail has almost no control bytes; random data has one in nine
        return "binary data" if controls > len(head) // 20 else None
    return None


# -- quarantine (README "Admin commands") -------------------------------------------------
quarantine_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                             help="Quarantined mail: list, show, release (process again), "
                                  "delete.")
app.add_typer(quarantine_app, name="quarantine")
IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The mail's id (the id column "
                                           "of `mailbot quarantine list`).")]
JsonOption = Annotated[bool, typer.Option("--json")]


@quarantine_app.command("list")
def quarantine_list(as_json: JsonOption = False, config: ConfigAfter = None,
                    now: NowAfter = None) -> None:
    """The quarantined mails not deleted, newest first: sender, subject, the whole reason."""
    from sqlmodel import Session

    from mailbot import views
    from mailbot.admin import quarantined

    _use(config, now)
    settings, engine = _database()
    with Session(engine) as session:
        rows = quarantined(session)
        if as_json:
            _echo_json(views.messages_data(session, rows, _zone(settings)))
        elif not rows:
            _show("no quarantined mail")
        else:
            _show(views.messages_table(rows))


@quarantine_app.command("show")
def quarantine_show(raw_id: IdArgument, as_json: JsonOption = False,
                    config: ConfigAfter = None, now: NowAfter = None) -> None:
    """One quarantined mail (also a released or deleted one, read-only): its state, reason,
    attempts, headers, where its copy is and its audit events."""
    from sqlmodel import Session

    from mailbot import views
    from mailbot.admin import quarantine_record
    from mailbot.app import blob_store

    _use(config, now)
    settings, engine = _database()
    number = _row_id(raw_id, "quarantine show")
    with Session(engine) as session:
        row = quarantine_record(session, number)
        blobs = blob_store(settings, engine)
        raw = blobs.get(row.raw_sha256) if row.raw_sha256 and \
            blobs.exists(row.raw_sha256) else b""
        data = views.quarantine_data(session, row, views.header_lines(raw) if raw else [],
                                     _zone(settings))
    if as_json:
        _echo_json(data)
    else:
        _show(views.quarantine_text(row, data, _zone(settings)))


@quarantine_app.command("release")
def quarantine_release(raw_id: IdArgument, as_json: JsonOption = False,
                       config: ConfigAfter = None, now: NowAfter = None) -> None:
    """Process a quarantined mail again (after its cause is fixed): its copy goes back to
    the watched folder, where the daemon reads it as a new mail, exactly once."""
    from sqlmodel import Session

    from mailbot.admin import mark_released, quarantine_copy, quarantined_row, refused
    from mailbot.intake.mailbox import Mailbox

    _use(config, now)
    bot = _writer()
    settings, engine = bot.settings, bot.engine
    number = _row_id(raw_id, "quarantine release")
    with Session(engine) as session:
        row = quarantined_row(session, number)
        copy = quarantine_copy(bot, row, "release")
    mailbox = Mailbox(settings.imap, settings.source, bot.tokens)
    try:
        mailbox.connect()
        # the copy first: should the ledger then fail, the mail is still read once as new
        # mail, and the row only looks quarantined still
        moved = mailbox.move_copy(copy.folder, copy.message_id, copy.size, row.folder)
    finally:
        mailbox.close()
    if not moved:
        raise refused("ID", f"mail {number} is not in {copy.folder} any more (someone moved "
                      "or deleted it)", f"look for {copy.message_id} in the mailbox; "
                      f"`mailbot quarantine delete {number}` records it as gone")
    released = mark_released(bot, number, bot.clock.now())
    if as_json:
        with Session(engine) as session:
            _echo_json(_ledger_json(session, released, settings))
        return
    _show(f"mail {number} released: its copy is back in {row.folder}; the daemon reads it as "
          "a new mail at its next sweep (`mailbot run --once` makes one), with its attempts "
          "from 0")


def _ledger_json(session: Session, row: RawMessage, settings: Settings) -> dict[str, Any]:
    """messages_data of one ledger row (the JSON of `quarantine release|delete`)."""
    from mailbot import views

    return views.messages_data(session, [row], _zone(settings))[0]


@quarantine_app.command("delete")
def quarantine_delete(raw_id: IdArgument, as_json: JsonOption = False,
                      config: ConfigAfter = None, now: NowAfter = None) -> None:
    """Delete a quarantined mail: its content, stored file and IMAP copy go; its ledger row
    stays as a tombstone with a `quarantine_deleted` event."""
    from sqlmodel import Session

    from mailbot.admin import delete_quarantined, quarantine_copy, quarantined_row
    from mailbot.privacy.purge import BLOB_IDLE_SECONDS, release, remove_copies

    _use(config, now)
    bot = _writer()
    settings, engine = bot.settings, bot.engine
    number = _row_id(raw_id, "quarantine delete")
    with Session(engine) as session:
        by_hand = not quarantine_copy(bot, quarantined_row(session, number), "delete").message_id
    with _lock_if_free(bot) as alone:
        moment = bot.clock.now()
        row, sha = delete_quarantined(bot, number, moment)
        # beside a running daemon its intake may be storing the same bytes again right now:
        # a file met that recently is left for the daily retention job (purge.leftovers)
        release(bot, [sha], moment, 0 if alone else BLOB_IDLE_SECONDS)
        copies = remove_copies(bot, moment)
    folder = settings.imap.quarantine_folder
    left = (f"mail {number} has no Message-ID, so mailbot cannot tell its copy in {folder} "
            f"from other mail: delete it by hand in a mail client from {folder}"
            if by_hand else None)
    if as_json:
        with Session(engine) as session:
            _echo_json({**_ledger_json(session, row, settings),
                        "imap_error": copies.error or None, "imap_copy_left": left})
        return
    if left:
        _show(f"mail {number} deleted: its content and stored file; the ledger keeps a "
              f"tombstone. {left}")
        return
    _show(f"mail {number} deleted: its content, stored file and copy in {folder}; the ledger "
          "keeps a tombstone" + (f" (the IMAP copy stays until the next retention run: "
                                 f"{copies.error})" if copies.error else ""))


@contextmanager
def _lock_if_free(bot: Bot) -> Iterator[bool]:
    """The leader lock when no daemon holds it (True), else nothing (False): for a command
    that runs beside the daemon but may do more when alone."""
    from contextlib import ExitStack

    from mailbot.leadership import AlreadyRunning, lead

    stack = ExitStack()
    try:
        stack.enter_context(lead(bot.settings, bot.engine))
        alone = True
    except AlreadyRunning:
        alone = False
    with stack:
        yield alone


# -- personal data (README "Personal data") ------------------------------------------------
retention_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                            help="Retention of personal data.")
gdpr_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="The data subject's rights: access export (article 15), erasure "
                            "(article 17).")
app.add_typer(retention_app, name="retention")
app.add_typer(gdpr_app, name="gdpr")
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would be removed; change "
                                                         "nothing.")]


@retention_app.command("run")
def retention_run(dry_run: DryRun = False, config: ConfigAfter = None,
                  now: NowAfter = None) -> None:
    """Remove what `[retention]` says is due now (the daemon does this daily at 03:30):
    counts per kind and case refs are printed, never content."""
    from mailbot.privacy.retention import run as run_retention
    from mailbot.service import RETENTION_AT

    _use(config, now)
    bot = _bot()
    daily = f"{RETENTION_AT[0]:02d}:{RETENTION_AT[1]:02d}"
    with _exclusive(bot, dry_run, f"the running daemon removes what is due every day at "
                                  f"{daily}"):
        report = run_retention(bot, bot.clock.now(), dry_run=dry_run)
    for line in report.lines():
        typer.echo(line)


@gdpr_app.command("export")
def gdpr_export(address: str, out: Annotated[Path, typer.Option(
        "--out", help="The ZIP file to write (an existing file is replaced).")],
                config: ConfigAfter = None, now: NowAfter = None) -> None:
    r"""Everything mailbot holds about ADDRESS as a ZIP (GDPR article 15): its cases, mails,
    attachments, the mail sent to it, events; an index in Danish and data.json. Other
    people's addresses and names are replaced by "[anden person]"."""
    import os
    import tempfile

    from mailbot.privacy.gdpr import export

    _use(config, now)
    address = _address(address)
    bot = _bot()
    result = export(bot, address, bot.clock.now())
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".export-")
    with os.fdopen(fd, "wb") as handle:  # mode 0600: it holds personal data
        handle.write(result.data)
    os.replace(tmp, out)
    held = ", ".join(f"{kind} {n}" for kind, n in result.counts.items())
    typer.echo(f"wrote {out}: {held}" if any(result.counts.values())
               else f"wrote {out}: nothing is held about that address (only indeks.txt)")


@gdpr_app.command("erase")
def gdpr_erase(address: str, dry_run: DryRun = False, config: ConfigAfter = None,
               now: NowAfter = None) -> None:
    """Erase ADDRESS (GDPR article 17): its cases as applicant anonymised (an open one
    withdrawn), its mail and attachments deleted (a file another case still uses stays),
    its copies in Processed/Quarantine deleted, the address replaced elsewhere."""
    from mailbot.privacy.gdpr import erase

    _use(config, now)
    address = _address(address)
    bot = _bot()
    with _exclusive(bot, dry_run, "to erase: systemctl stop mailbot, run this again, "
                                  "systemctl start mailbot"):
        result = erase(bot, address, bot.clock.now(), dry_run=dry_run)
    for line in result.lines(dry_run):
        typer.echo(line)


def _address(value: str) -> str:
    """ADDRESS as given: one e-mail address. Raises ConfigError (the argument) otherwise."""
    from mailbot.intake.parse import strict_address

    found = strict_address(value.strip())
    if not found:
        raise ConfigError(COMMAND_LINE, "ADDRESS", f"{value!r} is not one e-mail address",
                          "give the address alone, e.g. mette.holm@kommune.dk")
    return found.lower()


@contextmanager
def _exclusive(bot: Bot, dry_run: bool | None, daemon_fix: str) -> Iterator[None]:
    """The leader lock around a command that changes what the daemon also changes (as the
    daemon's own jobs run under it); a dry run needs none (None: the command has none).
    Raises MailbotError when a daemon holds it."""
    from mailbot.leadership import AlreadyRunning, lead

    if dry_run:
        yield
        return
    try:
        with lead(bot.settings, bot.engine):
            yield
    except AlreadyRunning as err:
        also = "" if dry_run is None else " (--dry-run works while it runs)"
        raise MailbotError(f"{err}; {daemon_fix}{also}") from err


# -- the web overview (README "The web view") -------------------------------------------------
web_app = typer.Typer(rich_markup_mode=None,
                      help="The secretary's read-only overview: serve it, or add a user.")
app.add_typer(web_app, name="web")


@web_app.callback(invoke_without_command=True)
def web(ctx: typer.Context, config: ConfigAfter = None, now: NowAfter = None) -> None:
    """Serve the overview (and /healthz, /metrics) on `[web] listen` until Ctrl-C, without
    the daemon (which serves it too)."""
    if ctx.invoked_subcommand is not None:
        return
    from mailbot.app import build_bot
    from mailbot.web.app import create_app
    from mailbot.web.server import WebServer

    _use(config, now)
    settings, engine = _database()
    bot = build_bot(settings, Clock(OPTIONS.now), engine)
    server = WebServer(create_app(bot), listen_socket(settings))
    typer.echo(f"the overview is at {server.address}/ (Ctrl-C stops it)")
    server.serve_forever()


def listen_socket(settings: Settings) -> socket.socket:
    """The socket bound to `[web] listen`. Raises ConfigError naming the key when it is
    empty, not HOST:PORT, or cannot be bound (a taken port)."""
    from mailbot.web.server import LISTEN_KEY, Listen, ListenError, bind

    # the file or the environment variable the value came from, as the daemon names it
    source, key = settings.origin(LISTEN_KEY)
    if not settings.web.listen.strip():
        raise ConfigError(source, key, "is empty: the web endpoints are off",
                          'set it to HOST:PORT, e.g. "127.0.0.1:8025"')
    try:
        return bind(Listen.parse(settings.web.listen))
    except ValueError as err:
        raise ConfigError(source, key, str(err),
                          'write HOST:PORT, e.g. "127.0.0.1:8025"') from err
    except ListenError as err:
        raise ConfigError(source, key, str(err),
                          "stop what uses that port or set another HOST:PORT") from err


@web_app.command("add-user")
def web_add_user(name: str, role: Annotated[str, typer.Option(
        help="secretary, operator or council.")],
                 password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input (required: a "
                                 "password is never an argument).")] = False,
                 config: ConfigAfter = None) -> None:
    """Add NAME to `[[web.users]]` in the config file with an argon2 hash of the password
    read from standard input, or replace NAME's entry. The password is never printed."""
    from mailbot.web.auth import add_user

    _use(config, None)
    if not password_stdin:
        raise ConfigError(COMMAND_LINE, "--password-stdin", "is required",
                          "pipe the password in: printf %s \"$PW\" | mailbot web add-user "
                          "NAME --role ROLE --password-stdin")
    password = sys.stdin.read().rstrip("\r\n")
    replaced = add_user(OPTIONS.config, name, role.strip().lower(), password)
    typer.echo(f"{'replaced' if replaced else 'added'} web user {name.strip()!r} ({role}) "
               f"in {OPTIONS.config}; restart mailbot (and `mailbot web`) to use it")


@app.command()
def demo(keep: Annotated[bool, typer.Option(help="Keep the temporary folder.")] = False,
         serve: Annotated[bool, typer.Option(
             "--serve", help="Then serve the web overview on the demo's cases until Ctrl-C "
                             "(its address and a demo user's password are printed).")] = False
         ) -> None:
    """The whole flow on an embedded mail server, no setup: briefs in, receipts out."""
    from mailbot.demo import run_demo
    from mailbot.redact import configure_logging

    configure_logging("WARNING")
    run_demo(keep=keep, echo=_show, serve=serve)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 an error the operator can fix, 130 ^C)."""
    if hasattr(sys.stdout, "reconfigure"):
        # text on a terminal that cannot show æøå gets "?" rather than a traceback
        sys.stdout.reconfigure(errors="replace")
    try:
        # click returns the code of typer.Exit instead of raising it when not standalone
        result = app(args=argv, prog_name="mailbot", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except MailbotError as err:
        typer.echo(_one_line(str(err)), err=True)
        return 2
    except OSError as err:  # a folder not writable, a disk full: the operator's to fix
        typer.echo(_one_line(str(ConfigError(
            str(err.filename or "mailbot"), "-", err.strerror or str(err),
            "check the path, its owner and permissions, and free disk space"))), err=True)
        return 2
    except Exception as err:
        # click's own errors (typer vendors click, so they are matched by shape)
        code, show = getattr(err, "exit_code", None), getattr(err, "show", None)
        format_message = getattr(err, "format_message", None)
        if type(err).__name__ == "NoArgsIsHelpError" and callable(show):
            show()  # `mailbot` alone: the help
            return code if isinstance(code, int) else 2
        if callable(format_message) and isinstance(code, int):  # usage errors
            typer.echo(_usage_line(err, str(format_message())), err=True)
            return code
        raise
    return result if isinstance(result, int) else 0


def _one_line(text: str) -> str:
    """Driver and parser messages can span lines; an operator's error is one line."""
    return " ".join(text.split())


def _usage_line(err: Exception, formatted: str) -> str:
    """A usage error of typer's click (unknown option, bad value, missing argument) as
    `command line: [--option] problem. Fix: see `mailbot COMMAND --help``."""
    ctx = getattr(err, "ctx", None)
    command = getattr(ctx, "command_path", None) or "mailbot"
    param = getattr(err, "param", None)
    key = getattr(err, "option_name", None) or "-"
    if param is not None:
        opts = getattr(param, "opts", None) or [str(getattr(param, "name", "-"))]
        key = opts[0] if opts[0].startswith("-") else opts[0].upper()
    # a bad value's own message, without click's "Invalid value for '--x': " in front
    message = str(getattr(err, "message", "") or "") if param is not None else ""
    # "No such command 'x'. Did you mean 'y'?" -> "no such command 'x' (did you mean 'y')"
    problem = (message or formatted).replace(". Did you mean", " (did you mean")
    problem = problem[:-1] + ")" if problem.endswith("?") else problem.rstrip(".")
    if key == "-" and problem.lower().startswith("no such command"):
        key = "COMMAND"
    return _one_line(str(ConfigError(COMMAND_LINE, key, problem[:1].lower() + problem[1:],
                                     f"see `{command} --help`")))


if __name__ == "__main__":
    sys.exit(main())
