"""The WSGI application: make_app() wires settings, database, engine and identity provider
into Bottle routes.

make_app() builds one Context (what the routes work with: settings, database, desktops,
identity provider, clock, open viewers, who is asking) before any route exists, and hands
it to each module's add_routes(app, context); no module looks anything up by name or
depends on another having added its routes first. Plugins (one database connection per
request, one place that renders errors) wrap every route. Collaborators and the clock are
passed in, so tests run the real app against real parts with a clock they choose.
"""

import dataclasses
import datetime
import typing

import bottle
import peewee

from .. import config as configmodule, db as dbmodule, oidc
from ..classroom import Classroom
from ..files import Files
from ..handouts import Handouts, files_dir_of
from ..preparations import Preparations
from ..desktops.lifecycle import Desktops
from . import api, auth, classroom, desktop, errors, health, metrics, tokens, ui
from .desktop import PROXIED
from .plugins import DatabasePlugin

# Each adds its routes with add_routes(app, context); none needs another to have run first.
ROUTE_MODULES = (health, auth, api, classroom, desktop, metrics, tokens, ui)


@dataclasses.dataclass(frozen=True)
class Context:
    """What every route module gets from make_app(), made before any route is added."""

    settings: configmodule.Config
    database: peewee.Database
    desktops: Desktops
    provider: oidc.Provider
    clock: typing.Callable[[], datetime.datetime]  # returns aware datetimes: "now"
    viewers: desktop.Viewers  # the session's open desktop WebSockets, closed at sign-out
    auth: auth.Auth  # who is asking: authenticate(), require_user()
    classroom: typing.Optional[Classroom]  # None with CLASSROOM=off
    preparations: typing.Optional[Preparations]  # None with CLASSROOM=off
    files: Files  # the homes' files, for their owners
    handouts: typing.Optional[Handouts]  # None with CLASSROOM=off


# Every answer the portal makes: no framing, no opener relationship with pages from inside
# desktops (which the proxy serves without COOP), so desktop content can neither read a
# portal answer nor script a page it opened.
PORTAL_HEADERS = (
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)
PORTAL_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; frame-ancestors 'none'; form-action 'self' {idp}; base-uri 'none'")


def with_portal_headers(app, config):
    """WSGI middleware: security headers on every answer the portal makes itself (pages,
    JSON, redirects and errors alike, under /desktop/ too: a desktop's page must not be
    able to frame or read a portal answer there); only what a desktop serves goes out with
    the headers web/desktop.py gives it (it marks those in the environ). Also refuses a
    Transfer-Encoding other than exactly "chunked" before any route sees the request: a
    proxy and the desktop behind it must never disagree on where a body ends."""
    headers = PORTAL_HEADERS + (("Content-Security-Policy", PORTAL_CSP.format(idp=config.oauth_issuer)),)
    names = {name.lower() for name, _ in headers}

    def wrapped(environ, start_response):
        def start(status, response_headers, exc_info=None):
            if environ.get(PROXIED):
                return start_response(status, response_headers, exc_info)
            kept = [(name, value) for name, value in response_headers if name.lower() not in names]
            return start_response(status, kept + list(headers), exc_info)

        encoding = environ.get("HTTP_TRANSFER_ENCODING")
        if encoding is not None and encoding.strip().lower() != "chunked":
            body = b"Transfer-Encoding must be exactly 'chunked'.\n"
            start("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                      ("Content-Length", str(len(body))), ("Connection", "close")])
            return [body]
        return app(environ, start)
    wrapped.bottle = app
    return wrapped


def make_app(config, db, desktops, provider=None, clock=dbmodule.utcnow):
    """Return the WSGI application: the Bottle app, wrapped in with_portal_headers.

    `db` is an open peewee database, `desktops` a desktops.lifecycle.Desktops (give it the
    same clock), `provider` an oidc.Provider (default: one made from config), `clock` a
    function returning aware datetimes: every "now" of sessions, sign-in and desktop
    access comes from it."""
    authority = auth.Auth(config, clock)
    classroom_ = Classroom(config, authority.policy, clock, desktops.bus) if config.classroom else None
    context = Context(settings=config, database=db, desktops=desktops,
                      provider=provider or oidc.Provider(config), clock=clock,
                      viewers=desktop.Viewers(), auth=authority, classroom=classroom_,
                      preparations=(Preparations(desktops, classroom_, authority.policy, db, clock)
                                    if classroom_ is not None else None),
                      files=Files(desktops, config, db, clock),
                      handouts=(Handouts(desktops, classroom_, files_dir_of(config), db, clock,
                                         config.upload_max_size) if classroom_ is not None else None))
    if context.classroom is not None:
        context.classroom.follow(desktops.bus, db)
        if desktops.engine.homes_reachable:
            desktops.home_hooks.append(context.handouts.deliver_pending)
    app = bottle.Bottle(catchall=False)
    errors.install(app)
    app.install(DatabasePlugin(db))
    for module in ROUTE_MODULES:
        module.add_routes(app, context)
    wrapped = with_portal_headers(app, config)
    wrapped.context = context  # for `iservdesk serve`: the background work of the routes' parts
    return wrapped
