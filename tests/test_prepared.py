"""Prepared desktops (iservdesk/preparations.py): a teacher prepares a class for a desktop
type; exactly its known, allowed members get that desktop started with their own homes;
cleanup stops the ones nobody opened after PREPARED_UNUSED_TIMEOUT and keeps the opened
ones; a scheduled preparation runs at its time (in-process, with the clock chosen);
cancelling works before and after it ran."""

import datetime

from flows import Client, wait_status
from iservdesk import cleanup, db
from test_cleanup import State, cleaner, config_path_of
from test_web_classroom import person

pytest_plugins = ("wsgi",)


def test_a_prepared_class_gets_its_desktops_and_cleanup_stops_the_unopened_ones(signed_in_portal, demo_image,
                                                                              docker_client, tmp_path):
    portal, _ = signed_in_portal(CLASS_GROUPS="klasse-*")
    anna, max_, ben = (Client(portal.url, name) for name in ("anna.schmidt", "max.muster", "ben"))
    teacher = Client(portal.url, "lehrer")
    refused = anna.post("/api/class/klasse-7a/prepare", params={"desktop_type": "tiny"})
    assert (refused.status_code, refused.json()["error"]) == (403, "teachers_only")
    bad = teacher.post("/api/class/klasse-7a/prepare", params={"desktop_type": "tiny", "at": "tomorrow 8:00"})
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_time")

    answer = teacher.post("/api/class/klasse-7a/prepare", params={"desktop_type": "tiny"})
    assert answer.status_code == 200, answer.text
    preparation = answer.json()["preparation"]
    assert (preparation["state"], preparation["started"], preparation["skipped"]) == ("done", 2, [])
    for student in (anna, max_):
        wait_status(student, "tiny", "running", timeout=120)
    assert ben.get("/api/container/status", params={"desktop_type": "tiny"}).json()["status"] == "absent"
    assert teacher.get("/api/container/status", params={"desktop_type": "tiny"}).json()["status"] == "absent"
    state = State(str(tmp_path / "iservdesk.db"))
    homes = {state.row(name)["home_volume"] for name in ("anna.schmidt-tiny", "max.muster-tiny")}
    assert homes == {portal.prefix + "-home-anna.schmidt-tiny", portal.prefix + "-home-max.muster-tiny"}

    # A type the students may not use is skipped for each of them, with the reason.
    only = teacher.post("/api/class/klasse-7a/prepare", params={"desktop_type": "teachers-only"}).json()
    assert only["preparation"]["skipped"] == [{"username": "anna.schmidt", "why": "not_allowed"},
                                              {"username": "max.muster", "why": "not_allowed"}]
    # Preparing again leaves the running desktops alone.
    again = teacher.post("/api/class/klasse-7a/prepare", params={"desktop_type": "tiny"}).json()["preparation"]
    assert [item["why"] for item in again["skipped"]] == ["already_running", "already_running"]

    # Anna opens hers (the "Open" link: her client through the portal); Max never does.
    assert anna.get("/desktop/anna.schmidt-tiny/vnc.html").status_code == 200
    assert state.row("anna.schmidt-tiny")["prepared_at"] is None
    assert state.row("max.muster-tiny")["prepared_at"] is not None
    listing = teacher.get("/api/class/klasse-7a").json()["preparations"]
    assert [(item["desktop_type"], item["started"], item["opened"]) for item in listing][-1] == ("tiny", 2, 1)

    config, desktops, database = cleaner(config_path_of(portal, tmp_path))
    now = datetime.datetime.now(datetime.timezone.utc)
    assert cleanup.run(config, desktops, database, now + datetime.timedelta(minutes=29)).stopped == []
    report = cleanup.run(config, desktops, database, now + datetime.timedelta(minutes=31))
    assert report.stopped == ["max.muster-tiny"]
    assert "not opened within 30 minutes" in wait_status(max_, "tiny", "stopped")["message"]
    assert state.row("anna.schmidt-tiny")["status"] == "running"
    assert docker_client.volumes.get(portal.prefix + "-home-max.muster-tiny")  # files kept
    actions = [event for event in state.events() if event[1].startswith("class.prepare") or
               event[1] == "desktop.stop"]
    assert ("lehrer", "class.prepare", "klasse-7a") in actions and ("lehrer", "class.prepare.run", "klasse-7a") in actions
    assert ("cleanup", "desktop.stop", "max.muster-tiny") in actions


def test_a_scheduled_preparation_runs_at_its_time_and_can_be_cancelled(web):
    portal = web(CLASS_GROUPS="klasse-*")
    preparations = portal.app.context.preparations
    portal.person("anna.schmidt")
    portal.person("max.muster")
    portal.person("ben")
    teacher = person(portal, "lehrer", ["teachers", "klasse-7a"], ["ROLE_TEACHER"])
    at = portal.clock() + datetime.timedelta(minutes=10)
    planned = teacher.post("/api/class/klasse-7a/prepare?desktop_type=tiny&at=" + at.isoformat().replace("+", "%2B"))
    assert planned.status == 200, planned.text
    assert planned.json()["preparation"]["state"] == "scheduled"
    assert teacher.post("/api/class/klasse-7a/prepare?desktop_type=tiny&at=2026-12-07T07:50:00").json()[
        "error"] == "bad_time"  # no offset: which 7:50?
    cancelled = teacher.post("/api/class/klasse-7a/prepare?desktop_type=demo&at=" + at.isoformat().replace("+", "%2B"))
    assert teacher.delete("/api/class/klasse-7a/prepare/%d" % cancelled.json()["preparation"]["id"]).json() == {
        "stopped": 0}
    assert teacher.delete("/api/class/klasse-8b/prepare/1").json()["error"] == "not_your_class"

    portal.clock.advance(minutes=9)
    assert preparations.run_due() == 0 and db.Desktop.select().count() == 0
    portal.clock.advance(minutes=1)
    assert preparations.run_due() == 1  # the cancelled one never runs
    rows = {row.name: row for row in db.Desktop.select()}
    assert sorted(rows) == ["anna.schmidt-tiny", "max.muster-tiny"]
    assert all(row.prepared_at == portal.clock() and row.status in ("starting", "queued") for row in rows.values())
    assert preparations.run_due() == 0  # each runs once

    # Cancelled after it ran: the desktops nobody opened stop (their starts end here).
    preparation = db.Preparation.get(db.Preparation.desktop_type == "tiny")
    assert teacher.delete("/api/class/klasse-7a/prepare/%d" % preparation.id).json() == {"stopped": 2}
    assert {row.status for row in db.Desktop.select()} == {"removed"}
    states = {item["desktop_type"]: item["state"] for item in teacher.get("/api/class/klasse-7a").json()["preparations"]}
    assert states == {"tiny": "cancelled", "demo": "cancelled"}
    admin = portal.signed_in("admin")
    assert len(admin.get("/api/admin/preparations").json()["preparations"]) == 2
    assert teacher.get("/api/admin/preparations").json()["error"] == "admin_only"
    assert [event for event in portal.events("class.prepare.cancel")] == [("lehrer", "klasse-7a")] * 2
