"""The layers that keep what a desktop serves from acting with a viewer's portal rights,
checked over real HTTP against a real portal, a real demo desktop and a hostile stand-in
upstream (the browser's side of the same chain is in test_browser_hostile.py)."""

import threading

import requests
import websocket

from conftest import wait_for
from flows import Client
from proxying import open_ws, point_at, raw_get, switching_protocols, ws_url
from upstream import Upstream

STRICT = {"X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin"}


def assert_portal_headers(headers, what):
    headers = requests.structures.CaseInsensitiveDict(headers)
    for name, value in STRICT.items():
        assert headers.get(name) == value, (what, name, headers)
    policy = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "sandbox" not in policy, what


def test_only_the_cookie_opens_a_desktop_and_session_ids_never_reach_it(running, tmp_path):
    portal, anna, row = running()
    ben = Client(portal.url, "ben")
    upstream = Upstream(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    point_at(tmp_path, row["name"], upstream.port)
    page = "/desktop/anna.schmidt-tiny/Downloads/x.html"
    carriers = [{"params": {"session_id": anna.session_id}},
                {"headers": {"X-Session-ID": anna.session_id}},
                {"headers": {"Authorization": "Bearer " + anna.session_id}}]
    for carrier in carriers:
        # Without a cookie, a session id in a link or header opens nothing ...
        alone = requests.get(portal.url + page, allow_redirects=False, timeout=30, **carrier)
        assert alone.status_code == 302 and "/login?next=" in alone.headers["Location"], carrier
        assert anna.session_id not in alone.headers["Location"]
        # ... and beside someone else's cookie it does not win: ben stays ben.
        victim = ben.get(page, allow_redirects=False, **carrier)
        assert victim.status_code == 403 and "belongs to someone else" in victim.text, carrier
        # The API still takes them, for scripts.
        assert requests.get(portal.url + "/session", timeout=30, **carrier).json()["username"] == "anna.schmidt"
    assert len(upstream.requests) == 0
    # The owner's own request with a session id in its query reaches the desktop without it.
    answer = anna.get(page, params={"a": "1", "session_id": "x", "Session_ID": "y", "b": "2"})
    assert answer.text == "ok"
    assert upstream.requests[-1][0].split("\r\n")[0] == "GET /Downloads/x.html?a=1&b=2 HTTP/1.1"
    ws_upstream = Upstream(lambda head, body: switching_protocols(head))
    point_at(tmp_path, row["name"], ws_upstream.port)
    ws = websocket.create_connection(ws_url(portal, "anna.schmidt-tiny") + "?session_id=" + anna.session_id,
                                     subprotocols=["binary"], origin=portal.url,
                                     cookie="iservdesk_session=" + anna.session_id, timeout=15)
    ws.close()
    assert ws_upstream.requests[-1][0].split("\r\n")[0] == "GET /websockify HTTP/1.1"
    upstream.close()
    ws_upstream.close()


def test_answers_the_portal_makes_under_desktop_carry_its_strict_headers_and_no_csrf_token(
        running, docker_client, tmp_path):
    portal, anna, row = running()
    ben = Client(portal.url, "ben")
    cookie = {"Cookie": "iservdesk_session=" + anna.session_id}
    status, headers, _ = raw_get(portal.url, "/desktop/anna.schmidt-tiny/%2f")  # before sign-in
    assert status == 404
    assert_portal_headers(headers, "%2f")
    answers = {
        "404 %2f": requests.get(portal.url + "/desktop/anna.schmidt-tiny/x%2fy", headers=cookie, timeout=30),
        "403": ben.get("/desktop/anna.schmidt-tiny/", allow_redirects=False),
        "sign-in redirect": requests.get(portal.url + "/desktop/anna.schmidt-tiny/", allow_redirects=False,
                                         timeout=30),
        "slash redirect": anna.get("/desktop/anna.schmidt-tiny", allow_redirects=False),
        "unknown desktop": anna.get("/desktop/nobody-tiny/", allow_redirects=False),
    }
    anna.post("/api/container/stop", params={"desktop_type": "tiny"})
    answers["status page"] = anna.get("/desktop/anna.schmidt-tiny/vnc.html", allow_redirects=False)
    assert answers["status page"].status_code == 409 and 'data-status="stopped"' in answers["status page"].text
    for what, answer in answers.items():
        assert_portal_headers(answer.headers, what)
        assert anna.csrf not in answer.text and ben.csrf not in answer.text, what
        assert "csrf" not in answer.text.lower(), what
    assert ben.get("/desktop/anna.schmidt-tiny/").status_code == 403


def test_documents_a_desktop_serves_are_sandboxed_but_its_client_and_assets_are_not(running):
    portal, anna, _ = running()
    entry = anna.get("/desktop/anna.schmidt-tiny/?path=desktop/anna.schmidt-tiny/websockify",
                     headers={"Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "same-origin"})
    assert entry.status_code == 200 and "noVNC" in entry.text
    assert "sandbox" not in entry.headers["Content-Security-Policy"]
    for dest in ("document", "iframe", "frame", "object", "embed", None):
        headers = {"Sec-Fetch-Dest": dest, "Sec-Fetch-Site": "same-origin"} if dest else {}
        page = anna.get("/desktop/anna.schmidt-tiny/vnc.html", headers=headers)
        policy = page.headers["Content-Security-Policy"]
        assert page.status_code == 200 and "sandbox allow-scripts" in policy, dest
        assert "allow-same-origin" not in policy and "allow-top-navigation" not in policy, dest
        assert page.headers["Vary"] == "Sec-Fetch-Dest"
    for dest, path in (("script", "app/ui.js"), ("style", "app/styles/base.css"), ("image", "app/images/connect.svg"),
                       ("empty", "app/ui.js"), ("worker", "core/rfb.js")):
        asset = anna.get("/desktop/anna.schmidt-tiny/" + path, headers={"Sec-Fetch-Dest": dest,
                                                                         "Sec-Fetch-Site": "same-origin"})
        assert asset.status_code == 200, path
        assert "sandbox" not in asset.headers["Content-Security-Policy"], dest


def test_requests_with_the_cookie_from_other_sites_are_refused(running, tmp_path):
    portal, anna, row = running()
    upstream = Upstream(lambda head, body: (switching_protocols(head) if "websocket" in head.lower()
                                            else b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    point_at(tmp_path, row["name"], upstream.port)
    page = "/desktop/anna.schmidt-tiny/Downloads/x.html"
    for site in ("same-origin", "none"):
        assert anna.get(page, headers={"Sec-Fetch-Site": site}).text == "ok", site
    for site in ("cross-site", "same-site"):
        for method in ("GET", "POST"):
            answer = anna.request(method, page, headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "cors"})
            assert answer.status_code == 403 and "may only be used from" in answer.text, (site, method)
        # A link from another site (e.g. IServ) gets a page that goes on with one click here.
        navigation = anna.get(page + "?session_id=z&a=1", headers={
            "Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"})
        assert navigation.status_code == 403
        assert 'href="/desktop/anna.schmidt-tiny/Downloads/x.html?a=1"' in navigation.text
        assert_portal_headers(navigation.headers, site)
        try:
            websocket.create_connection(ws_url(portal, "anna.schmidt-tiny"), subprotocols=["binary"],
                                        origin=portal.url, header=["Sec-Fetch-Site: " + site],
                                        cookie="iservdesk_session=" + anna.session_id, timeout=15).close()
            raise AssertionError("a %s WebSocket was let through" % site)
        except websocket.WebSocketBadStatusException as refused:
            assert refused.status_code == 403
    # Without Fetch Metadata, writes fall back to Origin, then Referer.
    assert anna.post(page, headers={"Referer": "http://evil.example/x"}).status_code == 403
    assert anna.post(page, headers={"Origin": "http://evil.example"}).status_code == 403
    assert anna.post(page, headers={"Referer": portal.url + "/"}).text == "ok"
    assert all(request[0].startswith("GET") or "Referer: %s/" % portal.url in request[0]
               for request in upstream.requests)
    upstream.close()


def test_desktops_cannot_install_service_workers(running):
    portal, anna, _ = running()
    answer = anna.get("/desktop/anna.schmidt-tiny/app/ui.js", headers={
        "Service-Worker": "script", "Sec-Fetch-Dest": "serviceworker", "Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 403 and "cannot install service workers" in answer.text


def test_a_transfer_encoding_other_than_chunked_is_refused_before_the_desktop(running, tmp_path):
    portal, anna, row = running()
    upstream = Upstream(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    point_at(tmp_path, row["name"], upstream.port)
    cookie = "iservdesk_session=" + anna.session_id
    for encoding in ("gzip, chunked", "chunked, identity", "xchunked", "identity"):
        status, _, body = raw_post(portal.url, "/desktop/anna.schmidt-tiny/up", encoding, cookie, anna.csrf)
        assert status == 400 and b"exactly 'chunked'" in body, encoding
    assert upstream.requests == []
    status, _, body = raw_post(portal.url, "/desktop/anna.schmidt-tiny/up", "chunked", cookie, anna.csrf)
    assert (status, body) == (200, b"hello")
    upstream.close()


def raw_post(url, path, encoding, cookie, csrf):
    import http.client
    import urllib.parse
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("POST", path)
    connection.putheader("Transfer-Encoding", encoding)
    connection.putheader("Cookie", cookie)
    connection.putheader("X-CSRF-Token", csrf)
    connection.endheaders()
    connection.send(b"5\r\nhello\r\n0\r\n\r\n")
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), body


def test_a_session_opens_a_bounded_number_of_websockets_and_event_streams(running, tmp_path):
    portal, anna, row = running()
    hold = threading.Event()

    def answer(head, body):
        yield switching_protocols(head)
        hold.wait(60)
    upstream = Upstream(answer)
    point_at(tmp_path, row["name"], upstream.port)
    sockets = [open_ws(portal, "anna.schmidt-tiny", anna.session_id) for _ in range(8)]
    try:
        open_ws(portal, "anna.schmidt-tiny", anna.session_id).close()
        raise AssertionError("a ninth WebSocket was opened")
    except websocket.WebSocketBadStatusException as refused:
        assert refused.status_code == 429
    # Another session of the same person is not affected; a closed viewer frees its place.
    other = Client(portal.url, "anna.schmidt")
    open_ws(portal, "anna.schmidt-tiny", other.session_id).close()
    sockets.pop().close()
    sockets.append(wait_for(lambda: open_ws(portal, "anna.schmidt-tiny", anna.session_id), 10,
                            "a place for a WebSocket"))
    streams = [anna.get("/api/events", stream=True) for _ in range(6)]
    assert all(stream.status_code == 200 for stream in streams)
    refused = anna.get("/api/events", stream=True)
    assert refused.status_code == 429 and refused.json()["error"] == "too_many_streams"
    # The limit is per session: another session of the same person still gets its stream.
    own = other.get("/api/events", stream=True)
    assert own.status_code == 200
    streams.append(own)
    hold.set()
    for item in sockets + streams:
        item.close()
    upstream.close()
