"""Pages for people: the desktop selection (/), the admin panel (/admin), the language
switch, static files. Server-rendered Bottle templates; the live parts are plain
JavaScript in static/ (no inline script: the portal's CSP forbids it) that talks to the
API with the page's CSRF token.
"""

import json
import os
import urllib.parse

import bottle

from .. import db, sessions
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

    def page(template, title_key, scripts=(), status=200, **values):
        identity = authenticate()
        lang = language()
        texts = i18n.texts(lang)
        bottle.response.status = status
        bottle.response.set_header("Cache-Control", "no-store")
        bottle.response.set_header("Content-Language", lang)
        return bottle.template(
            template, template_lookup=[TEMPLATES], lang=lang, t=texts,
            title=texts[title_key], host=host, path=urllib.parse.quote(bottle.request.fullpath, safe=""),
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

    @app.get("/")
    def index():
        signed_in = authenticate() is not None
        return page("index.tpl", "app.title", scripts=("common.js", "desktops.js") if signed_in else ())

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
        return page("admin.tpl", "admin.heading", scripts=("common.js", "admin.js"), audit=audit)

    @app.get("/lang/<code>")
    def switch_language(code):
        if code not in i18n.LANGUAGES:
            code = i18n.DEFAULT
        bottle.response.add_header("Set-Cookie", "%s=%s; Path=/; Max-Age=%d; SameSite=Lax%s" % (
            i18n.COOKIE, code, ONE_YEAR, "; Secure" if config.public_url.startswith("https://") else ""))
        redirect(config, safe_return_path(bottle.request.query.get("next")), 303)
