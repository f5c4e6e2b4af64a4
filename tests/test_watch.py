"""Watching a desktop (ADMIN_DESKTOP_ACCESS=view; the classroom's "Watch" builds on it): the
portal's viewer over KasmVNC's view-only user, so the desktop itself refuses the watcher's
keyboard and mouse. Real portal, real demo desktop (which enforces view-only like KasmVNC)."""

import json
import time

import websocket

from conftest import container_of, wait_for
from flows import Client
from proxying import database, open_ws, row_of
from rfb import Rfb


def exists(container, path):
    return container.exec_run(["test", "-e", path]).exit_code == 0


def only_the_owner_types(portal, container, watcher, owner_session, who, desktop="anna.schmidt-demo"):
    """Type a command through `watcher` (an Rfb), then the owner through a connection of
    their own: once the owner's command has run, the watcher's would have run before it,
    had it reached the desktop. Closes both connections."""
    watcher.type_text("touch /tmp/typed-by-%s\n" % who)
    owner = Rfb.over(open_ws(portal, desktop, owner_session))
    owner.type_text("touch /tmp/typed-by-the-owner-after-%s\n" % who)
    wait_for(lambda: exists(container, "/tmp/typed-by-the-owner-after-%s" % who), 20,
             "the owner's typing to reach the desktop")
    assert not exists(container, "/tmp/typed-by-%s" % who)
    watcher.ws.close()
    owner.ws.close()


def test_a_watching_admin_reaches_the_desktop_as_its_viewer_and_its_typing_changes_nothing(
        running, docker_client, tmp_path):
    portal, anna, row = running(slug="demo", ADMIN_DESKTOP_ACCESS="view")
    assert row["view_secret"] and row["view_secret"] != row["secret"]
    admin = Client(portal.url, "admin")
    page = admin.get("/desktop/anna.schmidt-demo/")
    assert page.status_code == 200 and 'data-view-only="true"' in page.text
    assert admin.get("/desktop/anna.schmidt-demo/vnc.html").status_code == 403
    container = container_of(docker_client, portal, "anna.schmidt-demo")
    wait_for(lambda: exists(container, "/tmp/.X11-unix/X1"), 20, "the demo desktop's X server")

    watcher = wait_for(lambda: Rfb.over(open_ws(portal, "anna.schmidt-demo", admin.session_id)), 20,
                       "the watcher's RFB session")
    only_the_owner_types(portal, container, watcher, anna.session_id, "the-admin")

    con = database(tmp_path)
    entries = con.execute("SELECT actor, target, detail FROM events WHERE action = 'desktop.admin-access'"
                          ).fetchall()
    con.close()
    assert {(actor, target) for actor, target, _ in entries} == {("admin", "anna.schmidt-demo")}
    assert all('"view"' in details for _, _, details in entries), entries
    assert "admin admin looks at the desktop anna.schmidt-demo of anna.schmidt (view only)" in portal.log()

    # A container of a release that did not keep the view-only secret cannot be watched
    # (the portal never falls back to the owner's credentials).
    con = database(tmp_path)
    con.execute("UPDATE desktops SET view_secret = NULL WHERE name = 'anna.schmidt-demo'")
    con.close()
    try:
        open_ws(portal, "anna.schmidt-demo", admin.session_id).close()
        raise AssertionError("an old desktop was watched without its view-only secret")
    except websocket.WebSocketBadStatusException as refused:
        assert refused.status_code == 409
    assert row_of(tmp_path, "anna.schmidt-demo")["status"] == "running"


def test_a_teacher_watches_a_class_members_desktop_openly_and_cannot_type_into_it(running, docker_client, tmp_path):
    portal, anna, row = running(slug="demo")
    teacher = Client(portal.url, "lehrer")  # a teacher of klasse-7a, Anna's class
    name = teacher.get("/session").json()["display_name"]
    container = container_of(docker_client, portal, "anna.schmidt-demo")
    wait_for(lambda: exists(container, "/tmp/.X11-unix/X1"), 20, "the demo desktop's X server")
    assert anna.get("/api/watching").json() == {"now": [], "history": []}
    # A teacher of no class of Anna's gets nothing.
    try:
        open_ws(portal, "anna.schmidt-demo", Client(portal.url, "mueller").session_id).close()
        raise AssertionError("a teacher outside Anna's classes watched her desktop")
    except websocket.WebSocketBadStatusException as refused:
        assert refused.status_code == 403

    # The class page's thumbnail shows Anna's screen as it is now.
    thumbnail = "/api/class/klasse-7a/thumbnail/anna.schmidt-demo"
    before = wait_for(lambda: (lambda r: r.content if r.status_code == 200 else None)(teacher.get(thumbnail)),
                      20, "a first thumbnail")
    assert before.startswith(b"\xff\xd8")
    # A red square away from the xterm (the typing below goes to the window under the pointer).
    container.exec_run(["xlogo", "-display", ":1", "-geometry", "300x300+900+400", "-bg", "red", "-fg", "red"],
                       detach=True)
    wait_for(lambda: teacher.get(thumbnail).content not in (before, b""), 20, "the thumbnail to change")
    assert [item["kind"] for item in anna.get("/api/watching").json()["now"]] == ["thumbnail"]

    watcher = wait_for(lambda: Rfb.over(open_ws(portal, "anna.schmidt-demo", teacher.session_id)), 20,
                       "the teacher's RFB session")
    # Anna sees it while it lasts: who, which desktop, since when.
    now = anna.get("/api/watching").json()["now"]
    assert [(item["watcher"], item["desktop"], item["kind"]) for item in now] == [
        (name, "anna.schmidt-demo", "watch"), (name, "anna.schmidt-demo", "thumbnail")]
    only_the_owner_types(portal, container, watcher, anna.session_id, "the-teacher")

    # When the watching ends, Anna's history keeps it (30 days), and so does the audit log.
    wait_for(lambda: [item["kind"] for item in anna.get("/api/watching").json()["now"]] in ([], ["thumbnail"]),
             10, "the watch to end")
    history = anna.get("/api/watching").json()["history"]
    assert [(item["watcher"], item["desktop"]) for item in history] == [(name, "anna.schmidt-demo")]
    assert history[0]["started_at"] <= history[0]["ended_at"]
    con = database(tmp_path)
    audit = con.execute("SELECT action, actor, target FROM events WHERE action LIKE 'class.%' "
                        "ORDER BY id").fetchall()
    con.close()
    assert audit == [("class.thumbnails", "lehrer", "anna.schmidt-demo"),
                     ("class.watch.start", "lehrer", "anna.schmidt-demo"),
                     ("class.watch.end", "lehrer", "anna.schmidt-demo")]
    assert "teacher lehrer looks at the desktop anna.schmidt-demo of anna.schmidt (view only)" in portal.log()


def refused_ws(portal, name, session_id):
    """The status code with which the portal refuses this session a WebSocket to `name`."""
    try:
        open_ws(portal, name, session_id).close()
    except websocket.WebSocketBadStatusException as refused:
        return refused.status_code
    raise AssertionError("%s was opened" % name)


def test_a_teachers_demo_reaches_exactly_the_class_view_only_and_ending_it_closes_every_viewer(
        running, docker_client, tmp_path):
    portal, teacher, row = running(slug="demo", user="lehrer")  # a teacher of klasse-7a and klasse-8b
    container = container_of(docker_client, portal, "lehrer-demo")
    wait_for(lambda: exists(container, "/tmp/.X11-unix/X1"), 20, "the demo desktop's X server")
    anna, max_, ben = (Client(portal.url, name) for name in ("anna.schmidt", "max.muster", "ben"))
    assert refused_ws(portal, "lehrer-demo", anna.session_id) == 403  # nothing shown yet
    assert teacher.post("/api/class/klasse-7a/demo", params={"desktop_type": "demo"}).status_code == 200

    assert [item["desktop"] for item in anna.get("/api/demos").json()["demos"]] == ["lehrer-demo"]
    assert refused_ws(portal, "lehrer-demo", ben.session_id) == 403  # klasse-8b: not this demo
    assert refused_ws(portal, "lehrer-demo", Client(portal.url, "mueller").session_id) == 403
    def view(person):
        return wait_for(lambda: Rfb.over(open_ws(portal, "lehrer-demo", person.session_id)), 20,
                        "a class member's view of the demo")
    # The members see the teacher's screen and cannot type into it.
    assert view(anna).framebuffer_update()
    only_the_owner_types(portal, container, view(anna), teacher.session_id, "a-student", desktop="lehrer-demo")
    watching = view(max_)

    assert teacher.delete("/api/class/klasse-7a/demo").status_code == 200
    # The ended demo closes every viewer at once, and no new one opens.
    watching.ws.settimeout(1)
    deadline = time.monotonic() + 10
    closed = False
    while not closed and time.monotonic() < deadline:
        try:
            closed = watching.ws.recv() in (b"", "")
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            closed = True
    assert closed, "a member's viewer stayed open after the demo ended"
    assert refused_ws(portal, "lehrer-demo", max_.session_id) == 403
    assert anna.get("/api/demos").json() == {"demos": []}
    con = database(tmp_path)
    audit = con.execute("SELECT action, actor, target, detail FROM events WHERE action LIKE 'class.demo.%' "
                        "ORDER BY id").fetchall()
    con.close()
    assert [entry[:3] for entry in audit] == [("class.demo.start", "lehrer", "klasse-7a"),
                                              ("class.demo.end", "lehrer", "klasse-7a")]
    ended = json.loads(audit[1][3])
    assert ended["reason"] == "ended by the teacher" and ended["viewers"] >= 1 and ended["desktop"] == "lehrer-demo"
