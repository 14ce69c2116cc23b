"""The daemon: an IMAP watcher thread (IDLE or polling), APScheduler jobs, one leader."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from mailbot import metrics
from mailbot.app import Bot
from mailbot.council.agenda import queue_ready_cases, send_due_agendas
from mailbot.council.owner import look_up_owners
from mailbot.council.phases import give_guidance
from mailbot.council.reminders import relay_guidance, remind
from mailbot.db import transaction
from mailbot.errors import ConfigError, TransientError
from mailbot.health import note_imap, note_sweep
from mailbot.intake.mailbox import Mailbox
from mailbot.leadership import LeadershipLost, Lock
from mailbot.pipeline import SweepReport, sweep
from mailbot.storage import StorageWatch
from mailbot.vocabulary import ImapState, Incident
from mailbot.watchdog import HEARTBEAT, Watchdog

if TYPE_CHECKING:
    from mailbot.web.server import WebServer

log = logging.getLogger(__name__)

IDLE_SLICE_SECONDS = 1.0  # how often a waiting watcher looks at the stop flag
IDLE_FIRST_SECONDS = 1.0  # the first, short IDLE after activity (see Service._session)
OUTBOX_INTERVAL_SECONDS = 15
JOBS_INTERVAL_SECONDS = 60
MAX_BACKOFF_SECONDS = 300
LOGIN_BACKOFF_CAP_SECONDS = 900  # a refused login is retried at least every 15 minutes
RETENTION_AT = (3, 30)  # the daily retention job, Copenhagen time: a quiet hour for the mailbox


class Service:
    def __init__(self, bot: Bot, lock: Lock | None = None) -> None:
        """Build under the leader lock (mailbot.leadership; `lock`: the one held, checked at
        every sweep, flush and job and every takeover_seconds / 3; None: the caller holds
        one that cannot be lost): orphaned outbox leases are resolved here."""
        self.bot = bot
        self.lock = lock or Lock()
        self.lost = threading.Event()  # the lock went away: this process leads no more
        bot.sender.recover(bot.clock.now())
        self.stop_event = threading.Event()
        self.flush_lock = threading.Lock()
        self.scheduler = BackgroundScheduler(timezone="Europe/Copenhagen")
        self._refusal_logged = False  # the current login refusal has had its ERROR line
        self.storage = StorageWatch(bot)  # database or disk trouble: one incident (R10, R11)

    # -- one-shot -------------------------------------------------------------------------------
    def run_once(self) -> None:
        """Process every waiting mail, send everything due, then return (`run --once`)."""
        mailbox = self._connect()
        try:
            while True:  # batch after batch (imap.batch_size) until the backlog is in
                report = self._sweep(mailbox)
                log.info("swept: %s fetched, %s processed, %s quarantined, %s moved",
                         report.fetched, report.processed, report.quarantined, report.moved)
                if not (report.waiting and report.fetched):
                    break
        finally:
            mailbox.close()
        self.look_up_owners()
        self.run_jobs()
        self.flush_outbox()

    def _connect(self, mailbox: Mailbox | None = None) -> Mailbox:
        """Open the mailbox and record the connection's state for `mailbot health` (a
        refused login: REFUSED; the server away: UNREACHABLE; the error is raised on)."""
        mailbox = mailbox or self._mailbox()
        now = self.bot.clock.now
        try:
            mailbox.open()
        except ConfigError as err:
            note_imap(self.bot.engine, ImapState.REFUSED, now(), str(err))
            raise
        except TransientError as err:
            note_imap(self.bot.engine, ImapState.UNREACHABLE, now(), str(err))
            raise
        note_imap(self.bot.engine, ImapState.CONNECTED, now())
        return mailbox

    def leading(self) -> bool:
        """Does this process still hold the leader lock? The first time it does not: one
        ERROR line (`event=leadership_lost`), and stop(): no sweep, send or job after it,
        since another host may lead already (README "How takeover works")."""
        if self.lost.is_set():
            return False
        if self.lock.check():
            return True
        if not self.lost.is_set():
            self.lost.set()
            log.error("event=leadership_lost the leader lock is gone (its database session "
                      "ended); mailbot stops sweeping and sending now and exits, another host "
                      "may lead already")
        self.stop()
        return False

    def _sweep(self, mailbox: Mailbox) -> SweepReport:
        """One sweep (mailbot.pipeline.sweep), timed and recorded for `mailbot health` and
        /metrics: one row update per sweep. Raises LeadershipLost when the lock went away."""
        if not self.leading():
            raise LeadershipLost("the leader lock is gone: another host may lead")
        HEARTBEAT.beat()
        started = time.monotonic()
        report = sweep(self.bot, mailbox)
        seconds = time.monotonic() - started
        note_sweep(self.bot.engine, self.bot.clock.now(), seconds)
        metrics.SWEEP_SECONDS.observe(seconds)
        HEARTBEAT.beat()
        return report

    def _pause(self, seconds: float) -> None:
        """Wait `seconds` or until stop(), in slices that show the watchdog the loop is
        alive (a back-off is a wait, not a hang)."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set() and (left := deadline - time.monotonic()) > 0:
            HEARTBEAT.beat()
            self.stop_event.wait(min(IDLE_SLICE_SECONDS, left))

    def _mailbox(self) -> Mailbox:
        """A new connection; with OAuth2 its login asks for the token then, so a reconnect
        after a long IDLE gets a fresh one."""
        return Mailbox(self.bot.settings.imap, self.bot.settings.source, self.bot.tokens)

    def run_jobs(self) -> None:
        """Guidance given (two phases), the batched guidance relay, reminders, cases queued
        and agendas: whatever is due at the bot's `now`."""
        if not self.leading():
            return
        now = self.bot.clock.now()
        with transaction(self.bot.engine) as session:
            give_guidance(session, self.bot, now)  # before the relay: it says so
            relayed = relay_guidance(session, self.bot, now)
            reminded = remind(session, self.bot, now)
            queued = queue_ready_cases(session, self.bot, now)
        agendas = send_due_agendas(self.bot, now)
        if relayed or reminded or queued or agendas:
            log.info("jobs: %s guidance mails, %s reminders, %s cases queued, %s agendas",
                     relayed, reminded, queued, agendas)

    def look_up_owners(self) -> None:
        """The system owners of new cases (mailbot.council.owner): its own job, because it
        may wait on KITOS, and mail must never wait for that."""
        if not self.leading():
            return
        found = look_up_owners(self.bot, self.bot.clock.now())
        if found:
            log.info("jobs: %s system owner lookups", found)

    def run_retention(self) -> None:
        """Remove the personal data whose retention ran out (mailbot.privacy.retention).
        Runs in this process, which holds the leader lock (mailbot.leadership), so no second
        daemon purges at the same time."""
        from mailbot.privacy.purge import BLOB_IDLE_SECONDS
        from mailbot.privacy.retention import run

        if not self.leading():
            return
        # the intake runs beside this job: a blob it just stored may be a mail not committed
        report = run(self.bot, self.bot.clock.now(), blob_grace=BLOB_IDLE_SECONDS)
        if not report.due.empty or report.blobs_deleted or report.imap_deleted \
                or report.imap_error:
            for line in report.lines():
                log.info("%s", line)

    def flush_outbox(self) -> None:
        if not self.leading():
            return
        with self.flush_lock:
            report = self.bot.sender.flush(self.bot.clock.now())
        if report.sent or report.retry or report.failed or report.uncertain:
            log.info("outbox: %s sent, %s to retry, %s failed, %s uncertain",
                     report.sent, report.retry, report.failed, report.uncertain)

    # -- daemon ---------------------------------------------------------------------------------
    def run_forever(self, watchdog: Watchdog | None = None) -> None:
        """The scheduler, the IMAP watcher, the web endpoints (`[web] listen`) and systemd's
        READY/WATCHDOG (mailbot.watchdog; `watchdog`: the one a standby wait started), until
        stop() or the leader lock is lost (self.lost)."""
        web = self._serve_web()
        watchdog = watchdog or Watchdog()
        self.scheduler.add_job(self._outbox_job, "interval", seconds=OUTBOX_INTERVAL_SECONDS,
                               id="outbox", max_instances=1, coalesce=True)
        self.scheduler.add_job(self._jobs_job, "interval", seconds=JOBS_INTERVAL_SECONDS,
                               id="jobs", max_instances=1, coalesce=True)
        self.scheduler.add_job(self._owners_job, "interval", seconds=JOBS_INTERVAL_SECONDS,
                               id="owners", max_instances=1, coalesce=True)
        self.scheduler.add_job(self.leading, "interval",
                               seconds=self.bot.settings.bot.takeover_seconds / 3,
                               id="leadership", max_instances=1, coalesce=True)
        self.scheduler.add_job(self._retention_job, "cron", hour=RETENTION_AT[0],
                               minute=RETENTION_AT[1], id="retention", max_instances=1,
                               coalesce=True)
        self.scheduler.start()
        watcher = threading.Thread(target=self._watch, name="imap-watcher", daemon=True)
        watcher.start()
        watchdog.ready()
        try:
            while watcher.is_alive():
                watcher.join(timeout=0.5)
        finally:
            watchdog.stopping()
            self.stop_event.set()
            watcher.join(timeout=30)
            self.scheduler.shutdown(wait=True)
            if web is not None:
                web.stop()

    def _serve_web(self) -> WebServer | None:
        """/healthz, /metrics and the overview on `[web] listen` (empty: none). An address
        that cannot be bound is ONE error line naming the key and the fix; the daemon runs
        on without the web endpoints."""
        from mailbot.web.app import create_app
        from mailbot.web.server import Listen, ListenError, WebServer, bind

        settings = self.bot.settings
        if not settings.web.listen.strip():
            return None
        try:
            sock = bind(Listen.parse(settings.web.listen))
        except ListenError as err:
            source, key = settings.origin("web.listen")
            log.error("event=web_unavailable %s", ConfigError(
                source, key, f"{err}; mailbot runs on without /healthz, /metrics and the "
                "overview", 'stop what uses the port, or choose another HOST:PORT in [web] '
                'listen ("" turns the web endpoints off), then restart mailbot'))
            return None
        server = WebServer(create_app(self.bot), sock)
        server.start()
        log.info("event=web_listening /healthz, /metrics and the overview on %s",
                 server.address)
        return server

    def stop(self) -> None:
        self.stop_event.set()
        self.bot.sender.stopping.set()

    def _jobs_job(self) -> None:
        try:
            self.run_jobs()
            self.flush_outbox()
        except Exception as err:  # a failing job must not kill the scheduler
            # database or disk trouble is one incident (self.storage), not a traceback a run
            if not self.storage.failed(err, "the reminder/guidance job", quiet=True):
                log.exception("reminder/guidance job failed")

    def _owners_job(self) -> None:
        try:
            self.look_up_owners()
        except Exception as err:  # a failing job must not kill the scheduler
            if not self.storage.failed(err, "the system owner job", quiet=True):
                log.exception("system owner job failed")

    def _retention_job(self) -> None:
        try:
            self.run_retention()
        except Exception as err:  # a failing job must not kill the scheduler
            if not self.storage.failed(err, "the retention job", quiet=True):
                log.exception("retention job failed")

    def _outbox_job(self) -> None:
        try:
            self.flush_outbox()
        except Exception as err:  # a broken flush must not kill the scheduler
            if not self.storage.failed(err, "the outbox flush", quiet=True):
                log.exception("outbox flush failed")

    def _watch(self) -> None:
        HEARTBEAT.loop = threading.current_thread()  # only this loop feeds the watchdog
        failures = 0
        connected = False
        while not self.stop_event.is_set():
            mailbox = self._mailbox()
            try:
                self._connect(mailbox)
                if connected:
                    metrics.IMAP_RECONNECTS.inc()
                connected = True
                if failures and self._refusal_logged:
                    log.warning("event=imap_login_recovered IMAP login works again")
                failures, self._refusal_logged = 0, False
                log.info("connected to %s:%s, watching %s",
                         self.bot.settings.imap.host, self.bot.settings.imap.port,
                         self.bot.settings.imap.folder)
                self._session(mailbox)
            except LeadershipLost:
                return
            except ConfigError as err:
                # refused while running (a changed password, an expired secret, a removed
                # permission): the operator must act, but a dead daemon restarted by systemd
                # every 30 s helps nobody (SCENARIOS I9); wait longer each time, up to 15 min
                failures += 1
                self._refused(err, failures)
            except TransientError as err:
                failures += 1
                delay = min(MAX_BACKOFF_SECONDS, 2 ** min(failures, 9)) * random.uniform(0.5, 1)
                log.warning("IMAP: %s; reconnecting in %.0f s", err, delay)
                self._pause(delay)
            except Exception as err:
                if self.storage.failed(err, "the IMAP sweep or the outbox flush that follows it"):
                    # SCENARIOS R10, R11: the database or the disk refuses; nothing was moved
                    # that is not committed. Wait longer each time; a full sweep ends it.
                    if self.storage.failures == 1:
                        self._outbox_job()  # an alert the database could queue goes now
                    self._pause(self.storage.delay())
                    continue
                failures += 1
                log.exception("unexpected error in the IMAP watcher; reconnecting")
                self._pause(min(MAX_BACKOFF_SECONDS, 2 ** min(failures, 9)))
            finally:
                mailbox.close()

    def _refused(self, err: ConfigError, failures: int) -> None:
        """One ERROR per incident (a stable event name for the operator's log search), then
        an exponential wait: 2, 4, 8 … seconds, at most LOGIN_BACKOFF_CAP_SECONDS."""
        delay = min(LOGIN_BACKOFF_CAP_SECONDS, 2 ** min(failures, 10))
        if not self._refusal_logged:
            self._refusal_logged = True
            self.bot.alerts.raise_alert(
                Incident.IMAP_LOGIN_FAILING,
                f"{err} (retrying, at most every {LOGIN_BACKOFF_CAP_SECONDS} s)")
        else:
            log.info("IMAP still refused; next try in %d s", delay)
        self._pause(delay)

    def _session(self, mailbox: Mailbox) -> None:
        """A full sweep after every (re)connect, then IDLE and sweep, again and again.

        Every IDLE cycle ends with a sweep (one SEARCH when nothing is new), because Dovecot
        can miss a mail that lands while IDLE is being set up or torn down. Cycles start at
        IDLE_FIRST_SECONDS after any activity and double up to `imap.idle_renew_seconds`
        (RFC 2177 section 3 asks for a new IDLE at least every 29 minutes), so a missed
        notification costs at most one cycle, and right after activity (when the next mail
        of a conversation comes) that cycle is short.

        A connection dropped without a word (a NAT or a firewall forgetting it, SCENARIOS
        I7) shows in no IDLE wait: the socket just stays quiet. It shows at the end of the
        cycle, when the answer to DONE (RFC 2177 section 3) does not come within
        `imap.timeout_seconds`; then `_watch` reconnects and sweeps. So a dead connection
        costs at most idle_renew_seconds + timeout_seconds.
        """
        renew = self.bot.settings.imap.idle_renew_seconds
        self._sweep_until_quiet(mailbox)
        cycle = IDLE_FIRST_SECONDS
        while not self.stop_event.is_set():
            if not mailbox.can_idle:
                if self._wait_poll(mailbox):
                    self._sweep_until_quiet(mailbox)
                continue
            announced = self._wait_idle(mailbox, cycle)
            if self.stop_event.is_set():
                return
            fetched = self._sweep_until_quiet(mailbox)
            quiet = not announced and not fetched
            cycle = min(cycle * 2, renew) if quiet else IDLE_FIRST_SECONDS

    def _sweep_until_quiet(self, mailbox: Mailbox) -> int:
        """Sweep again until a sweep finds nothing new; returns how many mails were fetched."""
        total = 0
        while not self.stop_event.is_set():
            report = self._sweep(mailbox)
            self.storage.recovered()  # the sweep wrote to the database: storage works again
            if report.fetched or report.moved:
                log.info("swept: %s fetched, %s processed, %s quarantined, %s moved",
                         report.fetched, report.processed, report.quarantined, report.moved)
            self.flush_outbox()
            total += report.fetched
            if report.processed:
                self.run_jobs()  # a case made ready by this mail is queued at its time
                self.flush_outbox()
            if not report.fetched:
                break
        return total

    def _wait_idle(self, mailbox: Mailbox, seconds: float) -> bool:
        """IDLE for up to `seconds`; True when the server announced new mail."""
        announced = mailbox.idle_start()
        waited = 0.0
        try:
            while not announced and not self.stop_event.is_set() and waited < seconds:
                HEARTBEAT.beat()
                announced = mailbox.idle_wait(min(IDLE_SLICE_SECONDS, seconds - waited))
                waited += IDLE_SLICE_SECONDS
        finally:
            if mailbox.client is not None:
                announced = mailbox.idle_stop() or announced
        return announced

    def _wait_poll(self, mailbox: Mailbox) -> bool:
        self._pause(self.bot.settings.imap.poll_seconds)
        if self.stop_event.is_set():
            return False
        mailbox.noop()
        return True
