#!/usr/bin/python3
"""The stand-in desktop for scripts/bench_proxy.py: a TLS WebSocket and HTTP server on
127.0.0.1, standard library only, one thread per connection, in a process of its own (so
the benchmark client's GIL stays out of the comparison).

    bench_upstream.py --cert CERT --key KEY [--port N] [--host ADDRESS]

prints `port N` once it listens (on 127.0.0.1, unless --host says otherwise, as inside a
container whose port is published on the host's 127.0.0.1), then serves until killed. One request per connection,
chosen by path:

  WebSocket /stream?bytes=N[&frame=F]  N bytes in unmasked binary frames of F bytes
                                       (default 65536), then a close frame, then closes
  WebSocket /echo                      every data frame back, unmasked, same opcode;
                                       answers ping with pong and close with close
  GET /blob?bytes=N                    N bytes as an HTTP/1.1 body with Content-Length
  GET / or /page                       a small HTML page, for a browser to run its script in

The handshake is accepted whatever the headers (Origin, Authorization, ...) say, with
Sec-WebSocket-Protocol: binary echoed when the client asks for it.
"""

import argparse
import base64
import hashlib
import socket
import ssl
import sys
import threading
import urllib.parse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BLOCK = 1 << 20  # bytes handed to one sendall of a stream or blob


def frame_header(opcode, length):
    """An unmasked, final frame's header (server to client)."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big")
    return bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big")


def unmask(payload, key):
    if not payload:
        return payload
    length = len(payload)
    repeated = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")


class Connection:
    def __init__(self, tls):
        self.tls = tls
        self.buffer = bytearray()

    def read_head(self):
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.tls.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
            if len(self.buffer) > 65536:
                return None
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return lines[0], fields

    def read_exactly(self, count):
        while len(self.buffer) < count:
            chunk = self.tls.recv(max(65536, count - len(self.buffer)))
            if not chunk:
                raise EOFError
            self.buffer += chunk
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def read_frame(self):
        """(opcode, unmasked payload) of the client's next frame."""
        first, second = self.read_exactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self.read_exactly(2), "big")
        elif length == 127:
            length = int.from_bytes(self.read_exactly(8), "big")
        key = self.read_exactly(4) if second & 0x80 else None
        payload = self.read_exactly(length)
        return first & 0x0F, unmask(payload, key) if key else payload


def handshake(connection, fields):
    key = fields.get("sec-websocket-key", "")
    accept = base64.b64encode(hashlib.sha1(key.encode("latin-1") + GUID).digest()).decode()
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Accept: " + accept]
    protocols = [token.strip() for token in fields.get("sec-websocket-protocol", "").split(",")]
    if "binary" in protocols:
        lines.append("Sec-WebSocket-Protocol: binary")
    connection.tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


def stream(connection, total, frame):
    block_frames = max(1, BLOCK // frame)
    block = (frame_header(2, frame) + b"\xa5" * frame) * block_frames
    block_payload = frame * block_frames
    while total >= block_payload:
        connection.tls.sendall(block)
        total -= block_payload
    while total > 0:
        size = min(frame, total)
        connection.tls.sendall(frame_header(2, size) + b"\xa5" * size)
        total -= size
    connection.tls.sendall(frame_header(8, 2) + (1000).to_bytes(2, "big"))


def echo(connection):
    while True:
        opcode, payload = connection.read_frame()
        if opcode == 8:
            connection.tls.sendall(frame_header(8, len(payload)) + payload)
            return
        if opcode == 9:
            connection.tls.sendall(frame_header(10, len(payload)) + payload)
        elif opcode in (0, 1, 2):
            connection.tls.sendall(frame_header(opcode, len(payload)) + payload)


def blob(connection, total):
    connection.tls.sendall(("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                            "Content-Length: %d\r\nConnection: close\r\n\r\n" % total).encode())
    block = b"\x5a" * BLOCK
    while total >= BLOCK:
        connection.tls.sendall(block)
        total -= BLOCK
    if total:
        connection.tls.sendall(block[:total])


def handle(raw, context):
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        raw.settimeout(60)
        with context.wrap_socket(raw, server_side=True) as tls:
            connection = Connection(tls)
            request = connection.read_head()
            if request is None:
                return
            request_line, fields = request
            target = request_line.split(" ")[1] if request_line.count(" ") >= 2 else "/"
            parts = urllib.parse.urlsplit(target)
            query = {name: values[0] for name, values in urllib.parse.parse_qs(parts.query).items()}
            path = parts.path.rstrip("/")
            if fields.get("upgrade", "").lower() == "websocket":
                handshake(connection, fields)
                if path.endswith("/stream"):
                    stream(connection, int(query.get("bytes", "0")), int(query.get("frame", "65536")))
                elif path.endswith("/echo"):
                    echo(connection)
            elif path.endswith("/blob"):
                blob(connection, int(query.get("bytes", "0")))
            elif path.endswith("/page") or path == "/":
                page = b"<!DOCTYPE html><title>stand-in</title><p>stand-in desktop</p>"
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n"
                            b"Connection: close\r\n\r\n%s" % (len(page), page))
            else:
                tls.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except (OSError, EOFError, ValueError):
        pass  # the client went away; nothing to tell anyone
    finally:
        raw.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(1024)
    print("port %d" % listener.getsockname()[1], flush=True)
    threading.stack_size(256 * 1024)  # hundreds of connections, each a thread
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=handle, args=(raw, context), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
