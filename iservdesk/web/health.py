"""GET /healthz: is the portal able to work? Checks the database and the Docker engine.

Answers 200 with {"status": "ok", ...} or 503 naming what is down. Each check runs on
every call, so a recovered engine is noticed without a restart.
"""

import logging

import bottle

from .. import __version__, db as dbmodule
from ..errors import IServDeskError

log = logging.getLogger(__name__)


def add_routes(app, context):
    """GET /healthz. `context`: a web.Context."""
    database = context.database
    engine = context.desktops.engine

    @app.get("/healthz")
    def healthz():
        checks = {}
        try:
            dbmodule.check(database)
            checks["database"] = "ok"
        except Exception as error:  # any failure here is the answer, not a crash
            checks["database"] = "error: %s" % str(error).splitlines()[0][:200]
        try:
            engine.ping()
            checks["docker"] = "ok"
        except IServDeskError as error:
            # The code, not the detail: the engine's socket is not for whoever asks.
            checks["docker"] = "error: %s" % error.code
            log.warning("health check: %s", error.detail)
        healthy = all(value == "ok" for value in checks.values())
        if not healthy:
            log.warning("health check failed: %s", checks)
        bottle.response.status = 200 if healthy else 503
        bottle.response.set_header("Cache-Control", "no-store")
        return {"status": "ok" if healthy else "error", "version": __version__, "checks": checks}
