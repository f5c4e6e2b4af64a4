"""Prepared desktops: a class's desktops of one type, started before the lesson begins.

A teacher (for their classes) or an admin prepares a class for a desktop type, now or at a
time given (7:50 for the 8:00 lesson). When it is due, the desktop of that type is started
for every member of the class iservdesk knows who may use the type, each with their own
home, through the start queue (desktops/queue.py), so thirty boots do not thrash the host.
A member whose desktop of that type is already active is left alone. A student who then
clicks "Open" joins the running desktop at once; desktops nobody opened are stopped by
iservdesk cleanup after PREPARED_UNUSED_TIMEOUT (files kept). A preparation can be
cancelled: before it ran it never runs; after, its desktops that were not opened yet stop.

Preparations are rows (they survive restarts); the portal runs the due ones every
CHECK_EVERY seconds (run_due, also called by tests with the time they choose).
"""

import logging

import peewee

from . import background, db
from .desktops import ACTIVE, BUSY
from .errors import IServDeskError

log = logging.getLogger(__name__)

CHECK_EVERY = 15  # seconds between looks for due preparations


class Preparations:
    def __init__(self, desktops, classroom, policy, database, clock):
        self.desktops = desktops
        self.classroom = classroom
        self.policy = policy
        self.database = database
        self.clock = clock
        self.loop = None

    def plan(self, identity, group, desktop_type, run_at=None):
        """Prepare `group` (a class `identity` sees) for `desktop_type` at `run_at` (None or
        a time past: now). Audited; a preparation due now runs at once. Returns its row."""
        now = self.clock()
        run_at = max(run_at or now, now)
        with db.write(self.database):
            preparation = db.Preparation.create(group_name=group, desktop_type=desktop_type.slug, run_at=run_at,
                                                created_by=identity.user.username, created_at=now)
            db.record("class.prepare", actor=identity.user.username, target=group, desktop_type=desktop_type.slug,
                      run_at=run_at.isoformat(), preparation=preparation.id)
        log.info("%s prepares class %s for %s at %s", identity.user.username, group, desktop_type.slug,
                 run_at.isoformat())
        if run_at <= now:
            self.run(preparation)
        return db.Preparation.get_by_id(preparation.id)

    def cancel(self, identity, preparation):
        """Cancel: one not yet run never runs; of one that ran, the desktops not opened yet
        stop (files kept). Audited. Returns the number of desktops stopped."""
        now = self.clock()
        stopped = 0
        with db.write(self.database):
            db.Preparation.update(cancelled_at=now).where(db.Preparation.id == preparation.id).execute()
            db.record("class.prepare.cancel", actor=identity.user.username, target=preparation.group_name,
                      preparation=preparation.id)
        rows = db.Desktop.select(db.Desktop, db.User).join(db.User).where(
            (db.Desktop.preparation_id == preparation.id) & db.Desktop.prepared_at.is_null(False)
            & db.Desktop.status.in_(list(ACTIVE)))
        for row in rows:
            self.desktops.stop(row, identity.user.username)
            stopped += 1
        log.info("%s cancelled the preparation %d of class %s (%d desktops stopped)", identity.user.username,
                 preparation.id, preparation.group_name, stopped)
        return stopped

    def run_due(self, now=None):
        """Run every preparation due at `now` (default: the clock's) that has not run and was
        not cancelled. Returns how many ran."""
        now = now or self.clock()
        due = list(db.Preparation.select().where(
            (db.Preparation.run_at <= now) & db.Preparation.started_at.is_null()
            & db.Preparation.cancelled_at.is_null()).order_by(db.Preparation.run_at))
        for preparation in due:
            self.run(preparation)
        return len(due)

    def run(self, preparation):
        """Start the type for every known member allowed it whose desktop of that type is not
        active; mark the ones started as prepared. The outcome is kept on the row."""
        now = self.clock()
        with db.write(self.database):  # taken first: a second portal process must not run it too
            taken = db.Preparation.update(started_at=now).where(
                (db.Preparation.id == preparation.id) & db.Preparation.started_at.is_null()
                & db.Preparation.cancelled_at.is_null()).execute()
        if not taken:
            return
        desktop_type = self.desktops.catalog.types.get(preparation.desktop_type)
        started, skipped = [], []
        for user in self.classroom.members(preparation.group_name):
            why = None
            if desktop_type is None:
                why = "type_gone"
            elif not desktop_type.may_use(self.policy.memberships(user), self.policy.is_admin(user)):
                why = "not_allowed"
            else:
                row = self.desktops.rows_of(user).get(desktop_type.slug)
                if row is not None and row.status in ACTIVE:
                    why = "already_running"
            if why is None:
                try:
                    row = self.desktops.start(user, desktop_type)
                except IServDeskError as error:
                    why = error.code
                else:
                    with db.write(self.database):
                        db.Desktop.update(prepared_at=now, preparation_id=preparation.id).where(
                            (db.Desktop.id == row.id) & db.Desktop.status.in_(list(BUSY | ACTIVE))).execute()
                    started.append(user.username)
            if why is not None:
                skipped.append({"username": user.username, "why": why})
        with db.write(self.database):
            db.Preparation.update(outcome={"started": started, "skipped": skipped}).where(
                db.Preparation.id == preparation.id).execute()
            db.record("class.prepare.run", actor=preparation.created_by, target=preparation.group_name,
                      preparation=preparation.id, started=len(started), skipped=len(skipped))
        log.info("preparation %d of class %s: %d desktops started, %d skipped", preparation.id,
                 preparation.group_name, len(started), len(skipped))

    def listing(self, group=None):
        """The preparations (of `group`, else all), newest first, as plain values."""
        query = db.Preparation.select().order_by(db.Preparation.run_at.desc(), db.Preparation.id.desc())
        if group is not None:
            query = query.where(db.Preparation.group_name == group)
        preparations = list(query.limit(50))
        # Opened: started by it and used by the owner since (one query, not one per row:
        # the class page asks every 5 s).
        opened = dict(db.Desktop.select(db.Desktop.preparation_id, peewee.fn.COUNT(db.Desktop.id))
                      .where(db.Desktop.preparation_id.in_([item.id for item in preparations])
                             & db.Desktop.prepared_at.is_null())
                      .group_by(db.Desktop.preparation_id).tuples())
        result = []
        for preparation in preparations:
            state = ("cancelled" if preparation.cancelled_at else "done" if preparation.started_at else "scheduled")
            result.append({
                "id": preparation.id, "group": preparation.group_name, "desktop_type": preparation.desktop_type,
                "run_at": preparation.run_at.isoformat(), "created_by": preparation.created_by,
                "state": state, "started": len(preparation.outcome.get("started", [])),
                "skipped": preparation.outcome.get("skipped", []), "opened": opened.get(preparation.id, 0)})
        return result

    # -- the portal's background work --

    def run_background(self):
        self.loop = background.every(CHECK_EVERY, self.run_due, self.database, "running due preparations")

    def shutdown(self):
        if self.loop is not None:
            self.loop.kill(block=False)
