"""/desktop/<username>-<type>/...: who may enter a desktop, and what the browser sees.

Every request and WebSocket upgrade under /desktop/ is checked against the desktop's
database row (the owner's uuid), never against a parse of the name, after the path has
been normalised, so every spelling of a path meets the same check. Then proxy.py carries
the bytes. A desktop that is not running gets a small status page instead of a bare 502.

What a desktop serves is untrusted: its user controls the container (Kasm images serve
the user-writable Downloads/ from the web root). So, in layers:
- only the session cookie opens a desktop (web/auth.py), and only from the portal's own
  origin (Fetch Metadata, else Origin/Referer for writes);
- only the owner gets the desktop's pages; an admin with ADMIN_DESKTOP_ACCESS gets the
  portal's own viewer (web/viewer.py) and the WebSocket behind it, nothing else, as
  KasmVNC's view-only user when the setting says "view";
- every page other than the desktop client's entry page is sandboxed (an opaque origin:
  it reads no portal answer, and SameSite cookies stay behind), and all of the desktop's
  answers get a policy confining fetches, frames and forms to its own path;
- a desktop's redirects must stay inside its path, and its headers pass an allowlist;
- answers the portal makes under /desktop/ carry the portal's strict headers (no framing,
  COOP; web/__init__.py) and no CSRF token.
"""

import collections
import html
import json
import logging
import socket
import ssl
import urllib.parse

import bottle

from .. import db, metrics, proxy, sessions
from ..desktops import BUSY, Status
from ..errors import BadGateway, DesktopNotFound, DesktopNotRunning, DesktopUnreachable, NotFound, TooMany
from . import i18n, viewer
from .auth import Forbidden, Unauthenticated, cross_site
from .responses import redirect, web_origin

log = logging.getLogger(__name__)

STATUS_TEXT = {
    Status.PULLING: ("Dein Desktop wird vorbereitet …", "Your desktop is being prepared …"),
    Status.STARTING: ("Dein Desktop startet …", "Your desktop is starting …"),
    Status.NEW: ("Dein Desktop startet …", "Your desktop is starting …"),
    Status.QUEUED: ("Dein Desktop wartet auf einen Startplatz …",
                    "Your desktop is waiting for its turn to start …"),
    Status.RUNNING: ("Dein Desktop antwortet gerade nicht.", "Your desktop is not answering right now."),
    Status.STOPPED: ("Dieser Desktop ist gestoppt.", "This desktop is stopped."),
    Status.REMOVED: ("Dieser Desktop ist entfernt. Deine Dateien sind noch da.",
                     "This desktop was removed. Your files are still there."),
    Status.ERROR: ("Dieser Desktop konnte nicht starten.", "This desktop could not start."),
}


# The status page follows these until the desktop runs.
STARTING = BUSY | {Status.NEW}

CROSS_SITE_PAGE = """<!doctype html>
<html lang="de"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>iservdesk</title><link rel="stylesheet" href="/static/desktop-status.css"></head>
<body><main id="cross-site">
<p lang="de">Dieser Link kommt von einer anderen Seite. Desktops öffnen sich nur von iservdesk aus.</p>
<p lang="en">This link comes from another site. Desktops open only from iservdesk itself.</p>
<p><a id="continue" href="{target}">Desktop öffnen / Open the desktop</a>
<a href="/">Zur Übersicht / Back to the overview</a></p>
</main></body></html>"""

STATUS_PAGE = """<!doctype html>
<html lang="de"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} – iservdesk</title><link rel="stylesheet" href="/static/desktop-status.css"></head>
<body><main id="desktop-status" data-desktop-type="{slug}" data-status="{status}" data-url="{url}">
<h1>{name}</h1>
<p id="status-de" lang="de">{text_de}</p><p id="status-en" lang="en">{text_en}</p>
<p id="message">{message}</p>
<progress id="progress" max="100" {progress} {progress_hidden}></progress>
<p><button id="start" type="button" {start_hidden}>Starten / Start</button>
<a href="/">Zur Übersicht / Back to the overview</a></p>
</main><script src="/static/desktop-status.js"></script></body></html>"""

# What the owner's tab shows at /desktop/<name>/: the desktop's client in a frame under a
# bar of the portal's own, which tells the owner, where they look, who sees their screen
# and warns before an idle stop (static/desktop-frame.js). Only browsers that send
# Sec-Fetch-Dest get it (the frame's request says "iframe" and gets the client); others
# get the client itself.
FRAME_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} – iservdesk</title><link rel="stylesheet" href="/static/desktop-frame.css"></head>
<body data-desktop="{name}" data-desktop-type="{slug}" data-classroom="{classroom}">
<div id="desktop-notices" role="status" aria-live="polite" hidden></div>
<div id="idle-warning" role="alert" hidden><p></p><button type="button" id="keep">{keep}</button></div>
<iframe id="desktop-frame" src="{src}" title="{title}"
 allow="clipboard-read; clipboard-write; fullscreen; keyboard-map"></iframe>
<script type="application/json" id="desktop-texts">{texts}</script>
<script src="/static/desktop-frame.js"></script></body></html>"""
FRAME_TEXTS = ("watching.now", "watching.thumbnail", "watching.view_only", "idle.warning", "idle.warning_soon",
               "idle.keep")


# Sec-Fetch-Dest of requests whose answers are never rendered as a document of their own.
SUBRESOURCES = frozenset({"script", "style", "image", "font", "worker", "sharedworker", "audio",
                          "video", "track", "manifest", "empty", "audioworklet", "paintworklet",
                          "xslt", "json", "websocket"})
# A document a desktop serves runs scripts, forms and downloads, but in an opaque origin:
# no allow-same-origin (it cannot read portal answers, and SameSite cookies stay home),
# no allow-top-navigation, no way out of the sandbox for its popups.
SANDBOX = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
# A session's open WebSockets to desktops: a person has a few tabs; more is a runaway page.
WEBSOCKETS_PER_SESSION = 8
# Who looks at a desktop: its owner, or someone else through the portal's viewer with full
# control or view only (ADMIN_DESKTOP_ACCESS's values).
# WATCH: a teacher, watching a member of their class; DEMO: a member of a class, looking at
# the teacher's desktop that the teacher shows to the class (classroom.py).
OWNER, FULL, VIEW, WATCH, DEMO = "owner", "full", "view", "watch", "demo"
VIEW_ONLY = frozenset({VIEW, WATCH, DEMO})  # as KasmVNC's view-only user; no use of the desktop
# WSGI environ key: set when the answer is a desktop's, so that with_portal_headers (web/
# __init__.py) leaves its headers alone; every other answer under /desktop/ is the portal's.
PROXIED = "iservdesk.proxied"


def security_headers(config, name, document):
    """Headers for what desktop `name` serves. `document`: the answer may be rendered as a
    page other than the desktop's client (its entry page at /desktop/<name>/), so it is
    sandboxed. The policy confines fetches, WebSockets, frames, forms and workers to the
    desktop's own path; Vary keeps a cached subresource from being reused as a document."""
    base = urllib.parse.urlsplit(config.public_url)
    http_prefix = "%s://%s/desktop/%s/" % (base.scheme, base.netloc, name)
    ws_prefix = "%s://%s/desktop/%s/" % ("wss" if base.scheme == "https" else "ws", base.netloc, name)
    policy = ("default-src {p} data: blob: 'unsafe-inline' 'unsafe-eval'; connect-src {p} {w}; "
              "frame-src {p}; worker-src {p} blob:; form-action {p}; base-uri {p}; "
              "frame-ancestors 'self'").format(p=http_prefix, w=ws_prefix)
    if document:
        policy += "; " + SANDBOX
    return [("Content-Security-Policy", policy), ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"), ("Cache-Control", "private"),
            ("Vary", "Sec-Fetch-Dest")]


class Viewers:
    """The WebSockets open to desktops, by the hash of the session that opened them, so
    that signing out closes them at once (on a shared school computer, the next person
    must not find the last one's desktop still connected)."""

    def __init__(self):
        self.by_session = collections.defaultdict(set)

    def count(self, session_hash):
        return len(self.by_session.get(session_hash, ()))

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


def activity_interval(config):
    """Seconds between last-access updates while a WebSocket carries traffic: once a
    minute, or a tenth of IDLE_TIMEOUT when that is shorter (and at least a second)."""
    return max(1.0, min(60.0, config.idle_timeout.total_seconds() / 10))


def confine_location(location, request_path, name, public_url):
    """A desktop's redirect as a path inside /desktop/<name>/, or None.

    Read as a browser would: tabs and newlines dropped, backslashes as slashes. A relative
    reference is resolved against the request's path; an absolute path, or a URL of the
    container itself (127.0.0.1), is a path of the desktop and so is put under its prefix
    (a directory listing answers /Downloads with /Downloads/); a URL of the portal keeps
    its path. Then dot segments (also percent-encoded ones) are removed, and the result
    must still lie inside the prefix. It is re-serialised, so the browser follows exactly
    what was checked: CSP does not look at paths after a redirect, so this is what keeps a
    desktop's page inside its prefix.
    """
    text = location.strip("".join(map(chr, range(33))))
    text = "".join(c for c in text if c not in "\t\n\r").replace("\\", "/")
    prefix = "/desktop/%s" % name

    def under_prefix(path):
        return path if (path + "/").startswith(prefix + "/") else prefix + path

    try:
        parts = urllib.parse.urlsplit(text)
        if parts.scheme or parts.netloc:
            if parts.scheme.lower() not in ("http", "https", ""):
                return None
            origin = urllib.parse.urlunsplit((parts.scheme or "http", parts.netloc, "/", "", ""))
            if parts.scheme and web_origin(origin) == web_origin(public_url):
                path = parts.path or "/"
            elif parts.hostname in ("127.0.0.1", "localhost"):
                path = under_prefix(parts.path or "/")
            else:
                return None
        elif parts.path.startswith("/"):
            path = under_prefix(parts.path)
        else:
            path = urllib.parse.urljoin(request_path, parts.path) if parts.path else request_path
    except ValueError:  # a port that is no number, brackets that do not close
        return None
    # Encoded slashes hide segment boundaries (and get 404 here anyway).
    if "%2f" in path.lower() or "%5c" in path.lower():
        return None
    decoded = urllib.parse.unquote(path)
    if any(ord(c) < 32 for c in decoded):
        return None
    clean = proxy.normalise(decoded)
    if not (clean + "/").startswith(prefix + "/"):
        return None
    return urllib.parse.urlunsplit(("", "", urllib.parse.quote(clean, safe="/:@!$&'()*+,;=-._~"),
                                    parts.query, parts.fragment))


def add_routes(app, context):
    """/desktop/...: the checks, then the proxy. `context`: a web.Context."""
    config = context.settings
    desktops = context.desktops
    authenticate = context.auth.authenticate
    clock = context.clock
    database = context.database
    viewers = context.viewers
    policy = context.auth.policy
    classroom = context.classroom
    own_origin = web_origin(config.public_url)  # for messages; cross_site() compares

    def status_page(identity, row, status_code):
        desktop_type = desktops.catalog.types.get(row.desktop_type)
        text_de, text_en = STATUS_TEXT.get(row.status, STATUS_TEXT[Status.ERROR])
        progress = desktops.progress.get(row.name)
        bottle.response.status = status_code
        bottle.response.set_header("Cache-Control", "no-store")
        bottle.response.content_type = "text/html; charset=utf-8"
        return STATUS_PAGE.format(
            title=html.escape(row.name), slug=html.escape(row.desktop_type), status=html.escape(row.status),
            url=html.escape(desktops.url(row)),
            name=html.escape(desktop_type.name["de"] if desktop_type else row.name),
            text_de=text_de, text_en=text_en, message=html.escape(row.message or ""),
            progress='value="%d"' % progress if progress is not None else "",
            progress_hidden="" if row.status in STARTING else "hidden",
            start_hidden="hidden" if row.status in STARTING else "")

    def frame_page(row):
        """The owner's tab: the portal's bar over the client, framed at this same address."""
        lang = viewer.request_language()
        texts = i18n.texts(lang)
        desktop_type = desktops.catalog.types.get(row.desktop_type)
        title = desktop_type.name.get(lang, row.name) if desktop_type else row.name
        query = bottle.request.query_string
        bottle.response.set_header("Cache-Control", "no-store")
        bottle.response.set_header("Vary", "Sec-Fetch-Dest")
        bottle.response.content_type = "text/html; charset=utf-8"
        return FRAME_PAGE.format(
            lang=lang, title=html.escape(title), name=html.escape(row.name), slug=html.escape(row.desktop_type),
            keep=html.escape(texts["idle.keep"]),
            classroom="true" if classroom is not None else "false",
            src=html.escape("/desktop/%s/" % row.name + ("?" + query if query else "")),
            # JSON inside <script>: "<" escaped, so no text can end the element.
            texts=json.dumps({key: texts[key] for key in FRAME_TEXTS}, ensure_ascii=False).replace("<", "\\u003c"))

    def access_of(identity, row, rest, websocket):
        """OWNER for the owner. Anyone else who may look (an admin, by ADMIN_DESKTOP_ACCESS)
        gets FULL or VIEW for the portal's viewer page and the WebSocket it opens (audited),
        and 403 for everything else: the pages a desktop serves are its user's to control."""
        if identity.user.id == row.user_id:
            return OWNER
        access = config.admin_desktop_access if identity.is_admin else "off"
        if access == "off" and classroom is not None:
            if classroom.may_watch(identity, row.user):
                access = WATCH
            elif classroom.demo_of(identity, row) is not None:
                access = DEMO
        if access == "off":
            raise Forbidden("This desktop belongs to someone else.", code="not_owner")
        viewing = (rest == "/websockify" if websocket is not None
                   else rest in ("", "/") and bottle.request.method in ("GET", "HEAD"))
        if not viewing:
            raise Forbidden("You see this desktop through the portal's viewer only.", code="viewer_only")
        if access in VIEW_ONLY and websocket is not None and not row.view_secret:
            raise DesktopNotRunning("This desktop was started before it could be watched; it can be "
                                    "once it has been removed and started again.", code="not_watchable")
        if rest and access in (FULL, VIEW):  # watches and demos are audited by classroom.py
            with db.write(database):
                db.record("desktop.admin-access", actor=identity.user.username, target=row.name,
                          what="viewer" if websocket is not None else "page", access=access)
        if rest:
            # Watching and demos are a lesson's routine; an admin looking on is not.
            level = logging.WARNING if access in (FULL, VIEW) else logging.INFO
            who = {WATCH: "teacher", DEMO: "class member"}.get(access, "admin")
            log.log(level, "%s %s looks at the desktop %s of %s (%s)", who, identity.user.username,
                    row.name, row.user.username, "full control" if access == FULL else "view only")
        return access

    def refuse_cross_site(environ, websocket, name):
        """403 unless the request comes from the portal's own origin (or is a navigation the
        person made: a bookmark, the address bar). The session cookie rides along on
        requests from other sites' pages, sibling hosts (same site for SameSite=Lax) and
        sandboxed documents; none of them may act on a desktop with it."""
        site = environ.get("HTTP_SEC_FETCH_SITE")
        if site is None and websocket is None and bottle.request.method in ("GET", "HEAD", "OPTIONS"):
            return  # no Fetch Metadata (older browsers): only writes and WebSockets are judged
        if not cross_site(bottle.request, config.public_url):
            return
        source = site or environ.get("HTTP_ORIGIN") or environ.get("HTTP_REFERER")
        what = "WebSocket" if websocket is not None else bottle.request.method
        log.warning("refused a %s to desktop %s from %s", what, name[:80], source[:100])
        if (websocket is None and bottle.request.method == "GET"
                and environ.get("HTTP_SEC_FETCH_MODE", "") == "navigate"):
            # A link from another site (e.g. IServ): one click on our own page goes on.
            query = proxy.upstream_query(environ.get("QUERY_STRING", ""))
            target = html.escape(urllib.parse.quote(proxy.normalise(environ["PATH_INFO"]),
                                                    safe="/-._~") + ("?" + query if query else ""))
            raise bottle.HTTPResponse(CROSS_SITE_PAGE.format(target=target), status=403, headers={
                "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})
        raise Forbidden("Desktops may only be used from %s." % own_origin, code="foreign_origin")

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
            raise NotFound()
        name, rest = parts
        if environ.get("HTTP_SERVICE_WORKER"):
            # A service worker registered under a desktop's path would answer later visits
            # to it in that browser, e.g. an admin's on a shared school computer.
            raise Forbidden("Desktops cannot install service workers.", code="service_worker_refused")
        identity = authenticate()
        if identity is None:
            if websocket is not None or bottle.request.method != "GET":
                raise Unauthenticated()
            query = proxy.upstream_query(environ.get("QUERY_STRING", ""))
            target = path + ("?" + query if query else "")
            redirect(config, "/login?next=" + urllib.parse.quote(target, safe=""))
        refuse_cross_site(environ, websocket, name)
        row = (db.Desktop.select(db.Desktop, db.User).join(db.User)
               .where(db.Desktop.name == name.lower()).first())
        if row is None:
            raise DesktopNotFound("There is no desktop %s." % name[:80])
        access = access_of(identity, row, rest, websocket)
        owner = access == OWNER

        canonical = "/desktop/%s%s" % (row.name, rest or "/")
        if websocket is None and bottle.request.method in ("GET", "HEAD"):
            query = bottle.request.query_string
            if not rest:
                # Kasm's and noVNC's assets are relative: the page must end in a slash.
                redirect(config, canonical + ("?" + query if query else ""), 301)
            if owner and rest == "/" and "path=" not in query:
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

        running = row.status == Status.RUNNING and row.container_id and row.host_port
        if not running and websocket is not None:
            raise DesktopNotRunning()
        if not owner and websocket is None:
            if not running:
                raise DesktopNotRunning()
            bottle.response.set_header("Cache-Control", "no-store")
            return viewer.page(config, row, row.user.display_name or row.user.username,
                               view_only=access != FULL)
        if not running:
            return status_page(identity, row, 503 if row.status in STARTING else 409)
        if rest == "/" and websocket is None and environ.get("HTTP_SEC_FETCH_DEST") == "document":
            return frame_page(row)

        target, secret = row.target, row.secret
        # Watching uses KasmVNC's view-only user: the desktop itself refuses the input.
        user = "kasm_user"
        if access in VIEW_ONLY:  # looking on is no use of the desktop: idle stays idle
            user, secret = "kasm_viewer", row.view_secret
        else:
            desktops.record_access(row, clock())
        if not database.is_closed():
            database.close()  # no connection held while bytes flow for hours
        if websocket is not None:
            if viewers.count(identity.session.id_hash) >= WEBSOCKETS_PER_SESSION:
                raise TooMany("Too many desktop connections are open in this session. Close some tabs "
                              "and try again.", code="too_many_websockets")
            return tunnel(websocket, identity, rest, row, target, secret, user, access)
        try:
            response = proxy.http_request(environ, rest or "/", target, secret, config.proxy_timeout)
        except proxy.UpstreamError as error:
            log.warning("desktop %s did not answer: %s", row.name, error)
            desktops.reconcile_soon()
            return status_page(identity, row, 502)
        bottle.response.status = response.status
        for header, value in response.headers:
            if header.lower() == "location":
                value = confine_location(value, canonical, row.name, config.public_url)
                if value is None:
                    response.close()
                    log.warning("desktop %s redirected out of its path; refused", row.name)
                    raise BadGateway("The desktop tried to send your browser somewhere else.",
                                     code="redirect_refused")
            bottle.response.add_header(header, value)
        document = rest != "/" and environ.get("HTTP_SEC_FETCH_DEST", "document") not in SUBRESOURCES
        for header, value in security_headers(config, row.name, document):
            bottle.response.set_header(header, value)
        if bottle.response.content_type.startswith("text/html"):
            # Pages are never kept, so that a desktop stopped since shows the portal's page
            # (with its start button) instead of a cached client that can no longer
            # connect: with "no-cache", Chromium still showed the stored page at times.
            # Scripts and styles may come from the cache.
            bottle.response.set_header("Cache-Control", "no-store")
        environ[PROXIED] = True
        return response

    def tunnel(websocket, identity, rest, row, target, secret, user, access):
        try:
            upstream = proxy.TLSPipe.connect(target)
            upstream.sendall(proxy.websocket_handshake(bottle.request.environ, rest or "/", secret, user))
            head, pending = proxy.read_head(upstream)
        except (OSError, ssl.SSLError, proxy.UpstreamError) as error:
            log.warning("WebSocket to desktop %s failed: %s", row.name, error)
            desktops.reconcile_soon()
            raise DesktopUnreachable()
        if not head.startswith(b"HTTP/1.1 101"):
            upstream.close()
            log.warning("desktop %s refused the WebSocket handshake: %s", row.name,
                        head.split(b"\r\n", 1)[0].decode("latin-1")[:80])
            raise BadGateway("The desktop refused the connection.", code="handshake_refused")
        client, reader = websocket.take()
        client.sendall(proxy.clean_response_head(head))
        name, user_id = row.name, row.user_id
        session_id, session_hash = identity.session_id, identity.session.id_hash

        def record_access():
            if access in VIEW_ONLY:
                return
            fresh = db.Desktop.get_or_none(db.Desktop.name == name)
            if fresh is not None and fresh.user_id == user_id:
                desktops.record_access(fresh, clock())

        def beat(flowed):
            # A viewer lives as long as the session that opened it: traffic keeps both
            # the desktop and the session in use; an ended or expired session ends it.
            if demo is not None and demo not in classroom.demos.values():
                return False
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
        watch = demo = None
        if access == WATCH:
            with database.connection_context(), db.write(database):
                watch = classroom.started(identity, row)
        elif access == DEMO:
            # Ending the demo closes this viewer (classroom.end_demo); one that ended while
            # this connection was being made is closed at once.
            demo = classroom.demo_of(identity, row)
            if demo is not None:
                demo.sockets.add(client)
            else:
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        try:
            count = proxy.relay(client, reader, upstream, pending, beat, activity_interval(config))
        finally:
            if demo is not None:
                demo.sockets.discard(client)
            viewers.discard(session_hash, client)
            metrics.WEBSOCKETS_OPEN.dec()
            if watch is not None:
                with database.connection_context(), db.write(database):
                    classroom.ended(watch)
        log.info("WebSocket to desktop %s closed after %d bytes", name, count)
        with database.connection_context():
            record_access()
        return []
