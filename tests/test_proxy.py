"""The desktop proxy over real HTTP and WebSockets: a real portal, real demo desktops, and
a hostile stand-in upstream (tests/upstream.py) for what a container might send."""

import base64
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
import requests
import websocket

from conftest import wait_for
from flows import Client
from test_desktops import container_of, wait_status
from proxying import binary_frame, database, open_ws, point_at, raw_get, row_of, switching_protocols, ws_url
from upstream import Upstream, self_signed


def test_bare_path_redirects_to_the_trailing_slash_keeping_the_query(running):
    portal, anna, _ = running()
    answer = anna.get("/desktop/anna.schmidt-tiny?x=1&y=2", allow_redirects=False)
    assert answer.status_code == 301
    assert answer.headers["Location"] == portal.url + "/desktop/anna.schmidt-tiny/?x=1&y=2"


def test_root_page_gets_the_websocket_path_and_keeps_what_was_there(running):
    portal, anna, _ = running()
    answer = anna.get("/desktop/anna.schmidt-tiny/?lang=de", allow_redirects=False)
    assert answer.status_code == 302
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["Location"]).query)
    assert query == {"lang": ["de"], "path": ["desktop/anna.schmidt-tiny/websockify"],
                     "autoconnect": ["1"], "resize": ["remote"]}
    own = anna.get("/desktop/anna.schmidt-tiny/?path=desktop/anna.schmidt-tiny/websockify", allow_redirects=False)
    assert own.status_code == 200
    assert "noVNC" in own.text


def test_owner_gets_the_page_and_its_relative_assets(running):
    portal, anna, _ = running()
    page = anna.get("/desktop/anna.schmidt-tiny/vnc.html")
    assert page.status_code == 200 and "noVNC" in page.text
    assert page.headers["Cache-Control"] == "no-store"  # a stopped desktop's page must not come from the cache
    for asset in ("app/ui.js", "core/rfb.js", "app/styles/base.css"):
        answer = anna.get("/desktop/anna.schmidt-tiny/" + asset)
        assert answer.status_code == 200, asset
        assert answer.headers["Cache-Control"] == "private", asset


def test_other_users_get_403_and_no_websocket(running):
    portal, anna, _ = running(slug="demo")
    ben = Client(portal.url, "ben")
    answer = ben.get("/desktop/anna.schmidt-demo/vnc.html", allow_redirects=False)
    assert answer.status_code == 403
    assert "belongs to someone else" in answer.text
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        open_ws(portal, "anna.schmidt-demo", ben.session_id)
    assert refused.value.status_code == 403
    ws = open_ws(portal, "anna.schmidt-demo", anna.session_id)
    assert ws.recv().startswith(b"RFB 003.00")
    ws.close()


def test_without_a_session_browsers_go_to_sign_in_and_upgrades_are_refused(running):
    portal, _, _ = running()
    answer = requests.get(portal.url + "/desktop/anna.schmidt-tiny/vnc.html?a=1", allow_redirects=False,
                          timeout=30)
    assert answer.status_code == 302
    assert answer.headers["Location"] == portal.url + "/login?next=" + urllib.parse.quote(
        "/desktop/anna.schmidt-tiny/vnc.html?a=1", safe="")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        open_ws(portal, "anna.schmidt-tiny")
    assert refused.value.status_code == 401
    assert requests.post(portal.url + "/desktop/anna.schmidt-tiny/x", timeout=30).status_code == 401


SPELLINGS = [
    "/desktop/Anna.Schmidt-tiny/vnc.html",
    "/desktop/anna.schmidt%2Dtiny/vnc.html",
    "/desktop/%61nna.schmidt-tiny/vnc.html",
    "/desktop//anna.schmidt-tiny/vnc.html",
    "/desktop/./anna.schmidt-tiny/vnc.html",
    "/desktop/ben-tiny/../anna.schmidt-tiny/vnc.html",
    "/desktop/ben-tiny/%2e%2e/anna.schmidt-tiny/vnc.html",
    "/desktop/ben-tiny/..%2Fanna.schmidt-tiny/vnc.html",
    "/desktop%2Fanna.schmidt-tiny/vnc.html",
    "/desktop/anna.schmidt-tiny/..%2F..%2Fdesktop/anna.schmidt-tiny/vnc.html",
    "//desktop/anna.schmidt-tiny/vnc.html",
]


def test_every_spelling_of_anothers_desktop_meets_the_owner_check(running):
    portal, anna, _ = running()
    ben = Client(portal.url, "ben")
    ben.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(ben, "tiny", "running")
    for path in SPELLINGS:
        status, _, body = raw_get(portal.url, path, {"Cookie": "iservdesk_session=" + ben.session_id})
        assert status in (403, 404), (path, status, body[:200])
        assert b"noVNC" not in body, path
        # The owner reaches the same desktop through the same spelling (or a redirect to it).
        owner_status, headers, _ = raw_get(portal.url, path, {"Cookie": "iservdesk_session=" + anna.session_id})
        assert owner_status in (200, 301, 404), (path, owner_status)
        if owner_status == 301:
            assert headers["Location"] == portal.url + "/desktop/anna.schmidt-tiny/vnc.html", path


def test_encoded_slashes_are_refused_even_for_the_owner(running):
    portal, anna, _ = running()
    for path in ("/desktop/anna.schmidt-tiny/app%2Fui.js", "/desktop/anna.schmidt-tiny/app%5Cui.js",
                 "/desktop/anna.schmidt-tiny/x/..%2F..%2Fanna.schmidt-tiny/vnc.html"):
        status, _, _ = raw_get(portal.url, path, {"Cookie": "iservdesk_session=" + anna.session_id})
        assert status == 404, path
    status, _, body = raw_get(portal.url, "/desktop/anna.schmidt-tiny/app/ui.js",
                              {"Cookie": "iservdesk_session=" + anna.session_id})
    assert status == 200 and body


def test_admins_stay_out_unless_the_setting_lets_them_look_through_the_viewer_with_an_audit_entry(
        running, tmp_path):
    portal, anna, _ = running()
    admin = Client(portal.url, "admin")
    assert admin.get("/desktop/anna.schmidt-tiny/vnc.html", allow_redirects=False).status_code == 403
    portal.stop()
    with open(portal.process.args[portal.process.args.index("--config") + 1], "a") as stream:
        stream.write("ADMIN_DESKTOP_ACCESS=true\n")
    portal.restart()
    # The desktop's own pages stay the owner's: the admin gets the portal's viewer.
    for path in ("vnc.html", "app/ui.js", "Downloads/x.html"):
        refused = admin.get("/desktop/anna.schmidt-tiny/" + path, allow_redirects=False)
        assert refused.status_code == 403 and "noVNC" not in refused.text, path
        assert "through the portal&#x27;s viewer only" in refused.text, path
    page = admin.get("/desktop/anna.schmidt-tiny/", allow_redirects=False)
    assert page.status_code == 200 and "noVNC" not in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    ws = open_ws(portal, "anna.schmidt-tiny", admin.session_id)
    ws.close()
    con = database(tmp_path)
    entries = con.execute("SELECT actor, target FROM events WHERE action = 'desktop.admin-access'").fetchall()
    con.close()
    assert len(entries) == 2 and set(entries) == {("admin", "anna.schmidt-tiny")}
    assert "admin admin looks at the desktop anna.schmidt-tiny of anna.schmidt" in portal.log()


def test_browser_credentials_stay_with_the_portal_and_the_container_secret_is_injected(running, tmp_path):
    portal, anna, row = running()
    upstream = Upstream(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    point_at(tmp_path, row["name"], upstream.port)
    answer = anna.get("/desktop/anna.schmidt-tiny/some/file.txt?q=1",
                      headers={"Authorization": "Basic YnJvd3Nlcjpzb21ldGhpbmc=", "X-Forwarded-For": "10.1.2.3",
                               "X-Session-ID": anna.session_id, "X-Custom": "kept"})
    assert (answer.status_code, answer.text) == (200, "ok")
    request_line = upstream.requests[-1][0].split("\r\n")[0]
    assert request_line == "GET /some/file.txt?q=1 HTTP/1.1"
    headers = upstream.headers()
    assert headers["authorization"] == "Basic " + base64.b64encode(
        ("kasm_user:" + row["secret"]).encode()).decode()
    assert "cookie" not in headers and "x-forwarded-for" not in headers and "x-session-id" not in headers
    assert "x-csrf-token" not in headers
    assert headers["x-custom"] == "kept"
    assert anna.session_id not in upstream.requests[-1][0]
    upstream.close()


def test_a_container_cannot_set_cookies_or_send_the_browser_out_of_its_desktop(running, tmp_path):
    portal, anna, row = running()
    replies = {}
    upstream = Upstream(lambda head, body: replies[head.split(" ")[1]])

    def redirect(location):
        return b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location

    replies.update({
        "/cookie": b"HTTP/1.1 200 OK\r\nSet-Cookie: iservdesk_session=evil; Path=/\r\n"
                   b"Cross-Origin-Opener-Policy: same-origin\r\nClear-Site-Data: \"*\"\r\n"
                   b"Refresh: 0; url=/api/admin/containers\r\nNEL: {\"report_to\": \"x\"}\r\n"
                   b"Report-To: {\"group\": \"x\"}\r\nService-Worker-Allowed: /\r\nX-Unknown: 1\r\n"
                   b"Content-Security-Policy: default-src *\r\nAccess-Control-Allow-Origin: *\r\n"
                   b"Content-Disposition: attachment; filename=a.txt\r\nETag: \"v1\"\r\n"
                   b"Content-Length: 0\r\n\r\n",
        "/abs": redirect(b"/api/admin/containers"),
        "/full": redirect(b"https://127.0.0.1:%d/vnc.html" % upstream.port),
        "/rel": redirect(b"vnc.html?x=1"),
        "/dir": redirect(b"/Downloads/"),
    })
    escapes = {"/up": b"../../session", "/dots": b"/../../api/admin/containers",
               "/encoded": b"%2e%2e/%2e%2e/session", "/backslash": b"\\\\evil.example/x",
               "/away": b"https://evil.example/", "/scheme": b"//evil.example/", "/tab": b"/\t/evil.example",
               "/portal": portal.url.encode() + b"/session", "/js": b"javascript:alert(1)"}
    replies.update({path: redirect(location) for path, location in escapes.items()})
    point_at(tmp_path, row["name"], upstream.port)
    cookie = anna.get("/desktop/anna.schmidt-tiny/cookie")
    assert cookie.status_code == 200
    for header in ("Set-Cookie", "Clear-Site-Data", "Cross-Origin-Opener-Policy", "Refresh", "NEL",
                   "Report-To", "Service-Worker-Allowed", "X-Unknown", "Access-Control-Allow-Origin"):
        assert header not in cookie.headers, header
    assert cookie.headers["Content-Disposition"] == "attachment; filename=a.txt"
    assert cookie.headers["ETag"] == '"v1"'
    assert anna.get("/session").status_code == 200  # still signed in
    policy = cookie.headers["Content-Security-Policy"]
    prefix = portal.url + "/desktop/anna.schmidt-tiny/"
    assert "default-src *" not in policy
    assert "connect-src %s %s" % (prefix, prefix.replace("http://", "ws://")) in policy
    assert "default-src %s " % prefix in policy and "form-action %s" % prefix in policy
    expected = {"/abs": "/desktop/anna.schmidt-tiny/api/admin/containers",
                "/full": "/desktop/anna.schmidt-tiny/vnc.html",
                "/dir": "/desktop/anna.schmidt-tiny/Downloads/",
                "/rel": "/desktop/anna.schmidt-tiny/vnc.html?x=1"}
    for path, location in expected.items():
        answer = anna.get("/desktop/anna.schmidt-tiny" + path, allow_redirects=False)
        assert (answer.status_code, answer.headers["Location"]) == (302, location), path
    for path in escapes:
        answer = anna.get("/desktop/anna.schmidt-tiny" + path, allow_redirects=False)
        assert answer.status_code == 502 and "Location" not in answer.headers, path
        assert "somewhere else" in answer.text, path
        assert answer.headers["X-Frame-Options"] == "DENY", path
    upstream.close()


def test_methods_statuses_and_headers_pass_through_without_hop_by_hop(running, tmp_path):
    portal, anna, row = running()
    upstream = Upstream(lambda head, body: (
        b"HTTP/1.1 418 I'm a teapot\r\nX-Reply: %s\r\nConnection: close, X-Private\r\nX-Private: 1\r\n"
        b"Keep-Alive: timeout=5\r\nContent-Length: %d\r\n\r\n%s" % (head.split(" ")[0].encode(), len(body), body)))
    point_at(tmp_path, row["name"], upstream.port)
    for method in ("PUT", "DELETE", "PATCH", "POST"):
        answer = anna.request(method, "/desktop/anna.schmidt-tiny/thing", data=b"payload-" + method.encode())
        assert answer.status_code == 418
        assert upstream.requests[-1][0].startswith(method + " /thing HTTP/1.1")
        assert answer.content == b"payload-" + method.encode()
        # Headers outside the allowlist stay with the desktop.
        assert "X-Reply" not in answer.headers
        assert "X-Private" not in answer.headers and "Keep-Alive" not in answer.headers
    sent = upstream.headers()
    assert "connection" in sent and sent["connection"] == "close"  # ours, one request per connection
    assert "te" not in sent and "upgrade" not in sent
    upstream.close()


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


def test_a_desktop_that_is_not_running_shows_a_status_page(running, tmp_path):
    portal, anna, row = running()
    anna.post("/api/container/stop", params={"desktop_type": "tiny"})
    page = anna.get("/desktop/anna.schmidt-tiny/vnc.html")
    assert page.status_code == 409
    assert "gestoppt" in page.text and "stopped" in page.text
    assert 'id="start"' in page.text and 'src="/static/desktop-status.js"' in page.text
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        open_ws(portal, "anna.schmidt-tiny", anna.session_id)
    assert refused.value.status_code == 409
    con = database(tmp_path)
    con.execute("UPDATE desktops SET status = 'starting' WHERE name = 'anna.schmidt-tiny'")
    con.close()
    starting = anna.get("/desktop/anna.schmidt-tiny/vnc.html")
    assert starting.status_code == 503
    assert "startet" in starting.text and 'data-status="starting"' in starting.text
    assert anna.get("/static/desktop-status.js").status_code == 200


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


def test_traffic_counts_as_activity(running, tmp_path):
    portal, anna, row = running()
    con = database(tmp_path)
    con.execute("UPDATE desktops SET last_access_at = '2020-01-01T00:00:00.000000Z'")
    con.close()
    anna.get("/desktop/anna.schmidt-tiny/vnc.html")
    assert row_of(tmp_path, "anna.schmidt-tiny")["last_access_at"] > "2026"
    con = database(tmp_path)
    con.execute("UPDATE desktops SET last_access_at = '2020-01-01T00:00:00.000000Z'")
    con.close()
    ws = open_ws(portal, "anna.schmidt-tiny", anna.session_id)
    ws.close()
    wait_for(lambda: row_of(tmp_path, "anna.schmidt-tiny")["last_access_at"] > "2026", 10, "last access")


def test_portal_answers_refuse_framing_and_openers(running):
    portal, anna, _ = running()
    for path in ("/", "/session", "/api/container/list", "/nothing", "/login"):
        answer = anna.get(path, allow_redirects=False)
        assert answer.headers["X-Frame-Options"] == "DENY", path
        assert answer.headers["Cross-Origin-Opener-Policy"] == "same-origin", path
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"], path


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


def test_a_body_that_ends_with_the_connection_arrives_whole(running, tmp_path):
    # No Content-Length, no chunks: the body ends where the desktop closes, here without
    # a TLS close_notify (as many servers do), which must count as the end, not a failure.
    portal, anna, row = running()
    upstream = Upstream(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                        + b"a body without a length\n" * 1000)
    point_at(tmp_path, row["name"], upstream.port)
    page = anna.get("/desktop/anna.schmidt-tiny/unframed.txt")
    assert page.status_code == 200
    assert page.text == "a body without a length\n" * 1000
    assert "ended early" not in portal.log()
    upstream.close()


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
    # last use; the test makes that "80 s ago" instead of waiting.
    portal, anna, _ = running(slug="demo", IDLE_TIMEOUT="10s", SESSION_IDLE_TIMEOUT="90s")
    ws = open_ws(portal, "anna.schmidt-demo", anna.session_id)
    assert ws.recv() == b"RFB 003.008\n"

    def last_seen(seconds_ago):
        con = database(tmp_path)
        when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago)
        con.execute("UPDATE sessions SET last_seen_at = ?", (when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),))
        con.close()

    def session_count():
        con = database(tmp_path)
        try:
            return con.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
        finally:
            con.close()
    last_seen(80)
    ws.send_binary(b"RFB 003.008\n")  # bytes cross: the session is in use
    assert ws.recv()
    time.sleep(15)  # past the 90 s, had the traffic not counted
    assert session_count() == 1
    assert not ws_closed(ws, timeout=1)
    last_seen(88)  # and now silence until the session expires
    assert ws_closed(ws, timeout=15)
    assert session_count() == 0
    assert "WebSocket to desktop anna.schmidt-demo closed: its session ended" in portal.log()


def test_only_the_portals_own_pages_drive_desktops_with_the_cookie(running):
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
    # From the portal's own origin it reaches the desktop (whose websockify drops POSTs).
    anna.post("/desktop/anna.schmidt-demo/upload", data=b"x", headers={"Origin": portal.url})
    assert "desktop anna.schmidt-demo did not answer: RemoteDisconnected" in portal.log()
    assert anna.get("/desktop/anna.schmidt-demo/vnc.html", headers={"Origin": "http://evil.example"}).ok


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
