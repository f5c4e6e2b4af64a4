"""/desktop/<username>-<type>/...: who may enter a desktop, and what the browser sees.

Every request and WebSocket upgrade under /desktop/ is checked against the desktop's
database row (the owner's uuid), never against a parse of the name, after the path has
been normalised, so every spelling of a path meets the same check. Then proxy.py carries
the bytes. A desktop that is not running gets a small status page instead of a bare 502.

Content from inside a desktop is untrusted (its user controls the container). Its
responses get a Content-Security-Policy that confines fetches, WebSockets, frames, forms
and workers to that desktop's own path, no Set-Cookie, and no opener relationship with
portal pages (those send Cross-Origin-Opener-Policy: same-origin and refuse framing), so
a page from a desktop's Downloads/ cannot use the portal's API with the viewer's rights.
"""

import collections
import html
import logging
import socket
import ssl
import urllib.parse

import bottle

from .. import db, metrics, proxy, sessions
from ..errors import IServDeskError
from .auth import Forbidden, Unauthenticated
from .responses import redirect

log = logging.getLogger(__name__)

STATUS_TEXT = {
    "pulling": ("Dein Desktop wird vorbereitet …", "Your desktop is being prepared …"),
    "starting": ("Dein Desktop startet …", "Your desktop is starting …"),
    "new": ("Dein Desktop startet …", "Your desktop is starting …"),
    "running": ("Dein Desktop antwortet gerade nicht.", "Your desktop is not answering right now."),
    "stopped": ("Dieser Desktop ist gestoppt.", "This desktop is stopped."),
    "removed": ("Dieser Desktop ist entfernt. Deine Dateien sind noch da.",
                "This desktop was removed. Your files are still there."),
    "error": ("Dieser Desktop konnte nicht starten.", "This desktop could not start."),
}

BUSY = ("pulling", "starting", "new")

STATUS_PAGE = """<!doctype html>
<html lang="de"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="csrf-token" content="{csrf}">
<title>{title} – iservdesk</title><link rel="stylesheet" href="/static/desktop-status.css"></head>
<body><main id="desktop-status" data-desktop-type="{slug}" data-status="{status}" data-url="{url}">
<h1>{name}</h1>
<p id="status-de" lang="de">{text_de}</p><p id="status-en" lang="en">{text_en}</p>
<p id="message">{message}</p>
<progress id="progress" max="100" {progress} {progress_hidden}></progress>
<p><button id="start" type="button" {start_hidden}>Starten / Start</button>
<a href="/">Zur Übersicht / Back to the overview</a></p>
</main><script src="/static/desktop-status.js"></script></body></html>"""


def security_headers(config, name):
    """Headers for everything served from inside desktop `name`."""
    base = urllib.parse.urlsplit(config.public_url)
    http_prefix = "%s://%s/desktop/%s/" % (base.scheme, base.netloc, name)
    ws_prefix = "%s://%s/desktop/%s/" % ("wss" if base.scheme == "https" else "ws", base.netloc, name)
    policy = ("default-src {p} data: blob: 'unsafe-inline' 'unsafe-eval'; connect-src {p} {w}; "
              "frame-src {p}; worker-src {p} blob:; form-action {p}; base-uri {p}; "
              "frame-ancestors 'self'").format(p=http_prefix, w=ws_prefix)
    return [("Content-Security-Policy", policy), ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"), ("Cache-Control", "private")]


class Viewers:
    """The WebSockets open to desktops, by the hash of the session that opened them, so
    that signing out closes them at once (on a shared school computer, the next person
    must not find the last one's desktop still connected)."""

    def __init__(self):
        self.by_session = collections.defaultdict(set)

    def add(self, session_hash, sock):
        self.by_session[session_hash].add(sock)

    def discard(self, session_hash, sock):
        socks = self.by_session.get(session_hash)
        if socks is not None:
            socks.discard(sock)
            if not socks:
                del self.by_session[session_hash]

    def close(self, session_hash):
        """Close every viewer of the session; its relay then closes the desktop's side."""
        for sock in list(self.by_session.get(session_hash, ())):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


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


def activity_interval(config):
    """Seconds between last-access updates while a WebSocket carries traffic: once a
    minute, or a tenth of IDLE_TIMEOUT when that is shorter (and at least a second)."""
    return max(1.0, min(60.0, config.idle_timeout.total_seconds() / 10))


def rewrite_location(location, name, port, public_url):
    """A redirect from the container, kept inside its /desktop/<name>/ prefix.

    Relative locations stay as they are (the browser resolves them under the prefix);
    absolute paths and URLs of the container or the portal are moved under the prefix;
    anything else becomes the desktop's root, so a desktop cannot send the browser on.
    """
    parts = urllib.parse.urlsplit(location)
    prefix = "/desktop/%s" % name
    own_hosts = {"127.0.0.1:%d" % port, urllib.parse.urlsplit(public_url).netloc}
    if not parts.scheme and not parts.netloc:
        if not location.startswith("/"):
            return location
    elif parts.netloc not in own_hosts:
        return prefix + "/"
    path = parts.path if parts.path.startswith(prefix + "/") else prefix + (parts.path or "/")
    return urllib.parse.urlunsplit(("", "", path, parts.query, parts.fragment))


def add_routes(app):
    config = app.config["iservdesk.config"]
    desktops = app.config["iservdesk.desktops"]
    authenticate = app.config["iservdesk.authenticate"]
    clock = app.config["iservdesk.clock"]
    database = app.config["iservdesk.db"]
    viewers = app.config["iservdesk.viewers"]
    policy = sessions.Policy.from_config(config)
    own_origin = web_origin(config.public_url)

    def status_page(identity, row, status_code):
        desktop_type = desktops.catalog.types.get(row.desktop_type)
        text_de, text_en = STATUS_TEXT.get(row.status, STATUS_TEXT["error"])
        progress = desktops.progress.get(row.name)
        bottle.response.status = status_code
        bottle.response.set_header("Cache-Control", "no-store")
        bottle.response.content_type = "text/html; charset=utf-8"
        return STATUS_PAGE.format(
            csrf=sessions.csrf_token(config.secret_key, identity.session_id),
            title=html.escape(row.name), slug=html.escape(row.desktop_type), status=html.escape(row.status),
            url=html.escape(desktops.url(row)),
            name=html.escape(desktop_type.name["de"] if desktop_type else row.name),
            text_de=text_de, text_en=text_en, message=html.escape(row.message or ""),
            progress='value="%d"' % progress if progress is not None else "",
            progress_hidden="" if row.status in BUSY else "hidden",
            start_hidden="hidden" if row.status in BUSY else "")

    def owner_check(identity, row):
        if identity.user.id == row.user_id:
            return
        if identity.is_admin and config.admin_desktop_access:
            with db.write(database):
                db.record("desktop.admin-access", actor=identity.user.username, target=row.name,
                          path=bottle.request.path[:200])
            log.warning("admin %s entered the desktop %s of %s", identity.user.username, row.name,
                        row.user.username)
            return
        raise Forbidden("This desktop belongs to someone else.", code="not_owner")

    @app.route("/desktop<rest:path>", method=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    def desktop(rest):
        environ = bottle.request.environ
        websocket = environ.get("iservdesk.websocket")
        path = proxy.normalise(environ["PATH_INFO"])
        parts = proxy.split(path)
        raw = environ.get("iservdesk.raw_path", "").lower()
        # An encoded slash or backslash hides a segment boundary from the browser's CSP
        # path check (e.g. "..%2F"): no desktop needs one.
        if parts is None or "%2f" in raw or "%5c" in raw:
            raise IServDeskError("Not found.", status=404, code="not_found")
        name, rest = parts
        identity = authenticate()
        if identity is None:
            if websocket is not None or bottle.request.method != "GET":
                raise Unauthenticated()
            query = environ.get("QUERY_STRING")
            redirect(config, "/login?next=" + urllib.parse.quote(path + ("?" + query if query else ""), safe=""))
        origin = environ.get("HTTP_ORIGIN")
        changing = websocket is not None or bottle.request.method not in ("GET", "HEAD", "OPTIONS")
        if changing and identity.via_cookie and origin and web_origin(origin) != own_origin:
            # Cookies also ride along on WebSockets and form posts from pages of sibling
            # hosts (same site for SameSite=Lax, e.g. another school server): only the
            # portal's own pages may drive a desktop with the session cookie. Browsers send
            # Origin with both; the desktop's own pages are on the portal's origin.
            log.warning("refused a %s to desktop %s from a page of %s",
                        "WebSocket" if websocket is not None else bottle.request.method, name[:80], origin[:100])
            raise Forbidden("Desktops may only be used from %s." % own_origin, code="foreign_origin")
        row = (db.Desktop.select(db.Desktop, db.User).join(db.User)
               .where(db.Desktop.name == name.lower()).first())
        if row is None:
            raise IServDeskError("There is no desktop %s." % name[:80], status=404, code="desktop_not_found")
        owner_check(identity, row)

        canonical = "/desktop/%s%s" % (row.name, rest or "/")
        if websocket is None and bottle.request.method in ("GET", "HEAD"):
            query = bottle.request.query_string
            if not rest:
                # Kasm's and noVNC's assets are relative: the page must end in a slash.
                redirect(config, canonical + ("?" + query if query else ""), 301)
            if rest == "/" and "path=" not in query:
                # The client opens its WebSocket at <path>, default "websockify" at the
                # site root; point it at this desktop.
                extra = {"path": "desktop/%s/websockify" % row.name}
                params = urllib.parse.parse_qs(query)
                if "autoconnect" not in params:
                    extra["autoconnect"] = "1"
                if "resize" not in params:
                    extra["resize"] = "remote"
                redirect(config, canonical + "?" + "&".join(
                    filter(None, [query, urllib.parse.urlencode(extra)])), 302)
            if path != canonical:
                redirect(config, canonical + ("?" + query if query else ""), 301)

        if row.status != "running" or not row.container_id or not row.host_port:
            if websocket is not None:
                raise IServDeskError("The desktop is not running.", status=409, code="desktop_not_running")
            return status_page(identity, row, 503 if row.status in BUSY else 409)

        port, secret = row.host_port, row.secret
        desktops.record_access(row, clock())
        if not database.is_closed():
            database.close()  # no connection held while bytes flow for hours
        if websocket is not None:
            return tunnel(websocket, identity, rest, row, port, secret)
        try:
            response = proxy.http_request(environ, rest or "/", port, secret, config.proxy_timeout)
        except proxy.UpstreamError as error:
            log.warning("desktop %s did not answer: %s", row.name, error)
            desktops.reconcile_soon()
            return status_page(identity, row, 502)
        bottle.response.status = response.status
        for header, value in response.headers:
            if header.lower() == "location":
                value = rewrite_location(value, row.name, port, config.public_url)
            bottle.response.add_header(header, value)
        for header, value in security_headers(config, row.name):
            bottle.response.set_header(header, value)
        if bottle.response.content_type.startswith("text/html"):
            # Pages are never kept, so that a desktop stopped since shows the portal's page
            # (with its start button) instead of a cached client that can no longer
            # connect: with "no-cache", Chromium still showed the stored page at times.
            # Scripts and styles may come from the cache.
            bottle.response.set_header("Cache-Control", "no-store")
        return response

    def tunnel(websocket, identity, rest, row, port, secret):
        try:
            upstream = proxy.TLSPipe.connect(port)
            upstream.sendall(proxy.websocket_handshake(bottle.request.environ, rest or "/", secret))
            head, pending = proxy.read_head(upstream)
        except (OSError, ssl.SSLError, proxy.UpstreamError) as error:
            log.warning("WebSocket to desktop %s failed: %s", row.name, error)
            desktops.reconcile_soon()
            raise IServDeskError("The desktop does not answer.", status=502, code="desktop_unreachable")
        if not head.startswith(b"HTTP/1.1 101"):
            upstream.close()
            log.warning("desktop %s refused the WebSocket handshake: %s", row.name,
                        head.split(b"\r\n", 1)[0].decode("latin-1")[:80])
            raise IServDeskError("The desktop refused the connection.", status=502, code="handshake_refused")
        client, reader = websocket.take()
        client.sendall(proxy.clean_response_head(head))
        name, user_id = row.name, row.user_id
        session_id, session_hash = identity.session_id, identity.session.id_hash

        def record_access():
            fresh = db.Desktop.get_or_none(db.Desktop.name == name)
            if fresh is not None and fresh.user_id == user_id:
                desktops.record_access(fresh, clock())

        def beat(flowed):
            # A viewer lives as long as the session that opened it: traffic keeps both
            # the desktop and the session in use; an ended or expired session ends it.
            with database.connection_context():
                if sessions.resolve(session_id, policy, clock(), touch=flowed) is None:
                    log.info("WebSocket to desktop %s closed: its session ended", name)
                    return False
                if flowed:
                    record_access()
            return True

        log.info("WebSocket opened to desktop %s", name)
        metrics.WEBSOCKETS_OPEN.inc()
        viewers.add(session_hash, client)
        try:
            count = proxy.relay(client, reader, upstream, pending, beat, activity_interval(config))
        finally:
            viewers.discard(session_hash, client)
            metrics.WEBSOCKETS_OPEN.dec()
        log.info("WebSocket to desktop %s closed after %d bytes", name, count)
        with database.connection_context():
            record_access()
        return []
