"""Desktops: who has which container, in what state; start, stop, remove; reconciliation.

One desktop per (user, desktop type), named <username>-<type>. The database row is what
the portal knows; Docker is the truth: reconcile() repairs the rows from the labelled
containers, at start-up, on every engine event and once a minute, and logs each repair.

Starting runs in a background greenlet per desktop (pull if needed, create or start,
wait until port 6901 answers), so API calls return at once with the status. Each
desktop has its own lock: double clicks and several tabs join the running job instead
of starting a second container. MAX_DESKTOPS is counted and the new start reserved in
one database transaction, so simultaneous starts of different desktops (which those
locks do not serialise) never overshoot it. Host ports are handed out under one lock,
skipping every port any container on the engine holds.

Desktops belong to a person, not to a name: rows, containers and home volumes are keyed
on (and labelled with, de.iservdesk.owner) the user's uuid. IServ may give an account
name to a new person; that person gets desktops and homes of their own (named with a
short id of their uuid where the plain name is taken), never the predecessor's, whose
home volumes are kept and listed for the admin (homes()). Containers run on the
installation's own bridge network, on which they cannot reach each other.
"""

import collections
import datetime
import hashlib
import logging
import secrets
import socket
import ssl
import time

import gevent
import gevent.lock

from .. import db, metrics
from ..errors import DesktopError, IServDeskError
from . import ContainerSpec, NameTaken, PortTaken

log = logging.getLogger(__name__)

LABEL = "de.iservdesk."
ACTIVE = ("pulling", "starting", "running")
BUSY = ("pulling", "starting")  # a start job runs (in the portal's process, maybe not ours)
HALTED = ("stopped", "error")  # not running; the container, if any, waits to be resumed
READY_POLL = 0.05  # seconds between readiness probes (a refused loopback connect is cheap)
RECONCILE_EVERY = 60  # seconds
EVENT_SETTLE = 0.3  # seconds between an engine event and the reconcile it causes
ACCESS_WRITE_INTERVAL = datetime.timedelta(minutes=1)
PORT_ATTEMPTS = 5
RESUME_ATTEMPTS = 4


class DesktopNotFound(IServDeskError):
    status = 404
    code = "desktop_not_found"
    public_message = "There is no such desktop."


class TooManyDesktops(IServDeskError):
    status = 429
    code = "too_many_desktops"
    public_message = ("All desktops of this server are in use right now. Please try again in a "
                      "few minutes, or stop a desktop you no longer need.")


class HomeTaken(DesktopError):
    status = 409
    code = "home_taken"
    public_message = ("Your home folder could not be set up because its name is taken by another "
                      "account. Please tell your IT admin.")


class NoFreePort(DesktopError):
    code = "no_free_port"
    public_message = ("The server has no free port for another desktop. Please tell your IT "
                      "admin (HOST_PORT_RANGE is full).")


def desktop_name(username, slug):
    return "%s-%s" % (username, slug)


def short_id(uuid):
    """Eight hex digits that stand for a user's uuid in names: stable, and unlike the account
    name never handed on to someone else."""
    return hashlib.sha256(uuid.encode()).hexdigest()[:8]


def answers(port, timeout=2.0):
    """True when https://127.0.0.1:<port>/ answers with an HTTP status (any, 401 included)."""
    context = ssl.create_default_context()
    # Kasm images make a new self-signed certificate at every start; loopback only.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            with context.wrap_socket(raw) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return tls.recv(16).startswith(b"HTTP/1.")
    except (OSError, ssl.SSLError):
        return False


class Desktops:
    """The desktop lifecycle. Methods called from requests take the current user's row;
    they return Desktop rows and raise IServDeskError subclasses with HTTP statuses."""

    def __init__(self, config, catalog, spawner, database, bus, clock=db.utcnow):
        self.config = config
        self.catalog = catalog
        self.spawner = spawner
        self.database = database
        self.bus = bus
        self.clock = clock
        self.installation = db.installation_id(database)
        self.labels = {LABEL + "installation": self.installation}
        self.locks = collections.defaultdict(gevent.lock.RLock)
        self.port_lock = gevent.lock.RLock()
        self.reserved_ports = set()
        self.jobs = {}  # desktop name -> greenlet starting it
        self.claimed = set()  # desktop names marked starting whose job is about to be spawned
        self.progress = {}  # desktop name -> percent while pulling
        self.watcher = None
        self._soon = None

    # -- naming --

    def container_name(self, name):
        return "%s-%s" % (self.config.container_prefix, name)

    def volume_name(self, name):
        return "%s-home-%s" % (self.config.container_prefix, name)

    def network_name(self):
        return "%s-desktops" % self.config.container_prefix

    def url(self, row):
        return "%s/desktop/%s/" % (self.config.public_url, row.name)

    # -- views --

    def to_json(self, row, admin=False):
        data = {
            "id": row.id,
            "name": row.name,
            "desktop_type": row.desktop_type,
            "status": row.status,
            "progress": self.progress.get(row.name),
            "message": row.message,
            "url": self.url(row),
            "created_at": row.created_at.isoformat(),
            "started_at": row.started_at.isoformat() if row.started_at else None,
            "last_access_at": row.last_access_at.isoformat() if row.last_access_at else None,
        }
        if admin:
            data.update(owner=row.user.username, owner_name=row.user.display_name,
                        container_id=(row.container_id or "")[:12] or None, host_port=row.host_port)
        return data

    def publish(self, row):
        self.bus.publish({"owner": row.user_id, "desktop": self.to_json(row),
                          "admin": self.to_json(row, admin=True)})

    def rows_of(self, user):
        return {row.desktop_type: row for row in db.Desktop.select().where(db.Desktop.user == user)}

    def find(self, user, slug):
        row = db.Desktop.get_or_none((db.Desktop.user == user) & (db.Desktop.desktop_type == slug))
        if row is None:
            raise DesktopNotFound("You have no %s desktop." % slug)
        return row

    def statistics(self):
        rows = list(db.Desktop.select().where(db.Desktop.status != "removed"))
        running = [row for row in rows if row.status == "running"]
        return {"total": len(rows), "running": len(running),
                "active_users": len({row.user_id for row in running})}

    def homes(self):
        """Every home volume named under CONTAINER_PREFIX, for the admin: a list of dicts with
        name, created_at, owner (uuid, or None), username and display_name (from the users
        table, else the volume's label), owner_known (the uuid has signed in here), desktop
        (the owner's desktop that mounts it), username_reused (the owner's account name has
        since signed in with another uuid) and status: in_use (its owner's desktop mounts
        it, and the name is still theirs) or kept (nobody's desktop does; the files stay
        until an admin removes the volume). No sizes: the engine computes those only by
        walking every volume (`docker system df -v`). Raises DesktopError (engine down)."""
        volumes = self.spawner.volumes(self.config.container_prefix + "-home-")
        users = {user.uuid: user for user in db.User.select()}
        latest = {}  # account name -> the account that signed in with it last
        for user in users.values():
            held = latest.get(user.username)
            if held is None or _signed_in_at(user) > _signed_in_at(held):
                latest[user.username] = user
        rows = list(db.Desktop.select(db.Desktop, db.User).join(db.User))
        mounting = {row.home_volume: row for row in rows if row.home_volume}
        # Rows of older releases record no volume yet: theirs is the one of their name.
        mounting.update({self.volume_name(row.name): row for row in rows
                         if not row.home_volume and self.volume_name(row.name) not in mounting})
        homes = []
        for volume in volumes:
            owner = volume.labels.get(LABEL + "owner")
            row = mounting.get(volume.name)
            if row is not None and owner not in (None, row.user.uuid):
                row = None  # named like that desktop's home, but another person's
            owner = owner or (row.user.uuid if row is not None else None)
            user = users.get(owner)
            reused = user is not None and latest[user.username].uuid != user.uuid
            homes.append({
                "name": volume.name, "created_at": volume.created_at or None, "owner": owner,
                "username": user.username if user else volume.labels.get(LABEL + "user"),
                "display_name": user.display_name if user else "",
                "owner_known": user is not None, "desktop": row.name if row is not None else None,
                "username_reused": reused,
                "status": "in_use" if row is not None and not reused else "kept"})
        return homes

    # -- lifecycle --

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

    def start(self, user, desktop_type):
        """Make sure the user's desktop of this type runs; returns its row at once.

        Idempotent: a running desktop is returned untouched, a starting one keeps its
        job, a stopped one is resumed with its files, a missing one is created. Raises
        TooManyDesktops (429) when MAX_DESKTOPS desktops are active already, NoFreePort (503).
        """
        row = self._row_for(user, desktop_type.slug)
        with self.locks[row.name]:
            now = self.clock()
            row = db.Desktop.get_by_id(row.id)
            row.user = user
            job = self.jobs.get(row.name)
            if job is not None and not job.dead:
                return row
            info = self.spawner.poll(row.container_id) if row.container_id else None
            if info is not None and info.state == "running" and row.status == "running":
                self.record_access(row, now)
                return row
            # From the claim until its job exists, reconcile() must not take the row (starting,
            # no container, no job) for a start that died with an earlier process.
            self.claimed.add(row.name)
            try:
                previous = self._claim(row)
                try:
                    # A new container needs a port: reserve it now, so a full range is a 503 at once.
                    port = self._reserve_port() if info is None else None
                except BaseException:
                    self._unclaim(row, previous)
                    raise
                self.publish(row)
                metrics.DESKTOP_STARTS.inc(desktop_type.slug)
                self.jobs[row.name] = gevent.spawn(self._run_start, row.id, desktop_type, info, port)
            finally:
                self.claimed.discard(row.name)
            return row

    def _row_for(self, user, slug):
        """The user's row for desktop type `slug`, made (status new) when missing."""
        with db.write(self.database):
            row = db.Desktop.get_or_none((db.Desktop.user == user) & (db.Desktop.desktop_type == slug))
            if row is None:
                name = self._free_name(user, slug)
                if name is None:
                    raise IServDeskError("The desktop name %s is taken by another account. Please tell "
                                         "your IT admin." % desktop_name(user.username, slug), status=409,
                                         code="name_taken")
                row = db.Desktop.create(user=user, desktop_type=slug, name=name, status="new",
                                        created_at=self.clock())
        return row

    def _free_name(self, user, slug):
        """The name of a new desktop row of `user`, or None when none is free; call inside
        db.write.

        <username>-<type>, unless a row of someone else has that name: IServ handed the
        account name on (the predecessor's desktop keeps its name, its container and its
        files), and the new person gets <username>-<type>-<short id of their uuid>.
        """
        base = desktop_name(user.username, slug)
        for name in (base, "%s-%s" % (base, short_id(user.uuid))):
            if db.Desktop.get_or_none(db.Desktop.name == name) is None:
                if name != base:
                    log.warning("desktop name %s belongs to another account; %s (%s) gets %s",
                                base, user.username, user.uuid, name)
                return name
        return None

    def _claim(self, row):
        """Mark the desktop starting, counting it against MAX_DESKTOPS in the same transaction.

        The count and the reservation are one step (BEGIN IMMEDIATE, no engine call inside):
        of simultaneous starts, each sees the ones before it, in this process and in others.
        A desktop that is active already counts already. Returns the fields to restore
        (_unclaim) if the start fails before its job runs; raises TooManyDesktops.
        """
        with db.write(self.database):
            fresh = db.Desktop.get_by_id(row.id)
            full = fresh.status not in ACTIVE and db.Desktop.select().where(
                db.Desktop.status.in_(ACTIVE)).count() >= self.config.max_desktops
            if not full:
                db.Desktop.update(status="starting", message="").where(db.Desktop.id == row.id).execute()
        if full:
            log.warning("start of %s refused: MAX_DESKTOPS (%d) reached", row.name, self.config.max_desktops)
            raise TooManyDesktops()
        previous = {"status": fresh.status, "message": fresh.message}
        row.status, row.message = "starting", ""
        return previous

    def _unclaim(self, row, previous):
        """Undo _claim() for a start that failed before its job ran (no port, engine down)."""
        with db.write(self.database):
            db.Desktop.update(**previous).where((db.Desktop.id == row.id)
                                                & (db.Desktop.status == "starting")).execute()
        row.status, row.message = previous["status"], previous["message"]

    def _run_start(self, row_id, desktop_type, info, port):
        """The start job: pull, create or start, wait for readiness. Errors end in status error."""
        started = time.monotonic()
        with self.database.connection_context():
            row = db.Desktop.get_by_id(row_id)
            try:
                if info is not None and info.state != "running":
                    self._resume(row, desktop_type, info)
                elif info is None:
                    self._create(row, desktop_type, port)
                self._wait_ready(row)
                now = self.clock()
                self._set(row, status="running", message="", started_at=now, last_access_at=now)
                metrics.DESKTOP_START_SECONDS.observe(time.monotonic() - started)
                log.info("desktop %s is running on 127.0.0.1:%s", row.name, row.host_port)
            except IServDeskError as error:
                metrics.DESKTOP_START_FAILURES.inc(desktop_type.slug, error.code)
                log.warning("desktop %s failed to start: %s", row.name, error)
                self.progress.pop(row.name, None)
                self._set(row, status="error", message=error.public_message)
            except gevent.GreenletExit:
                raise
            except Exception:
                metrics.DESKTOP_START_FAILURES.inc(desktop_type.slug, "internal_error")
                log.exception("desktop %s failed to start", row.name)
                self._set(row, status="error", message="Starting the desktop failed unexpectedly.")
            finally:
                self.jobs.pop(row.name, None)
                self._release_port(port)

    def _resume(self, row, desktop_type, info):
        """Start a stopped container again (its files are in it and in the home volume).

        Docker may report the container's port as still taken for a moment after a stop;
        if it stays taken, the container is replaced by a new one on another port (the
        home volume carries the user's files over). A container made before desktops had a
        network of their own is moved onto it first.
        """
        self._to_network(row, info.id)
        for attempt in range(RESUME_ATTEMPTS):
            try:
                self.spawner.start(info.id)
                return
            except PortTaken:
                gevent.sleep(0.5 * (attempt + 1))
        log.warning("the port of %s stays taken; replacing its container", row.name)
        self.spawner.remove(info.id)
        self._set(row, container_id=None, host_port=None)
        port = self._reserve_port()
        try:
            self._create(row, desktop_type, port)
        finally:
            self._release_port(port)

    def _to_network(self, row, container_id):
        """Put a stopped container on the desktops' network (created when missing), alone."""
        network = self.network_name()
        self.spawner.ensure_network(network, self.labels)
        if self.spawner.move_to_network(container_id, network):
            log.info("moved the container of %s onto the network %s", row.name, network)

    def home_volume(self, row, labels):
        """The name of the volume to mount as the home of `row`'s owner: made (with `labels`,
        which carry the owner's uuid) when missing, and recorded in the row.

        A volume whose owner label names someone else is never mounted: the row gets a
        fresh home under another name (<home>-<short id of the uuid>) and the other person's
        volume stays as it is, listed by homes(). The row's recorded volume comes first, then
        the plain name, then that fresh one; a later start finds the same volume again. The
        owner label decides, not the installation label: after a database reset (a new
        installation id) a person's home is still theirs.

        Volumes without an owner label were made by hand or by a release before labels
        (Docker cannot add a label to an existing volume). Such a volume is taken only by
        the row that already had it: the one of that name that ran before this release
        recorded volumes (started_at set, home_volume not yet), which is whom an older
        release mounted it for. A new row, and so a new person with a recycled name, gets
        a fresh home instead; the choice is recorded in the row, in place of the label.
        """
        owner = row.user.uuid
        plain = self.volume_name(row.name)
        candidates = [row.home_volume] if row.home_volume else []
        candidates += [name for name in (plain, "%s-%s" % (plain, short_id(owner))) if name not in candidates]
        for name in candidates:
            info = self.spawner.volume(name) or self.spawner.create_volume(name, labels)
            labelled = info.labels.get(LABEL + "owner")
            if labelled == owner:
                pass
            elif labelled is None and name == row.home_volume:
                pass  # adopted before, see above
            elif labelled is None and name == plain and row.home_volume is None and row.started_at:
                log.warning("home volume %s has no owner label (an older release); it stays the home "
                            "of %s (%s), who used it", name, row.name, owner)
            else:
                log.warning("home volume %s belongs to %s, not to %s (%s) of desktop %s: not mounted, "
                            "kept", name, labelled or "an unknown owner", row.user.username, owner, row.name)
                continue
            if row.home_volume != name:
                with db.write(self.database):
                    db.Desktop.update(home_volume=name).where(db.Desktop.id == row.id).execute()
                row.home_volume = name
            return name
        log.error("no home volume for desktop %s of %s (%s): %s all belong to others", row.name,
                  row.user.username, owner, ", ".join(candidates))
        raise HomeTaken()

    def _create(self, row, desktop_type, port):
        """Pull if needed, then create and start the container on `port` (reserved)."""
        image = desktop_type.image
        if not self.spawner.has_image(image):
            self._set(row, status="pulling", message="")
            log.info("pulling %s for %s", image, row.name)
            last = [0.0]

            def progress(percent):
                # At most five events a second, only when the number grows.
                if percent > self.progress.get(row.name, 0) and time.monotonic() - last[0] > 0.2:
                    last[0] = time.monotonic()
                    self.progress[row.name] = percent
                    self.publish(row)
            self.progress[row.name] = 0
            self.spawner.pull(image, progress)
            self.progress.pop(row.name, None)
            self._set(row, status="starting")
        secret = self.config.vnc_password or secrets.token_urlsafe(24)
        labels = {**self.labels, LABEL + "owner": row.user.uuid, LABEL + "user": row.user.username,
                  LABEL + "type": desktop_type.slug, LABEL + "desktop": row.name}
        volume = self.home_volume(row, labels)
        network = self.network_name()
        self.spawner.ensure_network(network, self.labels)
        try:
            for attempt in range(PORT_ATTEMPTS):
                if attempt:
                    self._release_port(port)
                    port = self._reserve_port()
                spec = ContainerSpec(
                    name=self.container_name(row.name), image=image, host_port=port,
                    container_port=self.config.kasm_container_port,
                    environment={**desktop_type.environment, "VNC_PW": secret,
                                 "VNC_VIEW_ONLY_PW": secrets.token_urlsafe(24)},
                    labels=labels, volume=volume, shm_size=desktop_type.shm_size,
                    memory=desktop_type.memory, cpus=desktop_type.cpus, pids=desktop_type.pids,
                    network=network)
                try:
                    container_id = self.spawner.create(spec)
                except PortTaken:
                    log.warning("port %d was taken after all; trying another for %s", port, row.name)
                    continue
                except NameTaken:
                    # Created outside this job (another process, or by hand): adopt it.
                    existing = [info for info in self.spawner.list(self.labels) if info.name == spec.name]
                    if not existing:
                        log.error("container name %s is taken by a container that is not ours", spec.name)
                        raise DesktopError("A container named %s exists but does not belong to "
                                           "iservdesk. Please tell your IT admin." % spec.name,
                                           code="name_taken") from None
                    if not owned_by(existing[0], row.user):
                        log.warning("container %s is named for desktop %s but belongs to another person "
                                    "(owner %s, not %s); left alone", spec.name, row.name,
                                    existing[0].labels.get(LABEL + "owner") or "unknown", row.user.uuid)
                        raise DesktopError("A container named %s belongs to another account. Please tell "
                                           "your IT admin." % spec.name, code="name_taken") from None
                    self._adopt_into(row, existing[0])
                    if existing[0].state != "running":
                        self._to_network(row, existing[0].id)
                        self.spawner.start(existing[0].id)
                    return
                self._set(row, container_id=container_id, host_port=port, secret=secret)
                log.info("created container %s for %s", spec.name, row.user.username)
                return
            raise NoFreePort("Could not find a free port after %d attempts." % PORT_ATTEMPTS)
        finally:
            self._release_port(port)

    def _reserve_port(self):
        with self.port_lock:
            held = self.spawner.held_ports() | self.reserved_ports
            held |= {port for (port,) in db.Desktop.select(db.Desktop.host_port).where(
                db.Desktop.host_port.is_null(False)).tuples()}
            for port in self.config.host_port_range:
                if port not in held and bindable(port):
                    self.reserved_ports.add(port)
                    return port
        log.error("no free host port in HOST_PORT_RANGE for a new desktop")
        raise NoFreePort()

    def _release_port(self, port):
        with self.port_lock:
            self.reserved_ports.discard(port)

    def _wait_ready(self, row):
        deadline = time.monotonic() + self.config.desktop_ready_timeout
        while time.monotonic() < deadline:
            if answers(row.host_port):
                return
            info = self.spawner.poll(row.container_id)
            if info is None or info.state not in ("running", "created", "restarting"):
                raise DesktopError("The desktop stopped while starting (container %s)."
                                   % (info.state if info else "removed"), code="start_failed")
            gevent.sleep(READY_POLL)
        raise DesktopError("The desktop did not answer within %d seconds."
                           % self.config.desktop_ready_timeout, code="start_timeout")

    def _cancel_job(self, name):
        job = self.jobs.pop(name, None)
        if job is not None and not job.dead:
            job.kill()
        self.progress.pop(name, None)

    def stop(self, row, actor):
        """Stop the desktop's container (kept, with its files); idempotent."""
        with self.locks[row.name]:
            self._cancel_job(row.name)
            if row.container_id:
                self.spawner.stop(row.container_id)
            status = "stopped" if row.container_id else "removed"
            self._set(row, status=status, message="")
            with db.write(self.database):
                db.record("desktop.stop", actor=actor, target=row.name)
            log.info("%s stopped desktop %s", actor, row.name)
        return row

    def remove(self, row, actor):
        """Remove the container; the home volume stays. Idempotent."""
        with self.locks[row.name]:
            self._cancel_job(row.name)
            if row.container_id:
                self.spawner.remove(row.container_id)
            self._set(row, status="removed", message="", container_id=None, host_port=None, secret=None)
            with db.write(self.database):
                db.record("desktop.remove", actor=actor, target=row.name)
            log.info("%s removed desktop %s (home volume kept)", actor, row.name)
        return row

    def stop_all(self, actor):
        rows = list(db.Desktop.select().where(db.Desktop.status.in_(ACTIVE)))
        for row in rows:
            self.stop(row, actor)
        return len(rows)

    def record_access(self, row, now):
        """Remember the desktop was used; writes at most once a minute per desktop."""
        if row.last_access_at is None or now - row.last_access_at >= ACCESS_WRITE_INTERVAL:
            self._set(row, last_access_at=now)

    # -- Docker is the truth --

    def _adopt_into(self, row, info):
        fields = {"container_id": info.id, "host_port": info.host_port,
                  "secret": info.environment.get("VNC_PW") or row.secret,
                  "status": "running" if info.state == "running" else "stopped"}
        self._set(row, **fields)

    def reconcile(self):
        """Repair rows from the engine's labelled containers; returns the repairs made."""
        containers = {info.id: info for info in self.spawner.list(self.labels)}
        repairs = []
        known = set()
        for row in db.Desktop.select(db.Desktop, db.User).join(db.User):
            if row.name in self.jobs or row.name in self.claimed:
                known.add(row.container_id)
                continue  # a start job owns this row right now, or is about to
            if row.container_id is None:
                if row.status in ACTIVE:  # its start job died with an earlier portal process
                    self._set(row, status="error", message="Starting was interrupted. Please start "
                              "the desktop again.")
                    repairs.append("%s: interrupted start" % row.name)
                continue
            known.add(row.container_id)
            info = containers.get(row.container_id)
            if info is not None and not owned_by(info, row.user):
                # Linked by an older release that adopted by name: the row lets go of it, the
                # container is left alone.
                log.warning("container %s of desktop %s belongs to another person (owner %s); left alone",
                            info.name, row.name, info.labels.get(LABEL + "owner") or "unknown")
                self._set(row, status="removed", container_id=None, host_port=None, secret=None,
                          message="")
                repairs.append("%s: let go of another person's container %s" % (row.name, info.name))
            elif info is None:
                self._set(row, status="removed", container_id=None, host_port=None, secret=None,
                          message="The desktop was removed outside iservdesk.")
                repairs.append("%s: container gone" % row.name)
            elif info.state == "running" and row.status != "running":
                self._set(row, status="running", host_port=info.host_port, message="")
                repairs.append("%s: running again" % row.name)
            elif info.state != "running" and row.status in ACTIVE:
                self._set(row, status="stopped", message="The desktop was stopped outside iservdesk.")
                repairs.append("%s: stopped" % row.name)
        for info in containers.values():
            if info.id in known or info.labels.get(LABEL + "desktop") in self.jobs:
                continue  # known, or being created by a start job right now
            row = self._adoptable_row(info)
            if row is not None and row.container_id and row.container_id != info.id:
                log.warning("container %s is labelled as desktop %s, which has another container; "
                            "left alone", info.name, row.name)
            elif row is not None:
                self._adopt_into(row, info)
                repairs.append("%s: adopted container %s" % (row.name, info.name))
        for repair in repairs:
            log.warning("reconciled %s", repair)
        return repairs

    def _adoptable_row(self, info):
        owner = db.User.get_or_none(db.User.uuid == info.labels.get(LABEL + "owner", ""))
        slug = info.labels.get(LABEL + "type", "")
        if owner is None or slug not in self.catalog:
            log.warning("container %s is labelled ours but its owner or type is unknown; left alone",
                        info.name)
            return None
        if self._named_for_another(info, owner):
            return None
        with db.write(self.database):
            row = db.Desktop.get_or_none((db.Desktop.user == owner) & (db.Desktop.desktop_type == slug))
            name = row.name if row is not None else self._free_name(owner, slug)
            if row is None and name is not None:
                row = db.Desktop.create(user=owner, desktop_type=slug, name=name, status="new",
                                        created_at=self.clock())
        if row is None:
            log.warning("container %s cannot be adopted: every name for its desktop is taken", info.name)
            return None
        row.user = owner
        return row

    def _named_for_another(self, info, owner):
        """True, with a warning, when the container's desktop label names the desktop of someone
        other than its owner label: it is not adopted (into either), but left alone."""
        named = info.labels.get(LABEL + "desktop")
        row = db.Desktop.get_or_none(db.Desktop.name == named) if named else None
        if row is None or row.user_id == owner.id:
            return False
        log.warning("container %s is found under desktop %s of another person (its owner is %s); "
                    "left alone", info.name, named, owner.uuid)
        return True

    def watch(self):
        """Run forever: reconcile, then follow the engine's events, reconnecting with backoff."""
        backoff = 1
        while True:
            try:
                with self.database.connection_context():
                    self.reconcile()
                backoff = 1
                pending = None
                for action, container_id in self.spawner.events(self.labels):
                    log.debug("engine event %s %s", action, container_id[:12])
                    # Docker sends "die" before the container's state says so: reconcile a
                    # moment later, once for a burst of events.
                    if pending is None or pending.dead:
                        pending = gevent.spawn_later(EVENT_SETTLE, self.reconcile_now)
                log.warning("the Docker event stream ended; reconnecting")
            except DesktopError as error:
                log.warning("watching Docker: %s; retrying in %ds", error, backoff)
            except Exception:
                log.exception("watching Docker failed; retrying in %ds", backoff)
            gevent.sleep(backoff)
            backoff = min(backoff * 2, 30)

    def reconcile_now(self):
        """reconcile() with its own database connection, logging instead of raising."""
        try:
            with self.database.connection_context():
                self.reconcile()
        except DesktopError as error:
            log.warning("reconcile: %s", error)
        except Exception:
            log.exception("reconcile failed")

    def reconcile_soon(self):
        """Reconcile in a moment (once for a burst of calls), e.g. after a desktop stopped
        answering the proxy."""
        if self._soon is None or self._soon.dead:
            self._soon = gevent.spawn_later(EVENT_SETTLE, self.reconcile_now)

    def periodic(self):
        """Reconcile once a minute even when the event stream is quiet."""
        while True:
            gevent.sleep(RECONCILE_EVERY)
            self.reconcile_now()

    def run_background(self):
        self.watcher = [gevent.spawn(self.watch), gevent.spawn(self.periodic)]

    def shutdown(self):
        for greenlet in (self.watcher or []) + list(self.jobs.values()):
            greenlet.kill(block=False)

    # -- for iservdesk cleanup, which runs in a process of its own (see cleanup.py) --
    #
    # The portal's start jobs live in the portal's memory, out of sight from here. The portal
    # writes a desktop's row as pulling or starting before it creates or starts a container,
    # so such a row, and a container whose desktop has such a row, belong to a job elsewhere
    # and are left alone. Each action reads its row and asks the engine again just before it
    # acts, then writes only if the row still names that container (_set_if). Like stop()
    # and remove(), the engine goes first and the row follows at once: the portal reconciles
    # EVENT_SETTLE after the engine's event, by when the row says what happened.

    def _set_if(self, row, expected, **fields):
        """_set(), but only if the row's `expected` fields still hold in the database (another
        process may have changed them since `row` was read): name -> value, or a tuple of
        allowed values. Returns True if written."""
        if fields.get("status") in HALTED and row.status != fields["status"]:
            fields.setdefault("stopped_at", self.clock())
        condition = db.Desktop.id == row.id
        for name, value in expected.items():
            field = getattr(db.Desktop, name)
            if isinstance(value, tuple):
                condition &= field.in_(value)
            else:
                condition &= field.is_null() if value is None else field == value
        with db.write(self.database):
            written = db.Desktop.update(**fields).where(condition).execute() == 1
        if written:
            for name, value in fields.items():
                setattr(row, name, value)
            self.publish(row)
        return written

    def reconcile_from_outside(self, now, dry_run=False):
        """reconcile() for a process that cannot see the portal's start jobs.

        Returns (repairs, strays): the repairs made (with dry_run: that would be made) as
        lines of text, and the ContainerInfo of labelled containers whose owner or desktop
        type this installation does not know; what to do with those is the caller's choice.
        Raises DesktopError when the engine does not answer.
        """
        containers = {info.id: info for info in self.spawner.list(self.labels)}
        rows = list(db.Desktop.select(db.Desktop, db.User).join(db.User))
        repairs = []
        for row in rows:
            if row.status in BUSY or row.container_id is None or \
                    _repair(row, containers.get(row.container_id), now) is None:
                continue
            fresh = db.Desktop.get_or_none(db.Desktop.id == row.id)
            if fresh is None or fresh.status in BUSY or fresh.container_id != row.container_id:
                continue
            fresh.user = row.user
            change = _repair(fresh, self.spawner.poll(fresh.container_id), now)
            if change is None:
                continue
            text, fields = change
            if dry_run or self._set_if(fresh, {"status": fresh.status, "container_id": fresh.container_id},
                                       **fields):
                repairs.append("%s: %s" % (fresh.name, text))
        known = {row.container_id for row in rows if row.container_id}
        strays = []
        for info in containers.values():
            if info.id in known:
                continue
            owner = db.User.get_or_none(db.User.uuid == info.labels.get(LABEL + "owner", ""))
            slug = info.labels.get(LABEL + "type", "")
            if owner is None or slug not in self.catalog:
                strays.append(info)
                continue
            text = self._adopt_from_outside(owner, slug, info, now, dry_run)
            if text:
                repairs.append(text)
        for repair in repairs:
            log.warning("%sreconciled %s", "dry run: would have " if dry_run else "", repair)
        return repairs, strays

    def _adopt_from_outside(self, owner, slug, info, now, dry_run):
        """Give a labelled container without a row the row of its owner and type; the repair
        as text, or None when a start job owns that row or it has a container already, or
        the container is found under the desktop of another person (left alone)."""
        info = self.spawner.poll(info.id)
        if info is None:
            return None  # removed meanwhile
        if self._named_for_another(info, owner):
            return None
        fields = {"container_id": info.id, "host_port": info.host_port,
                  "secret": info.environment.get("VNC_PW"), "message": "",
                  "status": "running" if info.state == "running" else "stopped"}
        if fields["status"] == "stopped":
            fields["stopped_at"] = now
        with db.write(self.database):
            row = db.Desktop.get_or_none((db.Desktop.user == owner) & (db.Desktop.desktop_type == slug))
            if row is not None and (row.status in BUSY or row.container_id):
                if row.container_id and row.container_id != info.id:
                    log.warning("container %s is labelled as desktop %s, which has another container; "
                                "left alone", info.name, row.name)
                return None
            name = row.name if row is not None else self._free_name(owner, slug)
            if name is None:
                log.warning("container %s cannot be adopted: every name for its desktop is taken", info.name)
                return None
            if dry_run:
                return "%s: adopted container %s" % (name, info.name)
            if row is None:
                row = db.Desktop.create(user=owner, desktop_type=slug, name=name, status="new",
                                        created_at=now)
            db.Desktop.update(**fields).where(db.Desktop.id == row.id).execute()
        for field, value in fields.items():
            setattr(row, field, value)
        self.publish(row)
        return "%s: adopted container %s" % (name, info.name)

    def stop_if_idle(self, row, now, idle_timeout, dry_run=False):
        """Stop the desktop if, at `now`, it still runs and has been unused for `idle_timeout`.

        The proxy writes last_access_at on every request and every minute in which bytes
        cross a viewer's WebSocket, so a desktop someone works with is never idle. Returns
        True when it was stopped (dry_run: would be). The container and its files stay.
        """
        with self.locks[row.name]:
            fresh = db.Desktop.get_or_none(db.Desktop.id == row.id)
            if fresh is None or fresh.status != "running" or not fresh.container_id:
                return False
            idle = now - last_used_at(fresh)
            if idle < idle_timeout:
                return False
            info = self.spawner.poll(fresh.container_id)
            if info is None or info.state != "running":
                return False  # reconciling is another step's business
            if not dry_run:
                self.spawner.stop(info.id)
                self._set_if(fresh, {"container_id": info.id, "status": ("running", "stopped")},
                             status="stopped", stopped_at=now,
                             message="Stopped after %s without use; your files are kept. Start it again "
                                     "to continue." % human_duration(idle_timeout))
                with db.write(self.database):
                    db.record("desktop.stop", actor="cleanup", target=fresh.name, reason="idle",
                              idle_minutes=int(idle.total_seconds() // 60))
            log.info("cleanup %s desktop %s: unused for %s (IDLE_TIMEOUT %s)",
                     "would stop" if dry_run else "stopped", fresh.name, human_duration(idle),
                     human_duration(idle_timeout))
            return True

    def remove_if_stopped(self, row, now, after, dry_run=False):
        """Remove the desktop's container if, at `now`, it has been stopped (or failed) for
        `after`. The home volume stays. Returns True when removed (dry_run: would be)."""
        with self.locks[row.name]:
            fresh = db.Desktop.get_or_none(db.Desktop.id == row.id)
            if fresh is None or fresh.status not in HALTED or not fresh.container_id:
                return False
            if fresh.stopped_at is None:
                # Not recorded (the row was changed by hand, or by an older iservdesk): count from now.
                if not dry_run:
                    self._set_if(fresh, {"status": fresh.status, "stopped_at": None}, stopped_at=now)
                return False
            stopped_for = now - fresh.stopped_at
            if stopped_for < after:
                return False
            info = self.spawner.poll(fresh.container_id)
            if info is None or info.state == "running":
                return False  # gone or running again: reconciling is another step's business
            if not dry_run:
                self.spawner.remove(info.id)
                self._set_if(fresh, {"container_id": info.id}, status="removed", container_id=None,
                             host_port=None, secret=None,
                             message="Removed after %s unused; your files are kept. Starting it again "
                                     "sets up a fresh desktop." % human_duration(after))
                with db.write(self.database):
                    db.record("desktop.remove", actor="cleanup", target=fresh.name, reason="stopped",
                              stopped_days=stopped_for.days)
            log.info("cleanup %s desktop %s: stopped for %s (REMOVE_STOPPED_AFTER %s; home volume kept)",
                     "would remove" if dry_run else "removed", fresh.name, human_duration(stopped_for),
                     human_duration(after))
            return True


def _signed_in_at(user):
    return user.last_login_at or user.created_at


def owned_by(info, user):
    """True when the container `info` is labelled as `user`'s (by uuid, never by name)."""
    return info.labels.get(LABEL + "owner") == user.uuid


def last_used_at(row):
    """When the desktop was last used: the proxy's last access, else its start or creation."""
    return row.last_access_at or row.started_at or row.created_at


def _repair(row, info, now):
    """(text, fields) that make `row` agree with the container `info` (None: gone), or None."""
    if info is None:
        return "container gone", {"status": "removed", "container_id": None, "host_port": None,
                                  "secret": None, "message": "The desktop was removed outside iservdesk."}
    if not owned_by(info, row.user):
        # Linked by an older release that adopted by name: the row lets go of the container,
        # which is left alone.
        return "let go of another person's container %s" % info.name, {
            "status": "removed", "container_id": None, "host_port": None, "secret": None, "message": ""}
    if info.state == "running" and row.status != "running":
        return "running again", {"status": "running", "host_port": info.host_port, "message": ""}
    if info.state != "running" and row.status == "running":
        return "stopped", {"status": "stopped", "stopped_at": now,
                           "message": "The desktop was stopped outside iservdesk."}
    return None


def human_duration(duration):
    """'2 hours', '7 days', '90 minutes': a timedelta as an operator or a student reads it."""
    seconds = int(duration.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and (seconds % size == 0 or seconds >= 2 * size):
            count = seconds // size
            return "%d %s%s" % (count, unit, "" if count == 1 else "s")
    return "%d seconds" % seconds


def bindable(port):
    """False when something outside Docker listens on 127.0.0.1:port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
