"""Pages for people: for now the start page, which says who is signed in.

The desktop selection page and the admin panel replace it (see the web-interface issue).
"""

import html
import os

import bottle

from .. import sessions

PAGE = """<!doctype html>
<html lang="de"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>iservdesk</title></head>
<body><main><h1>iservdesk</h1>{body}</main></body></html>"""


STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


def add_routes(app):
    config = app.config["iservdesk.config"]
    authenticate = app.config["iservdesk.authenticate"]

    @app.get("/static/<filename:path>")
    def static(filename):
        return bottle.static_file(filename, root=STATIC)

    @app.get("/")
    def index():
        identity = authenticate()
        bottle.response.set_header("Cache-Control", "no-store")
        if identity is None:
            return PAGE.format(body='<p><a href="/login">Mit IServ anmelden / Sign in with IServ</a></p>')
        token = sessions.csrf_token(config.secret_key, identity.session_id)
        return PAGE.format(body=(
            "<p>Angemeldet als / signed in as <strong>%s</strong> (%s)</p>"
            '<p><a href="/session">/session</a></p>'
            '<form method="post" action="/logout"><input type="hidden" name="csrf_token" value="%s">'
            '<button type="submit">Abmelden / Sign out</button></form>'
            % (html.escape(identity.user.display_name), html.escape(identity.user.username), token)))
