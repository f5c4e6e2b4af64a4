"""make_app() as a whole, in-process (tests/wsgi.py): the headers on every answer the portal
makes, the Transfer-Encoding rule in front of every route, the pages, and the clock it is
given. The routes' own rules are in test_web_auth.py, test_web_api.py, test_web_desktop.py."""

import re

pytest_plugins = ("wsgi",)


def test_portal_answers_refuse_framing_and_openers(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "stopped")
    anna = portal.signed_in("anna.schmidt")
    for path in ("/", "/session", "/api/container/list", "/nothing", "/login", "/admin", "/static/app.css",
                 "/desktop/anna.schmidt-tiny/vnc.html", "/lang/en"):
        answer = anna.get(path)
        assert answer.header("X-Frame-Options") == "DENY", path
        assert answer.header("Cross-Origin-Opener-Policy") == "same-origin", path
        assert "frame-ancestors 'none'" in answer.header("Content-Security-Policy"), path
        assert answer.header("X-Content-Type-Options") == "nosniff", path
        assert len(answer.header_list("X-Frame-Options")) == 1, path


def test_a_transfer_encoding_other_than_chunked_is_refused_before_any_route(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "stopped")
    anna = portal.signed_in("anna.schmidt")
    for path in ("/desktop/anna.schmidt-tiny/up", "/api/container/stop?desktop_type=tiny", "/logout"):
        for encoding in ("gzip, chunked", "chunked, identity", "xchunked", "identity"):
            answer = anna.post(path, headers={"Transfer-Encoding": encoding}, body=b"5\r\nhello\r\n0\r\n\r\n")
            assert answer.status == 400 and b"exactly 'chunked'" in answer.body, (path, encoding)
            assert answer.header("Connection") == "close"
            assert answer.header("X-Frame-Options") == "DENY"
    assert anna.get("/session").status == 200  # the refused sign-out did not happen
    chunked = anna.post("/desktop/anna.schmidt-tiny/up", headers={"Transfer-Encoding": " Chunked "},
                        body=b"5\r\nhello\r\n0\r\n\r\n")
    assert chunked.status == 409  # on to the desktop (stopped: its status page)


def test_pages_have_titles_favicon_and_no_inline_script(web):
    portal = web()
    page = portal.browser().get("/", headers={"Accept-Language": "en"})
    assert "<title>Desktops – iservdesk (127.0.0.1:" in page.text
    assert 'rel="icon"' in page.text and 'lang="en"' in page.text and "Sign in with IServ" in page.text
    assert "script-src 'self'" in page.header("Content-Security-Policy")
    assert re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", page.text) is None
    assert portal.browser().get("/favicon.ico").header("Content-Type") == "image/svg+xml"
    student = portal.signed_in("ben")
    forbidden = student.get("/admin")
    assert forbidden.status == 403 and "Kein Zugriff" in forbidden.text
    assert portal.browser().get("/admin").location == portal.config.public_url + "/login?next=/admin"


def test_metrics_count_the_sessions_alive_at_the_portals_now(web):
    portal = web(SESSION_LIFETIME="8h", SESSION_IDLE_TIMEOUT="8h")
    portal.signed_in("anna.schmidt")
    portal.signed_in("ben")
    assert "\niservdesk_sessions 2\n" in portal.browser().get("/metrics").text
    portal.clock.advance(hours=8)
    assert "\niservdesk_sessions 0\n" in portal.browser().get("/metrics").text
    proxied = portal.browser().get("/metrics", headers={"X-Forwarded-For": "10.0.0.1"})
    assert (proxied.status, proxied.json()["error"]) == (403, "metrics_forbidden")
