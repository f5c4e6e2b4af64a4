"""Housekeeping: one pass of `iservdesk cleanup`, which a systemd timer runs every 5 minutes.

A pass deletes expired sessions and abandoned sign-ins, reconciles the database with the
engine's labelled containers, removes labelled containers whose owner or desktop type
this installation does not know (once they have stayed unknown for STRAY_GRACE), stops
desktops unused for IDLE_TIMEOUT (prepared ones nobody opened, after
PREPARED_UNUSED_TIMEOUT) and removes containers stopped for REMOVE_STOPPED_AFTER. Home
volumes are deleted only with REMOVE_HOMES_AFTER set (off by default), one pass after
they were announced. Homes used since their last measurement are measured (HOME_QUOTA).

This module is "what cleanup removes": it picks the candidates, acts on them, keeps the
stray containers' bookkeeping and reports. It runs in a process of its own, beside the
portal, whose start jobs it sees only as rows in a BUSY status: each action reads its row
and asks the engine again just before it acts, and writes with the reconciler's
compare-and-set (desktops/reconcile.py), so whatever the portal did in the meantime wins.
Like the portal's stop and remove, the engine goes first and the row follows at once.
`now` is passed in, so tests choose the time.
"""

import collections
import contextlib
import dataclasses
import datetime
import fcntl
import logging
import os
import time

from . import db, files, sessions
from .desktops import ACTIVE, HALTED, OWNER, Status, reconcile
from .desktops.lifecycle import last_used_at
from .errors import DesktopError

log = logging.getLogger(__name__)

MEASURE_PER_PASS = 200  # homes measured (du, in a helper container, ~0.2 s each) per pass

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
    homes_announced: list = dataclasses.field(default_factory=list)  # usernames (REMOVE_HOMES_AFTER)
    homes_removed: list = dataclasses.field(default_factory=list)  # volume names
    homes_measured: int = 0
    over_quota: list = dataclasses.field(default_factory=list)  # volume names (HOME_QUOTA)
    error: str = ""  # the engine could not be reached: the pass is incomplete

    def summary(self):
        """One line for the operator (and the journal)."""
        line = ("%d idle desktops stopped, %d stopped desktops removed, %d stray containers removed "
                "(%d waiting), %d records repaired, %d expired sessions and %d abandoned sign-ins deleted"
                % (len(self.stopped), len(self.removed), len(self.strays_removed),
                   len(self.strays_waiting), len(self.repairs), self.sessions, self.logins))
        if self.homes_announced or self.homes_removed:
            line += ", %d homes of people long gone removed (%d people's announced for the next pass)" % (
                len(self.homes_removed), len(self.homes_announced))
        if self.homes_measured:
            line += ", %d homes measured (%d over HOME_QUOTA)" % (self.homes_measured, len(self.over_quota))
        if self.error:
            line += "; desktops not (all) checked: the Docker engine did not answer"
        return "cleanup%s: %s" % (" (dry run, nothing changed)" if self.dry_run else "", line)


def run(config, desktops, database, now, dry_run=False):
    """One cleanup pass at `now` (timezone-aware); returns a Report.

    `desktops` is the Desktops (lifecycle.py) of the engine to clean. Safe to run while the portal
    serves and starts desktops; passes in several processes take turns, the later one
    waiting up to LOCK_WAIT seconds. A Docker engine that does not answer ends the engine
    part early (Report.error); sessions are expired regardless.
    """
    report = Report(dry_run=dry_run)
    try:
        with taking_turns(os.path.dirname(config.database_uri) or "."), database.connection_context():
            report.sessions, report.logins = expire_sign_ins(config, database, now, dry_run)
            try:
                report.repairs, strays = reconcile.run(desktops.engine, desktops.labels, desktops.catalog,
                                                       database, now, desktops.publish, dry_run=dry_run)
                remove_strays(desktops, database, strays, now, dry_run, report)
                for row in db.Desktop.select().where(db.Desktop.status == Status.RUNNING):
                    if now - last_used_at(row) >= config.idle_timeout and \
                            stop_if_idle(desktops, row, now, config.idle_timeout, dry_run):
                        report.stopped.append(row.name)
                    elif row.prepared_at is not None and stop_if_prepared_unused(
                            desktops, row, now, config.prepared_unused_timeout, dry_run):
                        report.stopped.append(row.name)
                for row in db.Desktop.select().where(db.Desktop.status.in_(list(HALTED))
                                                     & db.Desktop.container_id.is_null(False)):
                    if remove_if_stopped(desktops, row, now, config.remove_stopped_after, dry_run):
                        report.removed.append(row.name)
                # On a Swarm the homes are on the nodes, out of reach: neither removed nor measured.
                if desktops.engine.homes_reachable:
                    if config.remove_homes_after is not None:
                        remove_old_homes(desktops, now, config.remove_homes_after, dry_run, report)
                    if not dry_run:
                        measure_homes(config, desktops, database, now, report)
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
                desktops.engine.remove(info.id)
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


def stop_if_idle(desktops, row, now, idle_timeout, dry_run=False):
    """Stop the desktop if, at `now`, it still runs and has been unused for `idle_timeout`.

    The proxy writes last_access_at on every request and every minute in which bytes cross
    a viewer's WebSocket, so a desktop someone works with is never idle. Returns True when
    it was stopped (dry_run: would be). The container and its files stay.
    """
    fresh = _running(row)
    if fresh is None:
        return False
    idle = now - last_used_at(fresh)
    if idle < idle_timeout:
        return False
    if not _stop(desktops, fresh, now, dry_run, "idle",
                 "Stopped after %s without use; your files are kept. Start it again to continue."
                 % human_duration(idle_timeout), idle_minutes=int(idle.total_seconds() // 60)):
        return False
    log.info("cleanup %s desktop %s: unused for %s (IDLE_TIMEOUT %s)", "would stop" if dry_run else "stopped",
             fresh.name, human_duration(idle), human_duration(idle_timeout))
    return True


def stop_if_prepared_unused(desktops, row, now, timeout, dry_run=False):
    """Stop the desktop if, at `now`, it still runs as prepared for a lesson (preparations.py)
    and its owner has not opened it in `timeout` since. Returns True when it was stopped
    (dry_run: would be); files are kept."""
    fresh = _running(row)
    if fresh is None or fresh.prepared_at is None or now - fresh.prepared_at < timeout:
        return False
    if not _stop(desktops, fresh, now, dry_run, "prepared-unused",
                 "Prepared for a lesson and not opened within %s; your files are kept. Start it again "
                 "to continue." % human_duration(timeout)):
        return False
    log.info("cleanup %s desktop %s: prepared %s ago and not opened (PREPARED_UNUSED_TIMEOUT %s)",
             "would stop" if dry_run else "stopped", fresh.name, human_duration(now - fresh.prepared_at),
             human_duration(timeout))
    return True


def remove_old_homes(desktops, now, after, dry_run, report):
    """REMOVE_HOMES_AFTER: the homes of people who have not signed in for `after` go, with
    a grace of one pass: the first pass that finds them due announces it (a warning in the
    journal, remembered in the database), the next one deletes their containers and home
    volumes, unless they signed in meanwhile or a desktop of theirs is active. Only volumes
    labelled with an owner are considered (older unlabelled ones stay for an admin)."""
    owned = collections.defaultdict(list)
    for volume in desktops.engine.homes(desktops.homes.prefix):
        if volume.labels.get(OWNER):
            owned[volume.labels[OWNER]].append(volume.name)
    for user in db.User.select():
        key = "homes-due:" + user.uuid
        announced = db.KeyValue.get_or_none(db.KeyValue.name == key)
        last = user.last_login_at or user.created_at
        if now - last < after or not owned.get(user.uuid):
            if announced is not None and not dry_run:
                with db.write(desktops.database):
                    announced.delete_instance()  # signed in again: the clock starts anew
            continue
        rows = list(db.Desktop.select().where(db.Desktop.user == user))
        if any(row.status in ACTIVE for row in rows):
            continue  # in use after all (an admin's start, a preparation): not now
        if announced is None:
            if not dry_run:
                with db.write(desktops.database):
                    db.KeyValue.create(name=key, value=now.isoformat())
            report.homes_announced.append(user.username)
            log.warning("cleanup %s the homes of %s (%s; last signed in %s ago, REMOVE_HOMES_AFTER %s) at its "
                        "next pass: %s", "would announce removing" if dry_run else "will remove", user.username,
                        user.uuid, human_duration(now - last), human_duration(after), ", ".join(owned[user.uuid]))
            continue
        if not dry_run:
            for row in rows:
                if row.container_id:
                    desktops.engine.remove(row.container_id)
            for volume in owned[user.uuid]:
                desktops.engine.remove_home(volume)
            with db.write(desktops.database):
                db.Desktop.update(status=Status.REMOVED, container_id=None, host_port=None, address=None,
                                  secret=None, view_secret=None, home_volume=None, message="").where(
                    db.Desktop.user == user).execute()
                announced.delete_instance()
                db.record("home.remove", actor="cleanup", target=user.username, reason="REMOVE_HOMES_AFTER",
                          volumes=owned[user.uuid])
        report.homes_removed.extend(owned[user.uuid])
        log.warning("cleanup %s the homes of %s (%s), unused for %s: %s", "would remove" if dry_run else "removed",
                    user.username, user.uuid, human_duration(now - last), ", ".join(owned[user.uuid]))


def measure_homes(config, desktops, database, now, report):
    """Measure the homes whose desktop was used since they were last measured (at most
    MEASURE_PER_PASS, the longest unmeasured first): what a desktop writes itself is not
    limited by Docker's volumes, so the admin panel's sizes and HOME_QUOTA flags come from
    here, and a home over HOME_QUOTA is named in the journal."""
    measurer = files.Files(desktops, config, database, lambda: now)
    sizes = {size.volume: size for size in db.HomeSize.select()}
    due = []
    for row in db.Desktop.select(db.Desktop, db.User).join(db.User):
        volume = row.home_volume or desktops.homes.plain_name(row.name)
        known = sizes.get(volume)
        if known is None or known.measured_at < last_used_at(row):
            due.append((known.measured_at if known else datetime.datetime.min.replace(tzinfo=datetime.timezone.utc),
                        row, volume))
    due.sort(key=lambda item: item[0])
    for _, row, volume in due[:MEASURE_PER_PASS]:
        if desktops.engine.home(volume) is None:
            continue
        size = measurer.measure(volume, files.reader_image(desktops, row.desktop_type))
        report.homes_measured += 1
        if size > config.home_quota:
            report.over_quota.append(volume)
            log.warning("home %s of %s holds %s, over HOME_QUOTA (%s)", volume, row.user.username,
                        files.human(size), files.human(config.home_quota))


def _running(row):
    """The row as it is now, if its desktop still runs (with a container); else None."""
    fresh = db.Desktop.select(db.Desktop, db.User).join(db.User).where(db.Desktop.id == row.id).first()
    if fresh is None or fresh.status != Status.RUNNING or not fresh.container_id:
        return None
    return fresh


def _stop(desktops, fresh, now, dry_run, reason, message, **details):
    """Stop the running container of `fresh` (kept, with its files), write the row with
    `message` and audit the stop with `reason`. False when the container is not running
    (reconciling is another step's business)."""
    container = desktops.engine.inspect(fresh.container_id)
    if container is None or not container.running:
        return False
    if not dry_run:
        desktops.engine.stop(container.id)
        _write(desktops, now, fresh, reason, {"container_id": container.id,
                                               "status": {Status.RUNNING, Status.STOPPED}}, {
            "status": Status.STOPPED, "stopped_at": now, "message": message})
        with db.write(desktops.database):
            db.record("desktop.stop", actor="cleanup", target=fresh.name, reason=reason, **details)
    return True


def remove_if_stopped(desktops, row, now, after, dry_run=False):
    """Remove the desktop's container if, at `now`, it has been stopped (or failed) for
    `after`. The home volume stays. Returns True when removed (dry_run: would be)."""
    fresh = db.Desktop.select(db.Desktop, db.User).join(db.User).where(db.Desktop.id == row.id).first()
    if fresh is None or fresh.status not in HALTED or not fresh.container_id:
        return False
    if fresh.stopped_at is None:
        # Not recorded (the row was changed by hand, or by an older iservdesk): count from now.
        if not dry_run:
            _write(desktops, now, fresh, "stop time recorded", {"status": fresh.status, "stopped_at": None},
                   {"stopped_at": now})
        return False
    stopped_for = now - fresh.stopped_at
    if stopped_for < after:
        return False
    container = desktops.engine.inspect(fresh.container_id)
    if container is None or container.running:
        return False  # gone or running again: reconciling is another step's business
    if not dry_run:
        desktops.engine.remove(container.id)
        _write(desktops, now, fresh, "removed", {"container_id": container.id}, {
            "status": Status.REMOVED, "container_id": None, "host_port": None, "address": None,
            "secret": None, "view_secret": None,
            "message": "Removed after %s unused; your files are kept. Starting it again sets up a "
                       "fresh desktop." % human_duration(after)})
        with db.write(desktops.database):
            db.record("desktop.remove", actor="cleanup", target=fresh.name, reason="stopped",
                      stopped_days=stopped_for.days)
    log.info("cleanup %s desktop %s: stopped for %s (REMOVE_STOPPED_AFTER %s; home volume kept)",
             "would remove" if dry_run else "removed", fresh.name, human_duration(stopped_for),
             human_duration(after))
    return True


def _write(desktops, now, row, text, expected, fields):
    """One compare-and-set write of the row (the reconciler's writer), logged at DEBUG: the
    caller says what happened in words of its own."""
    repair = reconcile.Repair(row.name, text, row.id, expected, fields)
    reconcile.apply([repair], desktops.database, now, desktops.publish, verb="cleanup wrote",
                    level=logging.DEBUG)


def human_duration(duration):
    """'2 hours', '7 days', '90 minutes': a timedelta as an operator or a student reads it."""
    seconds = int(duration.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and (seconds % size == 0 or seconds >= 2 * size):
            count = seconds // size
            return "%d %s%s" % (count, unit, "" if count == 1 else "s")
    return "%d seconds" % seconds


def _format_time(moment):
    return moment.astimezone(datetime.timezone.utc).strftime(db.UTCDateTimeField.FORMAT)


def _parse_time(text):
    return datetime.datetime.strptime(text, db.UTCDateTimeField.FORMAT).replace(tzinfo=datetime.timezone.utc)
