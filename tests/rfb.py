"""A minimal RFB client for tests that check what reaches a desktop's screen."""

import base64
import ssl
import struct

import websocket


class Rfb:
    """A minimal RFB 3.8 client, security type None: straight to a desktop's port with Basic
    auth (Rfb(url, user, password)), or over any WebSocket already open (Rfb.over(ws)),
    e.g. one through the portal."""

    def __init__(self, url, user, password):
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self._start(websocket.create_connection(
            url.replace("https://", "wss://") + "/websockify", subprotocols=["binary"],
            header=["Authorization: Basic " + token], origin=url,
            sslopt={"cert_reqs": ssl.CERT_NONE}, timeout=10))

    @classmethod
    def over(cls, ws):
        client = cls.__new__(cls)
        client._start(ws)
        return client

    def _start(self, ws):
        self.ws = ws
        self.buffer = b""
        assert self.read(12).startswith(b"RFB 003.")
        self.ws.send_binary(b"RFB 003.008\n")
        types = self.read(self.read(1)[0])
        assert 1 in types, types
        self.ws.send_binary(b"\x01")
        assert self.read(4) == b"\0\0\0\0"
        self.ws.send_binary(b"\x01")  # ClientInit: shared
        self.width, self.height = struct.unpack(">HH", self.read(4))
        self.read(16)
        self.read(struct.unpack(">I", self.read(4))[0])
        self.ws.send_binary(struct.pack(">BBHi", 2, 0, 1, 0))  # SetEncodings: Raw only

    def read(self, size):
        while len(self.buffer) < size:
            self.buffer += self.ws.recv()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def framebuffer_update(self):
        """Ask for the whole screen; check and return the first rectangle's header."""
        self.ws.send_binary(struct.pack(">BBHHHH", 3, 0, 0, 0, self.width, self.height))
        kind, _, rectangles = struct.unpack(">BBH", self.read(4))
        assert kind == 0 and rectangles >= 1, (kind, rectangles)
        x, y, w, h, encoding = struct.unpack(">HHHHi", self.read(12))
        assert 0 < w and 0 < h and x + w <= self.width and y + h <= self.height
        self.ws.close()  # the rest of the picture is of no interest
        return x, y, w, h, encoding

    def type_text(self, text, x=200, y=150):
        """Move the pointer to (x, y) (over the demo desktop's xterm) and type `text`
        (ASCII; a newline is Return)."""
        self.ws.send_binary(struct.pack(">BBHH", 5, 0, x, y))
        for char in text.encode():
            keysym = 0xFF0D if char == 10 else char
            self.ws.send_binary(struct.pack(">BBxxI", 4, 1, keysym))
            self.ws.send_binary(struct.pack(">BBxxI", 4, 0, keysym))

    def type_and_click(self):
        """Type into the xterm (pointer over it) and hold the left button on the background
        (twm's menu opens and stays while the button is down), plus a clipboard message."""
        messages = [struct.pack(">BBHH", 5, 0, 200, 150)]
        for keysym in b"xyz" + b"\r":
            keysym = 0xFF0D if keysym == 13 else keysym
            messages += [struct.pack(">BBxxI", 4, 1, keysym), struct.pack(">BBxxI", 4, 0, keysym)]
        messages += [struct.pack(">BBHH", 5, 0, 1200, 700), struct.pack(">BBHH", 5, 1, 1200, 700)]
        messages.append(struct.pack(">BxxxI", 6, 5) + b"typed")
        for message in messages:
            self.ws.send_binary(message)
