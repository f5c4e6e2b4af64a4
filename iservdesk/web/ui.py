"""Pages for people: the desktop selection (/), the admin panel (/admin), a teacher's class
(/class/<group>, with CLASSROOM on), the language switch, static files. Server-rendered
Bottle templates; the live parts are plain JavaScript in static/ (no inline script: the
portal's CSP forbids it) that talks to the API with the page's CSRF token.
"""

import json
import os
import urllib.parse

import bottle

from .. import db, sessions
from ..classroom import group_name
from . import i18n
from .auth import safe_return_path
from .responses import redirect

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC = os.path.join(HERE, "static")
TEMPLATES = os.path.join(HERE, "templates")
AUDIT_ROWS = 50
ONE_YEAR = 365 * 86400


def add_routes(app, context):
    """The pages, the language switch and static files. `context`: a web.Context."""
    config = context.settings
    authenticate = context.auth.authenticate
    host = urllib.parse.urlsplit(config.public_url).netloc

    def language():
        return i18n.choose(bottle.request.get_cookie(i18n.COOKIE),
                           bottle.request.headers.get("Accept-Language"))

    classroom = context.classroom  # None with CLASSROOM=off

    def page(template, title_key, scripts=(), status=200, title_values=None, **values):
        identity = authenticate()
        lang = language()
        texts = i18n.texts(lang)
        title = texts[title_key]
        for name, value in (title_values or {}).items():
            title = title.replace("{%s}" % name, value)
        bottle.response.status = status
        bottle.response.set_header("Cache-Control", "no-store")
        bottle.response.set_header("Content-Language", lang)
        return bottle.template(
            template, template_lookup=[TEMPLATES], lang=lang, t=texts,
            title=title, host=host, path=urllib.parse.quote(bottle.request.fullpath, safe=""),
            user=identity.user if identity else None, is_admin=bool(identity and identity.is_admin),
            csrf=sessions.csrf_token(config.secret_key, identity.session_id) if identity else "",
            # Data, not code: JSON in a non-executable script element; "</" cannot end it.
            i18n_json=json.dumps(texts, ensure_ascii=False).replace("</", "<\\/"),
            scripts=scripts, **values)

    @app.get("/static/<filename:path>")
    def static(filename):
        return bottle.static_file(filename, root=STATIC)

    @app.get("/favicon.ico")
    def favicon():
        return bottle.static_file("favicon.svg", root=STATIC, mimetype="image/svg+xml")

    def error_page(status, text_key):
        texts = i18n.texts(language())
        title_key = "error.forbidden_title" if status == 403 else "error.not_found_title"
        return page("error.tpl", title_key, status=status, heading=texts[title_key], text=texts[text_key])

    @app.get("/")
    def index():
        identity = authenticate()
        # The dashboard's classroom parts: "who watched me" for everyone, "my classes" for
        # teachers and admins; none of it (nor its API calls) with CLASSROOM=off.
        teaches = bool(classroom is not None and identity and (identity.is_teacher or identity.is_admin))
        return page("index.tpl", "app.title", scripts=("common.js", "desktops.js", "files.js", "tokens.js") if identity else (),
                    classroom=classroom is not None, teaches=teaches)

    @app.get("/admin")
    def admin():
        identity = authenticate()
        if identity is None:
            redirect(config, "/login?next=/admin")
        if not identity.is_admin:
            return page("error.tpl", "error.forbidden_title", status=403,
                        heading=i18n.texts(language())["error.forbidden_title"],
                        text=i18n.texts(language())["error.forbidden_text"])
        audit = list(db.Event.select().order_by(db.Event.id.desc()).limit(AUDIT_ROWS))
        return page("admin.tpl", "admin.heading", scripts=("common.js", "admin.js", "tokens.js"), audit=audit,
                    classroom=classroom is not None)

    @app.get("/class/<group>")
    def class_page(group):
        if classroom is None:
            return error_page(404, "error.not_found_text")
        identity = authenticate()
        if identity is None:
            redirect(config, "/login?next=" + urllib.parse.quote("/class/" + group, safe="/"))
        if not classroom.may_see(identity, group):
            return error_page(403, "error.class_forbidden_text")
        group = group.lower()
        name = group_name(group)
        return page("class.tpl", "class.title", scripts=("common.js", "class.js"),
                    title_values={"group": name}, group=group, group_name=name, watch=classroom.watch_allowed,
                    prepared_minutes=int(config.prepared_unused_timeout.total_seconds() // 60))

    @app.get("/lang/<code>")
    def switch_language(code):
        if code not in i18n.LANGUAGES:
            code = i18n.DEFAULT
        bottle.response.add_header("Set-Cookie", "%s=%s; Path=/; Max-Age=%d; SameSite=Lax%s" % (
            i18n.COOKIE, code, ONE_YEAR, "; Secure" if config.public_url.startswith("https://") else ""))
        redirect(config, safe_return_path(bottle.request.query.get("next")), 303)
