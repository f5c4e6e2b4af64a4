"""HTTP and WebSocket reverse proxy into one desktop container, at wire speed.

Owns the bytes on the wire: path normalisation, which headers cross in each direction,
the TLS connection to the container's 127.0.0.1 port with the injected Basic auth, the
verbatim WebSocket handshake and the raw relay after it. Who may use which desktop is
decided by web/desktop.py before anything here runs.

KasmVNC is strict (see FACTS.md): it wants the browser's own handshake with `Host:` and
`Connection:` spelled in exactly that case, answers a handshake it dislikes with
index.html and 200, blacklists client IPs taken from X-Forwarded-For after failed auth,
and speaks plain HTTP one request per connection. So: every request gets its own
connection, X-Forwarded-* never reach it, and after a 101 the frames are relayed as
bytes, never decoded and re-framed.
"""

import base64
import http.client
import logging
import posixpath
import socket
import ssl
import time
import urllib.parse

import gevent

from . import metrics

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5  # seconds to reach the container
SILENCE_TIMEOUT = 120  # seconds an HTTP upstream may stay silent
HEAD_LIMIT = 65536  # bytes of a response head we accept
CHUNK = 65536
BATCH = 262144  # bytes gathered from the container before one send to the browser
READ_SIZE = 262144  # bytes of TLS taken from the container's socket at once

# RFC 9110 7.6.1 plus the ones a proxy must never pass on.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization"})
# Browser credentials are for the portal; X-Forwarded-* would make KasmVNC blame us.
REQUEST_DROP = frozenset({"cookie", "authorization", "x-forwarded-for", "x-forwarded-host",
                          "x-forwarded-proto", "x-forwarded-port", "x-real-ip", "forwarded",
                          "x-session-id", "x-csrf-token"})
# A container must not set portal cookies, clear its storage, widen service worker scope,
# or join the portal's browsing context group (see security_headers in web/desktop.py).
RESPONSE_DROP = frozenset({"set-cookie", "set-cookie2", "clear-site-data", "service-worker-allowed",
                           "cross-origin-opener-policy", "cross-origin-embedder-policy",
                           "cross-origin-resource-policy", "strict-transport-security",
                           "access-control-allow-origin", "access-control-allow-credentials",
                           "content-security-policy", "x-frame-options"})
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


def upstream_target(rest, query):
    target = rest if rest.startswith("/") else "/" + rest
    return urllib.parse.quote(target, safe="/:@!$&'()*+,;=-._~") + ("?" + query if query else "")


def _client_context():
    """TLS to the container's 127.0.0.1 port: its certificate is self-signed and made anew
    at every container start, so verifying is impossible (and pointless on loopback)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


CONTEXT = _client_context()


def connect(port, timeout=CONNECT_TIMEOUT):
    """A TLS socket to the container's 127.0.0.1 port (for HTTP requests)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        tls = CONTEXT.wrap_socket(raw)
    except (OSError, ssl.SSLError):
        raw.close()
        raise
    return tls


class TLSPipe:
    """TLS to the container through memory buffers, for WebSockets.

    An SSLSocket reads the socket twice per 16 KiB record (header, body) and hands out one
    record per recv(). Here one recv() of up to READ_SIZE feeds OpenSSL, and every record
    in it is decrypted at once, so a video stream costs a few large reads and sends instead
    of several small ones per record. Only the relay's two greenlets use a pipe, and
    gevent never switches inside these calls, so sharing the SSLObject is safe.
    """

    def __init__(self, sock):
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = CONTEXT.wrap_bio(self.incoming, self.outgoing)

    @classmethod
    def connect(cls, port, timeout=CONNECT_TIMEOUT):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
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
        data = self.sock.recv(READ_SIZE)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    def recv(self, size=None):
        """All decrypted bytes at hand after at most one socket read; b"" at the end."""
        while True:
            parts = []
            try:
                while True:
                    data = self.tls.read(READ_SIZE)
                    if not data:
                        return b"".join(parts)  # the container closed TLS
                    parts.append(data)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return b"".join(parts)
            if parts:
                return b"".join(parts)
            if not self._fill():
                return b""

    def send(self, data):
        self.tls.write(data)
        self._flush()
        return len(data)

    def sendall(self, data):
        self.send(data)

    def pending(self):
        return 0  # recv() already took everything decrypted

    def settimeout(self, timeout):
        self.sock.settimeout(timeout)

    def shutdown(self, how):
        self.sock.shutdown(how)

    def close(self):
        self.sock.close()


# -- WebSocket --

def websocket_handshake(environ, rest, secret):
    """The browser's handshake, re-spelled for the upstream: request line, then every
    header the browser sent except credentials and X-Forwarded-*, with Connection and
    Upgrade kept (they are the handshake) and Host/Connection in KasmVNC's spelling."""
    lines = ["GET %s HTTP/1.1" % upstream_target(rest, environ.get("QUERY_STRING", ""))]
    for key, value in environ.items():
        if not key.startswith("HTTP_"):
            continue
        name = _header_name(key)
        if name.lower() in REQUEST_DROP:
            continue
        lines.append("%s: %s" % (name, value))
    token = base64.b64encode(("kasm_user:" + secret).encode()).decode()
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
    """The upstream's 101 head without headers a desktop must not send to the portal's origin."""
    lines = head.decode("latin-1").split("\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if line and
                         line.split(":", 1)[0].strip().lower() not in RESPONSE_DROP]
    return ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1")


def relay(client, client_reader, upstream, pending, on_traffic):
    """Pump bytes both ways until either side closes; then close both. Blocks.

    `client_reader` is the server's buffered reader of the client socket (it may hold
    bytes the browser sent right after its handshake); `pending` are upstream bytes
    read past the 101 head. on_traffic() is called at most every few seconds while
    bytes flow and at least once a minute while the connection is open.
    """
    client.settimeout(None)
    upstream.settimeout(None)
    state = {"bytes": 0}

    def pump(read, destination, direction):
        try:
            while True:
                data = read()
                if not data:
                    break
                send_all(destination, data)
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

    def read_upstream():
        # One TLS record (16 KiB at most) per recv: take every record already decrypted
        # or buffered, so the browser gets one larger send instead of many small ones.
        data = upstream.recv(CHUNK)
        if not data:
            return data
        parts = [data]
        size = len(data)
        while size < BATCH and upstream.pending():
            more = upstream.recv(CHUNK)
            if not more:
                break
            parts.append(more)
            size += len(more)
        return b"".join(parts) if len(parts) > 1 else data

    if pending:
        send_all(client, pending)
    downstream = gevent.spawn(pump, read_upstream, client, "to_browser")
    upstream_pump = gevent.spawn(pump, lambda: client_reader.read1(CHUNK), upstream, "to_desktop")

    def heartbeat():
        while True:
            gevent.sleep(60)
            on_traffic()
    beat = gevent.spawn(heartbeat)
    try:
        gevent.joinall([downstream, upstream_pump], count=1)
        gevent.joinall([downstream, upstream_pump], timeout=5)
    finally:
        beat.kill(block=False)
        downstream.kill(block=False)
        upstream_pump.kill(block=False)
        for sock in (upstream, client):
            try:
                sock.close()
            except OSError:
                pass
    return state["bytes"]


def send_all(sock, data):
    """sendall() without gevent's per-call getsockopt(SO_SNDBUF): a plain send loop."""
    view = memoryview(data)
    while view:
        sent = sock.send(view)
        view = view[sent:]


# -- HTTP --

class Response:
    """A streamed upstream response: status line, cleaned headers, and an iterable body."""

    def __init__(self, connection, response):
        self.connection = connection
        self.response = response
        self.status = "%d %s" % (response.status, response.reason or "")
        self.headers = []
        tokens = {token.strip().lower() for token in (response.getheader("Connection") or "").split(",")}
        for name, value in response.getheaders():
            lower = name.lower()
            if lower in HOP_BY_HOP or lower in RESPONSE_DROP or lower in tokens:
                continue
            self.headers.append((name, value))

    def __iter__(self):
        try:
            while True:
                data = self.response.read1(CHUNK)
                if not data:
                    break
                metrics.PROXY_BYTES.inc("to_browser", amount=len(data))
                yield data
        except (OSError, http.client.HTTPException) as error:
            log.info("desktop response ended early: %s", type(error).__name__)
        finally:
            self.close()

    def close(self):
        self.connection.close()


class _Connection(http.client.HTTPSConnection):
    def __init__(self, port):
        super().__init__("127.0.0.1", port, timeout=SILENCE_TIMEOUT)
        self._port = port

    def connect(self):
        self.sock = connect(self._port)
        self.sock.settimeout(SILENCE_TIMEOUT)


def http_request(environ, rest, port, secret):
    """Send the browser's request to the container, streaming its body; return a Response.

    Raises UpstreamError when the container cannot be reached or does not answer.
    """
    method = environ["REQUEST_METHOD"]
    target = upstream_target(rest, environ.get("QUERY_STRING", ""))
    connection = _Connection(port)
    started = time.monotonic()
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in request_headers(environ, secret):
            connection.putheader(name, value)
        body = environ.get("wsgi.input")
        length = environ.get("CONTENT_LENGTH")
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
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
    except (OSError, ssl.SSLError, http.client.HTTPException) as error:
        connection.close()
        raise UpstreamError("%s after %.1fs: %s" % (type(error).__name__, time.monotonic() - started,
                                                    error)) from None
