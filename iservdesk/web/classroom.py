"""The classroom's API: a teacher's classes, a class with its members' desktops, and what a
person may know about being watched. Who may see and watch is iservdesk/classroom.py's;
the class page itself is rendered by web/ui.py. With CLASSROOM=off every route is 404.
"""

import bottle

from ..desktops import Status
from ..errors import Forbidden, NotFound
from .api import desktop_json


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
        return {"classes": [{"group": group, "members": len(classroom.members(group))}
                            for group in classroom.classes_of(identity)]}

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
        bottle.response.set_header("Cache-Control", "no-store")
        return {"group": group, "watch": classroom.watch_allowed, "members": members}

    @app.get("/api/watching")
    def watching():
        enabled()
        identity = require_user()
        bottle.response.set_header("Cache-Control", "no-store")
        return classroom.watching(identity.user)
