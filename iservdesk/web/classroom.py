"""The classroom's API: a teacher's classes, a class with its members' desktops and their
thumbnails, stopping a class at the end of a lesson, showing the teacher's own desktop to
the class (a demo), preparing desktops for a lesson, handing out material and collecting
assignments, what a person may know about being watched, and the demos shown to them. Who
may see and watch is iservdesk/classroom.py's; the class page itself is rendered by
web/ui.py. With CLASSROOM=off every route is 404.
"""

import datetime
import itertools
import logging
import time

import bottle

from .. import db
from ..classroom import group_name
from ..desktops import ACTIVE, Status
from ..errors import BadRequest, DesktopNotFound, DesktopNotRunning, Forbidden, NotFound
from .api import attachment, desktop_json, file_request, request_value

log = logging.getLogger(__name__)

THUMBNAIL = (320, 180)  # pixels; KasmVNC scales the screen to fit, keeping its shape
# A class page asks every 5 s; several teachers' pages share one picture this long.
THUMBNAIL_FRESH = 4  # seconds
PREPARE_AHEAD = datetime.timedelta(days=14)  # a preparation is for the next lessons, not next term


def add_routes(app, context):
    """The /api/class* and /api/watching routes. `context`: a web.Context."""
    classroom = context.classroom
    require_user = context.auth.require_user
    desktops = context.desktops

    def title_of(row):
        """The catalog's name of the desktop's type ({"de": ..., "en": ...}), or its slug."""
        desktop_type = desktops.catalog.types.get(row.desktop_type)
        return desktop_type.name if desktop_type else {"de": row.desktop_type, "en": row.desktop_type}

    def enabled():
        if classroom is None:
            raise NotFound()

    def class_of(identity, group):
        if not (identity.is_teacher or identity.is_admin):
            raise Forbidden("Class pages are for teachers.", code="teachers_only")
        if not classroom.may_see(identity, group):
            raise Forbidden("This is not one of your classes.", code="not_your_class")
        return group.lower()

    @app.get("/api/classes")
    def classes():
        enabled()
        identity = require_user()
        if not (identity.is_teacher or identity.is_admin):
            raise Forbidden("Class pages are for teachers.", code="teachers_only")
        groups = classroom.classes_of(identity)
        names = db.Group.names(groups)
        return {"classes": [{"group": group, "name": names.get(group, group), "members": len(classroom.members(group))}
                            for group in groups]}

    @app.get("/api/class/<group>")
    def one_class(group):
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        members = []
        for user in classroom.members(group):
            rows = sorted(desktops.rows_of(user).values(), key=lambda row: row.desktop_type)
            for row in rows:
                row.user = user
            members.append({
                "username": user.username, "display_name": user.display_name or user.username,
                "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
                "desktops": [dict(desktop_json(desktops.view(row)), title=title_of(row),
                                  watchable=classroom.watch_allowed and row.status == Status.RUNNING)
                             for row in rows if row.status != Status.REMOVED],
            })
        demo = classroom.demo_by(identity.user)
        preparations = context.preparations.listing(group)
        own = sorted(desktops.rows_of(identity.user).values(), key=lambda row: row.desktop_type)
        bottle.response.set_header("Cache-Control", "no-store")
        return {"group": group, "name": group_name(group), "watch": classroom.watch_allowed, "members": members,
                "demo": demo.json() if demo is not None and demo.group == group else None,
                "preparations": preparations, "handouts": context.handouts.listing(group),
                "types": [{"desktop_type": item.slug, "title": item.name} for item in desktops.catalog],
                # What the teacher could show: their own running desktops.
                "own_desktops": [{"desktop_type": row.desktop_type, "name": row.name, "title": title_of(row)}
                                 for row in own if row.status == Status.RUNNING]}

    @app.post("/api/class/<group>/demo")
    def start_demo(group):
        """Show the teacher's own running desktop (`desktop_type`, in the query, a form or
        JSON) to the class, view only; a demo to another class ends. Answers {"demo": ...}."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        slug = request_value("desktop_type")
        if not isinstance(slug, str) or not slug:
            raise BadRequest("Say which of your desktops to show (desktop_type).", code="missing_desktop_type")
        row = desktops.find(identity.user, slug)
        if row.status != Status.RUNNING or not row.host_port:
            raise DesktopNotRunning("Start this desktop first; only a running desktop can be shown.")
        if not row.view_secret:
            raise DesktopNotRunning("This desktop was started before it could be shown; remove it and start "
                                    "it again.", code="not_watchable")
        with db.write(context.database):
            demo = classroom.start_demo(identity, group, row)
        return {"demo": demo.json()}

    @app.delete("/api/class/<group>/demo")
    def end_demo(group):
        """End the teacher's demo to this class; every member's viewer of it closes."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        demo = classroom.demo_by(identity.user)
        if demo is not None and demo.group == group:
            with db.write(context.database):
                classroom.end_demo(identity.user.id, "ended by the teacher", only=demo)
        return {"demo": None}

    def time_of(value, field="at", ahead=PREPARE_AHEAD):
        """An ISO 8601 time with its offset (what the class page's script sends), at most
        `ahead` from now; empty: None."""
        if not value:
            return None
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise BadRequest("%s: give the time as ISO 8601 with its offset, e.g. 2026-12-07T07:50:00+01:00."
                             % field, code="bad_time") from None
        if moment.tzinfo is None:
            raise BadRequest("%s: the time needs its offset (e.g. +01:00 or Z)." % field, code="bad_time")
        if moment - context.clock() > ahead:
            raise BadRequest("%s: at most %d days ahead." % (field, ahead.days), code="bad_time")
        return moment.astimezone(datetime.timezone.utc)

    @app.post("/api/class/<group>/prepare")
    def prepare(group):
        """Prepare the class for a desktop type (`desktop_type`), now or `at` a time given:
        every known member allowed the type gets it started through the start queue."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        slug = request_value("desktop_type")
        if not isinstance(slug, str) or slug not in desktops.catalog:
            raise BadRequest("Say which desktop type to prepare (desktop_type).", code="unknown_desktop_type")
        at = time_of(request_value("at"))
        preparation = context.preparations.plan(identity, group, desktops.catalog[slug], at)
        return {"preparation": next(item for item in context.preparations.listing(group)
                                    if item["id"] == preparation.id)}

    @app.delete("/api/class/<group>/prepare/<number:int>")
    def cancel_preparation(group, number):
        """Cancel a preparation of the class: not yet run, it never runs; run, its desktops
        not opened yet stop (files kept). Answers {"stopped": n}."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        preparation = db.Preparation.get_or_none((db.Preparation.id == number) & (db.Preparation.group_name == group))
        if preparation is None:
            raise NotFound("This class has no such preparation.")
        return {"stopped": context.preparations.cancel(identity, preparation)}

    # -- handing out and collecting (iservdesk/handouts.py) --

    def text_param(name):
        value = request_value(name, "")
        if not isinstance(value, str):
            raise BadRequest("%s: expected text." % name, code="bad_request")
        return value.strip()

    def handout_json(group, handout_id):
        return next(item for item in context.handouts.listing(group) if item["id"] == handout_id)

    @app.post("/api/class/<group>/material")
    def new_material(group):
        """Material called `name` for the class (made when new); its files come by PUT to
        /api/upload/material/<id>, then hand-out copies them into the members' homes."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        handout = context.handouts.material(identity.user, group, text_param("name"))
        return {"handout": handout_json(group, handout.id)}

    @app.put("/api/upload/material/<number:int>")
    def material_file(number):
        """The request's body (streamed, never parsed as a form) as the file ?name= of the
        material; only the query is read."""
        enabled()
        identity, length, read = file_request(require_user)
        handout = db.Handout.get_or_none(db.Handout.id == number)
        if handout is None or handout.kind != "material":
            raise NotFound("There is no such material.", code="no_handout")
        class_of(identity, handout.group_name)
        return context.handouts.add_file(handout, bottle.request.query.getunicode("name", ""), length, read)

    @app.post("/api/class/<group>/material/<number:int>/hand-out")
    def hand_out(group, number):
        """Copy the material into every member's homes, running or stopped."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        result = context.handouts.hand_out(identity.user, context.handouts.find(group, number, "material"))
        return dict(result, handout=handout_json(group, number))

    @app.post("/api/class/<group>/assignments")
    def new_assignment(group):
        """An assignment `name` (a folder ~/Abgabe/<name>/ in every member's home), with an
        optional `deadline` (ISO 8601 with offset) at which it is collected by itself."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        deadline = time_of(text_param("deadline"), "deadline", datetime.timedelta(days=365))
        handout = context.handouts.assign(identity.user, group, text_param("name"), deadline)
        return {"handout": handout_json(group, handout.id)}

    @app.post("/api/class/<group>/assignments/<number:int>/collect")
    def collect(group, number):
        """Einsammeln: every member's folder, now; the newest state replaces the last."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        summary = context.handouts.collect(identity.user.username, context.handouts.find(group, number, "assignment"))
        return {"collection": summary, "handout": handout_json(group, number)}

    @app.get("/api/class/<group>/assignments/<number:int>/collected.zip")
    def collected_zip(group, number):
        """The last collection as one zip: a folder per student, and who handed in nothing."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        handout = context.handouts.find(group, number, "assignment")
        stream = context.handouts.collection_zip(handout)
        first = next(stream)  # Conflict before the answer starts when nothing was collected
        with db.write(context.database):
            db.record("class.collect.download", actor=identity.user.username, target=group, name=handout.name)
        bottle.response.content_type = "application/zip"
        bottle.response.set_header("Content-Disposition", attachment("%s-%s.zip" % (group, handout.name)))
        bottle.response.set_header("Cache-Control", "no-store")
        return itertools.chain([first], stream)

    @app.delete("/api/class/<group>/handouts/<number:int>")
    def remove_handout(group, number):
        """Forget material or an assignment here: its stored files and collected copies go;
        what is in the homes stays."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        context.handouts.remove(identity.user.username, context.handouts.find(group, number))
        return {"removed": number}

    @app.get("/api/admin/preparations")
    def all_preparations():
        identity = require_user()
        if not identity.is_admin:
            raise Forbidden("Only admins may do this.", code="admin_only")
        enabled()
        return {"preparations": context.preparations.listing()}

    @app.get("/api/demos")
    def demos():
        """The demos shown to the asking person now, as members of a class: whose screen,
        since when, and the viewer's address."""
        enabled()
        identity = require_user()
        bottle.response.set_header("Cache-Control", "no-store")
        return {"demos": [dict(demo.json(), url="%s/desktop/%s/" % (context.settings.public_url, demo.desktop))
                          for demo in classroom.demos_for(identity.user)]}

    @app.post("/api/class/<group>/stop-all")
    def stop_class(group):
        """The end of a lesson: stop every active desktop of the class's members (files
        kept), audited once with the count. Answers {"stopped": n}."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        stopped = []
        for user in classroom.members(group):
            for row in desktops.rows_of(user).values():
                if row.status in ACTIVE:
                    row.user = user
                    desktops.stop(row, identity.user.username)
                    stopped.append(row.name)
        with db.write(context.database):
            db.record("class.stop-all", actor=identity.user.username, target=group, count=len(stopped),
                      desktops=stopped)
        log.info("%s stopped the %d desktops of class %s", identity.user.username, len(stopped), group)
        return {"stopped": len(stopped)}

    pictures = {}  # desktop name -> (monotonic time taken, JPEG)

    @app.get("/api/class/<group>/thumbnail/<name>")
    def thumbnail(group, name):
        """A small JPEG of a class member's running desktop, taken through the engine with
        the owner's credentials (which stay in the portal), for the class's teachers while
        watching is allowed. Each look is audited and shown to the student (classroom.py)."""
        enabled()
        identity = require_user()
        group = class_of(identity, group)
        if not classroom.watch_allowed:
            raise NotFound()
        row = (db.Desktop.select(db.Desktop, db.User).join(db.User)
               .where(db.Desktop.name == name.lower()).first())
        if row is None or row.user.id not in {user.id for user in classroom.members(group)}:
            raise DesktopNotFound("There is no such desktop in this class.")
        if row.status != Status.RUNNING or not row.host_port:
            raise DesktopNotRunning()
        taken, picture = pictures.get(row.name, (0, None))
        if time.monotonic() - taken > THUMBNAIL_FRESH:
            picture = desktops.engine.screenshot(row.target, row.secret, *THUMBNAIL)
            pictures[row.name] = time.monotonic(), picture
        with db.write(context.database):
            classroom.looked(identity, row)
        bottle.response.content_type = "image/jpeg"
        bottle.response.set_header("Cache-Control", "no-store")
        return picture

    @app.get("/api/watching")
    def watching():
        enabled()
        identity = require_user()
        bottle.response.set_header("Cache-Control", "no-store")
        return classroom.watching(identity.user)
