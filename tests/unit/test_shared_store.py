"""What every host on one database shares (issue #15, item 4): raw mail and attachments in
the `blob` table and the signing secret in `bot_secret`, on a real SQLite file and a real
PostgreSQL database (tests/postgres.py). Two hosts are two engines, or two bots built on two
data_dirs, on the same database; nothing is mocked."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from mailbot.app import build_bot, load_secret
from mailbot.blobs import BlobStore, DatabaseBlobStore, LayeredBlobStore
from mailbot.clock import Clock
from mailbot.config import Settings, load_settings
from mailbot.db import make_engine, migrate
from mailbot.errors import ConfigError
from mailbot.intake.threads import read_own_id, signed_message_id
from mailbot.storage import storage_error
from tests.postgres import Postgres
from tests.unit.conftest import write_config

MAIL = b"From: Mette Holm <mette@kommune.dk>\r\nSubject: Projektforslag\r\n\r\nHvem: IT\r\n"


def fresh_url(backend: str, tmp_path: Path, postgres: Postgres | None,
              migrated: bool = True) -> str:
    """A database of its own on `backend` (migrated to head unless `migrated` is False)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
        if migrated:
            migrate(make_engine(url))
        return url
    if postgres is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: PostgreSQL is mandatory (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql)")
    return postgres.new_database(migrated=migrated)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path, postgres: Postgres | None) -> str:
    return fresh_url(str(request.param), tmp_path, postgres)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    made = make_engine(url)
    yield made
    made.dispose()


# -- the blob table ----------------------------------------------------------------------------
def test_a_blob_stored_by_one_host_is_read_by_the_other(url: str, tmp_path: Path) -> None:
    one, other = make_engine(url), make_engine(url)
    digest = DatabaseBlobStore(one).put(MAIL)
    assert digest == hashlib.sha256(MAIL).hexdigest()
    # committed before put returned: another connection pool sees it at once
    reader = DatabaseBlobStore(other)
    assert reader.exists(digest) and reader.get(digest) == MAIL
    assert not reader.exists("0" * 64)
    with pytest.raises(FileNotFoundError):
        reader.get("0" * 64)
    with pytest.raises(ValueError):
        reader.get("../../etc/passwd")
    one.dispose()
    other.dispose()


def test_two_hosts_storing_the_same_mail_at_once_leave_one_row(url: str) -> None:
    """The same attachment arriving at two hosts at the same moment: both puts succeed
    (INSERT ... ON CONFLICT DO NOTHING), one row remains. Twenty rounds, a barrier each."""
    engines = [make_engine(url) for _ in range(2)]
    stores = [DatabaseBlobStore(e) for e in engines]
    for round_ in range(20):
        data = MAIL + f"round {round_}".encode()
        barrier = threading.Barrier(2)
        results: list[str | BaseException] = []

        def put(store: DatabaseBlobStore, data: bytes = data,
                barrier: threading.Barrier = barrier,
                results: list[str | BaseException] = results) -> None:
            barrier.wait()
            try:
                results.append(store.put(data))
            except BaseException as err:  # reported by the assert below
                results.append(err)

        threads = [threading.Thread(target=put, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [hashlib.sha256(data).hexdigest()] * 2, results
    with engines[0].connect() as conn:
        assert conn.execute(text("SELECT count(*), count(DISTINCT sha256) FROM blob")
                            ).one() == (20, 20)
    for e in engines:
        e.dispose()


def test_a_blob_met_again_is_not_removed_within_the_grace(engine: Engine) -> None:
    """Retention deletes an unreferenced blob only when no intake met it within the grace
    (mailbot.privacy.purge.BLOB_IDLE_SECONDS): a put of the same bytes refreshes touched_at,
    as a fresh mtime does in the file store."""
    store = DatabaseBlobStore(engine)
    digest = store.put(MAIL)
    with engine.begin() as conn:
        conn.execute(text("UPDATE blob SET touched_at = :old"),
                     {"old": datetime.now(UTC) - timedelta(hours=2)})
    now = datetime.now(UTC)
    assert store.put(MAIL) == digest  # met again by the intake
    assert not store.remove_if_idle(digest, now, 600) and store.exists(digest)
    assert store.remove_if_idle(digest, now + timedelta(seconds=601), 600)
    assert not store.exists(digest)
    assert not store.remove_if_idle(digest, now, 0)  # already gone: no error


def test_mail_stored_in_files_before_the_switch_is_still_read(engine: Engine,
                                                              tmp_path: Path) -> None:
    """An installation that switched to blob_store = "database" keeps reading (and retention
    keeps deleting) the files data_dir/blobs held before; new blobs go to the table only."""
    files = BlobStore(tmp_path / "blobs")
    old = files.put(b"%PDF-1.7 stored before the switch")
    store = LayeredBlobStore(DatabaseBlobStore(engine), files)
    assert store.exists(old) and store.get(old) == b"%PDF-1.7 stored before the switch"
    new = store.put(MAIL)
    assert not files.exists(new) and store.get(new) == MAIL
    assert store.remove_if_idle(old, datetime.now(UTC), 0)
    assert not files.exists(old) and not store.exists(old)


def test_mail_stored_in_the_database_is_still_read_after_switching_back_to_files(
        engine: Engine, tmp_path: Path) -> None:
    """Trial 15 F11: blob_store database -> files. The table's blobs are still read (and
    retention still deletes them there); new blobs go to data_dir/blobs only."""
    table = DatabaseBlobStore(engine)
    old = table.put(b"%PDF-1.7 stored in the database")
    files = BlobStore(tmp_path / "blobs")
    store = LayeredBlobStore(files, table)
    assert store.exists(old) and store.get(old) == b"%PDF-1.7 stored in the database"
    new = store.put(MAIL)
    assert files.exists(new) and not table.exists(new) and store.get(new) == MAIL
    assert store.remove_if_idle(old, datetime.now(UTC), 0)
    assert not table.exists(old) and not store.exists(old)
    with pytest.raises(FileNotFoundError):
        store.get(old)


def test_a_database_that_is_gone_is_storage_trouble_not_a_lost_mail(tmp_path: Path) -> None:
    """put/get on a database that refuses raise SQLAlchemy's OperationalError, which the
    daemon's storage handling recognises (mailbot.storage, SCENARIOS R10): the mail stays
    in the watched folder and is retried."""
    folder = tmp_path / "gone"
    folder.mkdir()
    engine = make_engine(f"sqlite:///{folder / 'db.sqlite3'}")
    migrate(engine)
    store = DatabaseBlobStore(engine)
    digest = store.put(MAIL)
    engine.dispose()
    os.chmod(folder, 0o500)
    (folder / "db.sqlite3").chmod(0o400)
    try:
        if os.geteuid() == 0:  # root writes through the modes: take the file away instead
            (folder / "db.sqlite3").chmod(0o600)
            os.chmod(folder, 0o700)
            (folder / "db.sqlite3").unlink()
            (folder / "db.sqlite3").mkdir()
        with pytest.raises(Exception) as caught:
            store.put(MAIL + b"new")
        assert storage_error(caught.value) is not None, caught.value
        with pytest.raises(Exception) as caught:
            store.get(digest)
        assert storage_error(caught.value) is not None, caught.value
    finally:
        os.chmod(folder, 0o700)


def test_blob_store_follows_the_setting(tmp_path: Path, postgres: Postgres | None) -> None:
    """bot.blob_store: "" is files on SQLite and the database on PostgreSQL; each value
    chooses for itself."""
    config = write_config(tmp_path)
    settings = load_settings(config, environ={})
    assert _writes_to(settings) is BlobStore
    with pytest.raises(ConfigError) as refused:  # one host: nothing to share (config.py)
        load_settings(config, environ={"MAILBOT_BOT__BLOB_STORE": "database"})
    assert refused.value.key == "MAILBOT_BOT__BLOB_STORE"
    assert "needs PostgreSQL" in str(refused.value)
    if postgres is not None:
        on_pg = load_settings(config, environ={"MAILBOT_BOT__DATABASE_URL": postgres.url("x")})
        assert _writes_to(on_pg) is DatabaseBlobStore
        files = load_settings(config, environ={"MAILBOT_BOT__DATABASE_URL": postgres.url("x"),
                                               "MAILBOT_BOT__BLOB_STORE": "files"})
        assert _writes_to(files) is BlobStore


def _writes_to(settings: Settings) -> type:
    """The class of the store a bot built on `settings` puts new blobs in."""
    blobs = build_bot(settings, Clock()).blobs
    return type(blobs.primary if isinstance(blobs, LayeredBlobStore) else blobs)


# -- the signing secret ------------------------------------------------------------------------
def _host(tmp_path: Path, name: str, url: str) -> Path:
    """A host's config: its own data_dir, the shared database."""
    return write_config(tmp_path / name, ("# database_url = \"postgresql+psycopg://mailbot@"
                                          "localhost/mailbot\"", f'database_url = "{url}"'))


def test_mail_signed_on_one_host_verifies_on_the_other(url: str, tmp_path: Path) -> None:
    """Two hosts, two data_dirs, one database: a review request's Message-ID signed by host
    A is valid in host B (the secret lives in the database), and no secret file is made."""
    a = build_bot(load_settings(_host(tmp_path, "a", url), environ={}), Clock())
    b = build_bot(load_settings(_host(tmp_path, "b", url), environ={}), Clock())
    assert a.secret and a.secret == b.secret
    message_id = signed_message_id("review", "ITP-2026-0001", b.domain, a.secret, 7,
                                   datetime.now(UTC).date())
    own = read_own_id(message_id, b.domain, b.secret)
    assert own is not None and own.valid and own.review == 7
    assert not (tmp_path / "a" / "data" / "secret").exists()
    assert not (tmp_path / "b" / "data" / "secret").exists()


def test_the_secret_file_of_the_host_that_migrates_is_kept(
        backend: str, tmp_path: Path, postgres: Postgres | None, mailbot: object) -> None:
    """Upgrading: the host that kept data_dir/secret runs `mailbot migrate`; the database
    keeps that value, so replies to mail it signed before the upgrade still verify, on
    every host."""
    url = fresh_url(backend, tmp_path, postgres, migrated=False)
    old_host = _host(tmp_path, "old", url)
    (tmp_path / "old" / "data").mkdir()
    (tmp_path / "old" / "data" / "secret").write_text("ab" * 32 + "\n")
    migrate(make_engine(url), "0019")  # the installation before the upgrade
    assert mailbot("migrate", "--config", str(old_host)).code == 0  # type: ignore[operator]
    new = build_bot(load_settings(_host(tmp_path, "new", url), environ={}), Clock())
    assert new.secret == b"ab" * 32
    before = signed_message_id("review", "ITP-2026-0001", new.domain, b"ab" * 32, 1)
    assert read_own_id(before, new.domain, new.secret).valid  # type: ignore[union-attr]


def test_a_configured_secret_wins_and_read_only_creates_nothing(url: str,
                                                                tmp_path: Path) -> None:
    settings = load_settings(_host(tmp_path, "a", url), environ={})
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM bot_secret"))
    assert load_secret(settings, engine, create=False) == b""
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bot_secret")).scalar() == 0
    configured = load_settings(_host(tmp_path, "a", url),
                               environ={"MAILBOT_BOT__SECRET": "from-the-config"})
    assert load_secret(configured, engine) == b"from-the-config"
    # a row gone missing is made again, once, whichever host comes first
    created = load_secret(settings, engine)
    assert len(created) == 64 and load_secret(settings, engine) == created
    engine.dispose()


# -- case numbers ------------------------------------------------------------------------------
def _open_at_once(engine: Engine, year: int, hold_seconds: float) -> list[str]:
    """Two connections each number a case of `year` at the same moment (a barrier), keep
    their transaction open `hold_seconds` (the rest of a real case opening) and commit.
    Returns the two refs committed."""
    from mailbot.cases.opening import next_ref
    from mailbot.db import transaction
    from mailbot.models import Case

    barrier = threading.Barrier(2)
    refs: list[str] = []
    errors: list[BaseException] = []

    def open_one(n: int) -> None:
        try:
            barrier.wait()
            with transaction(engine) as session:
                ref = next_ref(session, year)
                session.add(Case(ref=ref, applicant_address=f"a{n}@kommune.dk", title="T",
                                 created_at=datetime.now(UTC), updated_at=datetime.now(UTC)))
                time.sleep(hold_seconds)
            refs.append(ref)
        except BaseException as err:  # reported by the caller's assert
            errors.append(err)

    threads = [threading.Thread(target=open_one, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return refs


def test_two_cases_opened_at_the_same_moment_get_distinct_numbers(engine: Engine) -> None:
    """Issue #15: two briefs committed at the same moment by two connections. 50 rounds in
    one year, then the FIRST case of 25 new years from both at once (the counter row does
    not exist yet): every number distinct, in sequence, none skipped."""
    refs = [ref for _ in range(50) for ref in _open_at_once(engine, 2026, 0.01)]
    assert sorted(refs) == [f"ITP-2026-{n:04d}" for n in range(1, 101)]
    for year in range(2030, 2055):
        assert sorted(_open_at_once(engine, year, 0.01)) == [f"ITP-{year}-0001",
                                                              f"ITP-{year}-0002"]
