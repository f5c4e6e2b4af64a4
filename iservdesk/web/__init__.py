"""The WSGI application: make_app() wires settings, database, engine and identity provider
into Bottle routes.

Each module here adds its routes with add_routes(app); plugins (one database connection
per request, one place that renders errors) wrap them all. Collaborators and the clock
are passed in, so tests run the real app against real parts with a clock they choose.
"""

import bottle

from .. import db as dbmodule, oidc
from . import api, auth, errors, health, ui
from .plugins import DatabasePlugin


def make_app(config, db, desktops, provider=None, clock=dbmodule.utcnow):
    """Return the Bottle app. `db` is an open peewee database, `desktops` a
    desktops.manager.Desktops, `provider` an oidc.Provider (default: from config), `clock`
    returns aware datetimes."""
    app = bottle.Bottle(catchall=False)
    app.config["iservdesk.config"] = config
    app.config["iservdesk.db"] = db
    app.config["iservdesk.desktops"] = desktops
    app.config["iservdesk.engine"] = desktops.spawner
    app.config["iservdesk.provider"] = provider or oidc.Provider(config)
    app.config["iservdesk.clock"] = clock
    errors.install(app)
    app.install(DatabasePlugin(db))
    health.add_routes(app)
    auth.add_routes(app)
    api.add_routes(app)
    ui.add_routes(app)
    return app
