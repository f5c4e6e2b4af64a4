"""The desktop proxy over real HTTP and WebSockets: a real portal, real demo desktops, and
a hostile stand-in upstream (tests/upstream.py) for what a container might send.

Only what needs the real server is here: WebSockets and their relay, streaming bodies,
timeouts and sockets. Who may enter a desktop, the redirects and status pages, and what
crosses the proxy in each direction are tested in-process in test_web_desktop.py."""

import datetime
import http.client
import io
import os
import random
import socket
import ssl
import threading
import time
import urllib.parse

import pytest
import websocket

from conftest import container_of, wait_for
from flows import Client, wait_status
from proxying import binary_frame, database, open_ws, point_at, row_of, switching_protocols, ws_url
from upstream import Upstream, self_signed


def test_owner_gets_the_page_and_its_relative_assets(running):
    portal, anna, _ = running()
    page = anna.get("/desktop/anna.schmidt-tiny/vnc.html")
    assert page.status_code == 200 and "noVNC" in page.text
    assert page.headers["Cache-Control"] == "no-store"  # a stopped desktop's page must not come from the cache
    for asset in ("app/ui.js", "core/rfb.js", "app/styles/base.css"):
        answer = anna.get("/desktop/anna.schmidt-tiny/" + asset)
        assert answer.status_code == 200, asset
        assert answer.headers["Cache-Control"] == "private", asset


def test_websocket_upgrades_meet_the_checks_pages_meet(running, tmp_path):
    # The pages' side of each check (sign-in redirect, 403, the admin's viewer page, the
    # status page) is tested in-process in test_web_desktop.py; upgrades go through the
    # real server's handler.
    portal, anna, _ = running(slug="demo", ADMIN_DESKTOP_ACCESS="true")
    ben, admin = Client(portal.url, "ben"), Client(portal.url, "admin")
    for session_id, status in ((None, 401), (ben.session_id, 403)):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            open_ws(portal, "anna.schmidt-demo", session_id)
        assert refused.value.status_code == status
    ws = open_ws(portal, "anna.schmidt-demo", anna.session_id)
    assert ws.recv().startswith(b"RFB 003.00")
    ws.close()
    # An admin with ADMIN_DESKTOP_ACCESS gets the WebSocket behind the portal's viewer, audited.
    ws = open_ws(portal, "anna.schmidt-demo", admin.session_id)
    assert ws.recv().startswith(b"RFB 003.00")
    ws.close()
    con = database(tmp_path)
    entries = con.execute("SELECT actor, target FROM events WHERE action = 'desktop.admin-access'").fetchall()
    con.close()
    assert entries == [("admin", "anna.schmidt-demo")]
    assert "admin admin looks at the desktop anna.schmidt-demo of anna.schmidt" in portal.log()
    # A desktop that is not running has no WebSocket, for its owner neither.
    anna.post("/api/container/stop", params={"desktop_type": "demo"})
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        open_ws(portal, "anna.schmidt-demo", anna.session_id)
    assert refused.value.status_code == 409


def portal_rss_kb(portal):
    with open("/proc/%d/status" % portal.process.pid) as stream:
        for line in stream:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def test_http_bodies_stream_both_ways_without_buffering(running, tmp_path):
    portal, anna, row = running()
    size = 256 * 1024 * 1024
    piece = os.urandom(1024 * 1024)

    def answer(head, body):
        if head.startswith("POST"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(len(body))), len(body))

        def stream():
            yield b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % size
            for _ in range(size // len(piece)):
                yield piece
        return stream()
    upstream = Upstream(answer)
    point_at(tmp_path, row["name"], upstream.port)
    before = portal_rss_kb(portal)
    received = 0
    with anna.get("/desktop/anna.schmidt-tiny/big.bin", stream=True) as download:
        for chunk in download.iter_content(1024 * 1024):
            received += len(chunk)
    assert received == size
    upload = anna.post("/desktop/anna.schmidt-tiny/upload", data=io.BytesIO(piece * 64))
    assert upload.text == str(64 * len(piece))
    # A chunked upload (no Content-Length) arrives whole too.
    parts = urllib.parse.urlsplit(portal.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.request("POST", "/desktop/anna.schmidt-tiny/upload", body=(piece for _ in range(8)),
                       headers={"Cookie": "iservdesk_session=" + anna.session_id, "X-CSRF-Token": anna.csrf},
                       encode_chunked=True)
    assert connection.getresponse().read() == str(8 * len(piece)).encode()
    connection.close()
    # 256 MB down and 64 MB up went through; the portal grew by far less.
    assert portal_rss_kb(portal) - before < 64 * 1024
    upstream.close()


def test_websocket_relays_raw_bytes_both_ways(running):
    portal, anna, _ = running(slug="demo")
    ws = open_ws(portal, "anna.schmidt-demo", anna.session_id)
    assert ws.recv() == b"RFB 003.008\n"
    ws.send_binary(b"RFB 003.008\n")
    security_types = ws.recv()
    assert security_types[0] >= 1 and 1 in security_types[1:]  # "None", as Xvnc offers here
    ws.send_binary(b"\x01")
    assert ws.recv()[:4] == b"\x00\x00\x00\x00"  # SecurityResult OK
    ws.close()


def test_a_strict_upstream_accepts_the_forwarded_handshake(running):
    # DEMO_MODE=strict refuses (like KasmVNC) a handshake without Origin or the binary
    # subprotocol, or with Host/Connection spelled otherwise: the proxy must pass the
    # browser's handshake on as it came.
    portal, anna, _ = running(slug="strict")
    ws = open_ws(portal, "anna.schmidt-strict", anna.session_id)
    assert ws.recv() == b"RFB 003.008\n"
    ws.close()
    for kwargs in ({"origin": False}, {"subprotocol": False}):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            open_ws(portal, "anna.schmidt-strict", anna.session_id, **kwargs)
        assert refused.value.status_code == 502, kwargs
    assert "desktop anna.schmidt-strict refused the WebSocket handshake: HTTP/1.1 200" in portal.log()


def test_an_unanswering_desktop_gets_a_page_not_a_bare_502(running, tmp_path):
    portal, anna, row = running()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    point_at(tmp_path, row["name"], port)
    page = anna.get("/desktop/anna.schmidt-tiny/vnc.html")
    assert page.status_code == 502
    assert "antwortet gerade nicht" in page.text and "<html" in page.text


def test_a_container_killed_mid_stream_ends_the_websocket(running, docker_client):
    portal, anna, _ = running(slug="demo")
    ws = open_ws(portal, "anna.schmidt-demo", anna.session_id, timeout=30)
    assert ws.recv().startswith(b"RFB")
    container_of(docker_client, portal, "anna.schmidt-demo").kill()
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        while True:
            if not ws.recv():
                raise websocket.WebSocketConnectionClosedException("closed")
    wait_status(anna, "demo", "stopped", timeout=20)
    page = anna.get("/desktop/anna.schmidt-demo/vnc.html")
    assert page.status_code == 409 and "gestoppt" in page.text


def test_websocket_traffic_counts_as_activity(running, tmp_path):
    # The relay records use with the clock of the `iservdesk serve` process (real time),
    # so the test makes the last use old in the database instead of waiting a minute.
    # (HTTP requests count too: test_web_desktop.py, in-process with a test clock.)
    portal, anna, row = running()
    con = database(tmp_path)
    con.execute("UPDATE desktops SET last_access_at = '2020-01-01T00:00:00.000000Z'")
    con.close()
    ws = open_ws(portal, "anna.schmidt-tiny", anna.session_id)
    ws.close()
    wait_for(lambda: row_of(tmp_path, "anna.schmidt-tiny")["last_access_at"] > "2026", 10, "last access")


def test_a_large_first_burst_after_the_101_arrives_whole(running, tmp_path):
    # The container may send its 101 and a big first frame in one go (a full screen).
    portal, anna, row = running()
    payload = os.urandom(300 * 1024)
    upstream = Upstream(lambda head, body: switching_protocols(head) + binary_frame(payload))
    point_at(tmp_path, row["name"], upstream.port)
    ws = open_ws(portal, "anna.schmidt-tiny", anna.session_id)
    assert ws.recv() == payload
    ws.close()
    upstream.close()


def test_the_end_of_a_stream_and_the_small_messages_after_it_are_not_held_back(running, tmp_path):
    # While a stream flows, the portal lets the kernel gather bytes before waking it
    # (proxy.TLSPipe._fill). A stream's last bytes must still go out when the desktop
    # pauses, and a small message after it must not wait for a batch to fill.
    portal, anna, row = running()
    stream = [random.Random(index).randbytes(100 * 1024 + index) for index in range(40)]
    go_on, done = threading.Event(), threading.Event()

    def answer(head, body):
        yield switching_protocols(head) + b"".join(binary_frame(frame) for frame in stream)
        for word in (b"typed", b"moved"):
            go_on.wait(30)  # the desktop stays connected, and silent, until the test goes on
            go_on.clear()
            yield binary_frame(word)
        done.wait(30)
    upstream = Upstream(answer)
    point_at(tmp_path, row["name"], upstream.port)
    ws = open_ws(portal, "anna.schmidt-tiny", anna.session_id, timeout=10)
    assert [ws.recv() for _ in stream] == stream
    for word in (b"typed", b"moved"):
        go_on.set()
        assert ws.recv() == word
    done.set()
    ws.close()
    upstream.close()


def test_concurrent_streams_to_a_fast_and_a_slow_browser_arrive_intact(running, tmp_path):
    # The relay decrypts every stream into one shared buffer; a browser that cannot take a
    # batch at once must still get its own bytes, not those another stream decrypted since.
    portal, anna, row = running()
    frames, frame_size = 24, 256 * 1024

    def payload(seed, index):
        return random.Random(seed * 1000 + index).randbytes(frame_size)

    def answer(head, body):
        seed = int(head.split(" ")[1].split("seed=")[1])
        yield switching_protocols(head)
        for index in range(frames):
            yield binary_frame(payload(seed, index))
    upstream = Upstream(answer)
    point_at(tmp_path, row["name"], upstream.port)

    def connect(seed, receive_buffer):
        return websocket.create_connection(
            ws_url(portal, "anna.schmidt-tiny") + "?seed=%d" % seed, subprotocols=["binary"],
            origin=portal.url, cookie="iservdesk_session=%s" % anna.session_id, timeout=30,
            sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)])
    slow, fast = connect(1, 4096), connect(2, 4 << 20)
    received = {1: [], 2: []}
    while len(received[2]) < frames:
        received[2].append(fast.recv())
        if len(received[2]) % 4 == 0:  # the slow one reads a frame now and then
            received[1].append(slow.recv())
    while len(received[1]) < frames:
        received[1].append(slow.recv())
    for seed in (1, 2):
        for index, data in enumerate(received[seed]):
            assert data == payload(seed, index), "stream %d, frame %d" % (seed, index)
    slow.close()
    fast.close()
    upstream.close()


def test_a_desktop_that_accepts_but_never_speaks_tls_gets_a_page_after_the_connect_timeout(running, tmp_path):
    portal, anna, row = running()
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)  # the kernel accepts; nobody ever answers
    point_at(tmp_path, row["name"], mute.getsockname()[1])
    started = time.monotonic()
    page = anna.get("/desktop/anna.schmidt-tiny/vnc.html")
    assert page.status_code == 502 and "antwortet gerade nicht" in page.text
    assert time.monotonic() - started < 30  # CONNECT_TIMEOUT is 5 s; this only rules out hanging
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        open_ws(portal, "anna.schmidt-tiny", anna.session_id, timeout=30)
    assert refused.value.status_code == 502
    mute.close()


def test_a_desktop_silent_for_proxy_timeout_ends_the_request(running, tmp_path):
    portal, anna, row = running(PROXY_TIMEOUT="2")
    release = threading.Event()

    def answer(head, body):
        request_line = head.split("\r\n")[0]
        if "/stall-" in request_line:
            yield b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\nContent-Type: application/octet-stream\r\n\r\n"
        if "/stall-body" in request_line:
            yield b"x" * 1000000
        release.wait(60)  # and then nothing, until the test ends
        yield b""
    upstream = Upstream(answer)
    point_at(tmp_path, row["name"], upstream.port)
    try:
        page = anna.get("/desktop/anna.schmidt-tiny/no-answer")
        assert page.status_code == 502 and "antwortet gerade nicht" in page.text
        assert "desktop anna.schmidt-tiny did not answer: TimeoutError after 2.0s" in portal.log()
        # A head and then silence: still a page, since nothing has gone to the browser yet.
        page = anna.get("/desktop/anna.schmidt-tiny/stall-head")
        assert page.status_code == 502 and "antwortet gerade nicht" in page.text
        # A body that stops half-way ends after the same silence instead of hanging.
        connection = http.client.HTTPConnection("127.0.0.1", int(portal.url.rsplit(":", 1)[1]), timeout=60)
        connection.request("GET", "/desktop/anna.schmidt-tiny/stall-body",
                           headers={"Cookie": "iservdesk_session=%s" % anna.session_id})
        response = connection.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as incomplete:
            response.read()
        assert incomplete.value.partial == b"x" * 1000000
        connection.close()
        assert "desktop response ended early" in portal.log()
        assert "Traceback" not in portal.log()
    finally:
        release.set()
        upstream.close()


def test_a_viewer_counts_as_activity_while_bytes_flow_and_not_while_silent(running, tmp_path):
    # IDLE_TIMEOUT=10s makes the relay look for traffic every second instead of every minute.
    portal, anna, row = running(slug="demo", IDLE_TIMEOUT="10s")
    ws = open_ws(portal, "anna.schmidt-demo", anna.session_id)
    assert ws.recv() == b"RFB 003.008\n"  # bytes flowed; let the relay's next look pass

    def last_access():
        return row_of(tmp_path, "anna.schmidt-demo")["last_access_at"]

    def forget():
        con = database(tmp_path)
        con.execute("UPDATE desktops SET last_access_at = '2020-01-01T00:00:00.000000Z'")
        con.close()
    time.sleep(2.5)
    forget()
    time.sleep(3)  # an open viewer, silent: RFB servers wait for the client here
    assert last_access() < "2021"
    ws.send_binary(b"RFB 003.008\n")  # and now traffic both ways
    assert ws.recv()
    wait_for(lambda: last_access() > "2026", 10, "last access after traffic")
    ws.close()


def test_a_browser_closing_its_websocket_closes_the_desktops_side(running, tmp_path):
    portal, anna, row = running()
    folder = tmp_path / "tls"
    folder.mkdir()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed(str(folder)))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    closed = threading.Event()

    def serve():  # a desktop that answers the handshake, then waits for its peer to go
        raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as tls:
            tls.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head:
                head += tls.recv(65536)
            tls.sendall(switching_protocols(head.decode("latin-1")) + b"\x82\x05hello")
            try:
                while tls.recv(65536):
                    pass  # the browser's close frame is relayed like any other bytes
                closed.set()
            except (OSError, ssl.SSLError):
                closed.set()  # a reset is a close too
    server = threading.Thread(target=serve, daemon=True)
    server.start()
    point_at(tmp_path, row["name"], listener.getsockname()[1])
    ws = open_ws(portal, "anna.schmidt-tiny", anna.session_id)
    assert ws.recv() == b"hello"
    ws.sock.shutdown(socket.SHUT_RDWR)  # the tab goes away without a close handshake
    ws.sock.close()
    assert closed.wait(10), "the desktop's connection stayed open after the browser left"
    listener.close()


def ws_closed(ws, timeout=10):
    """True once the portal has closed `ws` (within `timeout` seconds), False if it stays open."""
    ws.settimeout(timeout)
    try:
        while True:
            if not ws.recv():
                return True
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        return True
    except websocket.WebSocketTimeoutException:
        return False


def test_signing_out_closes_the_sessions_open_viewers_at_once(running):
    # On a shared school computer the next person must not find the desktop connected.
    portal, anna, _ = running(slug="demo")
    ws = open_ws(portal, "anna.schmidt-demo", anna.session_id)
    assert ws.recv() == b"RFB 003.008\n"
    other = Client(portal.url, "anna.schmidt")  # her second sign-in, e.g. on a tablet
    kept = open_ws(portal, "anna.schmidt-demo", other.session_id)
    assert kept.recv() == b"RFB 003.008\n"
    assert anna.post("/logout", allow_redirects=False).status_code == 303
    assert ws_closed(ws)
    assert not ws_closed(kept, timeout=2)  # the other session's viewer stays
    assert "WebSocket to desktop anna.schmidt-demo closed after" in portal.log()
    kept.close()


def test_a_viewer_keeps_its_session_alive_while_used_and_ends_with_it(running, tmp_path):
    # IDLE_TIMEOUT=10s: the relay looks every second. The session expires 90 s after its
    # last use; the relay checks it with the clock of the `iservdesk serve` process (real
    # time), so the test makes the last use "80 s ago" in the database instead of waiting.
    # (Idle timeout and lifetime of requests: test_web_auth.py, in-process with a test clock.)
    portal, anna, _ = running(slug="demo", IDLE_TIMEOUT="10s", SESSION_IDLE_TIMEOUT="90s")
    ws = open_ws(portal, "anna.schmidt-demo", anna.session_id)
    assert ws.recv() == b"RFB 003.008\n"

    def last_seen(seconds_ago):
        con = database(tmp_path)
        when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago)
        con.execute("UPDATE sessions SET last_seen_at = ?", (when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),))
        con.close()

    def seen_ago():
        con = database(tmp_path)
        try:
            stored = con.execute("SELECT last_seen_at FROM sessions").fetchone()[0]
        finally:
            con.close()
        when = datetime.datetime.strptime(stored, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        return (datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()

    def session_count():
        con = database(tmp_path)
        try:
            return con.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
        finally:
            con.close()
    last_seen(80)
    ws.send_binary(b"RFB 003.008\n")  # bytes cross: the session is in use
    assert ws.recv()
    # The relay's next look counts that as use: without it the session would end in 10 s.
    wait_for(lambda: seen_ago() < 10, 10, "the viewer's traffic to count as use of the session")
    assert session_count() == 1
    assert not ws_closed(ws, timeout=1)
    last_seen(88)  # and now silence until the session expires
    assert ws_closed(ws, timeout=15)
    assert session_count() == 0
    assert "WebSocket to desktop anna.schmidt-demo closed: its session ended" in portal.log()


def test_only_the_portals_own_pages_drive_desktops_with_the_cookie(running, tmp_path):
    # A page of a sibling host is "same site": the browser sends the session cookie with
    # its WebSocket and its form posts. The portal refuses any Origin but PUBLIC_URL's.
    portal, anna, _ = running(slug="demo")
    for foreign in ("http://evil.example", "http://127.0.0.1:1", portal.url.replace("http:", "https:")):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(ws_url(portal, "anna.schmidt-demo"), subprotocols=["binary"],
                                        origin=foreign, cookie="iservdesk_session=%s" % anna.session_id,
                                        timeout=15)
        assert refused.value.status_code == 403, foreign
    assert "refused a WebSocket to desktop anna.schmidt-demo from http://evil.example" in portal.log()
    ws = open_ws(portal, "anna.schmidt-demo", anna.session_id)  # Origin: the portal
    assert ws.recv() == b"RFB 003.008\n"
    ws.close()
    # The same for a form posted into the desktop (say, to an upload handler).
    assert anna.post("/desktop/anna.schmidt-demo/upload", data=b"x",
                     headers={"Origin": "http://evil.example"}).status_code == 403
    assert "did not answer" not in portal.log()
    # From the portal's own origin it reaches the desktop (a stand-in on the desktop's port
    # that takes uploads: the demo image's websockify has no POST to answer).
    upstream = Upstream(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nuploaded")
    point_at(tmp_path, "anna.schmidt-demo", upstream.port)
    try:
        reached = anna.post("/desktop/anna.schmidt-demo/upload", data=b"x", headers={"Origin": portal.url})
        assert (reached.status_code, reached.text) == (200, "uploaded")
        assert upstream.requests[-1][0].startswith("POST /upload HTTP/1.1")
        # A GET is no write: a foreign Origin alone (no Fetch Metadata) does not stop it.
        assert anna.get("/desktop/anna.schmidt-demo/vnc.html", headers={"Origin": "http://evil.example"}).ok
        assert upstream.requests[-1][0].startswith("GET /vnc.html HTTP/1.1")
    finally:
        upstream.close()


@pytest.mark.parametrize("url, origin", [
    ("https://Desk.School.example:443", "https://desk.school.example"),
    ("https://desk.school.example/", "https://desk.school.example"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://[::1]:80", "http://[::1]"),
    ("null", "null"),
])
def test_origins_compare_as_browsers_send_them(url, origin):
    from iservdesk.web.responses import web_origin
    assert web_origin(url) == origin
