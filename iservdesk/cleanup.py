"""Housekeeping: one pass of `iservdesk cleanup`, which a systemd timer runs every 5 minutes.

A pass deletes expired sessions and abandoned sign-ins, reconciles the database with the
engine's labelled containers, removes labelled containers whose owner or desktop type
this installation does not know (once they have stayed unknown for STRAY_GRACE), stops
desktops unused for IDLE_TIMEOUT and removes containers stopped for REMOVE_STOPPED_AFTER.
Home volumes are never deleted.

This module picks the candidates, keeps the stray containers' bookkeeping and reports.
The manager (Desktops.reconcile_from_outside, stop_if_idle, remove_if_stopped) acts on
single desktops, and knows how to stay out of the way of the portal's start jobs, which
run in the portal's process. `now` is passed in, so tests choose the time.
"""

import contextlib
import dataclasses
import datetime
import fcntl
import logging
import os
import time

from . import db, sessions
from .desktops.manager import HALTED, human_duration, last_used_at
from .errors import DesktopError

log = logging.getLogger(__name__)

# A labelled container without a known owner or type is removed only after cleanup has
# seen it so for this long. The portal writes a desktop's row before creating its
# container, so its own starts are never strays; this is for a restored backup (the users
# who signed in since are unknown until they sign in again, and their containers are then
# adopted instead) and for a catalog edited while its containers run.
STRAY_GRACE = datetime.timedelta(hours=1)
STRAY_MARK = "cleanup.stray:"  # meta table: STRAY_MARK + container id -> first seen at
# Passes take turns (a lock on the database's folder): a pass started by hand while the
# timer's runs waits for it, instead of both stopping the same desktops.
LOCK_WAIT = 600  # seconds
# Sign-ins are good for 10 minutes (web/auth.py LOGIN_TTL); older rows can only be in the way.
ABANDONED_LOGIN = datetime.timedelta(hours=1)


@dataclasses.dataclass
class Report:
    """What one pass did (with dry_run: would have done)."""

    dry_run: bool = False
    repairs: list = dataclasses.field(default_factory=list)
    stopped: list = dataclasses.field(default_factory=list)  # desktop names
    removed: list = dataclasses.field(default_factory=list)  # desktop names
    strays_removed: list = dataclasses.field(default_factory=list)  # container names
    strays_waiting: list = dataclasses.field(default_factory=list)  # container names
    sessions: int = 0
    logins: int = 0
    error: str = ""  # the engine could not be reached: the pass is incomplete

    def summary(self):
        """One line for the operator (and the journal)."""
        line = ("%d idle desktops stopped, %d stopped desktops removed, %d stray containers removed "
                "(%d waiting), %d records repaired, %d expired sessions and %d abandoned sign-ins deleted"
                % (len(self.stopped), len(self.removed), len(self.strays_removed),
                   len(self.strays_waiting), len(self.repairs), self.sessions, self.logins))
        if self.error:
            line += "; desktops not (all) checked: the Docker engine did not answer"
        return "cleanup%s: %s" % (" (dry run, nothing changed)" if self.dry_run else "", line)


def run(config, desktops, database, now, dry_run=False):
    """One cleanup pass at `now` (timezone-aware); returns a Report.

    `desktops` is a Desktops manager on the engine to clean. Safe to run while the portal
    serves and starts desktops; passes in several processes take turns, the later one
    waiting up to LOCK_WAIT seconds. A Docker engine that does not answer ends the engine
    part early (Report.error); sessions are expired regardless.
    """
    report = Report(dry_run=dry_run)
    try:
        with taking_turns(os.path.dirname(config.database_uri) or "."), database.connection_context():
            report.sessions, report.logins = expire_sign_ins(config, database, now, dry_run)
            try:
                report.repairs, strays = desktops.reconcile_from_outside(now, dry_run)
                remove_strays(desktops, database, strays, now, dry_run, report)
                for row in db.Desktop.select().where(db.Desktop.status == "running"):
                    if now - last_used_at(row) >= config.idle_timeout and \
                            desktops.stop_if_idle(row, now, config.idle_timeout, dry_run):
                        report.stopped.append(row.name)
                for row in db.Desktop.select().where(db.Desktop.status.in_(HALTED)
                                                     & db.Desktop.container_id.is_null(False)):
                    if desktops.remove_if_stopped(row, now, config.remove_stopped_after, dry_run):
                        report.removed.append(row.name)
            except DesktopError as error:
                report.error = str(error)  # the caller says it once, with the exit status
    except TimeoutError:
        report.error = "another cleanup pass has been running for %d seconds; this one gave up" % LOCK_WAIT
    return report


@contextlib.contextmanager
def taking_turns(folder):
    """Hold the exclusive lock on `folder`, waiting up to LOCK_WAIT seconds; TimeoutError if
    it stays taken. The kernel drops the lock when its process dies.

    The folder rather than a lock file in it: a file made by root (an admin running cleanup
    by hand) could not be opened by the service user afterwards; flock needs no write access.
    """
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + LOCK_WAIT
        logged = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError() from None
                if not logged:
                    log.info("another cleanup pass is running; waiting for it to finish")
                    logged = True
                time.sleep(0.1)
        yield
    finally:
        os.close(handle)  # releases the lock


def expire_sign_ins(config, database, now, dry_run):
    """Delete expired sessions and abandoned sign-ins; returns (sessions, sign-ins) counts."""
    policy = sessions.Policy.from_config(config)
    with db.write(database) as transaction:
        expired = sessions.delete_expired(policy, now)
        abandoned = db.Login.delete().where(db.Login.created_at < now - ABANDONED_LOGIN).execute()
        if dry_run:
            transaction.rollback()  # counted, not deleted
    if expired or abandoned:
        log.info("cleanup %s %d expired sessions and %d abandoned sign-ins",
                 "would delete" if dry_run else "deleted", expired, abandoned)
    return expired, abandoned


def remove_strays(desktops, database, strays, now, dry_run, report):
    """Remove the stray containers first seen more than STRAY_GRACE ago; remember new ones."""
    first_seen = {row.name[len(STRAY_MARK):]: _parse_time(row.value)
                  for row in db.KeyValue.select().where(db.KeyValue.name.startswith(STRAY_MARK))}
    for info in strays:
        seen_at = first_seen.get(info.id)
        if seen_at is None:
            if not dry_run:
                with db.write(database):
                    db.KeyValue.insert(name=STRAY_MARK + info.id,
                                       value=_format_time(now)).on_conflict_ignore().execute()
            log.warning("container %s is labelled as this installation's, but its owner or desktop type "
                        "is unknown; cleanup removes it if it stays so for %s", info.name,
                        human_duration(STRAY_GRACE))
            report.strays_waiting.append(info.name)
        elif now - seen_at < STRAY_GRACE:
            report.strays_waiting.append(info.name)
        else:
            if not dry_run:
                desktops.spawner.remove(info.id)
                with db.write(database):
                    db.KeyValue.delete().where(db.KeyValue.name == STRAY_MARK + info.id).execute()
                    db.record("container.remove", actor="cleanup", target=info.name, reason="stray",
                              owner=info.labels.get("de.iservdesk.owner", ""),
                              desktop_type=info.labels.get("de.iservdesk.type", ""))
            log.warning("cleanup %s container %s: its owner or desktop type has been unknown for %s "
                        "(its home volume stays)", "would remove" if dry_run else "removed", info.name,
                        human_duration(now - seen_at))
            report.strays_removed.append(info.name)
    # Containers that are gone, or were adopted since, need no mark any more.
    settled = [STRAY_MARK + container_id for container_id in first_seen
               if container_id not in {info.id for info in strays}]
    if settled and not dry_run:
        with db.write(database):
            db.KeyValue.delete().where(db.KeyValue.name.in_(settled)).execute()


def _format_time(moment):
    return moment.astimezone(datetime.timezone.utc).strftime(db.UTCDateTimeField.FORMAT)


def _parse_time(text):
    return datetime.datetime.strptime(text, db.UTCDateTimeField.FORMAT).replace(tzinfo=datetime.timezone.utc)
