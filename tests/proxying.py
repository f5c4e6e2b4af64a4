"""Helpers for tests that go through the desktop proxy: the database rows of desktops,
pointing a desktop at a stand-in upstream, raw requests and WebSockets, and frames."""

import base64
import hashlib
import http.client
import sqlite3
import urllib.parse

import websocket


def database(tmp_path):
    return sqlite3.connect(str(tmp_path / "iservdesk.db"), isolation_level=None)


def row_of(tmp_path, name):
    con = database(tmp_path)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM desktops WHERE name = ?", (name,)).fetchone()
    finally:
        con.close()


def point_at(tmp_path, name, port):
    """Make the running desktop `name` answer from 127.0.0.1:`port` (a stand-in upstream)."""
    con = database(tmp_path)
    con.execute("UPDATE desktops SET host_port = ? WHERE name = ?", (port, name))
    con.close()


def raw_get(url, path, headers=None):
    """GET with the path sent exactly as given (no client-side normalisation)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), body


def ws_url(portal, name):
    return portal.url.replace("http://", "ws://") + "/desktop/%s/websockify" % name


def open_ws(portal, name, session_id=None, origin=True, subprotocol=True, timeout=15):
    return websocket.create_connection(
        ws_url(portal, name), subprotocols=["binary"] if subprotocol else None,
        origin=portal.url if origin else None, suppress_origin=not origin,
        cookie="iservdesk_session=%s" % session_id if session_id else None, timeout=timeout)


def switching_protocols(head):
    """A desktop's 101 answer to the handshake `head` (text), with the binary subprotocol."""
    key = [line.split(":", 1)[1].strip() for line in head.split("\r\n")
           if line.lower().startswith("sec-websocket-key:")][0]
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: binary\r\n\r\n")


def binary_frame(payload):
    """An unmasked binary WebSocket frame, as a desktop sends it."""
    if len(payload) < 126:
        return b"\x82" + bytes([len(payload)]) + payload
    if len(payload) < 65536:
        return b"\x82\x7e" + len(payload).to_bytes(2, "big") + payload
    return b"\x82\x7f" + len(payload).to_bytes(8, "big") + payload
