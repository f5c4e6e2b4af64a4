"""Handing out and collecting (iservdesk/handouts.py) through the real portal, with real
desktops and volumes: material reaches a running and a stopped member and one who signs
in later, read-only for the student; an assignment's folder is collected into one zip with
a folder per student and the list of who handed in nothing; collecting again gives the
newer state; a deadline collects by itself; another class gets nothing; forget removes
the collected copy; everything is audited."""

import datetime
import io
import json
import os
import zipfile

from conftest import ROOT, container_of
from devtools import wait_for
from flows import Client, Person, wait_status
from proxying import database
from test_cleanup import start

SHEET = os.urandom(200 * 1024) + b"%PDF"


def users_with_lisa(tmp_path):
    """The demo accounts and Lisa Later, of class 7a, who signs in only after the hand-out."""
    with open(os.path.join(ROOT, "tests", "data", "users.json")) as source:
        users = json.load(source)
    users["users"].append({"uuid": "uuid-lisa", "username": "lisa", "password": "lisa-pw", "name": "Lisa Später",
                           "email": "lisa@dev-school.example",
                           "groups": {"12": {"act": "klasse-7a", "name": "Klasse 7a"}},
                           "roles": [{"id": "ROLE_STUDENT", "displayName": "Schüler"}]})
    path = tmp_path / "users.json"
    path.write_text(json.dumps(users))
    return str(path)


def ok(answer):
    assert answer.status_code == 200, answer.text
    return answer.json()


def home_file(client, path, slug="tiny"):
    answer = client.get("/api/files/download", params={"desktop_type": slug, "path": path})
    return answer.content if answer.status_code == 200 else answer.status_code


def test_material_and_assignments_reach_running_stopped_and_later_members_and_come_back(
        signed_in_portal, demo_image, docker_client, tmp_path):
    portal, _ = signed_in_portal(users=users_with_lisa(tmp_path))
    teacher = Client(portal.url, "lehrer")
    anna, max_, ben = Client(portal.url, "anna.schmidt"), Client(portal.url, "max.muster"), Client(portal.url, "ben")
    start(anna, "tiny")
    start(max_, "tiny")
    max_.post("/api/container/stop", params={"desktop_type": "tiny"})
    wait_status(max_, "tiny", "stopped")
    start(ben, "tiny")  # class 8b: gets nothing of 7a

    # Material: made, two files uploaded (streamed, binary), handed out.
    material = ok(teacher.post("/api/class/klasse-7a/material", json={"name": "Arbeitsblatt 1"}))["handout"]
    # A file of whole tar blocks (no padding after it) among them: nothing after it may be lost.
    for name, data in (("blatt.pdf", SHEET), ("A genau.bin", b"b" * 1024), ("Lösung?.txt", "Aufgabe 1: 42\n".encode())):
        ok(teacher.put("/api/upload/material/%d" % material["id"], params={"name": name}, data=data))
    refused = teacher.put("/api/upload/material/%d" % material["id"], params={"name": "../x"}, data=b"x")
    assert (refused.status_code, refused.json()["error"]) == (400, "bad_name")
    result = ok(teacher.post("/api/class/klasse-7a/material/%d/hand-out" % material["id"]))
    assert result["homes"] == 2 and result["failed"] == []
    assert result["handout"]["have"] == ["anna.schmidt", "max.muster"] and result["handout"]["missing"] == []
    # Running Anna sees it at once, owned by root and read-only for her.
    container = container_of(docker_client, portal, "anna.schmidt-tiny")
    base = "/home/kasm-user/Material/klasse-7a/Arbeitsblatt 1"
    listed = container.exec_run(["stat", "-c", "%u %a %n", base, base + "/blatt.pdf"]).output.decode().splitlines()
    assert listed == ["0 555 " + base, "0 444 %s/blatt.pdf" % base]
    changed = container.exec_run(["sh", "-c", 'echo x > "$1/blatt.pdf" || rm -f "$1/blatt.pdf"', "sh", base],
                                 user="1000")
    assert changed.exit_code != 0
    assert home_file(anna, "Material/klasse-7a/Arbeitsblatt 1/blatt.pdf") == SHEET
    # Stopped Max has it too; Ben of 8b has no Material at all.
    assert home_file(max_, "Material/klasse-7a/Arbeitsblatt 1/Lösung?.txt") == "Aufgabe 1: 42\n".encode()
    assert home_file(max_, "Material/klasse-7a/Arbeitsblatt 1/A genau.bin") == b"b" * 1024
    assert "Material" not in {entry["name"] for entry in ok(ben.get("/api/files", params={"desktop_type": "tiny"}))[
        "entries"]}

    # An assignment: ~/Abgabe/Aufsatz/ in every member's home; Anna hands in, Max nothing.
    assignment = ok(teacher.post("/api/class/klasse-7a/assignments", json={"name": "Aufsatz"}))["handout"]
    assert assignment["have"] == ["anna.schmidt", "max.muster"]
    ok(anna.put("/api/upload/home", params={"desktop_type": "tiny", "folder": "Abgabe/Aufsatz", "name": "aufsatz.txt"},
                data="Mein Aufsatz, Fassung 1".encode()))
    # Lisa signs in only now and starts her desktop: the material and the folder are there.
    lisa = Person(portal.url, "lisa", "lisa-pw")
    start(lisa, "tiny")
    assert home_file(lisa, "Material/klasse-7a/Arbeitsblatt 1/blatt.pdf") == SHEET
    assert {entry["name"] for entry in ok(lisa.get("/api/files", params={"desktop_type": "tiny", "path": "Abgabe"}))[
        "entries"]} == {"Aufsatz"}
    ok(lisa.put("/api/upload/home", params={"desktop_type": "tiny", "folder": "Abgabe/Aufsatz/Bilder",
                                           "name": "bild.bin"}, data=SHEET))

    # Einsammeln: one zip, a folder per student who handed in, and who handed in nothing.
    collected = ok(teacher.post("/api/class/klasse-7a/assignments/%d/collect" % assignment["id"]))
    assert {member["username"]: member["files"] for member in collected["collection"]["members"]} == {
        "anna.schmidt": 1, "max.muster": 0, "lisa": 1}
    assert collected["handout"]["handed_in"] == 2 and collected["handout"]["nothing"] == ["max.muster"]
    answer = teacher.get("/api/class/klasse-7a/assignments/%d/collected.zip" % assignment["id"])
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert archive.read("Schmidt_Anna/aufsatz.txt") == "Mein Aufsatz, Fassung 1".encode()
    assert archive.read("Später_Lisa/Bilder/bild.bin") == SHEET
    assert not [name for name in archive.namelist() if name.startswith("Mustermann")]
    summary = archive.read("Abgabe.txt").decode()
    assert "Nichts abgegeben / nothing handed in: 1" in summary and "Max Mustermann (max.muster)" in summary
    assert collected["collection"]["collected_at"] in summary
    # Collecting again gives the newer state.
    ok(anna.put("/api/upload/home", params={"desktop_type": "tiny", "folder": "Abgabe/Aufsatz", "name": "aufsatz.txt"},
                data="Mein Aufsatz, Fassung 2".encode()))
    ok(teacher.post("/api/class/klasse-7a/assignments/%d/collect" % assignment["id"]))
    archive = zipfile.ZipFile(io.BytesIO(teacher.get(
        "/api/class/klasse-7a/assignments/%d/collected.zip" % assignment["id"]).content))
    assert archive.read("Schmidt_Anna/aufsatz.txt") == "Mein Aufsatz, Fassung 2".encode()

    # Nobody but the class's teachers: not a student, not a teacher of other classes.
    for outsider in (anna, Client(portal.url, "mueller")):
        answer = outsider.get("/api/class/klasse-7a/assignments/%d/collected.zip" % assignment["id"])
        assert answer.status_code == 403
        assert outsider.post("/api/class/klasse-7a/material", json={"name": "x"}).status_code == 403
    assert ok(teacher.get("/api/class/klasse-8b"))["handouts"] == []

    # A deadline collects by itself (the portal's loop looks every 15 s).
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)).isoformat()
    timed = ok(teacher.post("/api/class/klasse-7a/assignments", json={"name": "Test", "deadline": soon}))["handout"]
    ok(anna.put("/api/upload/home", params={"desktop_type": "tiny", "folder": "Abgabe/Test", "name": "antwort.txt"},
                data=b"B"))
    done = wait_for(lambda: next(item for item in ok(teacher.get("/api/class/klasse-7a"))["handouts"]
                                 if item["id"] == timed["id"])["collected_at"], 40, "the deadline's collection")
    assert done

    # Audited.
    con = database(tmp_path)
    actions = con.execute("SELECT actor, action, target FROM events WHERE action LIKE 'class.%' ORDER BY id").fetchall()
    con.close()
    assert ("lehrer", "class.material", "klasse-7a") in actions
    assert ("lehrer", "class.assignment", "klasse-7a") in actions
    assert actions.count(("lehrer", "class.collect", "klasse-7a")) == 2
    assert ("deadline", "class.collect", "klasse-7a") in actions
    assert ("lehrer", "class.collect.download", "klasse-7a") in actions


def test_forget_removes_a_students_collected_work(signed_in_portal, demo_image, tmp_path):
    from iservdesk import db
    from iservdesk.handouts import collected_of
    portal, _ = signed_in_portal()
    teacher, anna = Client(portal.url, "lehrer"), Client(portal.url, "anna.schmidt")
    start(anna, "tiny")
    assignment = ok(teacher.post("/api/class/klasse-7a/assignments", json={"name": "Referat"}))["handout"]
    ok(anna.put("/api/upload/home", params={"desktop_type": "tiny", "folder": "Abgabe/Referat", "name": "r.txt"},
                data=b"Referat"))
    ok(teacher.post("/api/class/klasse-7a/assignments/%d/collect" % assignment["id"]))
    files = str(tmp_path / "files")
    anna_row = db.User(uuid=_uuid_of(tmp_path, "anna.schmidt"), username="anna.schmidt")
    assert len(collected_of(files, anna_row)) == 1
    admin = Client(portal.url, "admin")
    plan = ok(admin.get("/api/admin/forget/anna.schmidt"))
    assert plan["collected"] == 1
    ok(admin.post("/api/admin/forget/anna.schmidt"))
    assert collected_of(files, anna_row) == []
    assert not os.path.exists(os.path.join(files, "collected", str(assignment["id"]), anna_row.uuid))
    answer = teacher.get("/api/class/klasse-7a/assignments/%d/collected.zip" % assignment["id"])
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert "anna" not in " ".join(archive.namelist()).lower() and b"anna" not in archive.read("Abgabe.txt").lower()


def _uuid_of(tmp_path, username):
    con = database(tmp_path)
    uuid = con.execute("SELECT uuid FROM users WHERE username = ?", (username,)).fetchone()[0]
    con.close()
    return uuid
