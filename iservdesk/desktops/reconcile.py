"""How the database is made to agree with the engine: Docker is the truth.

plan() is a pure function: from the desktops' rows, the containers the engine reports,
the desktops whose start is under way (busy) and the time, it returns the repairs.
apply() writes them with compare-and-set: each one only if its row still holds what the
plan saw, so a start, a stop or another process that changed the row in the meantime
wins, and the next round looks again. Both the portal (at start-up, after engine events,
once a minute, and when a desktop stops answering the proxy) and `iservdesk cleanup` (a
process of its own, which sees the portal's start jobs only as rows in a BUSY status)
reconcile with run(). Each repair is logged once, when it is written.

What is repaired:
- a row without a container whose start is not under way: the start died with an earlier
  portal process (error, start again);
- a row whose container is gone (removed), stopped (stopped), running again (running), on a
  Swarm node that does not answer (lost), or labelled as another person's (the row lets go
  of it; the container is left alone);
- a labelled container without a row: adopted into its owner's row of its type (made
  when missing), unless that row has a container already or the container is found under
  another person's desktop. A container whose owner or type this installation does not
  know is a stray: what to do with it is cleanup's business.
"""

import dataclasses
import logging

import gevent

from .. import db
from ..errors import DesktopError
from . import ACTIVE, BUSY, DESKTOP, OWNER, TYPE, Status
from .homes import free_name, owned_by

log = logging.getLogger(__name__)

RECONCILE_EVERY = 60  # seconds, even when the event stream is quiet
EVENT_SETTLE = 0.3  # seconds between an engine event and the reconcile it causes
EVENT_CONFIRM = 2  # seconds to a second look after a burst of events


@dataclasses.dataclass(frozen=True)
class Repair:
    desktop: str  # the desktop's name
    text: str  # what happened, for the log
    row_id: int  # None: a row is to be made (create says how)
    expected: dict  # field -> value the row must still hold for the repair to be written
    fields: dict  # field -> value to write
    create: dict = None  # user, desktop_type, name of a row to make first
    adopts: str = None  # the id of the container adopted (its secret is read just before writing)


@dataclasses.dataclass(frozen=True)
class Plan:
    repairs: list
    strays: list  # Containers whose owner or desktop type is unknown here
    notes: list  # containers left alone, with why (logged as warnings)


def plan(rows, containers, busy, types, users, now):
    """The repairs that make `rows` (Desktop rows with .user) agree with `containers`
    (engine.Container, ours). `busy`: names of desktops whose start is under way (their
    rows and containers are the start's); `types`: the catalog's slugs; `users`: uuid ->
    User of everyone known here; `now`: when, for stopped_at. Pure: reads nothing else."""
    by_id = {container.id: container for container in containers}
    repairs, strays, notes = [], [], []
    known = set()
    for row in rows:
        if row.name in busy:
            known.add(row.container_id)
            continue
        expected = {"status": row.status, "container_id": row.container_id}
        if row.container_id is None:
            if row.status in ACTIVE:
                repairs.append(Repair(row.name, "interrupted start", row.id, expected, {
                    "status": Status.ERROR, "stopped_at": now,
                    "message": "Starting was interrupted. Please start the desktop again."}))
            continue
        known.add(row.container_id)
        container = by_id.get(row.container_id)
        gone = {"status": Status.REMOVED, "container_id": None, "host_port": None, "address": None,
                "secret": None, "view_secret": None}
        if container is not None and not owned_by(container, row.user):
            # Linked by an older release that adopted by name: let go of it, leave it alone.
            repairs.append(Repair(row.name, "let go of another person's container %s" % container.name,
                                  row.id, expected, {**gone, "message": ""}))
        elif container is None:
            repairs.append(Repair(row.name, "container gone", row.id, expected, {
                **gone, "message": "The desktop was removed outside iservdesk."}))
        elif container.lost:
            if row.status != Status.LOST:
                repairs.append(Repair(row.name, "lost with its node %s" % (container.node_name or "?"), row.id,
                                      expected, {"status": Status.LOST,
                                                 "message": "The server of this desktop does not answer."}))
        elif container.running and row.status != Status.RUNNING:
            repairs.append(Repair(row.name, "running again", row.id, expected, {
                "status": Status.RUNNING, "host_port": container.host_port, "address": container.address,
                "message": ""}))
        elif not container.running and (row.status in ACTIVE or row.status == Status.LOST):
            repairs.append(Repair(row.name, "stopped", row.id, expected, {
                "status": Status.STOPPED, "stopped_at": now,
                "message": "The server of this desktop was away, so the desktop was stopped. Your files are "
                           "kept: start it again." if row.status == Status.LOST
                           else "The desktop was stopped outside iservdesk."}))

    by_owner_type = {(row.user.uuid, row.desktop_type): row for row in rows}
    by_name = {row.name: row for row in rows}
    planned_names = set()
    for container in containers:
        if container.id in known or container.labels.get(DESKTOP) in busy:
            continue  # known, or being created by a start right now
        owner = users.get(container.labels.get(OWNER, ""))
        slug = container.labels.get(TYPE, "")
        if owner is None or slug not in types:
            strays.append(container)
            continue
        named = by_name.get(container.labels.get(DESKTOP))
        if named is not None and named.user.uuid != owner.uuid:
            notes.append("container %s is found under desktop %s of another person (its owner is %s); "
                         "left alone" % (container.name, named.name, owner.uuid))
            continue
        row = by_owner_type.get((owner.uuid, slug))
        if row is not None and (row.name in busy or row.container_id):
            if row.container_id and row.container_id != container.id:
                notes.append("container %s is labelled as desktop %s, which has another container; "
                             "left alone" % (container.name, row.name))
            continue
        fields = {"container_id": container.id, "host_port": container.host_port, "address": container.address,
                  "secret": container.environment.get("VNC_PW"), "message": "",
                  "status": Status.RUNNING if container.running else Status.STOPPED}
        if not container.running:
            fields["stopped_at"] = now
        if row is not None:
            repairs.append(Repair(row.name, "adopted container %s" % container.name, row.id,
                                  {"container_id": None, "status": row.status}, fields, adopts=container.id))
            continue
        name = free_name(owner, slug, lambda name: name in by_name or name in planned_names)
        if name is None:
            notes.append("container %s cannot be adopted: every name for its desktop is taken"
                         % container.name)
            continue
        planned_names.add(name)
        repairs.append(Repair(name, "adopted container %s" % container.name, None,
                              {"container_id": None}, fields, adopts=container.id,
                              create={"user": owner, "desktop_type": slug, "name": name}))
    return Plan(repairs, strays, notes)


def apply(repairs, database, now, publish, dry_run=False, verb="reconciled", level=logging.WARNING):
    """Write each repair whose row still holds what it expects (a value, None, or a set of
    allowed values per field); returns the repairs written (with dry_run: that would be),
    as lines of text, each also logged (at `level`) as "<verb> <line>". `publish(row)` tells
    subscribers."""
    done = []
    for repair in repairs:
        line = "%s: %s" % (repair.desktop, repair.text)
        if dry_run:
            log.log(level, "dry run: would have %s %s", verb, line)
            done.append(line)
            continue
        with db.write(database):
            row_id = repair.row_id
            if repair.create is not None:
                exists = db.Desktop.get_or_none(
                    ((db.Desktop.user == repair.create["user"])
                     & (db.Desktop.desktop_type == repair.create["desktop_type"]))
                    | (db.Desktop.name == repair.create["name"]))
                if exists is not None:
                    continue  # made meanwhile: the next round sees it
                row_id = db.Desktop.create(status=Status.NEW, created_at=now, **repair.create).id
            condition = db.Desktop.id == row_id
            for name, value in repair.expected.items():
                field = getattr(db.Desktop, name)
                if isinstance(value, (tuple, frozenset, set)):
                    condition &= field.in_(list(value))
                else:
                    condition &= field.is_null() if value is None else field == value
            written = db.Desktop.update(**repair.fields).where(condition).execute() == 1
        if written:
            log.log(level, "%s %s", verb, line)
            done.append(line)
            publish(db.Desktop.select(db.Desktop, db.User).join(db.User)
                    .where(db.Desktop.id == row_id).first())
    return done


def run(engine, labels, catalog, database, now, publish, busy=None, dry_run=False):
    """One reconciliation: plan from what the engine and the database say now, then apply.

    `busy()`: names of desktops whose start is under way in this process, asked after the
    rows are read and again just before writing (starts begin while the engine is asked);
    None for a process that cannot see the portal's start jobs (cleanup), which then counts
    every row in a BUSY status as under way. Returns (repairs written, strays). Raises
    DesktopError when the engine does not answer."""
    containers = engine.list(labels)
    rows = list(db.Desktop.select(db.Desktop, db.User).join(db.User))
    if busy is None:
        names = {row.name for row in rows if row.status in BUSY}
        busy = lambda: names  # noqa: E731
    users = {user.uuid: user for user in db.User.select()}
    result = plan(rows, containers, busy(), set(catalog.types), users, now)
    for note in result.notes:
        log.warning("%s", note)
    repairs = [_with_secret(engine, repair, now) for repair in result.repairs]
    started = busy()  # a start may have begun while the engine was asked
    return apply([repair for repair in repairs if repair and repair.desktop not in started], database, now,
                 publish, dry_run), result.strays


def _with_secret(engine, repair, now):
    """An adoption with the container's secret and state as the engine says them now (a
    container list carries no environment); None when the container is gone meanwhile."""
    if repair.adopts is None:
        return repair
    container = engine.inspect(repair.adopts)
    if container is None:
        return None
    fields = {**repair.fields, "secret": container.environment.get("VNC_PW"),
              "view_secret": container.environment.get("VNC_VIEW_ONLY_PW"),
              "host_port": container.host_port, "address": container.address,
              "status": Status.RUNNING if container.running else Status.STOPPED}
    if not container.running:
        fields["stopped_at"] = now
    return dataclasses.replace(repair, fields=fields)


class Reconciler:
    """The portal's reconciliation: at start-up, after engine events (a moment later, once
    for a burst), once a minute, and soon() after a desktop stopped answering."""

    def __init__(self, desktops):
        self.desktops = desktops
        self.greenlets = []
        self._soon = None
        self._dirty = False

    def once(self):
        """run() with its own database connection, logging instead of raising."""
        desktops = self.desktops
        try:
            with desktops.database.connection_context():
                run(desktops.engine, desktops.labels, desktops.catalog, desktops.database,
                    desktops.clock(), desktops.publish, busy=desktops.busy)
        except DesktopError as error:
            log.warning("reconcile: %s", error)
        except Exception:
            log.exception("reconcile failed")

    def soon(self):
        self._dirty = True
        if self._soon is None or self._soon.dead:
            self._soon = gevent.spawn(self._settle)

    def _settle(self):
        # Docker sends "die" before the container's state says so: reconcile a moment after
        # a burst of events, and once more a little later, when the state has followed.
        while True:
            while self._dirty:
                self._dirty = False
                gevent.sleep(EVENT_SETTLE)
                self.once()
            gevent.sleep(EVENT_CONFIRM)
            self.once()
            if not self._dirty:
                return  # no yield from here to the end: no event slips between

    def watch(self):
        """Run forever: reconcile, then follow the engine's events, reconnecting with backoff."""
        backoff = 1
        while True:
            try:
                self.once()
                backoff = 1
                for action, container_id in self.desktops.engine.events(self.desktops.labels):
                    log.debug("engine event %s %s", action, container_id[:12])
                    self.soon()
                log.warning("the Docker event stream ended; reconnecting")
            except DesktopError as error:
                log.warning("watching Docker: %s; retrying in %ds", error, backoff)
            except Exception:
                log.exception("watching Docker failed; retrying in %ds", backoff)
            gevent.sleep(backoff)
            backoff = min(backoff * 2, 30)

    def periodic(self):
        while True:
            gevent.sleep(RECONCILE_EVERY)
            self.once()

    def run_background(self):
        self.greenlets = [gevent.spawn(self.watch), gevent.spawn(self.periodic)]

    def shutdown(self):
        for greenlet in self.greenlets:
            greenlet.kill(block=False)
