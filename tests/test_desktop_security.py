"""The layers that keep what a desktop serves from acting with a viewer's portal rights,
where they need a real server: real HTTP and WebSockets against a real portal, a real demo
desktop and a hostile stand-in upstream. The layers that show in-process are in
test_web_desktop.py; the browser's side of the chain is in test_browser_hostile.py."""

import threading

import requests
import websocket

from conftest import wait_for
from flows import Client
from proxying import open_ws, point_at, switching_protocols, ws_url
from upstream import Upstream

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


def test_documents_a_desktop_serves_are_sandboxed_but_its_client_and_assets_are_not(running):
    portal, anna, _ = running()
    # The entry page, as the owner's tab frames it (a top-level navigation gets the portal's
    # page around it: test_web_desktop.py).
    entry = anna.get("/desktop/anna.schmidt-tiny/?path=desktop/anna.schmidt-tiny/websockify",
                     headers={"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "same-origin"})
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


def test_websockets_with_the_cookie_from_other_sites_are_refused(running, tmp_path):
    # The page and write halves are in test_web_desktop.py (in-process); an upgrade needs
    # the real server.
    portal, anna, row = running()
    upstream = Upstream(lambda head, body: switching_protocols(head))
    point_at(tmp_path, row["name"], upstream.port)
    for site in ("cross-site", "same-site"):
        try:
            websocket.create_connection(ws_url(portal, "anna.schmidt-tiny"), subprotocols=["binary"],
                                        origin=portal.url, header=["Sec-Fetch-Site: " + site],
                                        cookie="iservdesk_session=" + anna.session_id, timeout=15).close()
            raise AssertionError("a %s WebSocket was let through" % site)
        except websocket.WebSocketBadStatusException as refused:
            assert refused.status_code == 403
    assert upstream.requests == []
    websocket.create_connection(ws_url(portal, "anna.schmidt-tiny"), subprotocols=["binary"], origin=portal.url,
                                header=["Sec-Fetch-Site: same-origin"],
                                cookie="iservdesk_session=" + anna.session_id, timeout=15).close()
    assert len(upstream.requests) == 1
    upstream.close()


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
