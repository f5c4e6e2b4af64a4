"""What happens on Start, Stop and Remove: Desktops joins users, the catalog, the database
and an Engine.

One desktop per (person, desktop type). Starting is idempotent and returns at once: the
row is claimed (MAX_DESKTOPS counted and the start reserved in one transaction, so
simultaneous starts never overshoot it), then a start job in a background greenlet pulls
the image if needed, creates or resumes the container through the engine, and waits
until the desktop answers on its port. Each desktop has its own lock: double clicks,
several tabs and a second device join the running job instead of starting a second
container. Stop keeps the container and its files; remove deletes the container, the home
volume stays.

Reconciling with the engine is reconcile.py's; what cleanup stops and removes,
iservdesk/cleanup.py's; the JSON the API shows, web/api.py's.
"""

import collections
import datetime
import logging
import secrets
import time

import gevent
import gevent.lock

from .. import db, metrics, proxy
from ..errors import (ContainerTaken, DesktopNotFound, DesktopNotRunning, IServDeskError, NameTaken,
                      NodeUnavailable, PortTaken, StartFailed, StartTimeout, TooManyDesktops)
from . import ACTIVE, DESKTOP, HALTED, LABEL, OWNER, TYPE, USER, Status
from .engine import ContainerExists, DesktopSpec
from .homes import Homes, free_name, owned_by
from .queue import StartQueue
from .reconcile import Reconciler

log = logging.getLogger(__name__)

READY_POLL = 0.05  # seconds between readiness probes (a refused loopback connect is cheap)
ACCESS_WRITE_INTERVAL = datetime.timedelta(minutes=1)


class Desktops:
    """The desktop lifecycle. Methods called from requests take the current user's row;
    they return Desktop rows and raise IServDeskError subclasses with HTTP statuses."""

    def __init__(self, config, catalog, engine, database, bus, clock=db.utcnow):
        self.config = config
        self.catalog = catalog
        self.engine = engine
        self.database = database
        self.bus = bus
        self.clock = clock
        self.labels = {LABEL + "installation": db.installation_id(database)}
        self.homes = Homes(engine, database, config.container_prefix)
        self.reconciler = Reconciler(self)
        self.locks = collections.defaultdict(gevent.lock.RLock)
        self.jobs = {}  # desktop name -> greenlet starting it
        self.claimed = set()  # desktop names marked starting whose job is about to be spawned
        self.progress = {}  # desktop name -> percent while pulling
        self.queue = StartQueue(config.start_concurrency, self._queue_changed)
        # Called as hook(row, home volume, image) when a new container's home is chosen,
        # before it is created (handouts.py puts what the owner's classes handed out there).
        self.home_hooks = []

    def container_name(self, name):
        return "%s-%s" % (self.config.container_prefix, name)

    def url(self, row):
        return "%s/desktop/%s/" % (self.config.public_url, row.name)

    def busy(self):
        """Names of the desktops whose start is under way in this process."""
        return set(self.jobs) | self.claimed

    def publish(self, row):
        """Tell subscribers (web/api.py's event streams) what `row` looks like now."""
        self.bus.publish({"owner": row.user_id, "view": self.view(row)})

    def view(self, row):
        """What the API may show of a desktop, as plain values (web/api.py shapes the JSON).
        For a running desktop also when cleanup will stop it as unused, and when its owner
        is warned (IDLE_WARNING), in seconds from now (so that no clock but ours counts)."""
        idle_stop_in = idle_warning_in = None
        if row.status == Status.RUNNING:
            stop_at = last_used_at(row) + self.config.idle_timeout
            idle_stop_in = max(0, round((stop_at - self.clock()).total_seconds()))
            if self.config.idle_warning is not None:
                idle_warning_in = max(0, idle_stop_in - round(self.config.idle_warning.total_seconds()))
        return {"id": row.id, "name": row.name, "desktop_type": row.desktop_type,
                "status": str(row.status), "progress": self.progress.get(row.name), "message": row.message,
                "url": self.url(row), "created_at": row.created_at, "started_at": row.started_at,
                "last_access_at": row.last_access_at, "owner": row.user.username,
                "queue_position": self.queue.position(row.name),
                "owner_name": row.user.display_name, "container_id": row.container_id,
                "container_name": self.container_name(row.name),
                "host_port": row.host_port, "idle_stop_in": idle_stop_in, "idle_warning_in": idle_warning_in}

    def rows_of(self, user):
        return {row.desktop_type: row for row in db.Desktop.select().where(db.Desktop.user == user)}

    def find(self, user, slug):
        row = db.Desktop.get_or_none((db.Desktop.user == user) & (db.Desktop.desktop_type == slug))
        if row is None:
            raise DesktopNotFound("You have no %s desktop." % slug)
        return row

    def _set(self, row, **fields):
        """Update a row's fields in one short write and tell subscribers."""
        if fields.get("status") in HALTED and row.status != fields["status"]:
            # iservdesk cleanup's REMOVE_STOPPED_AFTER counts from here.
            fields.setdefault("stopped_at", self.clock())
        for name, value in fields.items():
            setattr(row, name, value)
        with db.write(self.database):
            row.save(only=[getattr(db.Desktop, name) for name in fields])
        self.publish(row)

    # -- start --

    def start(self, user, desktop_type):
        """Make sure the user's desktop of this type runs; returns its row at once.

        Idempotent: a running desktop is returned untouched, a starting one keeps its
        job, a stopped one is resumed with its files, a missing one is created. Raises
        TooManyDesktops (429) when MAX_DESKTOPS desktops are active already.
        """
        row = self._row_for(user, desktop_type.slug)
        with self.locks[row.name]:
            now = self.clock()
            # A refused start of the same desktop may have deleted a row it had just made.
            row = db.Desktop.get_or_none(db.Desktop.id == row.id) or self._row_for(user, desktop_type.slug)
            row.user = user
            job = self.jobs.get(row.name)
            if job is not None and not job.dead:
                return row
            container = self.engine.inspect(row.container_id) if row.container_id else None
            if container is not None and container.running and row.status == Status.RUNNING:
                self.record_access(row, now)
                return row
            if container is not None and container.lost:
                raise NodeUnavailable(detail="the node %s of %s does not answer" % (container.node_name, row.name))
            # From the claim until its job exists, the reconciler must not take the row
            # (starting, no container, no job) for a start that died with an earlier process.
            self.claimed.add(row.name)
            try:
                try:
                    previous, admitted = self._claim(row)
                except TooManyDesktops:
                    self._forget_unstarted(row)
                    raise
                try:
                    # A new container needs a port: reserve it now, so a full range is a 503 at once.
                    reservation = self._reserve(row, desktop_type) if container is None else None
                    if container is not None and not container.running:
                        self.engine.check_room(desktop_type.memory, self._home_node(row.home_volume))
                except BaseException:
                    self._unclaim(row, previous)
                    raise
                self.publish(row)
                metrics.DESKTOP_STARTS.inc(desktop_type.slug)
                self.jobs[row.name] = gevent.spawn(self._run_start, row.id, desktop_type, container,
                                                   reservation, admitted)
            finally:
                self.claimed.discard(row.name)
            return row

    def _row_for(self, user, slug):
        """The user's row for desktop type `slug`, made (status new) when missing."""
        with db.write(self.database):
            row = db.Desktop.get_or_none((db.Desktop.user == user) & (db.Desktop.desktop_type == slug))
            if row is None:
                name = free_name(user, slug, lambda name: db.Desktop.get_or_none(db.Desktop.name == name)
                                 is not None)
                if name is None:
                    raise NameTaken(detail="every name for the %s desktop of %s (%s) is taken"
                                    % (slug, user.username, user.uuid))
                row = db.Desktop.create(user=user, desktop_type=slug, name=name, status=Status.NEW,
                                        created_at=self.clock())
        return row

    def _claim(self, row):
        """Mark the desktop starting (or queued, when every start slot is taken), counting it
        against MAX_DESKTOPS in the same transaction.

        The count and the reservation are one step (BEGIN IMMEDIATE, no engine call inside):
        of simultaneous starts, each sees the ones before it, in this process and in others.
        A desktop that is active already counts already. Returns the fields to restore
        (_unclaim) if the start fails before its job runs, and whether it holds a start slot
        already; raises TooManyDesktops.
        """
        now = self.clock()
        with db.write(self.database):
            fresh = db.Desktop.get_by_id(row.id)
            full = fresh.status not in ACTIVE and db.Desktop.select().where(
                db.Desktop.status.in_(ACTIVE)).count() >= self.config.max_desktops
            if not full:
                admitted = self.queue.enter(row.name, row.user_id, now)
                status = Status.STARTING if admitted else Status.QUEUED
                try:
                    # A start of the owner's own is no preparation's (preparations.py marks its own).
                    db.Desktop.update(status=status, message="", queued_at=None if admitted else now,
                                      prepared_at=None, preparation_id=None).where(db.Desktop.id == row.id).execute()
                except BaseException:
                    self.queue.leave(row.name)
                    raise
        if full:
            log.warning("start of %s refused: MAX_DESKTOPS (%d) reached", row.name, self.config.max_desktops)
            raise TooManyDesktops()
        previous = {"status": fresh.status, "message": fresh.message}
        row.status, row.message, row.queued_at = status, "", None if admitted else now
        row.prepared_at = row.preparation_id = None
        if not admitted:
            log.info("start of %s waits for a slot (place %d)", row.name, self.queue.position(row.name))
        return previous, admitted

    def _forget_unstarted(self, row):
        """Delete a row made for this start that never got further (status new, no container),
        so a refused first start leaves the desktop "absent", not "starting", for its owner."""
        with db.write(self.database):
            db.Desktop.delete().where((db.Desktop.id == row.id) & (db.Desktop.status == Status.NEW)
                                      & db.Desktop.container_id.is_null()).execute()

    def _unclaim(self, row, previous):
        """Undo _claim() for a start that failed before its job ran (no port, engine down)."""
        self.queue.leave(row.name)
        with db.write(self.database):
            db.Desktop.update(**previous, queued_at=None).where(
                (db.Desktop.id == row.id) & (db.Desktop.status.in_([Status.STARTING, Status.QUEUED]))).execute()
        row.status, row.message = previous["status"], previous["message"]

    def _queue_changed(self, names):
        """Places in the start queue moved: tell the owners of these desktops."""
        if names:
            for row in db.Desktop.select(db.Desktop, db.User).join(db.User).where(db.Desktop.name.in_(names)):
                self.publish(row)

    def resume_queued(self):
        """After a restart: the starts that were waiting for a slot (status queued) wait
        again, in their old order; the reconciler then finds them under way. A desktop
        type gone from the catalog meanwhile ends its start with an error."""
        rows = list(db.Desktop.select(db.Desktop, db.User).join(db.User)
                    .where(db.Desktop.status == Status.QUEUED).order_by(db.Desktop.queued_at, db.Desktop.id))
        resumed = 0
        for row in rows:
            desktop_type = self.catalog.types.get(row.desktop_type)
            if desktop_type is None:
                self._set(row, status=Status.ERROR, queued_at=None,
                          message="This desktop type is no longer offered.")
                continue
            try:
                container = self.engine.inspect(row.container_id) if row.container_id else None
                reservation = self._reserve(row, desktop_type) if container is None else None
            except IServDeskError as error:
                log.warning("queued start of %s cannot be resumed: %s", row.name, error.detail)
                self._set(row, status=Status.ERROR, queued_at=None, message=error.public_message)
                continue
            admitted = self.queue.enter(row.name, row.user_id, row.queued_at or self.clock())
            if admitted:
                self._set(row, status=Status.STARTING, queued_at=None)
            self.jobs[row.name] = gevent.spawn(self._run_start, row.id, desktop_type, container,
                                               reservation, admitted)
            resumed += 1
        if rows:
            log.info("resumed %d queued starts in their order (%d could not be)", resumed, len(rows) - resumed)

    def _run_start(self, row_id, desktop_type, container, reservation, admitted=True):
        """The start job: wait for a start slot, pull, create or start, wait for readiness.
        Errors end in status error; the slot goes to the next start in any case."""
        with self.database.connection_context():
            row = db.Desktop.select(db.Desktop, db.User).join(db.User).where(db.Desktop.id == row_id).first()
            try:
                if not admitted:
                    self.queue.wait(row.name)
                    self._set(row, status=Status.STARTING, queued_at=None)
                started = time.monotonic()
                if container is None:
                    container = self._create(row, desktop_type, reservation)
                elif not container.running:
                    container = self._resume(row, desktop_type, container)
                self._set(row, host_port=container.host_port, address=container.address)
                self._wait_ready(row)
                now = self.clock()
                self._set(row, status=Status.RUNNING, message="", started_at=now, last_access_at=now)
                metrics.DESKTOP_START_SECONDS.observe(time.monotonic() - started)
                log.info("desktop %s is running on %s:%s", row.name, *proxy.endpoint(row.target))
            except IServDeskError as error:
                metrics.DESKTOP_START_FAILURES.inc(desktop_type.slug, error.code)
                log.warning("desktop %s failed to start: %s", row.name, error.detail)
                self.progress.pop(row.name, None)
                self._set(row, status=Status.ERROR, message=error.public_message)
            except gevent.GreenletExit:
                raise
            except Exception:
                metrics.DESKTOP_START_FAILURES.inc(desktop_type.slug, "internal_error")
                log.exception("desktop %s failed to start", row.name)
                self._set(row, status=Status.ERROR, message="Starting the desktop failed unexpectedly.")
            finally:
                self.jobs.pop(row.name, None)
                self.queue.leave(row.name)
                self.engine.release(reservation)

    def _resume(self, row, desktop_type, container):
        """Start a stopped container again (its files are in it and in the home volume). If
        its port stays taken, it is replaced by a new one (the home carries the files over)."""
        try:
            return self.engine.start(container.id)
        except PortTaken:
            log.warning("the port of %s stays taken; replacing its container", row.name)
            self.engine.remove(container.id)
            self._set(row, container_id=None, host_port=None, address=None, secret=None, view_secret=None)
            return self._create(row, desktop_type)

    def _create(self, row, desktop_type, reservation=None):
        """Pull if needed, then create and start the desktop's container; its Container."""
        image = desktop_type.image
        if not self.engine.has_image(image):
            self._set(row, status=Status.PULLING, message="")
            log.info("pulling %s for %s", image, row.name)
            last = [0.0]

            def progress(percent):
                # At most five events a second, only when the number grows.
                if percent > self.progress.get(row.name, 0) and time.monotonic() - last[0] > 0.2:
                    last[0] = time.monotonic()
                    self.progress[row.name] = percent
                    self.publish(row)
            self.progress[row.name] = 0
            self.engine.pull(image, progress)
            self.progress.pop(row.name, None)
            self._set(row, status=Status.STARTING)
        secret = self.config.vnc_password or secrets.token_urlsafe(24)
        view_secret = secrets.token_urlsafe(24)
        labels = {**self.labels, OWNER: row.user.uuid, USER: row.user.username,
                  TYPE: desktop_type.slug, DESKTOP: row.name}
        home = self.homes.choose(row, labels)
        node = self._home_node(home)
        for hook in self.home_hooks:
            try:
                hook(row, home, image)
            except Exception:  # what a hook adds must never keep a desktop from starting
                log.exception("preparing the home %s of %s failed", home, row.name)
        spec = DesktopSpec(
            name=self.container_name(row.name), image=image, container_port=self.config.kasm_container_port,
            environment={**desktop_type.environment, "VNC_PW": secret, "VNC_VIEW_ONLY_PW": view_secret},
            labels=labels, home=home, shm_size=desktop_type.shm_size,
            memory=desktop_type.memory, cpus=desktop_type.cpus, pids=desktop_type.pids, node=node)
        try:
            container = self.engine.create(spec, reservation)
        except ContainerExists:
            # Created outside this job (another process, or by hand): adopt it if it is ours.
            container = next((found for found in self.engine.list(self.labels) if found.name == spec.name),
                             None)
            if container is None or not owned_by(container, row.user):
                log.warning("container %s is named for desktop %s but belongs to another person (owner %s, "
                            "not %s); left alone", spec.name, row.name,
                            container.labels.get(OWNER) if container else "not iservdesk", row.user.uuid)
                raise ContainerTaken(detail="container %s is not desktop %s's"
                                     % (spec.name, row.name)) from None
            self._set(row, container_id=container.id, host_port=container.host_port, address=container.address,
                      secret=container.environment.get("VNC_PW") or row.secret,
                      view_secret=container.environment.get("VNC_VIEW_ONLY_PW"))
            return container if container.running else self.engine.start(container.id)
        self._set(row, container_id=container.id, host_port=container.host_port, address=container.address,
                  secret=secret, view_secret=view_secret)
        log.info("created container %s for %s", spec.name, row.user.username)
        if container.node and not node and self.engine.pins_homes:
            self._pin(home, container)
        return container

    def _reserve(self, row, desktop_type):
        """engine.reserve() for a new container of `row` (on the node of its home, if that
        is pinned to one)."""
        return self.engine.reserve(desktop_type.memory, self._home_node(row.home_volume))

    @staticmethod
    def _home_node(volume):
        """The Swarm node that holds the home `volume`, or "" (anywhere)."""
        pinned = db.HomeNode.get_or_none(db.HomeNode.volume == volume) if volume else None
        return pinned.node if pinned else ""

    def _pin(self, home, container):
        """Remember the node the home was made on: later desktops with it must run there."""
        with db.write(self.database):
            db.HomeNode.insert(volume=home, node=container.node, hostname=container.node_name,
                               pinned_at=self.clock()).on_conflict_ignore().execute()
        log.info("home %s is on node %s from now on", home, container.node_name or container.node)

    def _wait_ready(self, row):
        deadline = time.monotonic() + self.config.desktop_ready_timeout
        while time.monotonic() < deadline:
            if proxy.answers(row.target):
                return
            container = self.engine.inspect(row.container_id)
            if container is None or container.state not in ("running", "created", "restarting"):
                raise StartFailed(detail="desktop %s stopped while starting (container %s)"
                                  % (row.name, container.state if container else "removed"))
            gevent.sleep(READY_POLL)
        raise StartTimeout(detail="desktop %s did not answer within %d seconds"
                           % (row.name, self.config.desktop_ready_timeout))

    # -- stop, remove, use --

    def _cancel_job(self, name):
        job = self.jobs.pop(name, None)
        if job is not None and not job.dead:
            job.kill()
        self.queue.leave(name)  # also when the job was killed before it ran (no finally then)
        self.progress.pop(name, None)

    def stop(self, row, actor):
        """Stop the desktop's container (kept, with its files); idempotent."""
        with self.locks[row.name]:
            self._cancel_job(row.name)
            if row.container_id:
                self.engine.stop(row.container_id)
            self._set(row, status=Status.STOPPED if row.container_id else Status.REMOVED, message="", queued_at=None)
            with db.write(self.database):
                db.record("desktop.stop", actor=actor, target=row.name)
            log.info("%s stopped desktop %s", actor, row.name)
        return row

    def remove(self, row, actor):
        """Remove the container; the home volume stays. Idempotent."""
        with self.locks[row.name]:
            self._cancel_job(row.name)
            if row.container_id:
                self.engine.remove(row.container_id)
            self._set(row, status=Status.REMOVED, message="", container_id=None, host_port=None, address=None,
                      secret=None, view_secret=None, queued_at=None)
            with db.write(self.database):
                db.record("desktop.remove", actor=actor, target=row.name)
            log.info("%s removed desktop %s (home volume kept)", actor, row.name)
        return row

    def stop_all(self, actor, user=None):
        """Stop every active desktop (of `user` only, if given); the number stopped."""
        query = db.Desktop.select().where(db.Desktop.status.in_(ACTIVE))
        rows = list(query if user is None else query.where(db.Desktop.user == user))
        for row in rows:
            self.stop(row, actor)
        return len(rows)

    def record_access(self, row, now):
        """Remember the desktop was used; writes at most once a minute per desktop (or a
        tenth of IDLE_TIMEOUT, when that is shorter)."""
        interval = max(datetime.timedelta(seconds=1), min(ACCESS_WRITE_INTERVAL, self.config.idle_timeout / 10))
        if row.prepared_at is not None:  # a prepared desktop, opened by its owner: no longer unused
            self._set(row, last_access_at=now, prepared_at=None)
        elif row.last_access_at is None or now - row.last_access_at >= interval:
            self._set(row, last_access_at=now)

    def keep(self, row, now):
        """The owner answered the idle warning: the desktop counts as used now."""
        if row.status != Status.RUNNING:
            raise DesktopNotRunning()
        self._set(row, last_access_at=now, prepared_at=None)
        log.info("%s keeps desktop %s running", row.user.username, row.name)
        return row

    # -- the portal's background work --

    def reconcile_soon(self):
        """Reconcile in a moment (once for a burst of calls), e.g. after a desktop stopped
        answering the proxy."""
        self.reconciler.soon()

    def run_background(self):
        self.resume_queued()  # before the first reconcile, which would take them for dead starts
        self.reconciler.run_background()

    def shutdown(self):
        self.reconciler.shutdown()
        for greenlet in list(self.jobs.values()):
            greenlet.kill(block=False)
        self.engine.close()


def last_used_at(row):
    """When the desktop was last used: the proxy's last access, else its start or creation."""
    return row.last_access_at or row.started_at or row.created_at

