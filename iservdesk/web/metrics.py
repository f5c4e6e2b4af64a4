"""GET /metrics: Prometheus text. For loopback requests that did not pass a proxy (nginx
adds X-Forwarded-For, and its site refuses /metrics anyway), or with METRICS_TOKEN."""

import hmac

import bottle
import peewee

from .. import db, metrics
from .auth import Forbidden

LOOPBACK = ("127.0.0.1", "::1")
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def add_routes(app, context):
    """GET /metrics. `context`: a web.Context."""
    config = context.settings
    desktops = context.desktops
    clock = context.clock

    def allowed():
        authorization = bottle.request.headers.get("Authorization", "")
        if config.metrics_token and authorization.startswith("Bearer ") and \
                hmac.compare_digest(authorization[7:].encode(), config.metrics_token.encode()):
            return True
        return (bottle.request.environ.get("REMOTE_ADDR") in LOOPBACK
                and not any(bottle.request.headers.get(name) for name in PROXY_HEADERS))

    @app.get("/metrics")
    def scrape():
        if not allowed():
            raise Forbidden("Metrics are for loopback or the METRICS_TOKEN.", code="metrics_forbidden")
        by_state = metrics.Gauge("iservdesk_desktops", "Desktops known to the portal, by state and type.",
                                 ["state", "type"])
        for row in db.Desktop.select(db.Desktop.status, db.Desktop.desktop_type):
            by_state.inc(row.status, row.desktop_type)
        for desktop_type in desktops.catalog:  # every type appears, if only with 0 running
            by_state.inc("running", desktop_type.slug, amount=0)
        cleanup = metrics.Counter("iservdesk_cleanup_actions_total",
                                  "Actions of iservdesk cleanup (from the audit log).", ["action"])
        query = (db.Event.select(db.Event.action, peewee.fn.COUNT(db.Event.id).alias("n"))
                 .where(db.Event.actor == "cleanup").group_by(db.Event.action))
        for event in query:
            cleanup.inc(event.action, amount=event.n)
        sessions = metrics.Gauge("iservdesk_sessions", "Sessions not yet expired or ended.")
        sessions.inc(amount=db.Session.select().where(db.Session.expires_at > clock()).count())
        bottle.response.content_type = "text/plain; version=0.0.4; charset=utf-8"
        bottle.response.set_header("Cache-Control", "no-store")
        return metrics.render(metrics.PROCESS_METRICS + (by_state, cleanup, sessions))
