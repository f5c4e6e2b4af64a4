"""SQLite state: migrations, the models' agreement with them, concurrency, timestamps."""

import datetime
import multiprocessing
import os
import sqlite3

import peewee
import pytest

from conftest import ROOT
from iservdesk import db, errors

WRITERS = 4
WRITES_EACH = 150


def schema_of(path):
    """The normalised schema of a SQLite file: {(type, name): sql}."""
    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        return {(kind, name): " ".join((sql or "").split()) for kind, name, sql in rows}
    finally:
        con.close()


def restore(path, dump):
    con = sqlite3.connect(path)
    with open(os.path.join(ROOT, "tests", "data", dump)) as stream:
        con.executescript(stream.read())
    con.close()


def test_fresh_database_is_migrated_to_current_version(database):
    assert db.schema_version(database) == db.SCHEMA_VERSION
    assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == db.BUSY_TIMEOUT_MS
    assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrate_runs_each_migration_once(database):
    assert db.migrate(database) == []
    assert db.schema_version(database) == db.SCHEMA_VERSION


def test_upgrade_from_version_1_keeps_rows_and_matches_a_fresh_schema(tmp_path):
    old = str(tmp_path / "old.db")
    restore(old, "schema-v1.sql")
    upgraded = db.open_database(old)
    assert db.migrate(upgraded) == [title for title, _ in db.MIGRATIONS[1:]]
    user = db.User.get(db.User.username == "max.muster")
    assert user.groups == ["klasse-7a"]
    desktop = db.Desktop.get(db.Desktop.user == user)
    assert (desktop.name, desktop.host_port, desktop.status) == ("max.muster-ubuntu-vscode", 7003, "running")
    assert desktop.last_access_at == datetime.datetime(2026, 9, 1, 8, 10, tzinfo=datetime.timezone.utc)
    db.record("desktop.stop", actor="admin", target=desktop.name, reason="test")
    upgraded.close()

    fresh = str(tmp_path / "fresh.db")
    db.migrate(db.open_database(fresh))
    assert schema_of(old) == schema_of(fresh)


def test_models_agree_with_the_migrated_schema(database):
    for model in db.MODELS:
        columns = {column.name for column in database.get_columns(model._meta.table_name)}
        assert columns == set(model._meta.columns), model.__name__


def test_newer_database_is_refused(tmp_path):
    path = str(tmp_path / "future.db")
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = %d" % (db.SCHEMA_VERSION + 1))
    con.close()
    with pytest.raises(db.DatabaseError, match="newer than this iservdesk knows"):
        db.migrate(db.open_database(path))


def test_timestamps_are_timezone_aware_utc(database):
    berlin = datetime.timezone(datetime.timedelta(hours=1))
    user = db.User.create(uuid="u-1", username="anna", created_at=datetime.datetime(2026, 11, 26, 8, 0, tzinfo=berlin))
    stored = db.User.get_by_id(user.id).created_at
    assert stored == datetime.datetime(2026, 11, 26, 7, 0, tzinfo=datetime.timezone.utc)
    assert stored.tzinfo is datetime.timezone.utc
    with pytest.raises(ValueError, match="timezone-aware"):
        db.User.create(uuid="u-2", username="ben", created_at=datetime.datetime(2026, 1, 1))


def test_one_desktop_per_user_and_type(database):
    user = db.User.create(uuid="u-1", username="anna")
    db.Desktop.create(user=user, desktop_type="ubuntu-desktop", name="anna-ubuntu-desktop")
    with pytest.raises(peewee.IntegrityError):
        db.Desktop.create(user=user, desktop_type="ubuntu-desktop", name="anna-ubuntu-desktop-2")


def test_a_file_that_is_no_database_is_a_503_naming_the_setting(tmp_path):
    path = str(tmp_path / "garbage.db")
    with open(path, "w") as stream:
        stream.write("not sqlite " * 1000)
    with pytest.raises(db.DatabaseError) as refused:
        db.open_database(path)
    assert refused.value.status == 503
    assert refused.value.reason == "file is not a database"
    assert str(refused.value) == "DATABASE_URI: %s: file is not a database" % path
    assert path not in refused.value.public_message


def test_a_write_that_breaks_a_constraint_is_a_conflict(database):
    user = db.User.create(uuid="u-1", username="anna")
    db.Desktop.create(user=user, desktop_type="tiny", name="anna-tiny")
    with pytest.raises(errors.Conflict) as refused:
        with db.write(database):
            db.Desktop.create(user=user, desktop_type="demo", name="anna-tiny")
    assert refused.value.status == 409
    assert "UNIQUE constraint failed: desktops.name" in str(refused.value)
    assert db.Desktop.select().count() == 1


def _write_many(path, worker, barrier):
    database = db.open_database(path)
    barrier.wait()
    with database.connection_context():
        for number in range(WRITES_EACH):
            with db.write(database):
                # Read, then write, in one transaction: the pattern that fails with
                # "database is locked" under deferred transactions.
                count = db.Event.select().count()
                db.Event.create(action="test.write", actor="worker-%d" % worker,
                                detail={"seen": count, "n": number})


def _migrate(path, barrier, results):
    database = db.open_database(path)
    barrier.wait()
    results.put(len(db.migrate(database)))


def test_concurrent_writers_never_see_database_is_locked(database, tmp_path):
    path = database.database
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(WRITERS)
    workers = [context.Process(target=_write_many, args=(path, number, barrier)) for number in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0] * WRITERS
    assert db.Event.select().count() == WRITERS * WRITES_EACH


def test_concurrent_migrations_apply_each_step_once(tmp_path):
    path = str(tmp_path / "race.db")
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(WRITERS), context.Queue()
    workers = [context.Process(target=_migrate, args=(path, barrier, results)) for _ in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * WRITERS
    applied = sorted(results.get(timeout=5) for _ in range(WRITERS))
    assert applied == [0] * (WRITERS - 1) + [db.SCHEMA_VERSION]
    assert schema_of(path)[("table", "events")]
