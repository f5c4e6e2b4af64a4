"""The portal's own viewer (web/viewer.py, static/viewer.js): what the page is made of, and
in real headless Chromium through the real portal, an admin with ADMIN_DESKTOP_ACCESS
looking at a student's desktop:

- against the demo image (TigerVNC's Xvnc behind websockify): the canvas shows the
  desktop, nothing but the WebSocket is fetched from the desktop's path, typing reaches
  the xterm in full control, and view-only sends no input at all;
- against a stand-in written from KasmVNC's source (KasmVNCDialect below; no Kasm image
  can be pulled here): VNC authentication with the empty password, KasmVNC's 11-byte
  PointerEvent and its extra server messages, Hextile, Raw and CopyRect drawn to the pixel.
"""

import base64
import configparser
import fnmatch
import hashlib
import html.parser
import json
import os
import socket
import ssl
import struct
import tempfile
import threading

import pytest

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

import browser
from browser import browser_sign_in
from conftest import ROOT, wait_for
from flows import Client, wait_status
from proxying import point_at, row_of
from upstream import read_head, self_signed

from iservdesk import db
from iservdesk.web import i18n, viewer

STUDENT, ADMIN = "max.muster", "admin"


class Settings:
    public_url = "https://desk.example.org"


def render(view_only=False, language="de", owner="Max Muster", name="max.muster-demo"):
    row = db.Desktop(name=name, desktop_type="demo")
    return viewer.page(Settings(), row, owner, view_only, language=language)


class Elements(html.parser.HTMLParser):
    """Every start tag as (tag, {attribute: value}), and the text inside <script>/<style>."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.inline, self.open = [], [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.open = tag

    def handle_endtag(self, tag):
        self.open = None

    def handle_data(self, data):
        if self.open in ("script", "style") and data.strip():
            self.inline.append(data)

    def find(self, tag, **wanted):
        return [attrs for name, attrs in self.tags if name == tag
                and all(attrs.get(key.replace("_", "-")) == value for key, value in wanted.items())]


# ---- the page, in process ------------------------------------------------------------

@pytest.mark.parametrize("view_only", [False, True])
def test_viewer_page_loads_only_the_portals_static_files_and_has_no_inline_code(view_only):
    page = Elements(render(view_only=view_only))
    assert page.inline == []
    loaded = []
    for tag, attrs in page.tags:
        assert tag != "style" and "style" not in attrs, (tag, attrs)
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        if tag in ("script", "img", "iframe", "embed", "object", "source"):
            loaded.append(attrs.get("src"))
        if tag == "link":
            loaded.append(attrs.get("href"))
        if tag == "a":
            assert attrs["href"] == "/" or attrs["href"].startswith("/lang/"), attrs
    assert sorted(set(loaded)) == ["/static/favicon.svg", "/static/viewer.css", "/static/viewer.js"]
    assert not page.find("meta", name="csrf-token") and "csrf" not in render(view_only=view_only).lower()


@pytest.mark.parametrize("language, title, full, view", [
    ("de", "Desktop von Max Muster", "Volle Steuerung", "Nur ansehen"),
    ("en", "Desktop of Max Muster", "Full control", "View only"),
])
def test_viewer_page_says_whose_desktop_it_is_and_whether_it_is_view_only(language, title, full, view):
    for view_only, mode in ((False, full), (True, view)):
        text = render(view_only=view_only, language=language)
        page = Elements(text)
        assert page.find("html", lang=language)
        assert title in text and "max.muster-demo" in text and mode in text
        (main,) = page.find("main", id="viewer")
        assert main["data-view-only"] == ("true" if view_only else "false")
        assert main["data-websocket"] == "/desktop/max.muster-demo/websockify"
        assert set(json.loads(main["data-texts"])) == {"connecting", "connected", "closed", "unreachable",
                                                       "failed", "view", "view_hint"}


def test_viewer_page_escapes_what_people_and_desktops_are_called():
    text = render(owner='<script>alert(1)</script>"', name='a"b<c')
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in text
    (main,) = Elements(text).find("main", id="viewer")
    assert main["data-websocket"] == "/desktop/a%22b%3Cc/websockify"


def test_viewer_texts_exist_in_every_language_of_the_portal():
    assert set(viewer.TEXTS) == set(i18n.LANGUAGES)
    assert set(viewer.TEXTS["de"]) == set(viewer.TEXTS["en"])


def test_viewer_files_are_installed_with_the_package():
    setup = configparser.ConfigParser()
    setup.read(os.path.join(ROOT, "setup.cfg"))
    patterns = setup["options.package_data"]["iservdesk"].replace(",", " ").split()
    for path in ("web/static/viewer.js", "web/static/viewer.css"):
        assert os.path.exists(os.path.join(ROOT, "iservdesk", path))
        assert any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns), (path, patterns)


# ---- in the browser ------------------------------------------------------------------

# Runs in the page before its own scripts (CDP): records every WebSocket opened and every
# message the page sends on one, so a test sees exactly what left the browser.
RECORDER = """
window.__sockets = []; window.__sent = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data)
        : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
    window.__sent.push(bytes ? Array.from(bytes) : String(data));
    return send.call(this, data);
};
window.WebSocket = new Proxy(WebSocket, {construct(target, args) {
    window.__sockets.push(String(args[0]));
    return Reflect.construct(target, args);
}});
"""
# Stands in for the server's view-only flag (teachers get it in the next issue): marks the
# viewer view-only before its script runs.
SERVER_SAYS_VIEW_ONLY = """
new MutationObserver((changes, observer) => {
    const main = document.getElementById("viewer");
    if (main) { main.dataset.viewOnly = "true"; observer.disconnect(); }
}).observe(document, {childList: true, subtree: true});
"""

PIXELS_JS = """
const canvas = document.getElementById("screen");
const context = canvas.getContext("2d");
return arguments[0].map(([x, y]) => Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3)));
"""
# Viewport coordinates of desktop pixel (x, y), through the canvas's letterbox fit.
VIEWPORT_JS = """
const canvas = document.getElementById("screen");
const box = canvas.getBoundingClientRect();
const scale = Math.min(box.width / canvas.width, box.height / canvas.height);
return [Math.round(box.left + (box.width - canvas.width * scale) / 2 + (arguments[0] + 0.5) * scale),
        Math.round(box.top + (box.height - canvas.height * scale) / 2 + (arguments[1] + 0.5) * scale)];
"""
REGION_HASH_JS = """
const [x, y, w, h] = arguments[0];
const data = document.getElementById("screen").getContext("2d").getImageData(x, y, w, h).data;
let hash = 0;
for (let i = 0; i < data.length; i += 4) {
    hash = (hash * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2]) | 0;
}
return hash;
"""


def viewer_state(driver):
    return driver.execute_script(
        "const v = document.getElementById('viewer'), status = document.getElementById('status');"
        "return v ? Object.assign({status: status.textContent}, v.dataset) : null;")


def connected(driver, updates=1):
    state = viewer_state(driver)
    if state and state.get("state") in ("failed", "closed"):
        raise AssertionError("the viewer gave up: %r" % state)
    ready = state and state.get("state") == "connected" and int(state.get("updates", 0)) >= updates
    return state if ready else None


def gave_up(driver):
    state = viewer_state(driver)
    return state if state and state.get("state") == "failed" else None


def click_at(driver, x, y, button="left"):
    """A click on desktop pixel (x, y) of the viewer, where a person would click."""
    left, top = driver.execute_script(VIEWPORT_JS, x, y)
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(left, top)
    if button == "left":
        actions.pointer_action.click()
    else:
        actions.pointer_action.context_click()
    actions.perform()


def input_messages(sent, handshake):
    """The messages after the first `handshake` sends that are not SetPixelFormat (0),
    SetEncodings (2) or FramebufferUpdateRequest (3): key, pointer, clipboard ..."""
    return [message for message in sent[handshake:]
            if not isinstance(message, list) or message[0] not in (0, 2, 3)]


@pytest.fixture
def students_desktop(signed_in_portal, demo_image):
    """Factory: a portal with ADMIN_DESKTOP_ACCESS=true where the student runs `slug`;
    returns (portal, the desktop's name)."""
    def start(slug):
        portal, _ = signed_in_portal(ADMIN_DESKTOP_ACCESS="true")
        student = Client(portal.url, STUDENT)
        student.post("/api/container/start", params={"desktop_type": slug})
        wait_status(student, slug, "running")
        return portal, "%s-%s" % (STUDENT, slug)
    return start


def admin_browser(chromium, portal, language, *scripts, arguments=()):
    driver = chromium(language=language, arguments=arguments)
    browser_sign_in(driver, portal.url, ADMIN)
    for script in (RECORDER,) + scripts:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
    return driver


def netlog_urls(path):
    """Every URL in a Chromium NetLog file (complete once the browser has quit)."""
    with open(path) as stream:
        log = json.load(stream)
    return {event["params"]["url"] for event in log["events"] if "url" in (event.get("params") or {})}


def test_admin_sees_a_students_desktop_in_the_portals_viewer_and_keyboard_reaches_it(
        students_desktop, chromium, docker_client, tmp_path):
    portal, name = students_desktop("demo")
    netlog = str(tmp_path / "netlog.json")
    driver = admin_browser(chromium, portal, "de", arguments=["--log-net-log=" + netlog])
    page = portal.url + "/desktop/%s/" % name
    state = browser.load(driver, page, connected, 30, "the viewer to show the desktop", describe=viewer_state)
    assert (state["dialect"], state["security"], state["viewOnly"]) == ("rfb", "1", "false"), state
    assert (state["width"], state["height"]) == ("1280", "720")
    drawn = browser.wait_until(driver, lambda d: browser.canvas_not_blank(browser.novnc_state(d)), 15,
                               "the canvas to show the desktop", describe=browser.novnc_state)
    assert drawn
    assert driver.title.startswith("Desktop von Max Mustermann – iservdesk"), driver.title
    assert driver.find_element(By.ID, "mode").text == "Volle Steuerung"

    # Nothing but portal files and the WebSocket: the page is the portal's own.
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(url.startswith(portal.url + "/static/") for url in resources), resources
    assert driver.execute_script("return window.__sockets") == [
        portal.url.replace("http://", "ws://") + "/desktop/%s/websockify" % name]
    assert "noVNC" not in driver.page_source

    # Typing reaches the student's xterm (twm gives it the focus under the pointer).
    container = docker_client.containers.get("%s-%s" % (portal.prefix, name))
    region = [40, 40, 700, 400]
    before = driver.execute_script(REGION_HASH_JS, region)
    click_at(driver, 300, 200)
    ActionChains(driver).send_keys("touch /tmp/typed-in-the-viewer").send_keys(Keys.ENTER).perform()
    wait_for(lambda: container.exec_run(["test", "-e", "/tmp/typed-in-the-viewer"]).exit_code == 0, 20,
             "the command typed in the viewer to run in the desktop")
    browser.wait_until(driver, lambda d: d.execute_script(REGION_HASH_JS, region) != before, 10,
                       "the typed text to show on the canvas")
    sent = driver.execute_script("return window.__sent")
    assert [message[0] for message in input_messages(sent, 3)].count(4) >= 2 * len("touch /tmp/typed")
    browser.save_screenshot(driver, "viewer-full-control-de")

    # Chromium's own network log: under the desktop's path only the page (answered by the
    # portal, as above) and the WebSocket.
    driver.quit()
    desktop_urls = {url for url in netlog_urls(netlog) if "/desktop/" in url}
    assert desktop_urls == {page, page.replace("http://", "ws://") + "websockify"}, desktop_urls


def test_view_only_viewer_shows_the_desktop_and_sends_no_input(students_desktop, chromium, docker_client):
    portal, name = students_desktop("demo")
    driver = admin_browser(chromium, portal, "en")
    state = browser.load(driver, portal.url + "/desktop/%s/?view_only=1" % name, connected, 30,
                         "the view-only viewer to connect", describe=viewer_state)
    assert state["viewOnly"] == "true"
    assert browser.wait_until(driver, lambda d: browser.canvas_not_blank(browser.novnc_state(d)), 15,
                              "the canvas to show the desktop", describe=browser.novnc_state)
    assert driver.find_element(By.ID, "mode").text == "View only"
    assert driver.execute_script("return document.getElementById('screen').tabIndex") == -1

    region = [40, 40, 700, 400]
    before = driver.execute_script(REGION_HASH_JS, region)
    click_at(driver, 300, 200)
    click_at(driver, 300, 200, button="right")
    ActionChains(driver).send_keys("touch /tmp/typed-while-view-only").send_keys(Keys.ENTER).perform()
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(driver.find_element(By.ID, "screen")),
                                            0, 300).perform()
    sent = driver.execute_script("return window.__sent")
    assert sent[:3] == [list(b"RFB 003.008\n"), [1], [1]]
    assert input_messages(sent, 3) == [], sent
    container = docker_client.containers.get("%s-%s" % (portal.prefix, name))
    assert container.exec_run(["test", "-e", "/tmp/typed-while-view-only"]).exit_code == 1
    assert driver.execute_script(REGION_HASH_JS, region) == before
    browser.save_screenshot(driver, "viewer-view-only-en")


# ---- a stand-in speaking KasmVNC's dialect --------------------------------------------

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BLUE, WHITE, RED, GREEN, GRAY, YELLOW = (
    (20, 40, 120), (255, 255, 255), (200, 0, 0), (0, 160, 0), (128, 128, 128), (250, 220, 0))
WIDTH, HEIGHT = 640, 400
# Desktop pixels and the colour the first update paints there (see KasmVNCDialect.screen).
EXPECTED = {(3, 3): WHITE, (10, 10): BLUE, (20, 0): WHITE, (20, 8): BLUE, (40, 8): RED, (56, 8): GREEN,
            (100, 100): GRAY, (620, 380): YELLOW, (40, 208): RED, (3, 203): WHITE, (56, 215): GREEN}


def des_encrypt(key, data):
    """DES-ECB by Python's cryptography (3DES with one key three times is DES)."""
    import warnings
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TripleDES is deprecated in newer releases
        cipher = Cipher(algorithms.TripleDES(key * 3), modes.ECB())
    encryptor = cipher.encryptor()
    return encryptor.update(data) + encryptor.finalize()


class KasmVNCDialect:
    """A desktop's port 6901 as KasmVNC 1.x serves it to a client, written from KasmVNC's
    source (common/network/websocket.c, common/rfb/SConnection.cxx, SMsgReader.cxx,
    SMsgWriter.cxx, msgTypes.h; unix/vncserver) rather than recorded from the real server:

    TLS; HTTP Basic auth kasm_user:<the desktop's secret>; a WebSocket with the "binary"
    subprotocol; RFB 3.8 offering VeNCrypt (19) and VNC authentication (2), the latter with
    the empty password that KasmVNC's vncserver sets; client messages read with KasmVNC's
    lengths (PointerEvent: U16 mask, x, y, S16 scroll x, y). After the first update
    request it sends a UserAddedToSession, a BinaryClipboard and a Bell, then one update
    of Hextile, Raw and CopyRect rectangles. Every message received is kept in `received`;
    anything KasmVNC would choke on goes to `errors`."""

    def __init__(self, secret, update=None, refusal=None):
        self.update = update or self.screen()  # the first FramebufferUpdate
        self.refusal = refusal  # if set: refuse the authentication with this reason
        self.expected_auth = "Basic " + base64.b64encode(b"kasm_user:" + secret.encode()).decode()
        self.received, self.errors, self.auth_ok = [], [], []
        folder = tempfile.mkdtemp()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*self_signed(folder))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(raw,), daemon=True).start()

    def close(self):
        self.listener.close()

    # -- WebSocket framing --

    def handle(self, raw):
        try:
            with self.context.wrap_socket(raw, server_side=True) as tls:
                tls.settimeout(60)
                request = read_head(tls)
                if request is None:
                    return
                _, fields, _ = request
                if fields.get("authorization") != self.expected_auth:
                    self.errors.append("Basic auth %r" % fields.get("authorization"))
                    tls.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                    return
                if "binary" not in fields.get("sec-websocket-protocol", "") or "origin" not in fields:
                    self.errors.append("handshake %r" % fields)
                    return
                key = fields["sec-websocket-key"].encode()
                accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())
                tls.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept
                            + b"\r\nSec-WebSocket-Protocol: binary\r\n\r\n")
                self.rfb(Stream(tls))
        except (OSError, ssl.SSLError, EOFError):
            pass
        except Exception as error:  # a test failure must show, not vanish with the thread
            self.errors.append(repr(error))

    # -- RFB, as KasmVNC --

    def rfb(self, stream):
        stream.send(b"RFB 003.008\n")
        if stream.read(12) != b"RFB 003.008\n":
            self.errors.append("client version")
            return
        stream.send(bytes([2, 19, 2]))  # VeNCrypt, VncAuth
        if stream.read(1) != b"\x02":
            self.errors.append("security type")
            return
        challenge = os.urandom(16)
        stream.send(challenge)
        if stream.read(16) != des_encrypt(bytes(8), challenge):
            self.errors.append("VNC authentication response")
            stream.send(struct.pack(">I", 1) + struct.pack(">I", 6) + b"failed")
            return
        if self.refusal:
            stream.send(struct.pack(">II", 1, len(self.refusal)) + self.refusal)
            return
        self.auth_ok.append(True)
        stream.send(struct.pack(">I", 0))
        if stream.read(1) != b"\x01":
            self.errors.append("ClientInit not shared")
        server_format = bytes([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0])
        stream.send(struct.pack(">HH", WIDTH, HEIGHT) + server_format + struct.pack(">I", 4) + b"kasm")
        answered = False
        while True:
            kind = stream.read(1)[0]
            if kind == 0:
                body = stream.read(19)
                self.received.append(("SetPixelFormat", body[3:]))
            elif kind == 2:
                count = struct.unpack(">xH", stream.read(3))[0]
                self.received.append(("SetEncodings", struct.unpack(">%di" % count, stream.read(4 * count))))
            elif kind == 3:
                self.received.append(("FramebufferUpdateRequest",) + struct.unpack(">BHHHH", stream.read(9)))
                if not answered:
                    answered = True
                    stream.send(self.extras() + self.update)
            elif kind == 4:
                down, keysym = struct.unpack(">BxxI", stream.read(7))
                self.received.append(("KeyEvent", down, keysym))
            elif kind == 5:
                self.received.append(("PointerEvent",) + struct.unpack(">HHHhh", stream.read(10)))
            elif kind == 6:
                length = struct.unpack(">xxxI", stream.read(7))[0]
                self.received.append(("ClientCutText", stream.read(length)))
            else:
                self.errors.append("unknown client message %d (KasmVNC closes here)" % kind)
                return

    @staticmethod
    def extras():
        user = b"teacher"
        mime, data = b"text/plain", b"the student's clipboard"
        return (bytes([253]) + struct.pack(">I", len(user)) + user
                + bytes([180, 1]) + struct.pack(">IB", 7, len(mime)) + mime
                + struct.pack(">I", len(data)) + data
                + bytes([2]))

    @staticmethod
    def screen():
        def px(colour):
            return bytes(colour) + b"\x00"  # the client's format: R, G, B, pad

        def rect(x, y, w, h, encoding):
            return struct.pack(">HHHHi", x, y, w, h, encoding)

        tiles = [
            bytes([2 | 4 | 8]) + px(BLUE) + px(WHITE) + bytes([1, 0x22, 0x33]),  # white 4x4 at 2,2
            bytes([8, 1, 0x00, 0xf0]),                       # bg, fg carried: white 16x1 line on top
            bytes([8 | 16, 1]) + px(RED) + bytes([0x00, 0xff]),  # a red subrect over the whole tile
            bytes([1]) + px(GREEN) * 256,                    # raw
            bytes([2]) + px(GRAY),                           # solid gray ...
        ]
        tiles += [bytes([0])] * (40 * 25 - len(tiles))       # ... carried to every other tile
        raw = px(YELLOW) * (40 * 40)
        return (bytes([0, 0]) + struct.pack(">H", 3)
                + rect(0, 0, WIDTH, HEIGHT, 5) + b"".join(tiles)
                + rect(600, 360, 40, 40, 0) + raw
                + rect(0, 200, 64, 16, 1) + struct.pack(">HH", 0, 0))


class Stream:
    """RFB bytes over server-side WebSocket frames (client frames are masked)."""

    def __init__(self, tls):
        self.tls, self.buffer = tls, b""

    def recv_exact(self, count):
        data = b""
        while len(data) < count:
            chunk = self.tls.recv(count - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def read(self, count):
        while len(self.buffer) < count:
            first, second = self.recv_exact(2)
            length = second & 0x7f
            if length == 126:
                length = struct.unpack(">H", self.recv_exact(2))[0]
            elif length == 127:
                raise EOFError("KasmVNC refuses client frames with a 64-bit length")
            if not second & 0x80:
                raise EOFError("unmasked client frame")
            mask = self.recv_exact(4)
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.recv_exact(length)))
            if first & 0x0f == 8:
                raise EOFError("closed")
            self.buffer += payload
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def send(self, data):
        for start in range(0, len(data), 60000):  # several frames: the client must reassemble
            piece = data[start:start + 60000]
            size = bytes([len(piece)]) if len(piece) < 126 else bytes([126]) + struct.pack(">H", len(piece))
            header = bytes([0x82]) + size
            self.tls.sendall(header + piece)


@pytest.fixture
def kasm_desktop(students_desktop, tmp_path):
    """Factory: the student's desktop, answered by KasmVNCDialect(**options) ->
    (portal, name, stand-in)."""
    stand_ins = []

    def start(**options):
        portal, name = students_desktop("tiny")
        stand_in = KasmVNCDialect(row_of(tmp_path, name)["secret"], **options)
        stand_ins.append(stand_in)
        point_at(tmp_path, name, stand_in.port)
        return portal, name, stand_in
    yield start
    for stand_in in stand_ins:
        stand_in.close()


def drawn_pixels(driver):
    """{(x, y): (r, g, b)} of the canvas at the points of EXPECTED."""
    points = sorted(EXPECTED)
    return dict(zip(points, map(tuple, driver.execute_script(PIXELS_JS, points))))


def received(stand_in, kind):
    return [message for message in stand_in.received if message[0] == kind]


def test_viewer_speaks_kasmvncs_dialect_and_draws_hextile_raw_and_copyrect(kasm_desktop, chromium):
    portal, name, stand_in = kasm_desktop()
    driver = admin_browser(chromium, portal, "de")
    state = browser.load(driver, portal.url + "/desktop/%s/" % name, connected, 30,
                         "the viewer to connect to the KasmVNC stand-in", describe=viewer_state)
    assert (state["dialect"], state["security"]) == ("kasmvnc", "2")
    assert (state["width"], state["height"]) == (str(WIDTH), str(HEIGHT))
    assert stand_in.auth_ok and stand_in.errors == []
    assert drawn_pixels(driver) == EXPECTED
    (pixel_format,) = received(stand_in, "SetPixelFormat")
    assert pixel_format[1] == bytes([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0])
    assert received(stand_in, "SetEncodings") == [("SetEncodings", (5, 1, 0, -223))]
    assert received(stand_in, "FramebufferUpdateRequest")[:2] == [
        ("FramebufferUpdateRequest", 0, 0, 0, WIDTH, HEIGHT),
        ("FramebufferUpdateRequest", 1, 0, 0, WIDTH, HEIGHT)]

    click_at(driver, 320, 200)
    click_at(driver, 100, 50, button="right")
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(driver.find_element(By.ID, "screen")),
                                            0, 120).perform()
    ActionChains(driver).send_keys("a").key_down(Keys.SHIFT).send_keys("b").key_up(Keys.SHIFT) \
        .send_keys(Keys.ENTER).send_keys("ä").perform()
    keys = [(0x61, 1), (0x61, 0), (0xffe1, 1), (0x42, 1), (0x42, 0), (0xffe1, 0), (0xff0d, 1), (0xff0d, 0),
            (0xe4, 1), (0xe4, 0)]
    wait_for(lambda: [(k, d) for _, d, k in received(stand_in, "KeyEvent")] == keys or None, 10,
             "the keys at the stand-in (got %r)" % received(stand_in, "KeyEvent"))
    pointer = received(stand_in, "PointerEvent")
    assert stand_in.errors == [], stand_in.errors
    assert ("PointerEvent", 1, 320, 200, 0, 0) in pointer and ("PointerEvent", 0, 320, 200, 0, 0) in pointer
    assert ("PointerEvent", 4, 100, 50, 0, 0) in pointer and ("PointerEvent", 0, 100, 50, 0, 0) in pointer
    assert [event[1] for event in pointer if event[1] & 16] == [16] * 2, pointer  # 120 px: two wheel steps
    browser.save_screenshot(driver, "viewer-kasmvnc-stand-in-de")


@pytest.mark.parametrize("query", ["?view_only=1", "?view_only=0", "?view_only=false"])
def test_view_only_sends_no_input_to_kasmvnc_and_a_url_cannot_grant_control(kasm_desktop, chromium, query):
    portal, name, stand_in = kasm_desktop()
    # ?view_only=1 makes the admin's viewer view-only; for the others the server's flag is
    # set to view-only (as it will be for teachers) and the URL tries to lift it.
    scripts = () if query == "?view_only=1" else (SERVER_SAYS_VIEW_ONLY,)
    driver = admin_browser(chromium, portal, "en", *scripts)
    state = browser.load(driver, portal.url + "/desktop/%s/%s" % (name, query), connected, 30,
                         "the view-only viewer to connect", describe=viewer_state)
    assert state["viewOnly"] == "true"
    click_at(driver, 320, 200)
    click_at(driver, 100, 50, button="right")
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(driver.find_element(By.ID, "screen")),
                                            0, 300).perform()
    ActionChains(driver).send_keys("abc").send_keys(Keys.ENTER).perform()
    sent = driver.execute_script("return window.__sent")
    handshake = 4  # version, security type, VNC authentication response, ClientInit
    assert input_messages(sent, handshake) == [], sent
    # Everything the page sent has arrived, and none of it was input.
    wait_for(lambda: len(stand_in.received) == len(sent) - handshake, 10,
             "the stand-in to receive the %d messages the page sent" % (len(sent) - handshake))
    assert {message[0] for message in stand_in.received} == {
        "SetPixelFormat", "SetEncodings", "FramebufferUpdateRequest"}, stand_in.received
    assert stand_in.errors == []
    assert drawn_pixels(driver) == EXPECTED


OUTSIDE = bytes([0, 0, 0, 1]) + struct.pack(">HHHHi", 600, 390, 64, 16, 5) + bytes([2, 0, 0, 0, 0]) * 4


@pytest.mark.parametrize("options, shown", [
    ({"update": OUTSIDE}, "rectangle outside the screen"),
    ({"refusal": b"Call 0800 123 and tell them your password"}, "the desktop refused the authentication"),
])
def test_viewer_gives_up_on_a_desktop_that_breaks_the_protocol_and_shows_none_of_its_text(
        kasm_desktop, chromium, options, shown):
    portal, name, stand_in = kasm_desktop(**options)
    driver = admin_browser(chromium, portal, "en")
    driver.get(portal.url + "/desktop/%s/" % name)
    state = browser.wait_until(driver, gave_up, 20, "the viewer to give up", describe=viewer_state)
    assert state["status"] == "Error: " + shown
    assert "0800" not in driver.find_element(By.TAG_NAME, "body").text
    assert driver.find_element(By.ID, "reconnect").is_displayed()
    assert stand_in.errors == []
