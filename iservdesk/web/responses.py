"""Response helpers shared by the route modules."""

import urllib.parse

import bottle


def redirect(config, location, status=302):
    """Raise a redirect. Local paths are made absolute with PUBLIC_URL, never with the
    request's Host or X-Forwarded-* headers, which a client can choose."""
    if location.startswith("/") and not location.startswith("//"):
        location = config.public_url + location
    response = bottle.response.copy(cls=bottle.HTTPResponse)
    response.status = status
    response.body = ""
    response.set_header("Location", location)
    raise response


def web_origin(url):
    """scheme://host[:port] of `url` as browsers send it in Origin: lower case, without
    the scheme's default port ("null" and the like stay as they are)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return url
    host = parts.hostname if ":" not in parts.hostname else "[%s]" % parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return "%s://%s%s" % (parts.scheme, host, "" if port in (None, default) else ":%d" % port)
