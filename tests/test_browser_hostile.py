"""The attack chain of issue 14 in real headless Chromium: a student puts a hostile page into
the folder their desktop serves (Kasm serves Downloads/ from its web root) and gets it
opened by themselves, by an admin with ADMIN_DESKTOP_ACCESS, and through links that carry
the student's session id. Nothing may be read, nothing may change, and the student's own
desktop must still work."""

import io
import json
import tarfile

from selenium.webdriver.common.by import By

import browser
from browser import browser_sign_in, connected_and_drawn
from flows import Client, wait_status
from proxying import point_at, row_of
from upstream import Upstream

PROBES = ("fetch_session", "fetch_admin", "xhr_session", "frame_404", "frame_status", "frame_other",
          "frame_own_client", "popup_portal", "csrf_token", "stop_all", "cookie", "storage")

# Every probe reports "blocked" or what it got. {own}/{other}/{stopped} are desktop names.
HOSTILE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>hostile</title></head>
<body><pre id="out">{{}}</pre><script>
var results = {{}}, token = null;
function done(name, value) {{
  if (name in results) return;
  results[name] = value;
  document.getElementById("out").textContent = JSON.stringify(results);
}}
function later(name, ms) {{ setTimeout(function () {{ done(name, "blocked"); }}, ms); }}
function grab(name, url, init) {{
  fetch(url, init || {{credentials: "include"}})
    .then(function (r) {{ return r.text().then(function (t) {{ done(name, r.status + " " + t.slice(0, 120)); }}); }},
          function () {{ done(name, "blocked"); }});
}}
function frame(name, url) {{
  var f = document.createElement("iframe");
  f.src = url;
  f.onload = function () {{
    try {{
      var text = f.contentDocument.documentElement.outerHTML;
      var meta = f.contentDocument.querySelector('meta[name="csrf-token"]');
      if (meta) token = meta.content;
      f.contentWindow.fetch("/session").then(function (r) {{ return r.json(); }})
        .then(function (s) {{ token = s.csrf_token; done(name, "read /session through the frame"); }},
              function () {{ done(name, "framed, read " + text.slice(0, 80)); }});
    }} catch (e) {{ done(name, "blocked"); }}
  }};
  document.body.appendChild(f);
  later(name, 4000);
}}
grab("fetch_session", "/session");
grab("fetch_admin", "/api/admin/containers");
try {{
  var x = new XMLHttpRequest(); x.open("GET", "/session"); x.withCredentials = true;
  x.onload = function () {{ done("xhr_session", x.status + " " + x.responseText.slice(0, 80)); }};
  x.onerror = function () {{ done("xhr_session", "blocked"); }};
  x.send();
}} catch (e) {{ done("xhr_session", "blocked"); }}
frame("frame_404", "/desktop/{own}/%2f");
frame("frame_status", "/desktop/{stopped}/");
frame("frame_other", "/desktop/{other}/");
frame("frame_own_client", "/desktop/{own}/");
try {{
  var popup = window.open("/", "_blank");
  setTimeout(function () {{
    try {{ done("popup_portal", popup.document.body.innerHTML.slice(0, 80)); }}
    catch (e) {{ done("popup_portal", "blocked"); }}
    try {{ popup.close(); }} catch (e) {{}}
  }}, 3000);
}} catch (e) {{ done("popup_portal", "blocked"); }}
try {{ done("cookie", document.cookie || "blocked"); }} catch (e) {{ done("cookie", "blocked"); }}
try {{ localStorage.setItem("x", "1"); done("storage", "usable"); }} catch (e) {{ done("storage", "blocked"); }}
setTimeout(function () {{
  done("csrf_token", token ? "got one" : "blocked");
  fetch("/api/admin/containers/stop-all", {{method: "POST", credentials: "include",
                                            headers: {{"X-CSRF-Token": token || "none"}}}})
    .then(function (r) {{ done("stop_all", r.status); }}, function () {{ done("stop_all", "blocked"); }});
}}, 4500);
</script></body></html>"""


def place(docker_client, portal, desktop, path, content):
    """Put `content` at `path` in the desktop's container, as its user could (docker cp)."""
    container = docker_client.containers.get("%s-%s" % (portal.prefix, desktop))
    folder, name = path.rsplit("/", 1)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    container.exec_run(["mkdir", "-p", folder], user="root")
    assert container.put_archive(folder, data.getvalue())


def probe_results(driver):
    """The hostile page's results once every probe answered, or None."""
    found = driver.find_elements(By.ID, "out")
    results = json.loads(found[0].text or "{}") if found else {}
    return results if set(PROBES) <= set(results) else None


def everything_blocked(results):
    allowed = {"blocked", 0}
    return {name: value for name, value in results.items()
            if value not in allowed and not (name == "stop_all" and value in (401, 403))}


def hostile_never_ran(driver):
    return not driver.find_elements(By.ID, "out") and "hostile" not in driver.title


def test_a_hostile_page_in_a_desktop_acts_with_nobodys_portal_rights(signed_in_portal, chromium, docker_client,
                                                                    demo_image, tmp_path):
    portal, _ = signed_in_portal(ADMIN_DESKTOP_ACCESS="true")
    student = Client(portal.url, "anna.schmidt")
    for slug in ("demo", "tiny"):
        student.post("/api/container/start", params={"desktop_type": slug})
    wait_status(student, "tiny", "running")
    student.post("/api/container/stop", params={"desktop_type": "tiny"})
    other = Client(portal.url, "ben")
    other.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(other, "tiny", "running")
    wait_status(student, "demo", "running")
    own, stopped, victim = "anna.schmidt-demo", "anna.schmidt-tiny", "ben-tiny"
    page = HOSTILE_PAGE.format(own=own, other=victim, stopped=stopped).encode()
    place(docker_client, portal, own, "/usr/share/novnc/Downloads/hostile.html", page)
    hostile = "/desktop/%s/Downloads/hostile.html" % own

    # 1. Its owner opens it: it runs, sandboxed, and gets nothing.
    owner = chromium(language="en")
    browser_sign_in(owner, portal.url, "anna.schmidt")
    owner.get(portal.url + hostile)
    results = browser.wait_until(owner, probe_results, 30, "the hostile page's probes",
                                 describe=lambda d: d.page_source[:2000])
    browser.save_screenshot(owner, "hostile-page-as-owner")
    assert everything_blocked(results) == {}, results

    # 2. An admin who may look at desktops opens the desktop: the portal's viewer, and the
    #    hostile page itself is refused before it is fetched.
    admin_browser = chromium(language="de")
    browser_sign_in(admin_browser, portal.url, "admin")
    admin_browser.get(portal.url + "/desktop/%s/" % own)
    assert "noVNC" not in admin_browser.page_source and hostile_never_ran(admin_browser)
    assert admin_browser.find_elements(By.ID, "viewer"), admin_browser.page_source[:1000]
    admin_browser.get(portal.url + hostile)
    assert hostile_never_ran(admin_browser), admin_browser.page_source[:500]

    # 3. Links carrying the student's session id, opened by a teacher, by the admin and by a
    #    browser that is signed out: the id counts for nothing under /desktop/.
    teacher_browser = chromium(language="de")
    browser_sign_in(teacher_browser, portal.url, "mueller")
    stranger = chromium(language="en")
    for driver in (teacher_browser, admin_browser, stranger):
        driver.get(portal.url + hostile + "?session_id=" + student.session_id)
        assert hostile_never_ran(driver), driver.page_source[:500]
        driver.get(portal.url + "/desktop/%s/?session_id=%s" % (own, student.session_id))
        assert "noVNC" not in driver.page_source
    assert stranger.find_elements(By.ID, "username")  # sent to sign in, as nobody

    # Nothing changed: every desktop that ran still runs, nobody was signed out, and the
    # audit log has no stop.
    for client, slug in ((student, "demo"), (other, "tiny")):
        assert client.get("/api/container/status", params={"desktop_type": slug}).json()["status"] == "running"
    for client in (student, other):
        assert client.get("/session").status_code == 200
    assert docker_client.containers.get("%s-%s" % (portal.prefix, victim)).status == "running"

    # The student's desktop still connects and draws in noVNC.
    state = browser.load(owner, portal.url + "/desktop/%s/" % own, connected_and_drawn, 30,
                         "noVNC to connect after the attack", describe=browser.novnc_state)
    assert state["connected"]
    browser.save_screenshot(owner, "hostile-owner-desktop-still-works")


# The client's own entry page is not sandboxed (it must reach its WebSocket): even from
# there, redirects cannot carry a request out of the desktop's path.
ENTRY_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>entry</title></head>
<body><pre id="out">{}</pre><script>
var results = {};
function done(name, value) { results[name] = value; document.getElementById("out").textContent = JSON.stringify(results); }
["up", "dots", "encoded", "backslash", "away", "portal"].forEach(function (name) {
  fetch("r/" + name, {credentials: "include"})
    .then(function (r) { return r.text().then(function (t) { done(name, r.status + " " + t.slice(0, 100)); }); },
          function () { done(name, "blocked"); });
});
</script></body></html>"""
REDIRECTS = {"up": b"../../../session", "dots": b"/../../api/admin/containers", "encoded": b"%2e%2e/%2e%2e/%2e%2e/session",
             "backslash": b"\\\\..\\..\\..\\session", "away": b"http://evil.example/", "portal": b"/../../session"}


def test_redirects_from_a_desktop_never_leave_its_path_even_for_its_client_page(signed_in_portal, chromium,
                                                                              demo_image, tmp_path):
    portal, _ = signed_in_portal()
    driver = chromium()
    browser_sign_in(driver, portal.url, "anna.schmidt")
    student = Client(portal.url, "anna.schmidt")
    student.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(student, "tiny", "running")

    def answer(head, body):
        path = head.split(" ")[1]
        if path.startswith("/r/"):
            return b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % REDIRECTS[path[3:]]
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (
            len(ENTRY_PAGE), ENTRY_PAGE)
    upstream = Upstream(answer)
    point_at(tmp_path, "anna.schmidt-tiny", upstream.port)
    driver.get(portal.url + "/desktop/anna.schmidt-tiny/?path=x")
    # The owner's tab: the portal's bar over the client's entry page, in a frame.
    driver.switch_to.frame(browser.wait_until(driver, lambda d: d.find_element(By.ID, "desktop-frame"), 10,
                                              "the desktop's frame"))
    results = browser.wait_until(driver, lambda d: (lambda r: r if set(REDIRECTS) <= set(r) else None)(
        json.loads(d.find_element(By.ID, "out").text or "{}")), 20, "the entry page's probes")
    for name, value in results.items():
        assert value == "blocked" or value.startswith("502 "), (name, value)
        assert "csrf" not in value and "anna" not in value, (name, value)
    assert row_of(tmp_path, "anna.schmidt-tiny")["status"] == "running"
    upstream.close()
