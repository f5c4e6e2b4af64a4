"""The WSGI application: make_app() wires settings, database and engine into Bottle routes.

Each module here adds its routes with add_routes(app); plugins (one database connection
per request, one place that renders errors) wrap them all.
"""

import bottle

from . import errors, health
from .plugins import DatabasePlugin


def make_app(config, db, engine):
    """Return the Bottle app. `db` is an open peewee database, `engine` a desktops Engine."""
    app = bottle.Bottle(catchall=False)
    app.config["iservdesk.config"] = config
    app.config["iservdesk.db"] = db
    app.config["iservdesk.engine"] = engine
    errors.install(app)
    app.install(DatabasePlugin(db))
    health.add_routes(app)
    return app
