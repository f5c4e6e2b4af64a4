"""The desktop API in-process (tests/wsgi.py): what it refuses, and how, before the Desktops
manager asks the engine for anything. Starting, stopping and the event stream on the real
engine are test_desktops.py's, against `iservdesk serve`."""

import json

pytest_plugins = ("wsgi",)


def test_api_errors_are_json_with_codes(web):
    portal = web()
    ben = portal.signed_in("ben")
    missing = ben.post("/api/container/start")
    assert (missing.status, missing.json()["error"]) == (400, "desktop_type_missing")
    assert missing.header("Content-Type") == "application/json"
    unknown = ben.post("/api/container/start?desktop_type=windows")
    assert (unknown.status, unknown.json()["error"]) == (400, "unknown_desktop_type")
    as_json = ben.post("/api/container/start", json_body={"desktop_type": "windows"})
    assert (as_json.status, as_json.json()["error"]) == (400, "unknown_desktop_type")
    forbidden = ben.post("/api/container/start?desktop_type=teachers-only")
    assert (forbidden.status, forbidden.json()["error"]) == (403, "desktop_type_not_allowed")
    nothing = ben.post("/api/container/stop?desktop_type=tiny")
    assert (nothing.status, nothing.json()["error"]) == (404, "desktop_not_found")
    anonymous = portal.browser().post("/api/container/start?desktop_type=tiny")
    assert (anonymous.status, anonymous.json()["error"]) == (401, "unauthenticated")
    no_csrf = ben.post("/api/container/start?desktop_type=tiny", headers={"X-CSRF-Token": ""})
    assert (no_csrf.status, no_csrf.json()["error"]) == (403, "csrf_failed")
    # A script's session (Bearer) needs no CSRF token: on to the desktop, here none.
    bearer = portal.browser().post("/api/container/stop?desktop_type=tiny",
                                   headers={"Authorization": "Bearer " + ben.session_id()})
    assert (bearer.status, bearer.json()["error"]) == (404, "desktop_not_found")
    # Bottle's own refusals have the same shape.
    assert ben.get("/api/nothing").json() == {"error": "not_found", "message": "Not found."}
    wrong_method = ben.get("/api/container/start?desktop_type=tiny")
    assert (wrong_method.status, wrong_method.json()["error"]) == (405, "method_not_allowed")
    assert "Traceback" not in portal.log()


def test_admin_api_is_for_admins_only(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "running")
    portal.desktop("ben", "tiny", "stopped")
    ben = portal.signed_in("ben")
    for method, path in (("GET", "/api/admin/containers"), ("POST", "/api/admin/containers/stop-all"),
                         ("POST", "/api/admin/container/x/stop"), ("DELETE", "/api/admin/container/x/remove"),
                         ("GET", "/api/admin/homes")):
        answer = ben.request(method, path)
        assert (answer.status, answer.json()["error"]) == (403, "admin_only"), path
    assert portal.browser().get("/api/admin/containers").status == 401
    admin = portal.signed_in("admin")
    listing = admin.get("/api/admin/containers").json()
    owners = {entry["owner"]: entry for entry in listing["containers"]}
    assert set(owners) == {"anna.schmidt", "ben"}
    assert listing["statistics"] == {"total": 2, "running": 1, "active_users": 1, "queued": 0}
    assert owners["anna.schmidt"]["container_id"] == "c0ffeec0ffee" and owners["anna.schmidt"]["host_port"] == 1
    assert "not-a-real-secret" not in json.dumps(listing)
    unknown = admin.post("/api/admin/container/ffffffffffff/stop")
    assert (unknown.status, unknown.json()["error"]) == (404, "desktop_not_found")


def test_max_desktops_answers_429(web):
    portal = web(MAX_DESKTOPS="1")
    portal.desktop("anna.schmidt", "tiny", "running")  # the one desktop this host may run
    refused = portal.signed_in("ben").post("/api/container/start?desktop_type=tiny")
    assert refused.status == 429
    assert refused.json()["error"] == "too_many_desktops"
    assert "try again" in refused.json()["message"]
    assert "start of ben-tiny refused: MAX_DESKTOPS (1) reached" in portal.log()
    # A refused first start leaves nothing that looks like it is starting.
    status = portal.signed_in("ben").get("/api/container/status?desktop_type=tiny").json()
    assert status["status"] == "absent"


def test_admins_forget_a_person_after_seeing_what_goes(web):
    from iservdesk import db
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "stopped", host_port=None)
    anna = portal.signed_in("anna.schmidt")
    admin = portal.signed_in("admin")
    assert portal.signed_in("ben").get("/api/admin/forget/anna.schmidt").json()["error"] == "admin_only"
    plan = admin.get("/api/admin/forget/anna.schmidt").json()
    assert (plan["username"], plan["desktops"], plan["sessions"]) == ("anna.schmidt", ["anna.schmidt-tiny"], 1)
    assert db.User.get_or_none(db.User.username == "anna.schmidt") is not None  # looking changes nothing
    assert admin.get("/api/admin/forget/nobody").status == 404
    assert admin.post("/api/admin/forget/admin").json()["error"] == "forget_self"
    assert admin.post("/api/admin/forget/anna.schmidt", csrf=False).status == 403
    done = admin.post("/api/admin/forget/anna.schmidt").json()
    assert done["pseudonym"].startswith("person-")
    assert db.User.get_or_none(db.User.username == "anna.schmidt") is None
    assert db.Desktop.select().count() == 0 and anna.get("/api/container/list").status == 401
    assert portal.events("person.forget") == [("admin", done["pseudonym"])]
    assert not [event for event in db.Event.select() if "anna.schmidt" in (event.actor + event.target + str(event.detail))]
