"""A private PostgreSQL cluster from Debian's `postgresql` package on a free loopback port:
the real database server the tests run against on the second backend (issue #15). Test
harness only: never shipped in the package.

initdb refuses to run as root, so under root (CI) the cluster belongs to Debian's `postgres`
user (the package creates it) and its files live in a folder of /tmp that user may enter.
The cluster trusts loopback connections (a throwaway cluster: no password to keep) and runs
with fsync off: the tests kill mailbot's processes, never the database server's host.

Each test gets a database of its own, a copy of one migrated to head (`CREATE DATABASE ...
TEMPLATE`, tens of milliseconds), or an empty one for the tests of migrating itself.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mailbot.mailworld import free_port, wait_for_port

TEMPLATE = "mailbot_template"  # migrated to head once per cluster
ROLE = "mailbot"  # the cluster's superuser; tests connect as it
_COUNTER = itertools.count(1)


def bindir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def postgres_available() -> bool:
    """initdb and pg_ctl are installed, psycopg is importable, and (under root) the
    `postgres` user exists to own the cluster."""
    folder = bindir()
    if folder is None or not (folder / "pg_ctl").exists():
        return False
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
    return True


class Postgres:
    """One cluster: start(), url(database), new_database(), stop()."""

    def __init__(self) -> None:
        folder = bindir()
        assert folder is not None, "postgres_available() first"
        self.bin = folder
        self.root = Path(tempfile.mkdtemp(prefix="mailbot-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    # -- the server -----------------------------------------------------------------------
    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self._owner is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120,
                              check=False)

    def start(self) -> None:
        if self._owner is not None:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        os.chmod(self.root, 0o700)
        done = self._run(self.bin / "initdb", "-D", str(self.data), "-U", ROLE,
                         "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=300")
        done = self._run(self.bin / "pg_ctl", "-D", str(self.data), "-l",
                         str(self.root / "postgres.log"), "-o", options, "-w", "start")
        if done.returncode != 0:
            log = (self.root / "postgres.log")
            raise RuntimeError(f"pg_ctl start failed: {done.stderr or done.stdout}\n"
                               f"{log.read_text() if log.exists() else ''}")
        wait_for_port(self.port)
        self._create_template()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.bin / "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w",
                      "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases ------------------------------------------------------------------------
    def url(self, database: str) -> str:
        """The SQLAlchemy URL mailbot's `bot.database_url` takes."""
        return f"postgresql+psycopg://{ROLE}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        """One statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=ROLE, dbname=database,
                             autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # our own literal SQL

    def new_database(self, migrated: bool = True) -> str:
        """A database of its own for one test; its URL. migrated: a copy of the template
        at head, else empty (a never-migrated database)."""
        name = f"t{os.getpid()}_{next(_COUNTER)}"
        template = TEMPLATE if migrated else "template0"
        for attempt in range(50):
            try:
                self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                break
            except Exception as err:  # the template is briefly in use by another copy
                if "is being accessed by other users" not in str(err) or attempt == 49:
                    raise
                time.sleep(0.1)
        return self.url(name)

    def _create_template(self) -> None:
        from mailbot.db import make_engine, migrate

        self.execute(f'CREATE DATABASE "{TEMPLATE}"')
        engine = make_engine(self.url(TEMPLATE))
        try:
            migrate(engine, quiet=True)
        finally:
            engine.dispose()
