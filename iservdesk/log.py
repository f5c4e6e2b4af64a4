"""Logging set-up and the scrubbers that keep secrets out of logs.

No timestamps: journald adds them. Anything that logs a URL or headers passes them
through scrub_url()/scrub_headers() first.
"""

import logging
import sys
import urllib.parse

# Query parameters that carry credentials: OIDC's code/state, our session carriers, tokens.
SECRET_PARAMS = frozenset({
    "code", "state", "session_id", "token", "access_token", "id_token", "refresh_token",
    "id_token_hint", "client_secret", "password", "csrf_token", "nonce", "code_verifier",
})
SECRET_HEADERS = frozenset({
    "authorization", "cookie", "set-cookie", "x-session-id", "x-csrf-token", "proxy-authorization",
})
HIDDEN = "[hidden]"
# Libraries whose DEBUG output carries SQL parameters, request URLs or headers: capped at
# WARNING whatever LOG_LEVEL says, because those can hold secrets.
QUIET_LIBRARIES = ("peewee", "urllib3", "docker", "geventwebsocket", "authlib", "requests")


def setup(level="INFO", stream=None):
    """Send iservdesk's log lines to stderr (journald) at `level`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def scrub_url(url):
    """`url` with the values of credential-carrying query parameters replaced."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(
        "%s=%s" % (urllib.parse.quote(name, safe=""),
                   HIDDEN if name.lower() in SECRET_PARAMS else urllib.parse.quote(value, safe=""))
        for name, value in pairs)
    return urllib.parse.urlunsplit(parts._replace(query=query))


def scrub_headers(headers):
    """A dict of `headers` (name -> value) with credential headers hidden."""
    return {name: HIDDEN if name.lower() in SECRET_HEADERS else value
            for name, value in dict(headers).items()}
