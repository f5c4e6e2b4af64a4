"""The one place that turns exceptions into responses.

IServDeskError subclasses carry their status and a message safe to show; anything else is
logged with its traceback and answered with a generic 500. JSON for API-style paths,
a small page elsewhere. Bottle's own HTTP errors (404, 405) get the same treatment.
"""

import functools
import html
import json
import logging

import bottle

from ..errors import IServDeskError

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/healthz", "/session", "/metrics")


def wants_json(path):
    return path.startswith(JSON_PREFIXES)


def render(status, code, message):
    """An HTTPResponse for an error, shaped for the current request's path."""
    if wants_json(bottle.request.path):
        body = json.dumps({"error": code, "message": message})
        content_type = "application/json"
    else:
        body = ("<!doctype html><html><head><meta charset=utf-8><title>%d</title></head>"
                "<body><h1>%s</h1><p><a href=\"/\">iservdesk</a></p></body></html>"
                % (status, html.escape(message)))
        content_type = "text/html; charset=utf-8"
    return bottle.HTTPResponse(body, status=status, headers={"Content-Type": content_type,
                                                            "Cache-Control": "no-store"})


class ErrorPlugin:
    name = "iservdesk-errors"
    api = 2

    def apply(self, callback, route):
        @functools.wraps(callback)
        def wrapper(*args, **kwargs):
            try:
                return callback(*args, **kwargs)
            except bottle.HTTPResponse:
                raise
            except IServDeskError as error:
                if error.status >= 500:
                    log.warning("%s %s: %s", bottle.request.method, route.rule, error)
                return render(error.status, error.code, error.public_message)
            except Exception:
                log.exception("unexpected error in %s %s", bottle.request.method, route.rule)
                return render(500, "internal_error", "Something went wrong on the server.")

        return wrapper


def install(app):
    app.install(ErrorPlugin())

    def bottle_error(error):
        # Bottle's own errors (no route, wrong method): same shape as ours, no traceback.
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = {404: "Not found.", 405: "Method not allowed."}.get(
            error.status_code, "The request could not be handled.")
        response = render(error.status_code, codes.get(error.status_code, "error"), message)
        bottle.response.content_type = response.content_type
        return response.body

    for status in (400, 404, 405, 500):
        app.error_handler[status] = bottle_error
