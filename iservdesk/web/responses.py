"""Response helpers shared by the route modules."""

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
