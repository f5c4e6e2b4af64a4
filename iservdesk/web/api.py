"""The desktop API (seed paths): the user's own containers, the admin's view of all of
them, and /api/events, a Server-Sent Events stream of status changes.

Answers are JSON; errors are {"error": code, "message": text} (web/errors.py). Every
route needs a session; state changes made with the cookie need the CSRF token.
"""

import collections
import json
import logging
import urllib.parse

import bottle

from .. import db, files, forget, seed
from ..desktops import Status
from ..errors import BadRequest, DesktopNotFound, TooMany
from .auth import Forbidden

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15
# A person keeps a few tabs open (dashboard, admin panel); more is a runaway page.
EVENT_STREAMS_PER_SESSION = 6


class ClosingStream:
    """A WSGI body that calls `on_close` exactly once when the server is done with it,
    also when it never started (a generator's finally would not run then)."""

    def __init__(self, iterable, on_close):
        self.iterable, self.on_close = iterable, on_close

    def __iter__(self):
        return iter(self.iterable)

    def close(self):
        if self.on_close is not None:
            on_close, self.on_close = self.on_close, None
            try:
                self.iterable.close()
            finally:
                on_close()


def attachment(filename):
    """A Content-Disposition that saves `filename` (any characters) as a download."""
    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in filename)
    return "attachment; filename=\"%s\"; filename*=UTF-8''%s" % (plain, urllib.parse.quote(filename, safe=""))


def request_value(name, default=None):
    """A parameter from the query, a form or a JSON body (clients, the old product's too,
    send all three); `default` when it is missing or empty."""
    value = bottle.request.query.get(name) or bottle.request.forms.get(name)
    if not value and isinstance(bottle.request.json, dict):
        value = bottle.request.json.get(name)
    return default if value in (None, "") else value


def file_request(require_user):
    """For a route whose body is a file (PUT /api/upload/...): (identity, length, read).
    Reads nothing of the body: the CSRF token must come as a header (a form field would
    mean parsing the body), and the length as Content-Length (411 otherwise), so that a
    file too large is refused before a byte of it is read."""
    if not bottle.request.headers.get("X-CSRF-Token"):
        raise Forbidden("The request lacks a valid CSRF token. Reload the page and try again.", code="csrf_failed")
    identity = require_user()
    length = bottle.request.content_length
    if length < 0 or "HTTP_TRANSFER_ENCODING" in bottle.request.environ:
        raise BadRequest("Send the file with a Content-Length.", code="length_required", status=411)
    return identity, length, bottle.request.environ["wsgi.input"].read


def desktop_json(view, admin=False):
    """The API's shape of a desktop (Desktops.view); owners see theirs, admins also whose it
    is and where it runs. The seed's clients read these names: keep them stable."""
    data = {
        "id": view["id"], "name": view["name"], "desktop_type": view["desktop_type"],
        "status": view["status"], "progress": view["progress"], "message": view["message"],
        "url": view["url"], "created_at": view["created_at"].isoformat(),
        "started_at": view["started_at"].isoformat() if view["started_at"] else None,
        "last_access_at": view["last_access_at"].isoformat() if view["last_access_at"] else None,
        "queue_position": view["queue_position"],  # status queued: 1 starts next
        # Running: seconds until cleanup stops it as unused, and until its owner is warned.
        "idle_stop_in": view["idle_stop_in"], "idle_warning_in": view["idle_warning_in"],
    }
    # The old product's names for the same things (its clients read them; kept stable).
    data.update(container_name=view["container_name"], proxy_path=view["name"], username=view["owner"],
                last_accessed=data["last_access_at"])
    if admin:
        data.update(owner=view["owner"], owner_name=view["owner_name"],
                    container_id=(view["container_id"] or "")[:12] or None, host_port=view["host_port"])
    return data


def statistics(rows):
    """The admin panel's figures over the desktops that are not removed."""
    running = [row for row in rows if row.status == Status.RUNNING]
    return {"total": len(rows), "running": len(running),
            "active_users": len({row.user_id for row in running}),
            "queued": sum(1 for row in rows if row.status == Status.QUEUED)}


def add_routes(app, context):
    """The /api/ routes. `context`: a web.Context."""
    desktops = context.desktops
    catalog = desktops.catalog
    require_user = context.auth.require_user
    database = context.database

    def memberships(identity):
        return set(identity.user.groups) | set(identity.user.roles)

    def desktop_type_for(identity, implied=None):
        """The desktop type the request names (desktop_type), checked; without one, what
        `implied(identity)` says (the old product's requests named none)."""
        slug = request_value("desktop_type")
        if not slug and implied is not None:
            slug = implied(identity)
        if not slug:
            raise BadRequest("Say which desktop: desktop_type=<type>.", code="desktop_type_missing")
        if slug not in catalog:
            raise BadRequest("There is no desktop type %r." % slug[:40], code="unknown_desktop_type")
        desktop_type = catalog[slug]
        if not desktop_type.may_use(memberships(identity), identity.is_admin):
            raise Forbidden("Your account may not use the desktop %s." % desktop_type.name["en"],
                            code="desktop_type_not_allowed")
        return desktop_type

    def choices(slugs, why):
        return BadRequest("%s: say which with desktop_type=<%s>." % (why, "|".join(sorted(slugs)) or "type"),
                          code="desktop_type_missing")

    def default_type(identity):
        """For a start without a type: the type of KASM_IMAGE (the old product's only one),
        when exactly one type the person may use runs that image."""
        usable = catalog.usable_by(memberships(identity), identity.is_admin)
        matching = [item.slug for item in usable if item.image == context.settings.kasm_image]
        if len(matching) == 1:
            return matching[0]
        raise choices([item.slug for item in usable], "There is more than one desktop type")

    def only_desktop(identity):
        """For status, stop and remove without a type: the person's only desktop."""
        rows = [row for row in desktops.rows_of(identity.user).values() if row.status != Status.REMOVED]
        if len(rows) == 1:
            return rows[0].desktop_type
        if not rows:
            raise DesktopNotFound("You have no desktop yet. Start one first.", code="no_desktop")
        raise choices([row.desktop_type for row in rows], "You have more than one desktop")

    def entry(identity, desktop_type, row):
        """What the user sees of one desktop type: the catalog entry plus its state."""
        data = desktop_type.to_json()
        # "name" becomes the desktop's own name once it exists; the catalog's stays here.
        data["title"] = desktop_type.name
        if row is None:
            data.update(status="absent", progress=None, message="", url=None, created_at=None,
                        started_at=None, last_access_at=None, queue_position=None, idle_stop_in=None,
                        idle_warning_in=None, home_size=None)
        else:
            data.update(desktop_json(desktops.view(row)))
            # The home's size as last measured (file browser, uploads, cleanup), for the card.
            measured = db.HomeSize.get_or_none(db.HomeSize.volume == (row.home_volume or ""))
            data["home_size"] = measured.size if measured else None
        return data

    @app.post("/api/container/start")
    def start():
        identity = require_user()
        desktop_type = desktop_type_for(identity, default_type)
        row = desktops.start(identity.user, desktop_type)
        bottle.response.status = 200 if row.status == Status.RUNNING else 202
        data = entry(identity, desktop_type, row)
        # The old product answered {success, container, url}: its clients read those.
        return dict(data, success=True, container=dict(data))

    @app.get("/api/container/status")
    def status():
        """One desktop (desktop_type), or, without one, the person's only desktop (as the
        old product answered the session's desktop); 400 naming the choices when several."""
        identity = require_user()
        desktop_type = desktop_type_for(identity, only_desktop)
        row = desktops.rows_of(identity.user).get(desktop_type.slug)
        return entry(identity, desktop_type, row)

    @app.get("/api/container/list")
    def listing():
        identity = require_user()
        rows = desktops.rows_of(identity.user)
        usable = catalog.usable_by(memberships(identity), identity.is_admin)
        every = [entry(identity, t, rows.get(t.slug)) for t in usable]
        # "containers": the old product's name, for the desktops that have one.
        return {"desktops": every,
                "containers": [item for item in every if item["status"] not in ("absent", "removed")]}

    def own_row(identity):
        desktop_type = desktop_type_for(identity, only_desktop)
        row = desktops.find(identity.user, desktop_type.slug)
        return desktop_type, row

    @app.post("/api/container/stop")
    def stop():
        identity = require_user()
        desktop_type, row = own_row(identity)
        return entry(identity, desktop_type, desktops.stop(row, identity.user.username))

    @app.get("/api/files")
    def file_list():
        """A folder of the owner's home of one desktop type (?path=, "" the home itself)."""
        identity = require_user()
        desktop_type = desktop_type_for(identity)
        bottle.response.set_header("Cache-Control", "no-store")
        return context.files.listing(identity.user, desktop_type.slug, bottle.request.query.getunicode("path", ""))

    @app.get("/api/files/download")
    def file_download():
        """A file of the owner's home as it is, or a folder as a zip; streamed."""
        identity = require_user()
        desktop_type = desktop_type_for(identity)
        path = bottle.request.query.getunicode("path", "")
        name, size, stream, close = context.files.download(identity.user, desktop_type.slug, path)
        try:
            with db.write(database):
                db.record("files.download", actor=identity.user.username, target=desktop_type.slug, path=path)
        except BaseException:
            close()
            raise
        bottle.response.content_type = "application/octet-stream" if size is not None else "application/zip"
        if size is not None:
            bottle.response.set_header("Content-Length", str(size))
        bottle.response.set_header("Content-Disposition", attachment(name))
        bottle.response.set_header("Cache-Control", "no-store")
        if not database.is_closed():
            database.close()  # nothing held while the bytes flow
        return ClosingStream(stream, close)

    @app.put("/api/upload/home")
    def file_upload():
        """The request's body as the file ?name= in the folder ?folder= (default Uploads) of
        the owner's home of ?desktop_type=. Only the query is read: the body is the file,
        streamed into the home as it arrives (never parsed as a form)."""
        identity, length, read = file_request(require_user)
        query = bottle.request.query
        slug = query.getunicode("desktop_type", "")
        if slug not in catalog or not catalog[slug].may_use(memberships(identity), identity.is_admin):
            raise BadRequest("There is no desktop type %r for you." % slug[:40], code="unknown_desktop_type")
        folder = query.getunicode("folder", "Uploads")
        name = query.getunicode("name", "")
        done = context.files.upload(identity.user, slug, folder, name, length, read)
        with db.write(database):
            db.record("files.upload", actor=identity.user.username, target=slug, path=done["path"],
                      size=length)
        return done

    @app.delete("/api/files")
    def file_delete():
        identity = require_user()
        desktop_type = desktop_type_for(identity)
        done = context.files.delete(identity.user, desktop_type.slug, bottle.request.query.getunicode("path", ""))
        with db.write(database):
            db.record("files.delete", actor=identity.user.username, target=desktop_type.slug, path=done["path"])
        return done

    @app.get("/api/files/home.zip")
    def home_zip():
        """The owner's home of one desktop type as a zip, streamed (also while the desktop is
        stopped or removed): regular files and folders only (iservdesk/files.py)."""
        identity = require_user()
        desktop_type = desktop_type_for(identity)
        return send_zip(identity, desktop_type.slug, "%s-%s.zip" % (identity.user.username, desktop_type.slug))

    @app.get("/api/files/export.zip")
    def export_zip():
        """Everything of the person: all their homes in one zip, a folder per desktop type."""
        identity = require_user()
        return send_zip(identity, None, "%s-iservdesk.zip" % identity.user.username)

    def send_zip(identity, slug, filename):
        homes, stream = files.download(desktops, identity.user, slug)
        if not homes:
            raise DesktopNotFound("There are no files here yet: start the desktop once.", code="no_home")
        with db.write(database):
            db.record("files.download", actor=identity.user.username, target=slug or "all",
                      homes=[name for _, name, _ in homes])
        bottle.response.content_type = "application/zip"
        bottle.response.set_header("Content-Disposition", attachment(filename))
        bottle.response.set_header("Cache-Control", "no-store")
        if not database.is_closed():
            database.close()  # nothing held while the bytes flow
        return stream

    @app.post("/api/container/keep")
    def keep():
        """The answer to the idle warning: the desktop counts as used now."""
        identity = require_user()
        desktop_type, row = own_row(identity)
        row.user = identity.user
        return entry(identity, desktop_type, desktops.keep(row, context.clock()))

    @app.route("/api/container/remove", method=["POST", "DELETE"])
    def remove():
        identity = require_user()
        desktop_type, row = own_row(identity)
        return entry(identity, desktop_type, desktops.remove(row, identity.user.username))

    # -- admin --

    def require_admin():
        identity = require_user()
        if not identity.is_admin:
            raise Forbidden("Only admins may do this.", code="admin_only")
        return identity

    def admin_row(container):
        """A desktop of ours by its id in our JSON, container id (12+ characters of it: hex from
        Docker, a Swarm service's lower-case letters and digits) or desktop name."""
        query = db.Desktop.select(db.Desktop, db.User).join(db.User)
        row = None
        if container.isdigit() and len(container) < 12:
            row = query.where(db.Desktop.id == int(container)).first()
        elif len(container) >= 12 and all(c in "0123456789abcdefghijklmnopqrstuvwxyz" for c in container):
            row = query.where(db.Desktop.container_id.startswith(container)).first()
        if row is None:
            row = query.where(db.Desktop.name == container).first()
        if row is None:
            raise DesktopNotFound("No desktop of iservdesk has the id %s." % container[:64])
        return row

    @app.get("/api/admin/containers")
    def admin_containers():
        require_admin()
        rows = list(db.Desktop.select(db.Desktop, db.User).join(db.User)
                    .where(db.Desktop.status != Status.REMOVED).order_by(db.Desktop.name))
        return {"containers": [desktop_json(desktops.view(row), admin=True) for row in rows],
                "statistics": statistics(rows)}

    @app.post("/api/admin/container/<container>/stop")
    def admin_stop(container):
        identity = require_admin()
        row = desktops.stop(admin_row(container), identity.user.username)
        return desktop_json(desktops.view(row), admin=True)

    @app.delete("/api/admin/container/<container>/remove")
    def admin_remove(container):
        identity = require_admin()
        row = desktops.remove(admin_row(container), identity.user.username)
        return desktop_json(desktops.view(row), admin=True)

    @app.post("/api/admin/containers/stop-all")
    def admin_stop_all():
        identity = require_admin()
        count = desktops.stop_all(identity.user.username)
        with db.write(database):
            db.record("desktop.stop-all", actor=identity.user.username, count=count)
        log.info("admin %s stopped all desktops (%d)", identity.user.username, count)
        return {"stopped": count, "stopped_count": count}

    @app.get("/api/admin/forget/<person>")
    def forget_plan(person):
        """What forgetting a person (account name or uuid) would remove: lines to confirm."""
        require_admin()
        return forget.plan(desktops, forget.find(person), context.settings.secret_key).json()

    @app.post("/api/admin/forget/<person>")
    def forget_person(person):
        """Forget a person (iservdesk/forget.py): their containers, homes and rows go; the
        audit log keeps a pseudonym. Answers what went."""
        identity = require_admin()
        user = forget.find(person)
        if user.id == identity.user.id:
            raise Forbidden("You cannot forget yourself here; ask another admin or use iservdesk forget.",
                            code="forget_self")
        return forget.forget(desktops, user, context.settings.secret_key, identity.user.username).json()

    def seed_plan():
        url = context.settings.seed_database_uri
        return seed.plan(desktops, seed.read_database(url) if url else None)

    @app.get("/api/admin/import-seed")
    def import_seed_plan():
        """The old product's containers on the engine, and what an import would do with each."""
        require_admin()
        return {"moves": [move.json() for move in seed_plan()]}

    @app.post("/api/admin/import-seed")
    def import_seed():
        """Move their files into homes here and remove them (the admin confirmed the plan)."""
        identity = require_admin()
        results = seed.run(desktops, seed_plan(), identity.user.username, context.clock())
        return {"moved": [move.container for move, error in results if not error],
                "failed": [{"container": move.container, "error": error} for move, error in results if error]}

    @app.get("/api/admin/queue")
    def admin_queue():
        """The start queue: how many may boot at once, which are booting, who waits, in order."""
        require_admin()
        queue = desktops.queue
        names = queue.names()
        rows = {row.name: row for row in db.Desktop.select(db.Desktop, db.User).join(db.User)
                .where(db.Desktop.name.in_(names + sorted(queue.holding)))}
        return {"concurrency": queue.concurrency, "starting": sorted(queue.holding),
                "waiting": [{"position": place, "name": name, "owner": rows[name].user.username,
                             "owner_name": rows[name].user.display_name,
                             "since": queue.waiting[name].since.isoformat()}
                            for place, name in enumerate(names, 1) if name in rows]}

    @app.get("/api/admin/homes")
    def admin_homes():
        """Every home volume with its owner; the kept ones are those no desktop of their owner
        mounts any more (e.g. IServ gave the owner's account name to someone else)."""
        require_admin()
        homes = desktops.homes.listing()
        for home in homes:
            home["over_quota"] = home["size"] is not None and home["size"] > context.settings.home_quota
        homes.sort(key=lambda home: (-(home["size"] or 0), home["name"]))
        return {"homes": homes, "quota": context.settings.home_quota}

    @app.get("/api/admin/nodes")
    def admin_nodes():
        """On a Swarm: each node with its state, memory and desktops, and the desktops whose
        homes it holds (pinned): those cannot start while it is down or drained."""
        require_admin()
        if not hasattr(desktops.engine, "nodes"):
            return {"backend": "engine", "nodes": []}
        pinned = {}
        for home in db.HomeNode.select():
            pinned.setdefault(home.node, set()).add(home.volume)
        rows = list(db.Desktop.select(db.Desktop.name, db.Desktop.home_volume).where(
            db.Desktop.home_volume.is_null(False)))
        nodes = []
        for node in desktops.engine.nodes(desktops.labels):
            homes = pinned.get(node.id, set())
            held = sorted(row.name for row in rows if row.home_volume in homes)
            nodes.append({"id": node.id, "hostname": node.hostname, "address": node.address, "state": node.state,
                          "availability": node.availability, "manager": node.manager, "memory": node.memory,
                          "reserved": node.reserved, "free": node.free, "desktops": list(node.desktops),
                          "homes": held, "affected": held if not node.usable else []})
        return {"backend": "swarm", "shared_homes": desktops.engine.shared, "nodes": nodes}

    # -- live events --

    streams = collections.Counter()  # open event streams by session hash

    @app.get("/api/events")
    def events():
        identity = require_user()
        session_hash = identity.session.id_hash
        if streams[session_hash] >= EVENT_STREAMS_PER_SESSION:
            raise TooMany("Too many live views are open in this session. Close some tabs and reload.",
                          code="too_many_streams")
        user_id, is_admin, groups = identity.user.id, identity.is_admin, frozenset(identity.user.groups)
        # Desktop changes: one's own, every desktop's for admins. "watch": only the watched
        # person is told that a watch of their desktop began or ended; "demo": the members
        # of a class, that a demo to it began or ended (classroom.py).
        subscription = desktops.bus.subscribe(lambda event: event.get("owner") == user_id
                                              or is_admin and "view" in event
                                              or event.get("demo") in groups)
        bottle.response.content_type = "text/event-stream"
        bottle.response.set_header("Cache-Control", "no-store")
        bottle.response.set_header("X-Accel-Buffering", "no")  # nginx: pass each event at once

        def stream():
            yield "retry: 3000\n\n"
            while True:
                event = subscription.get(KEEPALIVE_SECONDS)
                if event is None:
                    yield ": keepalive\n\n"
                elif "watch" in event:
                    yield "event: watch\ndata: {}\n\n"
                elif "demo" in event:
                    yield "event: demo\ndata: {}\n\n"
                else:
                    data = json.dumps(desktop_json(event["view"], admin=is_admin))
                    yield "event: desktop\ndata: %s\n\n" % data

        def close():
            subscription.close()
            streams[session_hash] -= 1
            if streams[session_hash] <= 0:
                del streams[session_hash]
        streams[session_hash] += 1
        return ClosingStream(stream(), close)

