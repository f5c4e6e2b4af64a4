"""A hostile stand-in for a desktop's web server: TLS on 127.0.0.1, records what it
receives, answers whatever a test tells it to. Tests point a desktop row's host_port at it
to check what the proxy lets through in each direction."""

import datetime
import socket
import ssl
import tempfile
import threading

from devtools import self_signed


def _dechunk(data):
    body, position = bytearray(), 0
    while True:
        line_end = data.index(b"\r\n", position)
        size = int(data[position:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(body)
        body += data[line_end + 2:line_end + 2 + size]
        position = line_end + 2 + size + 2


def header_fields(head):
    """{lower-case name: value} of a request head (text)."""
    return {name.strip().lower(): value.strip() for name, _, value in
            (line.partition(":") for line in head.split("\r\n")[1:])}


def read_head(tls):
    """(head text, its header_fields, bytes read past it) of the request on `tls`, or None
    when the peer closes first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    return text, header_fields(text), rest


class Upstream:
    """Serves one request per connection. `answer(request_head, body) -> bytes` makes the
    response; every request head and body is kept in `requests`."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []
        self.folder = tempfile.mkdtemp()
        cert, key = self_signed(self.folder)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(50)
        self.port = self.listener.getsockname()[1]
        self.started = datetime.datetime.now()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw):
        try:
            with self.context.wrap_socket(raw, server_side=True) as tls:
                tls.settimeout(30)
                request = read_head(tls)
                if request is None:
                    return
                head, fields, first = request
                body = bytearray(first)
                if "chunked" in fields.get("transfer-encoding", ""):
                    while not body.endswith(b"0\r\n\r\n"):
                        chunk = tls.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                    body = _dechunk(bytes(body))
                else:
                    length = int(fields.get("content-length", "0"))
                    while len(body) < length:
                        chunk = tls.recv(1 << 20)
                        if not chunk:
                            break
                        body += chunk
                    body = bytes(body)
                self.requests.append((head, body))
                response = self.answer(head, body)
                if isinstance(response, (bytes, bytearray)):
                    tls.sendall(response)
                else:
                    for piece in response:
                        tls.sendall(piece)
        except (OSError, ssl.SSLError):
            pass

    def headers(self, index=-1):
        """{lower-case name: value} of a received request."""
        return header_fields(self.requests[index][0])

    def close(self):
        self.listener.close()
