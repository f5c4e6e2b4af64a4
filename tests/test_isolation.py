"""Desktops kept apart, on the real engine with real portals and the development identity
provider: their own network without traffic between containers, MAX_DESKTOPS under
simultaneous starts, and homes that belong to a person (a uuid), not to an account name."""

import concurrent.futures
import json
import os
import sqlite3
import threading

import pytest
import requests

from conftest import CLIENT_ID, CLIENT_SECRET, CONTAINER_PREFIX, DOCKER_URL, container_of, wait_for
from flows import Client, Person, wait_status
from iservdesk.desktops.docker import DockerEngine
from iservdesk.desktops.homes import short_id
from iservdesk.errors import DesktopError

LABEL = "de.iservdesk."
ICC = "com.docker.network.bridge.enable_icc"
ANNA_UUID = "0cfd628e-e095-4b3f-8939-b287627ca408"
BEN_UUID = "31a3421d-cbf0-4679-976c-82d52839f0a5"
ADMIN = {"uuid": "3b9e78e7-de7d-4865-a1c6-fe2e1a9da727", "username": "admin", "password": "admin-pw",
         "name": "Sam Admin", "email": "admin@dev-school.example",
         "groups": {"1": {"act": "admins", "name": "Administratoren"}},
         "roles": [{"id": "ROLE_ADMIN", "displayName": "Administrator"}]}

# Run inside a desktop: connect to host:port; prints "connected" or "failed <error>".
PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
    print("connected")
except OSError as error:
    print("failed", type(error).__name__)
"""


def users_file(path, *users):
    with open(str(path), "w") as stream:
        json.dump({"users": list(users)}, stream)
    return str(path)


def account(uuid, username, password, name="Test Person"):
    return {"uuid": uuid, "username": username, "password": password, "name": name,
            "email": "%s@dev-school.example" % username,
            "groups": {"40": {"act": "schueler", "name": "Schüler"}},
            "roles": [{"id": "ROLE_STUDENT", "displayName": "Schüler"}]}


def probe(container, host, port):
    result = container.exec_run(["python3", "-c", PROBE, host, str(port)])
    assert result.exit_code == 0, result.output
    return result.output.decode().strip()


def address(container, network):
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]


def host_port(container):
    return int(container.attrs["HostConfig"]["PortBindings"]["6901/tcp"][0]["HostPort"])


def installation_id(folder):
    con = sqlite3.connect(os.path.join(folder, "iservdesk.db"))
    try:
        return con.execute("SELECT value FROM meta WHERE name = 'installation_id'").fetchone()[0]
    finally:
        con.close()


def fill_volume(containers, image, volume, text):
    """Write `text` into /home/kasm-user/note.txt of `volume` with a short-lived container."""
    writer = containers.run(image, volumes={volume: {"bind": "/home/kasm-user", "mode": "rw"}},
                            entrypoint=["sh", "-c", "echo '%s' > /home/kasm-user/note.txt" % text])
    assert writer.wait(timeout=60)["StatusCode"] == 0, writer.logs()


def read_note(container):
    return container.exec_run(["cat", "/home/kasm-user/note.txt"])


def note_in_volume(containers, image, volume):
    """The note in `volume`, read by a short-lived container (the volume's own desktop may be gone)."""
    reader = containers.run(image, volumes={volume: {"bind": "/home/kasm-user", "mode": "ro"}},
                            entrypoint=["cat", "/home/kasm-user/note.txt"])
    assert reader.wait(timeout=60)["StatusCode"] == 0, reader.logs()
    return reader.logs()


# -- network isolation --

def test_desktops_cannot_reach_each_other_but_the_portal_reaches_both(signed_in_portal, docker_client,
                                                                       demo_image, tmp_path):
    portal, _ = signed_in_portal()
    anna, ben = Client(portal.url, "anna.schmidt"), Client(portal.url, "ben")
    for person in (anna, ben):
        person.post("/api/container/start", params={"desktop_type": "tiny"})
    for person in (anna, ben):
        wait_status(person, "tiny", "running")  # the portal's readiness probe reached its port

    name = portal.prefix + "-desktops"
    network = docker_client.networks.get(name)
    assert network.attrs["Driver"] == "bridge"
    assert network.attrs["Options"][ICC] == "false"
    assert network.attrs["Labels"][LABEL + "installation"] == installation_id(str(tmp_path))
    mine = container_of(docker_client, portal, "anna.schmidt-tiny")
    theirs = container_of(docker_client, portal, "ben-tiny")
    for container in (mine, theirs):
        assert set(container.attrs["NetworkSettings"]["Networks"]) == {name}
        assert container.attrs["HostConfig"]["PortBindings"]["6901/tcp"][0]["HostIp"] == "127.0.0.1"

    # The probe works: a desktop reaches its own port 6901 ...
    assert probe(mine, address(mine, name), 6901) == "connected"
    # ... but not another desktop's, neither directly nor through the gateway (the host).
    assert probe(mine, address(theirs, name), 6901).startswith("failed")
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    assert probe(mine, gateway, host_port(theirs)).startswith("failed")
    assert probe(theirs, address(mine, name), 6901).startswith("failed")

    # The portal reaches both, through their ports published on the host's loopback.
    for person, container in ((anna, mine), (ben, theirs)):
        assert requests.get("https://127.0.0.1:%d/" % host_port(container), verify=False,
                            timeout=10).status_code == 401
        page = person.get("/desktop/%s-tiny/" % person.username)  # via ?path=..., the client's page
        assert page.status_code == 200, page.text[:300]


def test_the_desktops_network_is_made_when_missing_and_refused_when_containers_could_talk(
        docker_client, caplog):
    made, operators, unsafe = ("%s-%s-desktops" % (CONTAINER_PREFIX, which)
                               for which in ("made", "operators", "unsafe"))
    labels = {LABEL + "installation": "test"}
    engines = {name: DockerEngine(DOCKER_URL, network=name, network_labels=labels)
               for name in (made, operators, unsafe)}
    try:
        network_id = engines[made].ensure_network()
        attrs = docker_client.networks.get(made).attrs
        assert (attrs["Id"], attrs["Driver"], attrs["Options"][ICC], attrs["Labels"]) == (
            network_id, "bridge", "false", labels)
        assert engines[made].ensure_network() == network_id  # idempotent: no second network
        assert len(docker_client.networks.list(names=[made])) == 1
        # One an operator made (e.g. with a subnet that does not clash with the school's LAN).
        docker_client.networks.create(operators, driver="bridge", options={ICC: "false"})
        engines[operators].ensure_network()
        # One on which containers can reach each other is refused, and the log says what to do.
        docker_client.networks.create(unsafe, driver="bridge")
        with pytest.raises(DesktopError) as refused:
            engines[unsafe].ensure_network()
        assert refused.value.code == "network_unsafe" and refused.value.status == 503
        assert "docker network rm %s" % unsafe in caplog.text
    finally:
        for name in (made, operators, unsafe):
            for network in docker_client.networks.list(names=[name]):
                network.remove()
        for engine in engines.values():
            engine.close()


def test_an_old_desktop_on_the_default_bridge_moves_onto_the_network_at_its_next_start(
        signed_in_portal, docker_client, demo_image):
    portal, _ = signed_in_portal()
    ben = Client(portal.url, "ben")
    ben.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(ben, "tiny", "running")
    ben.post("/api/container/stop", json={"desktop_type": "tiny"})
    wait_status(ben, "tiny", "stopped")
    # As an older release left it: on Docker's default bridge, and no network of our own.
    name = portal.prefix + "-desktops"
    container = container_of(docker_client, portal, "ben-tiny")
    network = docker_client.networks.get(name)
    network.disconnect(container)
    docker_client.networks.get("bridge").connect(container)
    network.remove()
    container.reload()
    assert set(container.attrs["NetworkSettings"]["Networks"]) == {"bridge"}

    assert ben.post("/api/container/start", params={"desktop_type": "tiny"}).status_code == 202
    wait_status(ben, "tiny", "running")
    moved = container_of(docker_client, portal, "ben-tiny")
    assert moved.id == container.id  # resumed, not replaced
    assert set(moved.attrs["NetworkSettings"]["Networks"]) == {name}
    assert docker_client.networks.get(name).attrs["Options"][ICC] == "false"
    assert "moved container %s-ben-tiny onto the network %s" % (portal.prefix, name) in portal.log()


# -- MAX_DESKTOPS under simultaneous starts --

def test_forty_simultaneous_starts_never_exceed_max_desktops(signed_in_portal, docker_client, demo_image,
                                                             tmp_path):
    people = [account("00000000-0000-4000-8000-%012d" % number, "pupil%02d" % number, "pw-%02d" % number)
              for number in range(40)]
    portal, _ = signed_in_portal(users=users_file(tmp_path / "forty.json", *people), MAX_DESKTOPS="10")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        browsers = list(pool.map(lambda p: Person(portal.url, p["username"], p["password"]), people))

    gate = threading.Barrier(len(browsers))

    def start(person):
        gate.wait(30)
        return person.post("/api/container/start", params={"desktop_type": "tiny"})

    with concurrent.futures.ThreadPoolExecutor(len(browsers)) as pool:
        answers = list(pool.map(start, browsers))
    started = [person for person, answer in zip(browsers, answers) if answer.status_code in (200, 202)]
    refused = [answer for answer in answers if answer.status_code == 429]
    assert (len(started), len(refused)) == (10, 30), sorted(answer.status_code for answer in answers)
    assert {answer.json()["error"] for answer in refused} == {"too_many_desktops"}
    for person in started:
        wait_status(person, "tiny", "running")
    ours = docker_client.containers.list(all=True, filters={"name": portal.prefix + "-"})
    assert len(ours) == 10
    # A full host stays full: one more start is refused, and nothing was made for the refused.
    again = next(person for person, answer in zip(browsers, answers) if answer.status_code == 429)
    assert again.post("/api/container/start", params={"desktop_type": "tiny"}).status_code == 429
    assert len(docker_client.containers.list(all=True, filters={"name": portal.prefix + "-"})) == 10


# -- homes belong to a person --

def test_a_reused_username_gets_a_fresh_home_and_the_old_one_is_kept_for_the_admin(
        signed_in_portal, idp, docker_client, containers, demo_image, tmp_path):
    first, second = "7d8a4a8e-1c1b-4cfb-9a3e-000000000a0a", "7d8a4a8e-1c1b-4cfb-9a3e-000000000b0b"
    before = users_file(tmp_path / "before.json", account(first, "max", "max-pw", "Max Alt"), ADMIN)
    portal, provider = signed_in_portal(users=before)
    old_max = Person(portal.url, "max", "max-pw")
    old_max.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(old_max, "tiny", "running")
    old_container = container_of(docker_client, portal, "max-tiny")
    assert old_container.exec_run(["sh", "-c", "echo tagebuch > $HOME/note.txt"]).exit_code == 0
    old_max.post("/api/container/stop", json={"desktop_type": "tiny"})
    wait_status(old_max, "tiny", "stopped")

    # The school gives the account name "max" to a new person (another uuid).
    provider.stop()
    after = users_file(tmp_path / "after.json", account(second, "max", "new-pw", "Max Neu"), ADMIN)
    port = int(provider.base.rsplit(":", 1)[1])
    idp(clients=[(CLIENT_ID, CLIENT_SECRET, "client_secret_basic", portal.url + "/authorize")],
        users=after, port=port)
    new_max = Person(portal.url, "max", "new-pw")
    assert new_max.get("/api/container/status", params={"desktop_type": "tiny"}).json()["status"] == "absent"
    answer = new_max.post("/api/container/start", params={"desktop_type": "tiny"})
    assert answer.status_code == 202, answer.text
    body = wait_status(new_max, "tiny", "running")
    assert body["name"] == "max-tiny-" + short_id(second)

    new_container = container_of(docker_client, portal, body["name"])
    assert new_container.id != old_container.id
    assert new_container.labels[LABEL + "owner"] == second
    assert read_note(new_container).exit_code != 0  # not the predecessor's files
    new_home = {m["Destination"]: m["Name"] for m in new_container.attrs["Mounts"]}["/home/kasm-user"]
    old_home = portal.prefix + "-home-max-tiny"
    assert new_home == portal.prefix + "-home-max-tiny-" + short_id(second)
    assert docker_client.volumes.get(new_home).attrs["Labels"][LABEL + "owner"] == second
    # Nor the predecessor's desktop: it is theirs, stopped and untouched.
    assert new_max.get("/desktop/max-tiny/", allow_redirects=False).status_code == 403
    old_container.reload()
    assert old_container.status == "exited" and old_container.labels[LABEL + "owner"] == first

    admin = Client(portal.url, "admin")
    homes = {home["name"]: home for home in admin.get("/api/admin/homes").json()["homes"]}
    assert set(homes) == {old_home, new_home}
    assert homes[old_home]["owner"] == first and homes[old_home]["username"] == "max"
    assert homes[old_home]["status"] == "kept" and homes[old_home]["username_reused"] is True
    assert homes[old_home]["desktop"] == "max-tiny" and homes[old_home]["owner_known"] is True
    assert homes[new_home]["owner"] == second and homes[new_home]["status"] == "in_use"
    assert homes[new_home]["desktop"] == body["name"]
    assert new_max.get("/api/admin/homes").status_code == 403
    # The old files are all still there.
    assert note_in_volume(containers, demo_image, old_home) == b"tagebuch\n"
    for language, heading in (("de", "Home-Ordner"), ("en", "Home folders")):
        page = admin.get("/admin", headers={"Accept-Language": language}, cookies={"iservdesk_lang": language})
        assert page.status_code == 200 and heading in page.text


def test_a_volume_of_another_person_under_the_desktops_name_is_never_mounted(
        signed_in_portal, docker_client, containers, demo_image):
    portal, _ = signed_in_portal()
    taken = portal.prefix + "-home-anna.schmidt-tiny"
    docker_client.volumes.create(taken, labels={LABEL + "owner": "someone-who-left", LABEL + "user": "anna.schmidt"})
    fill_volume(containers, demo_image, taken, "not for anna")

    anna = Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    body = wait_status(anna, "tiny", "running")
    assert body["name"] == "anna.schmidt-tiny"  # the desktop's name is free, its home is not
    container = container_of(docker_client, portal, "anna.schmidt-tiny")
    mounted = {m["Destination"]: m["Name"] for m in container.attrs["Mounts"]}["/home/kasm-user"]
    assert mounted == taken + "-" + short_id(ANNA_UUID)
    assert read_note(container).exit_code != 0
    assert "home volume %s belongs to someone-who-left" % taken in portal.log()
    assert note_in_volume(containers, demo_image, taken) == b"not for anna\n"

    # A later start finds the same home again (files included), the other stays untouched.
    assert container.exec_run(["sh", "-c", "echo meins > $HOME/note.txt"]).exit_code == 0
    anna.post("/api/container/remove", json={"desktop_type": "tiny"})
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    assert read_note(container_of(docker_client, portal, "anna.schmidt-tiny")).output == b"meins\n"
    admin = Client(portal.url, "admin")
    homes = {home["name"]: home for home in admin.get("/api/admin/homes").json()["homes"]}
    assert homes[taken]["status"] == "kept" and homes[taken]["owner_known"] is False
    assert homes[taken]["username"] == "anna.schmidt" and homes[taken]["desktop"] is None
    assert homes[mounted]["status"] == "in_use" and homes[mounted]["owner"] == ANNA_UUID


def test_unlabelled_volumes_of_older_releases_go_only_to_the_desktop_that_used_them(
        signed_in_portal, docker_client, containers, demo_image, tmp_path):
    portal, _ = signed_in_portal()
    legacy = portal.prefix + "-home-ben-tiny"
    docker_client.volumes.create(legacy)  # no labels: made before volumes carried owners
    fill_volume(containers, demo_image, legacy, "aus alten zeiten")

    # A desktop that never ran does not get it: it could be a new person with an old name.
    ben = Client(portal.url, "ben")
    ben.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(ben, "tiny", "running")
    fresh = container_of(docker_client, portal, "ben-tiny")
    assert {m["Destination"]: m["Name"] for m in fresh.attrs["Mounts"]}["/home/kasm-user"] == \
        legacy + "-" + short_id(BEN_UUID)
    assert read_note(fresh).exit_code != 0

    # The row of an older release that ran with it (no volume recorded) keeps its home.
    ben.post("/api/container/remove", json={"desktop_type": "tiny"})
    wait_status(ben, "tiny", "removed")
    portal.stop()
    con = sqlite3.connect(str(tmp_path / "iservdesk.db"))
    con.execute("UPDATE desktops SET home_volume = NULL WHERE name = 'ben-tiny'")
    con.commit()
    con.close()
    portal.restart()
    ben.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(ben, "tiny", "running")
    resumed = container_of(docker_client, portal, "ben-tiny")
    assert read_note(resumed).output == b"aus alten zeiten\n"
    con = sqlite3.connect(str(tmp_path / "iservdesk.db"))
    assert con.execute("SELECT home_volume FROM desktops WHERE name = 'ben-tiny'").fetchone()[0] == legacy
    con.close()


def test_a_container_named_for_a_desktop_but_owned_by_another_person_is_never_adopted(
        signed_in_portal, docker_client, containers, demo_image, tmp_path):
    portal, _ = signed_in_portal()
    anna, ben = Client(portal.url, "anna.schmidt"), Client(portal.url, "ben")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    anna.post("/api/container/remove", json={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "removed")
    # Ben's container under the name of Anna's desktop, labelled as this installation's.
    impostor = containers.run(demo_image, name=portal.prefix + "-anna.schmidt-tiny",
                              environment={"VNC_PW": "bens-secret", "DEMO_MODE": "tiny"},
                              labels={LABEL + "installation": installation_id(str(tmp_path)),
                                      LABEL + "owner": BEN_UUID, LABEL + "type": "tiny",
                                      LABEL + "desktop": "anna.schmidt-tiny"})
    # The portal reconciles after the engine's start event and leaves it alone ...
    wait_for(lambda: "is found under desktop anna.schmidt-tiny of another person" in portal.log(), 20,
             "the reconciler's warning")
    assert ben.get("/api/container/status", params={"desktop_type": "tiny"}).json()["status"] == "absent"
    # ... and Anna's next start does not take it over either.
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    body = wait_status(anna, "tiny", "error")
    assert "belongs to another account" in body["message"]
    assert "belongs to another person" in portal.log()
    impostor.reload()
    assert impostor.status == "running"
    con = sqlite3.connect(str(tmp_path / "iservdesk.db"))
    assert con.execute("SELECT count(*) FROM desktops WHERE container_id = ?", (impostor.id,)).fetchone()[0] == 0
    con.close()


@pytest.mark.parametrize("language,kept,unknown", [("de", "Aufbewahrt", "Person unbekannt"),
                                                   ("en", "Kept", "Owner unknown")])
def test_the_admin_panel_lists_kept_homes(signed_in_portal, chromium, docker_client, demo_image, language,
                                          kept, unknown):
    import browser
    from selenium.webdriver.common.by import By
    from browser import browser_sign_in

    portal, _ = signed_in_portal()
    left = portal.prefix + "-home-someone-tiny"
    docker_client.volumes.create(left, labels={LABEL + "owner": "someone-who-left", LABEL + "user": "someone"})
    driver = chromium(language=language)
    browser_sign_in(driver, portal.url, "admin")
    driver.get(portal.url + "/admin")
    row = '#homes tr[data-volume="%s"]' % left
    browser.wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row), 20, "the kept home")
    text = driver.find_element(By.CSS_SELECTOR, row).text
    assert kept in text and unknown in text and "someone-who-left" in text, text
    assert driver.find_element(By.CSS_SELECTOR, row).get_attribute("data-status") == "kept"
    browser.save_screenshot(driver, "admin-homes-%s" % language)
