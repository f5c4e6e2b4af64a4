"""The classroom's rules in-process: which groups are classes, who sees which class and its
members, who may watch whom, and CLASSROOM=off. (Watching through a real WebSocket is in
test_watch.py; the pages in Chromium in test_browser_classroom.py.)"""

from iservdesk import db, sessions
from upstream import Upstream

pytest_plugins = ("wsgi",)


def person(portal, username, groups, roles=()):
    """A signed-in Browser of someone with these groups and roles (as a sign-in makes them)."""
    user = db.User.create(uuid="uuid-" + username, username=username, display_name=username.title(),
                          groups=list(groups), roles=list(roles), created_at=portal.clock())
    session_id = sessions.create(user, sessions.Policy.from_config(portal.config), portal.clock())
    browser = portal.browser()
    browser.cookies[sessions.COOKIE] = session_id
    browser.csrf = sessions.csrf_token(portal.config.secret_key, session_id)
    return browser


def test_teachers_see_their_classes_admins_all_and_students_none(web):
    portal = web(CLASS_GROUPS="klasse-*")
    portal.desktop("anna.schmidt", "tiny", "running")  # klasse-7a, schueler
    portal.person("ben")  # klasse-8b
    teacher = person(portal, "lehrer", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    lonely = person(portal, "kollegin", ["teachers", "fachschaft-informatik"], ["ROLE_TEACHER"])
    student = portal.signed_in("max.muster")  # klasse-7a
    admin = portal.signed_in("admin")

    assert teacher.get("/api/classes").json() == {"classes": [{"group": "klasse-7a", "name": "klasse-7a", "members": 2}]}
    assert lonely.get("/api/classes").json() == {"classes": []}
    # Admins see every class someone signed in with; "schueler" and "teachers" are no classes.
    assert [item["group"] for item in admin.get("/api/classes").json()["classes"]] == ["klasse-7a", "klasse-8b"]
    refused = student.get("/api/classes")
    assert (refused.status, refused.json()["error"]) == (403, "teachers_only")

    seventh = teacher.get("/api/class/klasse-7a").json()
    assert seventh["group"] == "klasse-7a" and seventh["watch"] is True
    # Members are the people known from sign-ins, teachers left out; their desktops with status.
    assert [member["username"] for member in seventh["members"]] == ["anna.schmidt", "max.muster"]
    anna = seventh["members"][0]
    assert [(item["name"], item["status"], item["watchable"]) for item in anna["desktops"]] == [
        ("anna.schmidt-tiny", "running", True)]
    assert "secret" not in str(seventh) and "host_port" not in str(seventh)
    # Every spelling of another class meets the same check.
    for group in ("klasse-8b", "KLASSE-8B", "schueler", "teachers"):
        answer = teacher.get("/api/class/" + group)
        assert (answer.status, answer.json()["error"]) == (403, "not_your_class"), group
    assert teacher.get("/api/class/KLASSE-7A").status == 200
    assert student.get("/api/class/klasse-7a").json()["error"] == "teachers_only"
    assert admin.get("/api/class/klasse-8b").json()["members"][0]["username"] == "ben"
    assert portal.browser().get("/api/class/klasse-7a").status == 401


def test_without_class_groups_every_group_but_the_teachers_and_admins_is_a_class(web):
    portal = web()
    portal.person("anna.schmidt")  # klasse-7a, schueler
    teacher = person(portal, "lehrer", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    assert [item["group"] for item in teacher.get("/api/classes").json()["classes"]] == ["klasse-7a"]
    assert teacher.get("/api/class/teachers").json()["error"] == "not_your_class"
    # Admins see every group someone signed in with, but "admins" and "teachers" are none.
    groups = [item["group"] for item in portal.signed_in("admin").get("/api/classes").json()["classes"]]
    assert groups == ["klasse-7a", "schueler"]


def test_a_teacher_may_open_a_class_members_desktop_only_as_the_view_only_viewer(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "running")
    portal.desktop("ben", "tiny", "running", host_port=2, container_id="b" * 64)
    teacher = person(portal, "lehrer", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    page = teacher.get("/desktop/anna.schmidt-tiny/")
    assert page.status == 200 and 'data-view-only="true"' in page.text
    assert teacher.get("/desktop/anna.schmidt-tiny/vnc.html").status == 403
    # Not their class; and colleagues are nobody's class.
    assert teacher.get("/desktop/ben-tiny/").status == 403
    colleague = person(portal, "kollege", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    db.Desktop.create(user=db.User.get(db.User.username == "kollege"), desktop_type="tiny", name="kollege-tiny",
                      status="running", container_id="d" * 64, host_port=3, created_at=portal.clock())
    assert teacher.get("/desktop/kollege-tiny/").status == 403
    assert colleague.get("/desktop/anna.schmidt-tiny/").status == 200


def test_looking_on_is_no_use_of_the_desktop(web):
    # A teacher watching an abandoned desktop must not keep it from being stopped as idle.
    portal = web()
    row = portal.desktop("anna.schmidt", "tiny", "running")
    teacher = person(portal, "lehrer", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    portal.clock.advance(hours=3)
    assert teacher.get("/desktop/anna.schmidt-tiny/").status == 200
    assert db.Desktop.get_by_id(row.id).last_access_at == row.last_access_at


def test_without_watching_the_class_page_stays_and_desktops_stay_closed(web):
    portal = web(CLASSROOM_WATCH="off")
    portal.desktop("anna.schmidt", "tiny", "running")
    teacher = person(portal, "lehrer", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    body = teacher.get("/api/class/klasse-7a").json()
    assert body["watch"] is False and body["members"][0]["desktops"][0]["watchable"] is False
    assert teacher.get("/desktop/anna.schmidt-tiny/").status == 403


def test_classroom_off_turns_every_route_into_404(web):
    portal = web(CLASSROOM="off")
    portal.desktop("anna.schmidt", "tiny", "running")
    teacher = person(portal, "lehrer", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    for path in ("/api/classes", "/api/class/klasse-7a", "/api/watching", "/api/demos",
                 "/api/class/klasse-7a/thumbnail/anna.schmidt-tiny", "/class/klasse-7a"):
        assert teacher.get(path).status == 404, path
    for method, path in (("POST", "/api/class/klasse-7a/stop-all"), ("POST", "/api/class/klasse-7a/demo?desktop_type=tiny"),
                         ("DELETE", "/api/class/klasse-7a/demo"), ("POST", "/api/class/klasse-7a/prepare?desktop_type=tiny"),
                         ("DELETE", "/api/class/klasse-7a/prepare/1")):
        assert teacher.request(method, path).status == 404, path
    assert portal.signed_in("admin").get("/api/admin/preparations").status == 404
    assert teacher.get("/desktop/anna.schmidt-tiny/").status == 403


def test_nobody_watched_yet_means_nothing_to_show(web):
    portal = web()
    student = portal.signed_in("anna.schmidt")
    assert student.get("/api/watching").json() == {"now": [], "history": []}


JPEG = b"\xff\xd8\xff\xe0" + b"picture" * 100 + b"\xff\xd9"


def test_thumbnails_are_for_the_classs_teachers_and_the_student_sees_each_look(web):
    upstream = Upstream(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d"
                                           b"\r\n\r\n%s" % (len(JPEG), JPEG))
    try:
        portal = web()
        portal.desktop("anna.schmidt", "tiny", "running", host_port=upstream.port)
        portal.desktop("max.muster", "tiny", "stopped", host_port=None, container_id="e" * 64)
        portal.desktop("ben", "tiny", "running", host_port=2, container_id="b" * 64)  # klasse-8b
        teacher = person(portal, "lehrer", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
        path = "/api/class/klasse-7a/thumbnail/"
        picture = teacher.get(path + "anna.schmidt-tiny")
        assert (picture.status, picture.header("Content-Type"), picture.body) == (200, "image/jpeg", JPEG)
        assert picture.header("Cache-Control") == "no-store"
        # Taken with the owner's credentials, which never leave the portal.
        assert upstream.requests[-1][0].startswith("GET /api/get_screenshot?width=320&height=180 ")
        assert upstream.headers()["authorization"].startswith("Basic ")
        assert teacher.get(path + "ben-tiny").status == 404  # not in this class
        assert teacher.get("/api/class/klasse-8b/thumbnail/ben-tiny").json()["error"] == "not_your_class"
        assert teacher.get(path + "max.muster-tiny").status == 409  # not running
        assert portal.signed_in("max.muster").get(path + "anna.schmidt-tiny").json()["error"] == "teachers_only"

        # Anna sees that her picture is being looked at, and the audit log has the look once.
        now = portal.signed_in("anna.schmidt").get("/api/watching").json()["now"]
        assert [(item["watcher"], item["kind"]) for item in now] == [("Lehrer", "thumbnail")]
        teacher.get(path + "anna.schmidt-tiny")  # a few seconds later: the same look, the same picture
        assert len(upstream.requests) == 1 and portal.events("class.thumbnails") == [
            ("lehrer", "anna.schmidt-tiny")]
        portal.clock.advance(seconds=30)  # the page was closed for a while: the look has ended
        assert portal.signed_in("anna.schmidt").get("/api/watching").json()["now"] == []
        teacher.get(path + "anna.schmidt-tiny")
        assert len(portal.events("class.thumbnails")) == 2
    finally:
        upstream.close()


def test_without_watching_there_are_no_thumbnails(web):
    portal = web(CLASSROOM_WATCH="off")
    portal.desktop("anna.schmidt", "tiny", "running")
    teacher = person(portal, "lehrer", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    assert teacher.get("/api/class/klasse-7a/thumbnail/anna.schmidt-tiny").status == 404


def test_a_teacher_stops_the_desktops_of_their_class_and_no_others(web):
    portal = web()
    anna = portal.desktop("anna.schmidt", "tiny", "running")  # klasse-7a
    ben = portal.desktop("ben", "tiny", "running", host_port=2, container_id="b" * 64)  # klasse-8b
    teacher = person(portal, "lehrer", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    refused = portal.signed_in("max.muster").post("/api/class/klasse-7a/stop-all")
    assert (refused.status, refused.json()["error"]) == (403, "teachers_only")
    assert teacher.post("/api/class/klasse-8b/stop-all").json()["error"] == "not_your_class"
    # A state change with the cookie needs the page's CSRF token.
    assert teacher.post("/api/class/klasse-7a/stop-all", csrf=False).status == 403
    answer = teacher.post("/api/class/klasse-7a/stop-all")
    assert (answer.status, answer.json()) == (200, {"stopped": 1})
    assert db.Desktop.get_by_id(anna.id).status == "stopped"  # its container kept, with the files
    assert db.Desktop.get_by_id(ben.id).status == "running"
    assert portal.events("class.stop-all") == [("lehrer", "klasse-7a")]
    assert ("lehrer", "anna.schmidt-tiny") in portal.events("desktop.stop")
    assert teacher.post("/api/class/klasse-7a/stop-all").json() == {"stopped": 0}


def demo_portal(web, **settings):
    """A portal where the teacher of klasse-7a runs a desktop of their own, Anna and Max
    (klasse-7a) and Ben (klasse-8b) are signed in."""
    portal = web(**settings)
    teacher = person(portal, "lehrer", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    own = db.Desktop.create(user=db.User.get(db.User.username == "lehrer"), desktop_type="tiny",
                            name="lehrer-tiny", status="running", container_id="d" * 64, host_port=3,
                            secret="s", view_secret="v", created_at=portal.clock(),
                            last_access_at=portal.clock())
    people = {name: portal.signed_in(name) for name in ("anna.schmidt", "max.muster", "ben")}
    return portal, teacher, own, people


def test_a_teachers_demo_reaches_exactly_the_class_view_only_and_ends_when_they_end_it(web):
    portal, teacher, own, people = demo_portal(web)
    assert teacher.get("/api/class/klasse-7a").json()["own_desktops"] == [
        {"desktop_type": "tiny", "name": "lehrer-tiny", "title": {"de": "Klein", "en": "Tiny"}}]
    assert people["anna.schmidt"].get("/desktop/lehrer-tiny/").status == 403  # no demo yet
    # Only a teacher of the class, only with the CSRF token, only their own running desktop.
    assert people["anna.schmidt"].post("/api/class/klasse-7a/demo?desktop_type=tiny").status == 403
    assert teacher.post("/api/class/klasse-8b/demo?desktop_type=tiny").json()["error"] == "not_your_class"
    assert teacher.post("/api/class/klasse-7a/demo?desktop_type=tiny", csrf=False).status == 403
    missing = teacher.post("/api/class/klasse-7a/demo")
    assert (missing.status, missing.json()["error"]) == (400, "missing_desktop_type")
    assert teacher.post("/api/class/klasse-7a/demo?desktop_type=other").status == 404

    started = teacher.post("/api/class/klasse-7a/demo?desktop_type=tiny")
    assert started.status == 200 and started.json()["demo"]["desktop"] == "lehrer-tiny"
    assert teacher.get("/api/class/klasse-7a").json()["demo"]["group"] == "klasse-7a"
    for name in ("anna.schmidt", "max.muster"):
        shown = people[name].get("/api/demos").json()["demos"]
        assert [(item["teacher"], item["desktop"], item["url"]) for item in shown] == [
            ("Lehrer", "lehrer-tiny", portal.config.public_url + "/desktop/lehrer-tiny/")], name
        page = people[name].get("/desktop/lehrer-tiny/")
        assert page.status == 200 and 'data-view-only="true"' in page.text, name
        # The viewer and its WebSocket, nothing else of the teacher's desktop.
        assert people[name].get("/desktop/lehrer-tiny/vnc.html").status == 403
    assert people["ben"].get("/api/demos").json() == {"demos": []}
    assert people["ben"].get("/desktop/lehrer-tiny/").status == 403
    assert portal.signed_in("admin").get("/api/demos").json() == {"demos": []}
    # Watching the class's screens does not stop: a colleague's demo is no student's.
    assert people["anna.schmidt"].get("/api/watching").json()["now"] == []

    assert teacher.delete("/api/class/klasse-7a/demo").json() == {"demo": None}
    assert people["anna.schmidt"].get("/api/demos").json() == {"demos": []}
    assert people["anna.schmidt"].get("/desktop/lehrer-tiny/").status == 403
    assert portal.events("class.demo.start") == portal.events("class.demo.end") == [("lehrer", "klasse-7a")]


def test_a_demo_ends_when_the_teacher_signs_out_or_their_desktop_stops(web):
    portal, teacher, own, people = demo_portal(web)
    teacher.post("/api/class/klasse-7a/demo?desktop_type=tiny")
    assert teacher.post("/logout", headers={"Accept": "application/json"}).status == 200
    assert people["max.muster"].get("/api/demos").json() == {"demos": []}
    [(reason,)] = [(event.detail["reason"],) for event in db.Event.select().where(db.Event.action == "class.demo.end")]
    assert reason == "signed out"

    teacher = person(portal, "lehrer2", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    db.Desktop.update(user=db.User.get(db.User.username == "lehrer2")).where(db.Desktop.id == own.id).execute()
    assert teacher.post("/api/class/klasse-7a/demo?desktop_type=tiny").status == 200
    assert len(people["max.muster"].get("/api/demos").json()["demos"]) == 1
    assert teacher.post("/api/container/stop?desktop_type=tiny").status == 200
    assert people["max.muster"].get("/api/demos").json() == {"demos": []}
    details = [event.detail for event in db.Event.select().where(db.Event.action == "class.demo.end")]
    assert details[-1]["reason"] == "desktop stopped"
    # A stopped desktop cannot be shown.
    refused = teacher.post("/api/class/klasse-7a/demo?desktop_type=tiny")
    assert (refused.status, refused.json()["error"]) == (409, "desktop_not_running")


def test_a_new_demo_ends_the_teachers_previous_one(web):
    portal, teacher, own, people = demo_portal(web)
    db.User.update(groups=["teachers", "klasse-7a", "klasse-8b"]).where(db.User.username == "lehrer").execute()
    teacher.post("/api/class/klasse-7a/demo?desktop_type=tiny")
    teacher.post("/api/class/klasse-8b/demo?desktop_type=tiny")
    assert people["anna.schmidt"].get("/api/demos").json() == {"demos": []}
    assert [item["group"] for item in people["ben"].get("/api/demos").json()["demos"]] == ["klasse-8b"]
    assert portal.events("class.demo.end") == [("lehrer", "klasse-7a")]
    # Ending it from the other class's page changes nothing.
    teacher.delete("/api/class/klasse-7a/demo")
    assert len(people["ben"].get("/api/demos").json()["demos"]) == 1


def test_a_desktop_without_a_view_only_secret_cannot_be_shown(web):
    portal, teacher, own, people = demo_portal(web)
    db.Desktop.update(view_secret=None).where(db.Desktop.id == own.id).execute()
    refused = teacher.post("/api/class/klasse-7a/demo?desktop_type=tiny")
    assert (refused.status, refused.json()["error"]) == (409, "not_watchable")


def test_classes_go_by_the_names_iserv_shows_as_the_last_sign_in_said(signed_in_web):
    portal, _ = signed_in_web(CLASS_GROUPS="klasse-*")
    portal.sign_in("anna.schmidt")
    teacher, _, _ = portal.sign_in("lehrer")
    assert teacher.get("/api/classes").json()["classes"] == [
        {"group": "klasse-7a", "name": "Klasse 7a", "members": 1}, {"group": "klasse-8b", "name": "Klasse 8b",
                                                                   "members": 0}]
    assert teacher.get("/api/class/klasse-7a").json()["name"] == "Klasse 7a"
    page = teacher.get("/class/klasse-7a")
    assert '<h1 class="class-name">Klasse 7a</h1>' in page.text and '<p class="group-account">klasse-7a</p>' in page.text
    # Names are only shown: a group renamed in IServ shows its new name after the next sign-in.
    db.Group.update(name="Klasse 7a (alt)").execute()
    assert teacher.get("/api/class/klasse-7a").json()["name"] == "Klasse 7a (alt)"
    portal.sign_in("lehrer")
    assert teacher.get("/api/class/klasse-7a").json()["name"] == "Klasse 7a"
