"""Desktop containers through the API of a real portal, on the real Docker engine."""

import concurrent.futures
import json
import os
import sqlite3
import threading

import pytest
import requests

from conftest import container_of, free_port, wait_for
from flows import Client, wait_status
from relay import Relay

LABEL = "de.iservdesk."


def events_table(portal_dir):
    con = sqlite3.connect(os.path.join(portal_dir, "iservdesk.db"))
    try:
        return con.execute("SELECT actor, action, target FROM events ORDER BY id").fetchall()
    finally:
        con.close()


@pytest.fixture
def site(signed_in_portal, docker_client, demo_image, tmp_path):
    """A portal with its identity provider; returns (portal, tmp dir)."""
    portal, _ = signed_in_portal()
    return portal, str(tmp_path)


def test_start_creates_a_labelled_container_on_loopback_and_reports_ready(site, docker_client):
    portal, _ = site
    anna = Client(portal.url, "anna.schmidt")
    answer = anna.post("/api/container/start", params={"desktop_type": "tiny"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] in ("starting", "running")
    body = wait_status(anna, "tiny", "running")
    assert body["url"] == portal.url + "/desktop/anna.schmidt-tiny/"
    assert body["name"] == "anna.schmidt-tiny"
    assert body["last_access_at"] and body["started_at"]

    container = container_of(docker_client, portal, "anna.schmidt-tiny")
    attrs = container.attrs
    labels = attrs["Config"]["Labels"]
    assert labels[LABEL + "owner"] == "0cfd628e-e095-4b3f-8939-b287627ca408"
    assert labels[LABEL + "type"] == "tiny"
    assert len(labels[LABEL + "installation"]) == 12
    binding = attrs["HostConfig"]["PortBindings"]["6901/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1"
    assert 7000 <= int(binding["HostPort"]) <= 8000
    assert attrs["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]
    assert attrs["HostConfig"]["Memory"] == 256 * 1024 * 1024
    assert attrs["HostConfig"]["PidsLimit"] == 128
    assert attrs["HostConfig"]["ShmSize"] == 512 * 1024 * 1024
    mounts = {mount["Destination"]: mount for mount in attrs["Mounts"]}
    assert mounts["/home/kasm-user"]["Name"] == portal.prefix + "-home-anna.schmidt-tiny"
    environment = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    assert len(environment["VNC_PW"]) >= 32 and len(environment["VNC_VIEW_ONLY_PW"]) >= 32
    assert environment["VNC_PW"] != environment["VNC_VIEW_ONLY_PW"]
    assert environment["DEMO_MODE"] == "tiny"
    # The secret never reaches the browser.
    for path in ("/api/container/list", "/api/container/status?desktop_type=tiny", "/session"):
        assert environment["VNC_PW"] not in anna.get(path).text
    # Ready means the desktop's port answers.
    port = int(binding["HostPort"])
    assert requests.get("https://127.0.0.1:%d/" % port, verify=False, timeout=10).status_code == 401


def test_second_start_reuses_running_desktop(site, docker_client):
    portal, _ = site
    ben = Client(portal.url, "ben")
    ben.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(ben, "tiny", "running")
    first = container_of(docker_client, portal, "ben-tiny").id
    again = ben.post("/api/container/start", params={"desktop_type": "tiny"})
    assert again.status_code == 200
    assert again.json()["status"] == "running"
    # A second device: another session of the same user.
    other_device = Client(portal.url, "ben")
    assert other_device.post("/api/container/start", params={"desktop_type": "tiny"}).status_code == 200
    assert container_of(docker_client, portal, "ben-tiny").id == first


def test_stop_keeps_files_and_remove_keeps_the_home_volume(site, docker_client):
    portal, _ = site
    max_ = Client(portal.url, "max.muster")
    max_.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(max_, "tiny", "running")
    container = container_of(docker_client, portal, "max.muster-tiny")
    assert container.exec_run(["sh", "-c", "echo hausaufgabe > $HOME/notes.txt"]).exit_code == 0

    stopped = max_.post("/api/container/stop", json={"desktop_type": "tiny"})
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    container.reload()
    assert container.status == "exited"
    assert max_.post("/api/container/stop", json={"desktop_type": "tiny"}).status_code == 200  # idempotent

    max_.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(max_, "tiny", "running")
    resumed = container_of(docker_client, portal, "max.muster-tiny")
    assert resumed.id == container.id
    assert resumed.exec_run(["cat", "/home/kasm-user/notes.txt"]).output == b"hausaufgabe\n"

    removed = max_.post("/api/container/remove", data={"desktop_type": "tiny"})
    assert removed.status_code == 200 and removed.json()["status"] == "removed"
    assert container_of(docker_client, portal, "max.muster-tiny") is None
    assert docker_client.volumes.get(portal.prefix + "-home-max.muster-tiny")
    assert max_.post("/api/container/remove", data={"desktop_type": "tiny"}).status_code == 200

    max_.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(max_, "tiny", "running")
    fresh = container_of(docker_client, portal, "max.muster-tiny")
    assert fresh.id != container.id
    assert fresh.exec_run(["cat", "/home/kasm-user/notes.txt"]).output == b"hausaufgabe\n"


def test_fifty_concurrent_starts_give_exactly_one_container(site, docker_client):
    portal, _ = site
    anna = Client(portal.url, "anna.schmidt")
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: anna.post("/api/container/start", params={"desktop_type": "tiny"}),
                                range(50)))
    assert {answer.status_code for answer in answers} <= {200, 202}
    wait_status(anna, "tiny", "running")
    containers = docker_client.containers.list(
        all=True, filters={"label": LABEL + "desktop=anna.schmidt-tiny", "name": portal.prefix})
    assert len(containers) == 1


def test_concurrent_starts_across_users_never_share_a_port(site, docker_client):
    portal, _ = site
    users = [Client(portal.url, name) for name in ("anna.schmidt", "ben", "max.muster", "mueller", "admin")]
    with concurrent.futures.ThreadPoolExecutor(len(users) * 2) as pool:
        list(pool.map(lambda pair: pair[0].post("/api/container/start", params={"desktop_type": pair[1]}),
                      [(user, slug) for user in users for slug in ("tiny", "demo")]))
    ports = []
    for user in users:
        for slug in ("tiny", "demo"):
            wait_status(user, slug, "running")
            attrs = container_of(docker_client, portal, "%s-%s" % (user.username, slug)).attrs
            ports.append(attrs["HostConfig"]["PortBindings"]["6901/tcp"][0]["HostPort"])
    assert len(set(ports)) == len(ports) == 10


def test_list_shows_every_usable_type_with_status(site):
    portal, _ = site
    teacher = Client(portal.url, "mueller")
    student = Client(portal.url, "ben")
    assert [d["desktop_type"] for d in teacher.get("/api/container/list").json()["desktops"]] == \
        ["demo", "tiny", "strict", "teachers-only"]
    listed = student.get("/api/container/list").json()["desktops"]
    assert [d["desktop_type"] for d in listed] == ["demo", "tiny", "strict"]
    assert listed[0]["status"] == "absent"
    assert listed[0]["name"] == {"de": "Demo-Desktop", "en": "Demo desktop"}
    started = teacher.post("/api/container/start", params={"desktop_type": "teachers-only"})
    assert started.status_code == 202


def test_full_port_range_answers_503(signed_in_portal, docker_client, demo_image):
    port = free_port()
    portal, _ = signed_in_portal(HOST_PORT_RANGE="%d-%d" % (port, port))
    anna, ben = Client(portal.url, "anna.schmidt"), Client(portal.url, "ben")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    refused = ben.post("/api/container/start", params={"desktop_type": "tiny"})
    assert refused.status_code == 503
    assert refused.json()["error"] == "no_free_port"


def test_ports_held_by_other_containers_are_skipped(signed_in_portal, containers, docker_client, demo_image):
    low = free_port()
    # Something else on the engine holds the first port of the range, stopped.
    squatter = containers.run(demo_image, environment={"VNC_PW": "x", "DEMO_MODE": "tiny"},
                              ports={"6901/tcp": ("127.0.0.1", low)})
    squatter.stop(timeout=1)
    portal, _ = signed_in_portal(HOST_PORT_RANGE="%d-%d" % (low, low + 50))
    anna = Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    port = container_of(docker_client, portal, "anna.schmidt-tiny").attrs["HostConfig"]["PortBindings"]["6901/tcp"][0]
    assert int(port["HostPort"]) != low


def test_unreachable_engine_answers_503_and_recovers(signed_in_portal, docker_client, demo_image, tmp_path):
    socket_path = str(tmp_path / "engine.sock")
    relay = Relay(socket_path, "/var/run/docker.sock")
    portal, _ = signed_in_portal(DOCKER_URL="unix://" + socket_path)
    anna = Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")

    relay.stop()  # the engine goes away, as when dockerd stops
    down = anna.post("/api/container/start", params={"desktop_type": "demo"})
    assert (down.status_code, down.json()["error"]) == (503, "engine_unreachable")
    assert requests.get(portal.url + "/healthz", timeout=30).status_code == 503

    relay = Relay(socket_path, "/var/run/docker.sock")  # and comes back
    try:
        wait_for(lambda: requests.get(portal.url + "/healthz", timeout=30).status_code == 200, 30, "recovery")
        assert anna.post("/api/container/start", params={"desktop_type": "demo"}).status_code == 202
        wait_status(anna, "demo", "running")
        # The event watcher reconnected: an outside stop is still noticed.
        container_of(docker_client, portal, "anna.schmidt-tiny").stop(timeout=1)
        wait_status(anna, "tiny", "stopped", timeout=20)
    finally:
        relay.stop()


def test_outside_kill_rm_and_start_are_reconciled(signed_in_portal, docker_client, demo_image):
    portal, _ = signed_in_portal(LOG_LEVEL="DEBUG")
    anna = Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    container = container_of(docker_client, portal, "anna.schmidt-tiny")

    container.kill()
    assert "stopped outside" in wait_status(anna, "tiny", "stopped", timeout=20)["message"]
    container.start()
    wait_status(anna, "tiny", "running", timeout=20)
    container.remove(force=True)
    body = wait_status(anna, "tiny", "removed", timeout=20)
    assert "removed outside" in body["message"]
    log = portal.log()
    assert "reconciled anna.schmidt-tiny: stopped" in log
    assert "adopted" not in log  # the start job's own container is not "adopted"


def test_labelled_container_without_row_is_adopted_at_start_up(signed_in_portal, docker_client, demo_image, tmp_path):
    portal, _ = signed_in_portal()
    anna = Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    container_id = container_of(docker_client, portal, "anna.schmidt-tiny").id
    portal.stop()
    # The database forgets the container (as after restoring an old backup).
    con = sqlite3.connect(str(tmp_path / "iservdesk.db"))
    con.execute("UPDATE desktops SET container_id = NULL, host_port = NULL, status = 'removed'")
    con.commit()
    con.close()
    portal.restart()
    wait_status(anna, "tiny", "running", timeout=30)
    con = sqlite3.connect(str(tmp_path / "iservdesk.db"))
    assert con.execute("SELECT container_id FROM desktops").fetchone()[0] == container_id
    con.close()


def test_admin_sees_stops_and_removes_other_peoples_desktops(site, docker_client):
    portal, portal_dir = site
    admin, anna, ben = Client(portal.url, "admin"), Client(portal.url, "anna.schmidt"), Client(portal.url, "ben")
    for user in (anna, ben):
        user.post("/api/container/start", params={"desktop_type": "tiny"})
    for user in (anna, ben):
        wait_status(user, "tiny", "running")
    listing = admin.get("/api/admin/containers").json()
    owners = {entry["owner"]: entry for entry in listing["containers"]}
    assert set(owners) == {"anna.schmidt", "ben"}
    assert listing["statistics"] == {"total": 2, "running": 2, "active_users": 2, "queued": 0}
    assert owners["ben"]["host_port"] and owners["ben"]["container_id"]

    stopped = admin.post("/api/admin/container/%s/stop" % owners["ben"]["container_id"])
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert wait_status(ben, "tiny", "stopped")
    removed = admin.delete("/api/admin/container/%s/remove" % "anna.schmidt-tiny")
    assert removed.status_code == 200
    assert container_of(docker_client, portal, "anna.schmidt-tiny") is None
    assert admin.post("/api/admin/container/ffffffffffff/stop").status_code == 404
    actions = events_table(portal_dir)
    assert ("admin", "desktop.stop", "ben-tiny") in actions
    assert ("admin", "desktop.remove", "anna.schmidt-tiny") in actions


def test_stop_all_spares_look_alike_containers(site, docker_client, containers, demo_image):
    portal, portal_dir = site
    admin, anna = Client(portal.url, "admin"), Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    # Named like one of ours and even carrying our label keys, but not of this installation.
    look_alike = containers.run(demo_image, name=portal.prefix + "-ben-tiny",
                                environment={"VNC_PW": "x", "DEMO_MODE": "tiny"},
                                labels={LABEL + "installation": "someoneelse", LABEL + "desktop": "ben-tiny"})
    answer = admin.post("/api/admin/containers/stop-all")
    assert answer.json() == {"stopped": 1, "stopped_count": 1}  # the old product named it stopped_count
    look_alike.reload()
    assert look_alike.status == "running"
    assert admin.post("/api/admin/container/%s/stop" % look_alike.id[:12]).status_code == 404
    assert [entry["name"] for entry in admin.get("/api/admin/containers").json()["containers"]] == \
        ["anna.schmidt-tiny"]
    assert ("admin", "desktop.stop-all", "") in events_table(portal_dir)


def test_events_stream_own_changes_to_users_and_all_to_admins(site):
    portal, _ = site
    admin, anna, ben = Client(portal.url, "admin"), Client(portal.url, "anna.schmidt"), Client(portal.url, "ben")

    subscribed = [threading.Event(), threading.Event()]

    def collect(client, until, ready):
        seen = []
        with client.get("/api/events", stream=True, timeout=60) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            for line in response.iter_lines(decode_unicode=True):
                ready.set()  # the first line (retry:) comes after subscribing
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    if until(seen):
                        return seen

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        admin_view = pool.submit(collect, admin, lambda seen: {"anna.schmidt-tiny", "ben-tiny"} <= {
            event["name"] for event in seen if event["status"] == "running"}, subscribed[0])
        anna_view = pool.submit(collect, anna, lambda seen: any(e["status"] == "running" for e in seen),
                                subscribed[1])
        assert all(event.wait(30) for event in subscribed)
        anna.post("/api/container/start", params={"desktop_type": "tiny"})
        ben.post("/api/container/start", params={"desktop_type": "tiny"})
        admin_events = admin_view.result(60)
        anna_events = anna_view.result(60)
    assert {event["name"] for event in anna_events} == {"anna.schmidt-tiny"}
    assert "owner" in admin_events[0] and "owner" not in anna_events[0]
    assert [e["status"] for e in anna_events][-1] == "running"
    assert "starting" in [e["status"] for e in anna_events]



def test_start_interrupted_by_a_restart_ends_in_error_and_can_be_retried(signed_in_portal, docker_client,
                                                                         demo_image, tmp_path):
    portal, _ = signed_in_portal()
    ben = Client(portal.url, "ben")
    ben.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(ben, "tiny", "running")
    ben.post("/api/container/remove", params={"desktop_type": "tiny"})
    portal.stop()
    # As if the portal died while pulling: a row that says pulling, and no container.
    con = sqlite3.connect(str(tmp_path / "iservdesk.db"))
    con.execute("UPDATE desktops SET status = 'pulling'")
    con.commit()
    con.close()
    portal.restart()
    assert "interrupted" in wait_status(ben, "tiny", "error", timeout=30)["message"]
    assert ben.post("/api/container/start", params={"desktop_type": "tiny"}).status_code == 202
    wait_status(ben, "tiny", "running")
