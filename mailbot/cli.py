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
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mailbot.clock import COPENHAGEN, Clock
from mailbot.errors import ConfigError, MailbotError, PermanentError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mailbot.app import Bot
    from mailbot.config import Settings
    from mailbot.service import Service

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="mailbot: email intake for the municipality's IT project council.")
log = logging.getLogger("mailbot")


class Options:
    config: Path = Path("mailbot.toml")
    now: datetime | None = None


OPTIONS = Options()


@app.callback()
def _global(
    config: Annotated[Path, typer.Option("--config", envvar="MAILBOT_CONFIG",
                                         help="Config file (TOML).")] = Path("mailbot.toml"),
    now: Annotated[str | None, typer.Option("--now", envvar="MAILBOT_NOW",
                                            help="Run as if the clock showed this ISO time.")]
    = None,
) -> None:
    OPTIONS.config = config
    OPTIONS.now = _parse_now(now) if now else None


def _parse_now(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as err:
        raise typer.BadParameter(f"--now {value!r} is not an ISO date-time "
                                 "(e.g. 2026-03-02T11:59)") from err


def _settings() -> Settings:
    from mailbot.config import load_settings

    return load_settings(OPTIONS.config)


def _bot(settings: Settings | None = None) -> Bot:
    """The bot of `run`, `check` and `agenda --send`: the database is migrated first."""
    from mailbot.app import build_bot
    from mailbot.db import migrate
    from mailbot.redact import configure_logging

    settings = settings or _settings()
    configure_logging(settings.bot.log_level)
    bot = build_bot(settings, Clock(OPTIONS.now))
    migrate(bot.engine)
    return bot


def _database(settings: Settings | None = None) -> tuple[Settings, Engine]:
    """Settings and an engine for a read-only command: it never migrates and creates nothing.

    Raises ConfigError (fix: `mailbot migrate`) when the database is missing or behind.
    """
    from mailbot.db import open_current
    from mailbot.redact import configure_logging

    settings = settings or _settings()
    configure_logging(settings.bot.log_level)
    return settings, open_current(settings.database_url, *settings.origin("bot.database_url"))


def _fail(err: Exception) -> typer.Exit:
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(2)


# -- run ------------------------------------------------------------------------------------
@app.command()
def run(once: Annotated[bool, typer.Option("--once", help="Process what waits, then exit.")]
        = False) -> None:
    """Run the daemon (foreground; stops cleanly on SIGTERM/SIGINT)."""
    from mailbot.service import Service, leader_lock

    try:
        bot = _bot()
        with leader_lock(bot.settings.bot.data_dir):
            _preflight(bot)
            service = Service(bot)
            if once:
                service.run_once()
                return
            _install_signal_handlers(service)
            log.info("mailbot started for %s", bot.address)
            service.run_forever()
            log.info("mailbot stopped")
    except (MailbotError, OSError) as err:
        raise _fail(err) from err


def _preflight(bot: Bot) -> None:
    """Fail fast on what only the operator can fix; a server down later is retried."""
    from mailbot.delivery.smtpcheck import check_smtp
    from mailbot.intake.mailbox import Mailbox

    mailbox = Mailbox(bot.settings.imap, bot.settings.source)
    try:
        mailbox.open(at_start=True)
    finally:
        mailbox.close()
    try:
        check_smtp(bot.settings.smtp, bot.settings.source)
    except ConfigError as err:
        # Mail waits in the outbox until the SMTP server answers.
        log.warning("%s", err)


def _install_signal_handlers(service: Service) -> None:
    import signal
    from types import FrameType

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current step", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


# -- check / init / migrate -----------------------------------------------------------------
@app.command()
def check() -> None:
    """Validate config, rules and templates; log in to IMAP and SMTP; migrate the database."""
    from mailbot import views
    from mailbot.app import rules_folder
    from mailbot.delivery.smtpcheck import check_smtp, probe_plus_addressing
    from mailbot.intake.mailbox import Mailbox
    from mailbot.rules import load_rules

    steps: list[tuple[str, Any]] = []
    try:
        settings = _settings()
        steps.append(("config", f"{settings.source} is valid"))
        rules = load_rules(rules_folder(settings))
        steps.append(("rules", f"{len(rules.questions)} questions, {len(rules.kinds)} kinds"))
        bot = _bot(settings)
        steps.append(("database", "reachable and migrated"))
        views.render_sample_receipt(bot)
        steps.append(("templates", "render"))
        mailbox = Mailbox(settings.imap, settings.source)
        try:
            mailbox.open(at_start=True)
        finally:
            mailbox.close()
        steps.append(("imap", f"logged in to {settings.imap.host}, folders ready"))
        check_smtp(settings.smtp, settings.source)
        steps.append(("smtp", f"logged in to {settings.smtp.host}"))
        if settings.reviews.reply_tokens:
            probe_plus_addressing(settings)
            steps.append(("reply tokens", "plus-addressed mail reaches the mailbox"))
    except (MailbotError, OSError) as err:
        for name, detail in steps:
            typer.echo(f"ok    {name}: {detail}")
        raise _fail(err) from err
    for name, detail in steps:
        typer.echo(f"ok    {name}: {detail}")


@app.command()
def init(force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False
         ) -> None:
    """Write a commented starter config to --config."""
    from mailbot.config import STARTER_CONFIG

    if OPTIONS.config.exists() and not force:
        raise _fail(FileExistsError(f"{OPTIONS.config} exists; use --force to overwrite"))
    OPTIONS.config.write_text(STARTER_CONFIG, encoding="utf-8")
    typer.echo(f"wrote {OPTIONS.config}; edit it, then run `mailbot check`")


@app.command("migrate")
def migrate_command() -> None:
    """Create the database, or bring it to this mailbot's schema; print what was done."""
    from mailbot.db import make_engine, migrate, schema, schema_error, where
    from mailbot.redact import configure_logging

    settings = _settings()
    configure_logging(settings.bot.log_level)
    engine = make_engine(settings.database_url, *settings.origin("bot.database_url"))
    before = schema(engine)
    if not before.known:
        raise schema_error(settings.database_url, before)
    applied = migrate(engine, quiet=True)
    database = where(settings.database_url)
    if not applied:
        typer.echo(f"{database}: already at revision {before.head}, nothing to do")
        return
    typer.echo(f"{database}: migrated from revision {before.current or 'none'} "
               f"to {before.head}")
    for step in applied:
        typer.echo(f"  applied {step}")


# -- looking inside (read-only: never migrates, creates nothing) ----------------------------
@app.command()
def cases() -> None:
    """All cases, newest first."""
    from sqlmodel import Session, col, select

    from mailbot import views
    from mailbot.models import Case

    _, engine = _database()
    with Session(engine) as session:
        rows = session.exec(select(Case).order_by(col(Case.id).desc())).all()
        typer.echo(views.cases_table(list(rows)))


@app.command()
def case(ref: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One case: its data and its timeline."""
    from sqlmodel import Session, select

    from mailbot import views
    from mailbot.models import Case

    _, engine = _database()
    with Session(engine) as session:
        found = session.exec(select(Case).where(Case.ref == ref.upper())).first()
        if found is None:
            raise ConfigError("command line", "REF", f"there is no case {ref}",
                              "`mailbot cases` lists them")
        data = views.case_data(session, found)
        if as_json:
            typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        else:
            typer.echo(views.case_text(session, found, data))


@app.command()
def messages(state: Annotated[str | None, typer.Option(
        help="Only this state: received, processed, ignored, duplicate, quarantined.")] = None,
             limit: int = 50) -> None:
    """The ledger: every mail the bot has fetched, with its state and reason."""
    from sqlmodel import Session, col, select

    from mailbot import views
    from mailbot.models import RawMessage

    _, engine = _database()
    with Session(engine) as session:
        query = select(RawMessage).order_by(col(RawMessage.id).desc()).limit(limit)
        if state:
            query = query.where(RawMessage.state == state)
        typer.echo(views.messages_table(list(session.exec(query).all())))


@app.command()
def outbox(limit: int = 50) -> None:
    """Outgoing mail: state, attempts, last error."""
    from sqlmodel import Session

    from mailbot import views

    _, engine = _database()
    with Session(engine) as session:
        typer.echo(views.outbox_table(session, limit))


@app.command("calendar")
def calendar_command(year: Annotated[int | None, typer.Option(help="Default: this year.")]
                     = None) -> None:
    """The council's meetings and their agenda deadlines for a year."""
    from mailbot import views
    from mailbot.council.meetings import CouncilCalendar

    settings = _settings()
    year = year or Clock(OPTIONS.now).now().astimezone(COPENHAGEN).year
    meetings = CouncilCalendar(settings.council).meetings(date(year, 1, 1), date(year, 12, 31))
    typer.echo(views.calendar_table(meetings))


@app.command()
def agenda(meeting: Annotated[str | None, typer.Option(
        help="YYYY-MM-DD; default: the next meeting whose agenda has not gone out.")] = None,
           send: Annotated[bool, typer.Option("--send", help="Send it now.")] = False) -> None:
    """Print the agenda as it would be sent (read-only), or send it now."""
    from sqlmodel import Session

    from mailbot.app import build_bot
    from mailbot.council.agenda import agenda_context, next_agenda_version, send_agenda
    from mailbot.council.meetings import CouncilCalendar
    from mailbot.db import transaction
    from mailbot.service import Service

    if send:
        bot = _bot()
    else:
        settings, engine = _database()
        bot = build_bot(settings, Clock(OPTIONS.now), engine, read_only=True)
    calendar = CouncilCalendar(bot.settings.council)
    now = bot.clock.now()
    try:
        chosen = (calendar.meeting_on(date.fromisoformat(meeting)) if meeting
                  else calendar.next_meeting(now))
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
            typer.echo(bot.renderer.render("da", "agenda", context)[0])
        return
    with transaction(bot.engine) as session:
        version = next_agenda_version(session, chosen.day)
        send_agenda(session, bot, chosen, now, version)
    Service(bot).flush_outbox()
    typer.echo(f"agenda for {chosen.day} (version {version}) sent to "
               f"{', '.join(bot.settings.council.secretary)}")


@app.command("inspect")
def inspect_command(file: Path, as_json: Annotated[bool, typer.Option("--json")] = False
                    ) -> None:
    """Read one .eml as the bot would (no database, no network)."""
    from mailbot import views
    from mailbot.app import rules_folder
    from mailbot.intake.inspection import inspect_details
    from mailbot.resources import shipped
    from mailbot.rules import load_rules

    try:
        settings = _settings() if OPTIONS.config.exists() else None
        rules = load_rules(rules_folder(settings) if settings else shipped("rules"))
        address = settings.bot.address if settings else "mailbot@localhost.invalid"
        today = Clock(OPTIONS.now).now().astimezone(COPENHAGEN).date()
        result, details = inspect_details(file.read_bytes(), rules, address, today)
    except PermanentError as err:
        result, details = {"kind": None, "case_ref": None}, {"error": str(err)}
    except OSError as err:
        raise _fail(err) from err
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        typer.echo(views.inspect_text(result, details))


@app.command()
def demo(keep: Annotated[bool, typer.Option(help="Keep the temporary folder.")] = False
         ) -> None:
    """The whole flow on an embedded mail server, no setup: briefs in, receipts out."""
    from mailbot.demo import run_demo
    from mailbot.redact import configure_logging

    configure_logging("WARNING")
    run_demo(keep=keep, echo=typer.echo)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 an error the operator can fix, 130 ^C)."""
    try:
        # click returns the code of typer.Exit instead of raising it when not standalone
        result = app(args=argv, prog_name="mailbot", standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except MailbotError as err:
        typer.echo(_one_line(str(err)), err=True)
        return 2
    except Exception as err:
        # usage errors (typer's vendored click): print as click would, exit with its code
        show, code = getattr(err, "show", None), getattr(err, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            return code
        raise
    return result if isinstance(result, int) else 0


def _one_line(text: str) -> str:
    """Driver and parser messages can span lines; an operator's error is one line."""
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
