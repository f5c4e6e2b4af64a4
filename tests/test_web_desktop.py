"""Who may enter /desktop/<name>/, and what the portal answers there itself, in-process
(tests/wsgi.py): every spelling of a path meets the owner check; people who may not
enter get 403, 404 or the way to sign in; the owner of a desktop that is not running
gets its status page; an admin with ADMIN_DESKTOP_ACCESS gets the portal's viewer.

Desktop rows here are written with the models as the Desktops manager leaves them; no
container runs. Where a request goes through to the desktop, a hostile stand-in answers
on the row's port (tests/upstream.py), over real TLS. What a real desktop serves,
WebSockets and their relay are test_proxy.py's and test_desktop_security.py's, against
`iservdesk serve`.
"""

import base64
import urllib.parse

from iservdesk import db
from upstream import Upstream

pytest_plugins = ("wsgi",)

STRICT = {"X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin"}

# Ways to write the path of anna.schmidt's desktop (and ways around it): each must meet
# the same check as the plain one.
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
# Spellings with an encoded slash, and one that is no /desktop/ path at all: 404 for anyone.
NOT_FOUND = {"/desktop/ben-tiny/..%2Fanna.schmidt-tiny/vnc.html", "/desktop%2Fanna.schmidt-tiny/vnc.html",
             "/desktop/anna.schmidt-tiny/..%2F..%2Fdesktop/anna.schmidt-tiny/vnc.html",
             "//desktop/anna.schmidt-tiny/vnc.html"}
CANONICAL = "/desktop/anna.schmidt-tiny/vnc.html"


def assert_portal_headers(answer, what):
    for name, value in STRICT.items():
        assert answer.header(name) == value, (what, name, answer.headers)
    policy = answer.header("Content-Security-Policy")
    assert "frame-ancestors 'none'" in policy and "sandbox" not in policy, what


def assert_no_csrf_token(answer, *browsers):
    for browser in browsers:
        assert browser.csrf not in answer.text, answer
    assert "csrf" not in answer.text.lower(), answer


def test_every_spelling_of_a_desktop_meets_the_owner_check(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "stopped")
    portal.desktop("ben", "tiny", "stopped")
    anna, ben, admin = portal.signed_in("anna.schmidt"), portal.signed_in("ben"), portal.signed_in("admin")
    anonymous = portal.browser()
    for path in SPELLINGS:
        if path in NOT_FOUND:
            for who in (anonymous, anna, ben, admin):
                assert who.get(path).status == 404, path
            continue
        # Without a session: the way to sign in, coming back to the desktop.
        answer = anonymous.get(path)
        assert answer.status == 302 and "/login?next=" in answer.location, (path, answer)
        # Someone else, an admin too (ADMIN_DESKTOP_ACCESS is off): 403.
        for who in (ben, admin):
            answer = who.get(path)
            assert answer.status == 403 and "belongs to someone else" in answer.text, (path, answer)
            assert b"noVNC" not in answer.body
        # The owner: the same desktop through the same spelling, or a redirect to it.
        answer = anna.get(path)
        if answer.status == 301:
            assert answer.location == portal.config.public_url + CANONICAL, path
            answer = anna.get(CANONICAL)
        assert answer.status == 409 and 'data-status="stopped"' in answer.text, (path, answer)


def test_encoded_slashes_are_refused_even_for_the_owner(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "stopped")
    anna = portal.signed_in("anna.schmidt")
    for path in ("/desktop/anna.schmidt-tiny/app%2Fui.js", "/desktop/anna.schmidt-tiny/app%5Cui.js",
                 "/desktop/anna.schmidt-tiny/x/..%2F..%2Fanna.schmidt-tiny/vnc.html"):
        assert anna.get(path).status == 404, path
    assert anna.get("/desktop/anna.schmidt-tiny/app/ui.js").status == 409  # the desktop's, here stopped


def test_without_a_session_browsers_go_to_sign_in_and_writes_are_refused(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "running")
    anonymous = portal.browser()
    answer = anonymous.get("/desktop/anna.schmidt-tiny/vnc.html?a=1")
    assert answer.status == 302
    assert answer.location == portal.config.public_url + "/login?next=" + urllib.parse.quote(
        "/desktop/anna.schmidt-tiny/vnc.html?a=1", safe="")
    # A session id in the link does not carry the session there (only the cookie does).
    anna = portal.signed_in("anna.schmidt")
    carried = anonymous.get("/desktop/anna.schmidt-tiny/vnc.html?session_id=" + anna.session_id())
    assert carried.status == 302 and anna.session_id() not in carried.location
    assert anonymous.post("/desktop/anna.schmidt-tiny/x").status == 401


def test_bare_path_redirects_to_the_trailing_slash_keeping_the_query(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "stopped")
    answer = portal.signed_in("anna.schmidt").get("/desktop/anna.schmidt-tiny?x=1&y=2")
    assert answer.status == 301
    assert answer.location == portal.config.public_url + "/desktop/anna.schmidt-tiny/?x=1&y=2"


def test_root_page_gets_the_websocket_path_and_keeps_what_was_there(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "stopped")
    anna = portal.signed_in("anna.schmidt")
    answer = anna.get("/desktop/anna.schmidt-tiny/?lang=de")
    assert answer.status == 302
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.location).query)
    assert query == {"lang": ["de"], "path": ["desktop/anna.schmidt-tiny/websockify"],
                     "autoconnect": ["1"], "resize": ["remote"]}
    # With its path it is the desktop's own page (here: stopped, so the status page).
    own = anna.get("/desktop/anna.schmidt-tiny/?path=desktop/anna.schmidt-tiny/websockify")
    assert own.status == 409 and 'id="desktop-status"' in own.text


def test_a_desktop_that_is_not_running_shows_a_status_page_without_a_csrf_token(web):
    portal = web()
    row = portal.desktop("anna.schmidt", "tiny", "stopped")
    anna = portal.signed_in("anna.schmidt")
    page = anna.get("/desktop/anna.schmidt-tiny/vnc.html")
    assert page.status == 409
    assert "gestoppt" in page.text and "stopped" in page.text
    assert 'id="start"' in page.text and 'src="/static/desktop-status.js"' in page.text
    assert 'data-url="%s/desktop/anna.schmidt-tiny/"' % portal.config.public_url in page.text
    assert page.header("Cache-Control") == "no-store"
    assert_portal_headers(page, "stopped")
    assert_no_csrf_token(page, anna)
    row.status = "starting"
    row.save()
    starting = anna.get("/desktop/anna.schmidt-tiny/vnc.html")
    assert starting.status == 503
    assert "startet" in starting.text and 'data-status="starting"' in starting.text
    assert 'id="start" type="button" hidden' in starting.text
    assert_no_csrf_token(starting, anna)
    assert anna.get("/static/desktop-status.js").status == 200


def test_admins_stay_out_unless_the_setting_lets_them_look_through_the_viewer_with_an_audit_entry(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "running")
    admin = portal.signed_in("admin")
    assert admin.get("/desktop/anna.schmidt-tiny/vnc.html").status == 403
    # The same installation with ADMIN_DESKTOP_ACCESS=true (as after a restart).
    portal = web(ADMIN_DESKTOP_ACCESS="true")
    admin = portal.signed_in("admin")
    # The desktop's own pages stay the owner's: the admin gets the portal's viewer.
    for path in ("vnc.html", "app/ui.js", "Downloads/x.html"):
        refused = admin.get("/desktop/anna.schmidt-tiny/" + path)
        assert refused.status == 403 and b"noVNC" not in refused.body, path
        assert "through the portal&#x27;s viewer only" in refused.text, path
    assert admin.post("/desktop/anna.schmidt-tiny/").status == 403
    page = admin.get("/desktop/anna.schmidt-tiny/")
    assert page.status == 200 and b"noVNC" not in page.body
    assert page.header("X-Frame-Options") == "DENY"
    assert page.header("Content-Security-Policy").startswith("default-src 'self'")
    assert 'data-websocket="/desktop/anna.schmidt-tiny/websockify"' in page.text
    assert 'data-view-only="false"' in page.text and "Anna Schmidt" in page.text
    assert_no_csrf_token(page, admin)
    assert portal.events("desktop.admin-access") == [("admin", "anna.schmidt-tiny")]
    assert "admin admin looks at the desktop anna.schmidt-tiny of anna.schmidt" in portal.log()
    # The bare path only redirects (no entry); a desktop that is not running has no viewer.
    assert admin.get("/desktop/anna.schmidt-tiny").status == 301
    portal.desktop("ben", "tiny", "stopped")
    assert admin.get("/desktop/ben-tiny/").status == 409
    # Other people are not admins: the setting changes nothing for them.
    assert portal.signed_in("ben").get("/desktop/anna.schmidt-tiny/").status == 403


def test_admins_who_may_only_watch_get_the_view_only_viewer(web):
    portal = web(ADMIN_DESKTOP_ACCESS="view")
    portal.desktop("anna.schmidt", "tiny", "running")
    admin = portal.signed_in("admin")
    page = admin.get("/desktop/anna.schmidt-tiny/")
    assert page.status == 200 and 'data-view-only="true"' in page.text
    assert admin.get("/desktop/anna.schmidt-tiny/vnc.html").status == 403
    assert "(view only)" in portal.log()


def test_requests_with_the_cookie_from_other_sites_are_refused(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "stopped")
    anna = portal.signed_in("anna.schmidt")
    page = "/desktop/anna.schmidt-tiny/Downloads/x.html"
    for site in ("same-origin", "none"):
        assert anna.get(page, headers={"Sec-Fetch-Site": site}).status == 409, site  # on to the desktop
    for site in ("cross-site", "same-site"):
        for method in ("GET", "POST"):
            answer = anna.request(method, page, headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "cors"})
            assert answer.status == 403 and "may only be used from" in answer.text, (site, method)
        # A link from another site (e.g. IServ) gets a page that goes on with one click here.
        navigation = anna.get(page + "?session_id=z&a=1", headers={
            "Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"})
        assert navigation.status == 403
        assert 'href="/desktop/anna.schmidt-tiny/Downloads/x.html?a=1"' in navigation.text
        assert_portal_headers(navigation, site)
    # Without Fetch Metadata, writes fall back to Origin, then Referer; reads pass.
    own = portal.config.public_url
    assert anna.post(page, headers={"Referer": "http://evil.example/x"}).status == 403
    assert anna.post(page, headers={"Origin": "http://evil.example"}).status == 403
    assert anna.post(page, headers={"Origin": own.replace("http:", "https:")}).status == 403
    assert anna.post(page, headers={"Referer": own + "/"}).status == 409
    assert anna.get(page, headers={"Origin": "http://evil.example"}).status == 409
    assert "refused a POST to desktop anna.schmidt-tiny from http://evil.example" in portal.log()


def test_desktops_cannot_install_service_workers(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "running")
    answer = portal.signed_in("anna.schmidt").get("/desktop/anna.schmidt-tiny/app/ui.js", headers={
        "Service-Worker": "script", "Sec-Fetch-Dest": "serviceworker", "Sec-Fetch-Site": "same-origin"})
    assert answer.status == 403 and "cannot install service workers" in answer.text


def test_answers_the_portal_makes_under_desktop_carry_its_strict_headers_and_no_csrf_token(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "stopped")
    anna, ben = portal.signed_in("anna.schmidt"), portal.signed_in("ben")
    answers = {
        "404 %2f before sign-in": portal.browser().get("/desktop/anna.schmidt-tiny/%2f"),
        "404 %2f": anna.get("/desktop/anna.schmidt-tiny/x%2fy"),
        "403": ben.get("/desktop/anna.schmidt-tiny/"),
        "sign-in redirect": portal.browser().get("/desktop/anna.schmidt-tiny/"),
        "slash redirect": anna.get("/desktop/anna.schmidt-tiny"),
        "unknown desktop": anna.get("/desktop/nobody-tiny/"),
        "status page": anna.get("/desktop/anna.schmidt-tiny/vnc.html"),
        "cross-site page": anna.get("/desktop/anna.schmidt-tiny/vnc.html", headers={
            "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}),
        "cross-site refusal": anna.post("/desktop/anna.schmidt-tiny/vnc.html",
                                        headers={"Origin": "http://evil.example"}),
        "Transfer-Encoding": anna.post("/desktop/anna.schmidt-tiny/up", headers={"Transfer-Encoding": "gzip"}),
    }
    assert [answer.status for answer in answers.values()] == [404, 404, 403, 302, 301, 404, 409, 403, 403, 400]
    for what, answer in answers.items():
        assert_portal_headers(answer, what)
        assert_no_csrf_token(answer, anna, ben)


# -- through the proxy, to a stand-in desktop --

def test_browser_credentials_stay_with_the_portal_and_the_container_secret_is_injected(web):
    upstream = Upstream(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    portal = web()
    row = portal.desktop("anna.schmidt", "tiny", "running", host_port=upstream.port)
    anna = portal.signed_in("anna.schmidt")
    answer = anna.get("/desktop/anna.schmidt-tiny/some/file.txt?q=1",
                      headers={"Authorization": "Basic YnJvd3Nlcjpzb21ldGhpbmc=", "X-Forwarded-For": "10.1.2.3",
                               "X-Session-ID": anna.session_id(), "X-Custom": "kept"})
    assert (answer.status, answer.text) == (200, "ok")
    request_line = upstream.requests[-1][0].split("\r\n")[0]
    assert request_line == "GET /some/file.txt?q=1 HTTP/1.1"
    headers = upstream.headers()
    assert headers["authorization"] == "Basic " + base64.b64encode(
        ("kasm_user:" + row.secret).encode()).decode()
    assert "cookie" not in headers and "x-forwarded-for" not in headers and "x-session-id" not in headers
    assert "x-csrf-token" not in headers
    assert headers["x-custom"] == "kept"
    assert anna.session_id() not in upstream.requests[-1][0]
    upstream.close()


def test_a_container_cannot_set_cookies_or_send_the_browser_out_of_its_desktop(web):
    replies = {}
    upstream = Upstream(lambda head, body: replies[head.split(" ")[1]])
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "running", host_port=upstream.port)
    anna = portal.signed_in("anna.schmidt")

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
               "/portal": portal.config.public_url.encode() + b"/session", "/js": b"javascript:alert(1)"}
    replies.update({path: redirect(location) for path, location in escapes.items()})
    cookie = anna.get("/desktop/anna.schmidt-tiny/cookie")
    assert cookie.status == 200
    for header in ("Set-Cookie", "Clear-Site-Data", "Cross-Origin-Opener-Policy", "Refresh", "NEL",
                   "Report-To", "Service-Worker-Allowed", "X-Unknown", "Access-Control-Allow-Origin"):
        assert cookie.header(header) is None, header
    assert cookie.header("Content-Disposition") == "attachment; filename=a.txt"
    assert cookie.header("ETag") == '"v1"'
    assert anna.get("/session").status == 200  # still signed in
    policy = cookie.header("Content-Security-Policy")
    assert len(cookie.header_list("Content-Security-Policy")) == 1
    prefix = portal.config.public_url + "/desktop/anna.schmidt-tiny/"
    assert "default-src *" not in policy
    assert "connect-src %s %s" % (prefix, prefix.replace("http://", "ws://")) in policy
    assert "default-src %s " % prefix in policy and "form-action %s" % prefix in policy
    expected = {"/abs": "/desktop/anna.schmidt-tiny/api/admin/containers",
                "/full": "/desktop/anna.schmidt-tiny/vnc.html",
                "/dir": "/desktop/anna.schmidt-tiny/Downloads/",
                "/rel": "/desktop/anna.schmidt-tiny/vnc.html?x=1"}
    for path, location in expected.items():
        answer = anna.get("/desktop/anna.schmidt-tiny" + path)
        assert (answer.status, answer.location) == (302, location), path
    for path in escapes:
        answer = anna.get("/desktop/anna.schmidt-tiny" + path)
        assert answer.status == 502 and answer.location is None, path
        assert "somewhere else" in answer.text, path
        assert answer.header("X-Frame-Options") == "DENY", path
    upstream.close()


def test_methods_statuses_and_headers_pass_through_without_hop_by_hop(web):
    upstream = Upstream(lambda head, body: (
        b"HTTP/1.1 418 I'm a teapot\r\nX-Reply: %s\r\nConnection: close, X-Private\r\nX-Private: 1\r\n"
        b"Keep-Alive: timeout=5\r\nContent-Length: %d\r\n\r\n%s" % (head.split(" ")[0].encode(), len(body), body)))
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "running", host_port=upstream.port)
    anna = portal.signed_in("anna.schmidt")
    for method in ("PUT", "DELETE", "PATCH", "POST"):
        answer = anna.request(method, "/desktop/anna.schmidt-tiny/thing", body=b"payload-" + method.encode())
        assert answer.status == 418
        assert upstream.requests[-1][0].startswith(method + " /thing HTTP/1.1")
        assert answer.body == b"payload-" + method.encode()
        # Headers outside the allowlist stay with the desktop.
        assert answer.header("X-Reply") is None
        assert answer.header("X-Private") is None and answer.header("Keep-Alive") is None
    sent = upstream.headers()
    assert "connection" in sent and sent["connection"] == "close"  # ours, one request per connection
    assert "te" not in sent and "upgrade" not in sent
    upstream.close()


def test_a_body_that_ends_with_the_connection_arrives_whole(web):
    # No Content-Length, no chunks: the body ends where the desktop closes, here without
    # a TLS close_notify (as many servers do), which must count as the end, not a failure.
    upstream = Upstream(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                        + b"a body without a length\n" * 1000)
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "running", host_port=upstream.port)
    page = portal.signed_in("anna.schmidt").get("/desktop/anna.schmidt-tiny/unframed.txt")
    assert page.status == 200
    assert page.text == "a body without a length\n" * 1000
    assert "ended early" not in portal.log()
    upstream.close()


def test_requests_to_a_desktop_count_as_its_use_written_at_most_once_a_minute(web):
    upstream = Upstream(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    portal = web()
    opened = portal.clock()
    row = portal.desktop("anna.schmidt", "tiny", "running", host_port=upstream.port, last_access_at=opened)
    anna = portal.signed_in("anna.schmidt")

    def last_access():
        return db.Desktop.get_by_id(row.id).last_access_at

    portal.clock.advance(seconds=59)
    assert anna.get("/desktop/anna.schmidt-tiny/vnc.html").text == "ok"
    assert last_access() == opened  # a request must not cost a write
    later = portal.clock.advance(seconds=1)
    assert anna.get("/desktop/anna.schmidt-tiny/app/ui.js").text == "ok"
    assert last_access() == later
    # What the portal serves itself there (the viewer, the way to sign in) is no use of it.
    portal.clock.advance(hours=1)
    portal.browser().get("/desktop/anna.schmidt-tiny/vnc.html")
    portal.signed_in("ben").get("/desktop/anna.schmidt-tiny/vnc.html")
    assert last_access() == later
    upstream.close()


def test_the_owners_tab_is_the_portals_bar_over_the_client_in_a_frame(web):
    upstream = Upstream(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6"
                                           b"\r\n\r\nclient")
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "running", host_port=upstream.port)
    anna = portal.signed_in("anna.schmidt")
    entry = '/desktop/anna.schmidt-tiny/?path=desktop/anna.schmidt-tiny/websockify&x="><script>alert(1)</script>'
    navigation = {"Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}
    page = anna.get(entry, headers=navigation)
    assert page.status == 200 and not upstream.requests  # the portal's own page: nothing from the desktop
    assert_portal_headers(page, "the frame page")
    assert page.header("Cache-Control") == "no-store" and page.header("Vary") == "Sec-Fetch-Dest"
    assert '<iframe id="desktop-frame" src="/desktop/anna.schmidt-tiny/?path=desktop/anna.schmidt-tiny/websockify' \
           '&amp;x=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" title="Klein"' in page.text
    assert "<script>alert" not in page.text and 'data-desktop="anna.schmidt-tiny"' in page.text
    assert '"watching.now": "{watcher} sieht deinen Bildschirm seit {time}"' in page.text
    # The frame's request (and any browser without Fetch Metadata) gets the client.
    for headers in (dict(navigation, **{"Sec-Fetch-Dest": "iframe"}), {}):
        client = anna.get(entry, headers=headers)
        assert (client.status, client.text) == (200, "client"), headers
    # Only the owner's entry page is framed; a stopped desktop gets its status page.
    assert anna.get("/desktop/anna.schmidt-tiny/vnc.html", headers=navigation).text == "client"
    db.Desktop.update(status="stopped").execute()
    assert anna.get(entry, headers=navigation).status == 409
    upstream.close()
