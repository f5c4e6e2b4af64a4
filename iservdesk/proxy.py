"""HTTP and WebSocket reverse proxy into one desktop container, at wire speed.

Owns the bytes on the wire: path normalisation, which headers cross in each direction,
the TLS connection to the container's port (on 127.0.0.1, or a Swarm node's address) with
the injected Basic auth, the verbatim WebSocket handshake and the raw relay after it. Who
may use which desktop is decided by web/desktop.py before anything here runs.

KasmVNC is strict (the demo image's DEMO_MODE=strict front imitates it, see
scripts/build-demo-desktop; tests/test_proxy.py holds the proxy to it): it wants the
browser's own handshake with `Host:` and `Connection:` spelled in exactly that case,
answers a handshake it dislikes with index.html and 200, blacklists client IPs taken
from X-Forwarded-For after failed auth, and speaks plain HTTP one request per
connection. So: every request gets its own connection, X-Forwarded-* never reach it,
and after a 101 the frames are relayed as bytes, never decoded and re-framed.
"""

import base64
import errno
import http.client
import io
import logging
import posixpath
import socket
import ssl
import time
import urllib.parse

import gevent
import gevent.socket

from . import metrics

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5  # seconds to reach the container
HEAD_LIMIT = 65536  # bytes of a response head we accept
SCREENSHOT_LIMIT = 4 << 20  # bytes of a screenshot we take (a 1080p JPEG is far less)
CHUNK = 65536
READ_SIZE = 1 << 20  # bytes of TLS taken from the container's socket at once
BATCH = 262144  # bytes of plaintext sent to the browser at once
# While the container streams, the kernel gathers GATHER bytes before it wakes the portal
# (SO_RCVLOWAT), holding them at most GATHER_WAIT seconds: see TLSPipe._fill.
STREAMING = 32768  # a socket read at least this large means the container is sending more
GATHER_AFTER = 1 << 20  # bytes in such reads, back to back, before gathering starts
GATHER = 262144
GATHER_WAIT = 0.001

# RFC 9110 7.6.1 plus the ones a proxy must never pass on.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization"})
# Browser credentials are for the portal; X-Forwarded-* would make KasmVNC blame us.
REQUEST_DROP = frozenset({"cookie", "authorization", "x-forwarded-for", "x-forwarded-host",
                          "x-forwarded-proto", "x-forwarded-port", "x-real-ip", "forwarded",
                          "x-session-id", "x-csrf-token"})
# What a desktop may say to the browser: an allowlist, because every header a desktop
# adds speaks with the portal's origin (Set-Cookie, Refresh, NEL, Report-To, CSP, COOP,
# Clear-Site-Data, Service-Worker-Allowed, and whatever browsers invent next). Location
# passes only after web/desktop.py confined it; the portal adds its own CSP after these.
RESPONSE_ALLOW = frozenset({"content-type", "content-length", "content-encoding", "content-language",
                            "content-disposition", "content-range", "accept-ranges", "etag",
                            "last-modified", "expires", "cache-control", "pragma", "age", "vary",
                            "date", "retry-after", "location"})
# The 101 of a WebSocket handshake: only what the handshake itself needs.
UPGRADE_ALLOW = frozenset({"upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol",
                           "sec-websocket-extensions"})
# Never sent upstream in a query string: a session id in a link is no credential here.
QUERY_DROP = frozenset({"session_id"})
# WSGI keeps header names upper-cased; these are the spellings servers expect.
SPELLING = {"HOST": "Host", "CONNECTION": "Connection", "UPGRADE": "Upgrade", "ORIGIN": "Origin",
            "SEC_WEBSOCKET_KEY": "Sec-WebSocket-Key", "SEC_WEBSOCKET_VERSION": "Sec-WebSocket-Version",
            "SEC_WEBSOCKET_PROTOCOL": "Sec-WebSocket-Protocol",
            "SEC_WEBSOCKET_EXTENSIONS": "Sec-WebSocket-Extensions",
            "SEC_WEBSOCKET_ORIGIN": "Sec-WebSocket-Origin", "USER_AGENT": "User-Agent"}


class UpstreamError(Exception):
    """The container did not answer usefully; str() says how (for logs, not browsers)."""


def normalise(path):
    """The canonical form of a (percent-decoded) path: no empty or dot segments.

    Keeps a trailing slash, because it matters to relative assets.
    """
    trailing = path.endswith("/") or path.endswith("/.") or path.endswith("/..")
    clean = posixpath.normpath("/" + path.lstrip("/"))
    clean = "/" + clean.lstrip("/")  # normpath keeps a leading "//"
    if trailing and clean != "/":
        clean += "/"
    return clean


def split(path):
    """(desktop name, rest) for /desktop/<name>[/<rest>], or None. `rest` starts with "/"
    or is "" (the bare name without its slash)."""
    if not path.startswith("/desktop/"):
        return None
    name, slash, rest = path[len("/desktop/"):].partition("/")
    if not name:
        return None
    return name, slash + rest


def _header_name(key):
    name = key[5:]
    return SPELLING.get(name) or "-".join(part.capitalize() for part in name.split("_"))


def request_headers(environ, secret):
    """The headers to send upstream as [(name, value)]: the browser's minus hop-by-hop and
    credentials, plus Basic auth for kasm_user with the container's secret."""
    connection_tokens = {token.strip().lower() for token in environ.get("HTTP_CONNECTION", "").split(",")}
    headers = []
    for key, value in environ.items():
        if not key.startswith("HTTP_"):
            continue
        name = _header_name(key)
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in REQUEST_DROP or lower in connection_tokens:
            continue
        headers.append((name, value))
    if environ.get("CONTENT_TYPE"):
        headers.append(("Content-Type", environ["CONTENT_TYPE"]))
    token = base64.b64encode(("kasm_user:" + secret).encode()).decode()
    headers.append(("Authorization", "Basic " + token))
    return headers


def upstream_query(query):
    """The query string without QUERY_DROP parameters, otherwise byte for byte as sent."""
    if "session_id" not in query.lower():
        return query
    kept = [part for part in query.split("&")
            if urllib.parse.unquote_plus(part.split("=", 1)[0]).strip().lower() not in QUERY_DROP]
    return "&".join(kept)


def upstream_target(rest, query):
    target = rest if rest.startswith("/") else "/" + rest
    query = upstream_query(query)
    return urllib.parse.quote(target, safe="/:@!$&'()*+,;=-._~") + ("?" + query if query else "")


def _client_context():
    """TLS to the container's port: its certificate is self-signed and made anew at every
    container start, so verifying is impossible (on loopback pointless; a Swarm node's
    port answers the portal's address only, see README "Docker Swarm")."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


CONTEXT = _client_context()


def endpoint(target):
    """(address, port) of a desktop: `target` is a port on 127.0.0.1 (one Docker engine) or
    an (address, port) pair (a Swarm node's)."""
    return target if isinstance(target, tuple) else ("127.0.0.1", target)


def answers(target, timeout=2.0):
    """True when https://<target>/ answers with an HTTP status (any, 401 included): how a
    start knows its desktop is ready."""
    try:
        with socket.create_connection(endpoint(target), timeout=timeout) as raw:
            with CONTEXT.wrap_socket(raw) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return tls.recv(16).startswith(b"HTTP/1.")
    except (OSError, ssl.SSLError):
        return False


# One receive buffer for the ciphertext of every pipe and one for the plaintext: gevent
# runs one greenlet at a time, and none switches while a buffer holds its bytes (see
# TLSPipe.recv_view and send_shared), so per-connection buffers would only cost memory.
_RAW = memoryview(bytearray(READ_SIZE))
_PLAIN = memoryview(bytearray(BATCH))


class TLSPipe:
    """TLS to the container through memory buffers, for WebSockets and HTTP.

    An SSLSocket reads the socket twice per 16 KiB record (header, body) and hands out one
    record per recv(). Here one recv() of up to READ_SIZE feeds OpenSSL, and the records
    at hand are decrypted straight into the caller's buffer, so a video stream costs a few
    large reads and sends instead of several small ones per record: about half the
    portal's CPU per streamed byte of an SSLSocket with http.client (`make bench`).
    At most the relay's two greenlets share a pipe, and gevent never switches inside
    these calls, so sharing the SSLObject is safe.
    """

    def __init__(self, sock):
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = CONTEXT.wrap_bio(self.incoming, self.outgoing)
        self.gathering = False
        self.run = 0  # bytes of the current run of large reads

    @classmethod
    def connect(cls, target, timeout=CONNECT_TIMEOUT):
        raw = socket.create_connection(endpoint(target), timeout=timeout)
        pipe = cls(raw)
        try:
            while True:
                try:
                    pipe.tls.do_handshake()
                    pipe._flush()
                    return pipe
                except ssl.SSLWantReadError:
                    pipe._flush()
                    if not pipe._fill():
                        raise UpstreamError("the desktop closed the connection during TLS")
        except (OSError, ssl.SSLError, UpstreamError):
            raw.close()
            raise

    def _flush(self):
        data = self.outgoing.read()
        if data:
            send_all(self.sock, data)

    def _fill(self):
        """One socket read into OpenSSL; False at the end.

        docker-proxy forwards a stream in pieces of 40-60 KiB, and waking for each costs the
        portal a wakeup, a read and a send to the browser, and the browser's side a read: per
        streamed byte that is a fifth of the portal's CPU and more of docker-proxy's (`make
        bench`). So once GATHER_AFTER bytes came in large reads back to back (a stream, not
        a screen update), the kernel is asked to wake the portal only when GATHER bytes are
        queued; a pause longer than GATHER_WAIT ends that, and the bytes queued go out at
        once. The last bytes of a stream wait at most GATHER_WAIT; screen updates smaller
        than GATHER_AFTER and whatever comes after a pause (an echoed key) never wait.
        """
        if self.gathering and not self._gathered():
            self._gather(False)
        size = self.sock.recv_into(_RAW)
        if not size:
            self.incoming.write_eof()
            return False
        self.run = self.run + size if size >= STREAMING else 0
        if self.run >= GATHER_AFTER and not self.gathering:
            self._gather(True)
        self.incoming.write(_RAW[:size])
        return True

    def _gather(self, on):
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, GATHER if on else 1)
        self.gathering = on
        self.run = 0

    def _gathered(self):
        """Wait until GATHER bytes, the end or an error are at hand (the kernel decides,
        see SO_RCVLOWAT in socket(7)); False after GATHER_WAIT seconds. Waits on the gevent
        socket's own read watcher, so closing the socket ends the wait as for recv()."""
        try:
            gevent.socket.wait(self.sock._read_event, GATHER_WAIT)
        except socket.timeout:
            return False
        return True

    def recv_into(self, buffer):
        """Decrypt what is at hand after at most one socket read into `buffer`; returns
        the byte count, 0 at the end. Records that do not fit wait for the next call."""
        view = memoryview(buffer)
        while True:
            filled = 0
            try:
                while filled < len(view):
                    size = self.tls.read(len(view) - filled, view[filled:])
                    if not size:
                        return filled  # the container closed TLS
                    filled += size
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return filled
            if filled:
                return filled
            if not self._fill():
                return 0

    def recv_view(self):
        """recv_into() the shared plaintext buffer: a view that stays valid until the
        caller next lets gevent switch."""
        return _PLAIN[:self.recv_into(_PLAIN)]

    def recv(self, size):
        """At most `size` bytes (fewer when fewer are at hand; b"" at the end), as bytes of
        their own: socket.recv() for callers such as read_head()."""
        if size <= 0:
            return b""
        view = _PLAIN[:min(size, len(_PLAIN))]
        return bytes(view[:self.recv_into(view)])

    def makefile(self, mode="rb"):
        """A buffered reader of the plaintext, for http.client."""
        assert mode == "rb", mode
        return io.BufferedReader(_PipeReader(self), CHUNK)

    def send(self, data):
        self.tls.write(data)
        self._flush()
        return len(data)

    def sendall(self, data):
        self.send(data)

    def settimeout(self, timeout):
        self.sock.settimeout(timeout)

    def shutdown(self, how):
        self.sock.shutdown(how)

    def close(self):
        self.sock.close()


class _PipeReader(io.RawIOBase):
    def __init__(self, pipe):
        super().__init__()
        self.pipe = pipe

    def readable(self):
        return True

    def readinto(self, buffer):
        return self.pipe.recv_into(buffer)


# -- WebSocket --

def websocket_handshake(environ, rest, secret, user="kasm_user"):
    """The browser's handshake, re-spelled for the upstream: request line, then every
    header the browser sent except credentials and X-Forwarded-*, with Connection and
    Upgrade kept (they are the handshake) and Host/Connection in KasmVNC's spelling, plus
    Basic auth as `user` (kasm_user: full control; kasm_viewer: the desktop refuses input)."""
    lines = ["GET %s HTTP/1.1" % upstream_target(rest, environ.get("QUERY_STRING", ""))]
    for key, value in environ.items():
        if not key.startswith("HTTP_"):
            continue
        name = _header_name(key)
        if name.lower() in REQUEST_DROP:
            continue
        lines.append("%s: %s" % (name, value))
    token = base64.b64encode(("%s:%s" % (user, secret)).encode()).decode()
    lines.append("Authorization: Basic " + token)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_head(sock, timeout=CONNECT_TIMEOUT * 2):
    """(head bytes, bytes already read past it) of an HTTP response."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(CHUNK)
        if not chunk:
            raise UpstreamError("the desktop closed the connection before answering")
        data += chunk
        if b"\r\n\r\n" not in data[:HEAD_LIMIT]:
            if len(data) > HEAD_LIMIT:
                raise UpstreamError("the desktop's answer has an oversized head")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def clean_response_head(head):
    """The upstream's 101 head with only the handshake's own headers (UPGRADE_ALLOW)."""
    lines = head.decode("latin-1").split("\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if line and
                         line.split(":", 1)[0].strip().lower() in UPGRADE_ALLOW]
    return ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1")


def relay(client, client_reader, upstream, pending, beat, every=60):
    """Pump bytes both ways until either side closes; then close both. Blocks.

    `client_reader` is the server's buffered reader of the client socket (it may hold
    bytes the browser sent right after its handshake); `pending` are upstream bytes
    read past the 101 head. Every `every` seconds beat(flowed) is called, `flowed`
    telling whether bytes crossed since the last call; when it returns False, the relay
    ends (the viewer's session has ended).
    """
    client.settimeout(None)
    upstream.settimeout(None)
    state = {"bytes": 0}

    def pump(read, send, direction):
        try:
            while True:
                data = read()
                if not data:
                    break
                send(data)
                state["bytes"] += len(data)
                metrics.PROXY_BYTES.inc(direction, amount=len(data))
        except (OSError, ssl.SSLError, ValueError):
            pass  # either side went away: the other is closed below
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except (OSError, ValueError):
                    pass

    if pending:  # read with the 101 head (often the RFB banner): counted like the rest
        send_all(client, pending)
        state["bytes"] += len(pending)
        metrics.PROXY_BYTES.inc("to_browser", amount=len(pending))
    downstream = gevent.spawn(pump, upstream.recv_view, lambda view: send_shared(client, view), "to_browser")
    upstream_pump = gevent.spawn(pump, lambda: client_reader.read1(CHUNK), upstream.sendall, "to_desktop")

    def heartbeat():
        seen = state["bytes"]
        while True:
            gevent.sleep(every)
            flowed, seen = state["bytes"] != seen, state["bytes"]
            try:
                allowed = beat(flowed)
            except Exception as error:  # a database hiccup must not cut a working viewer
                log.warning("checking an open WebSocket failed (%s: %s); it stays open",
                            type(error).__name__, error)
                continue
            if not allowed:
                for sock in (client, upstream):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)  # both pumps end, and so does the relay
                    except (OSError, ValueError):
                        pass
                return
    watcher = gevent.spawn(heartbeat)
    try:
        gevent.joinall([downstream, upstream_pump], count=1)
        gevent.joinall([downstream, upstream_pump], timeout=5)
    finally:
        watcher.kill(block=False)
        downstream.kill(block=False)
        upstream_pump.kill(block=False)
        for sock in (upstream, client):
            try:
                sock.close()
            except OSError:
                pass
    return state["bytes"]


def send_shared(sock, view):
    """Send bytes that live in a shared buffer (TLSPipe.recv_view): what the socket takes
    at once goes straight from the buffer; the rest is copied before gevent may switch
    to a greenlet that refills it. A gevent socket's send() with timeout 0 never waits."""
    try:
        sent = sock.send(view, 0, 0.0)
    except BlockingIOError:
        sent = 0
    if sent < len(view):
        send_all(sock, bytes(view[sent:]))


def send_all(sock, data):
    """sendall() without gevent's per-call getsockopt(SO_SNDBUF): a plain send loop."""
    view = memoryview(data)
    while view:
        sent = sock.send(view)
        view = view[sent:]


# -- HTTP --

class Response:
    """A streamed upstream response: status line, cleaned headers, and an iterable body.

    The first piece of the body is read at once, so that a container that falls silent
    before it gets the browser a status page (UpstreamError) rather than a bare head."""

    def __init__(self, connection, response):
        self.connection = connection
        self.response = response
        self.status = "%d %s" % (response.status, response.reason or "")
        self.headers = []
        tokens = {token.strip().lower() for token in (response.getheader("Connection") or "").split(",")}
        for name, value in response.getheaders():
            lower = name.lower()
            if lower not in RESPONSE_ALLOW or lower in tokens:
                continue
            self.headers.append((name, value))
        self.first = response.read1(CHUNK)

    def __iter__(self):
        try:
            data = self.first
            while data:
                metrics.PROXY_BYTES.inc("to_browser", amount=len(data))
                yield data
                data = self.response.read1(CHUNK)
        except (OSError, http.client.HTTPException) as error:
            log.info("desktop response ended early: %s", type(error).__name__)
            # The head is out: only a closed connection tells the browser that the body is
            # incomplete. gevent's server closes it without a traceback on ECONNRESET.
            raise ConnectionResetError(errno.ECONNRESET, "the desktop's response ended early") from None
        finally:
            self.close()

    def close(self):
        self.response.close()
        self.connection.release()


class _Connection(http.client.HTTPConnection):
    """http.client over a TLSPipe (its own TLS would read each record in two syscalls).

    http.client closes its connection as soon as it has read the head of a response that
    will close; the pipe must live on for the body, until release()."""

    def __init__(self, target, silence):
        super().__init__(*endpoint(target), timeout=silence)
        self._target = target
        self.pipe = None

    def connect(self):
        self.pipe = TLSPipe.connect(self._target)
        self.pipe.settimeout(self.timeout)
        self.sock = self.pipe

    def close(self):
        self.sock = None
        super().close()

    def release(self):
        self.close()
        if self.pipe is not None:
            self.pipe.close()


def screenshot(target, secret, width, height, timeout=CONNECT_TIMEOUT):
    """A JPEG of the desktop's screen scaled to fit width x height, from KasmVNC's owner-only
    GET /api/get_screenshot (the demo image answers the same); raises UpstreamError.
    With the owner's credentials, which never leave the portal: the picture is the
    portal's to pass on, to whom web/ decides."""
    connection = _Connection(target, timeout)
    try:
        connection.putrequest("GET", "/api/get_screenshot?width=%d&height=%d" % (width, height),
                              skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", "%s:%d" % endpoint(target))
        connection.putheader("Authorization", "Basic " + base64.b64encode(
            ("kasm_user:" + secret).encode()).decode())
        connection.putheader("Connection", "close")
        connection.endheaders()
        response = connection.getresponse()
        body = response.read(SCREENSHOT_LIMIT + 1)
        if response.status != 200 or not body.startswith(b"\xff\xd8") or len(body) > SCREENSHOT_LIMIT:
            raise UpstreamError("no screenshot: status %d, %d bytes" % (response.status, len(body)))
        return body
    except (OSError, ssl.SSLError, http.client.HTTPException) as error:
        raise UpstreamError("no screenshot: %s: %s" % (type(error).__name__, error)) from None
    finally:
        connection.release()


def http_request(environ, rest, desktop, secret, silence):
    """Send the browser's request to the container at `desktop` (see endpoint()), streaming its
    body; return a Response.

    Raises UpstreamError when the container cannot be reached or does not answer. After
    `silence` seconds without a byte from the container the request, or the streamed
    body, ends.
    """
    method = environ["REQUEST_METHOD"]
    target = upstream_target(rest, environ.get("QUERY_STRING", ""))
    connection = _Connection(desktop, silence)
    started = time.monotonic()
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in request_headers(environ, secret):
            connection.putheader(name, value)
        body = environ.get("wsgi.input")
        length = environ.get("CONTENT_LENGTH")
        # Anything but exactly "chunked" was refused with 400 before (web/__init__.py).
        chunked = environ.get("HTTP_TRANSFER_ENCODING", "").strip().lower() == "chunked"
        if length:
            connection.putheader("Content-Length", length)
        elif chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        connection.putheader("Connection", "close")
        connection.endheaders()
        if body is not None and (length or chunked):
            remaining = int(length) if length else None
            while remaining is None or remaining > 0:
                data = body.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not data:
                    break
                if remaining is not None:
                    remaining -= len(data)
                metrics.PROXY_BYTES.inc("to_desktop", amount=len(data))
                connection.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked and not length else data)
            if chunked and not length:
                connection.send(b"0\r\n\r\n")
        return Response(connection, connection.getresponse())
    except (OSError, ssl.SSLError, http.client.HTTPException, UpstreamError) as error:
        connection.release()
        raise UpstreamError("%s after %.1fs: %s" % (type(error).__name__, time.monotonic() - started,
                                                    error)) from None
