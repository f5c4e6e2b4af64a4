"""Desktops on a real Docker Swarm of three nodes on this machine (scripts/swarm-lab: each
node a dockerd of its own in a network namespace at 198.18.0.1N, the portal at
198.18.0.1), and the acceptance tests of the lifecycle and the proxy on both backends."""

import concurrent.futures
import os
import shutil
import socket
import subprocess

import docker
import pytest
import requests

from conftest import CONTAINER_PREFIX, DOCKER_URL, ROOT, wait_for
from flows import Client, wait_status

LAB = os.path.join(ROOT, "scripts", "swarm-lab")
PREFIX = CONTAINER_PREFIX + "-sw"  # the Swarm portals' CONTAINER_PREFIX: the lab makes its network
PORTS = "7700-7799"
NODES = 3
USERS = ("anna.schmidt", "ben", "max.muster", "mueller", "lehrer", "admin")
# Homes on "shared storage": the lab's nodes all see this machine's files.
SHARED_HOMES = "/var/lib/isdlab/homes"
SHARED = {"HOME_VOLUME_DRIVER": "local", "HOME_VOLUME_OPTIONS": "type=none;o=bind;device=%s/{name}" % SHARED_HOMES}


def lab(*args, check=True):
    result = subprocess.run([LAB] + list(args), capture_output=True, text=True, timeout=300)
    if check and result.returncode:
        pytest.fail("scripts/swarm-lab %s failed (it needs root, iproute2, iptables, util-linux and the "
                    "vxlan module; `make deps` installs them): %s%s" % (" ".join(args), result.stdout,
                                                                       result.stderr), pytrace=False)
    return result


class Swarm:
    manager = "unix:///run/isdlab/1/docker.sock"

    def __init__(self):
        self.clients = {node: docker.DockerClient(base_url="unix:///run/isdlab/%d/docker.sock" % node,
                                                  version="1.41", timeout=60) for node in range(1, NODES + 1)}

    @staticmethod
    def address(node):
        return "198.18.0.1%d" % node

    def node_of(self, address):
        return int(address.rsplit(".", 1)[1]) - 10

    def services(self):
        return self.clients[1].services.list(filters={"name": PREFIX})

    def service(self, desktop):
        """The service of the desktop `desktop` (e.g. anna.schmidt-tiny)."""
        return next(service for service in self.services()
                    if service.attrs["Spec"]["Labels"].get("de.iservdesk.desktop") == desktop)

    def clean(self):
        """Remove what a test's portal made: its services, then the homes on every node."""
        for service in self.services():
            service.remove()
        for client in self.clients.values():
            def gone():
                return not client.containers.list(all=True, filters={"name": PREFIX})
            wait_for(gone, 60, "the desktops of the last test to end")
            for volume in client.volumes.list(filters={"name": PREFIX}):
                volume.remove(force=True)
        for name in os.listdir(SHARED_HOMES):
            if name.startswith(PREFIX):
                shutil.rmtree(os.path.join(SHARED_HOMES, name))

    def close(self):
        for client in self.clients.values():
            client.close()


@pytest.fixture(scope="session")
def swarm(docker_client, demo_image):
    lab("down", check=False)  # what a killed run left behind
    lab("up", "--nodes", str(NODES), "--image", demo_image, "--network", PREFIX + "-desktops",
        "--ports", PORTS.replace("-", ":"))
    instance = Swarm()
    try:
        yield instance
    finally:
        instance.close()
        lab("down", check=False)
        assert not lab("status").stdout.strip().endswith("3.sock"), "the lab was not removed"


@pytest.fixture(params=["engine", "swarm", "swarm-shared"])
def backend(request):
    """Portal settings for each backend: this host's engine, or the lab's Swarm with homes
    on its nodes or on shared storage."""
    if request.param == "engine":
        yield {}
        return
    swarm = request.getfixturevalue("swarm")
    yield {"DOCKER_BACKEND": "swarm", "DOCKER_URL": Swarm.manager, "HOST_PORT_RANGE": PORTS,
           "CONTAINER_PREFIX": PREFIX, **(SHARED if request.param == "swarm-shared" else {})}
    swarm.clean()


@pytest.fixture
def on_swarm(swarm, signed_in_portal):
    """Factory: a portal whose desktops run on the lab's Swarm; (portal, Swarm)."""
    def start(**settings):
        portal, _ = signed_in_portal(DOCKER_BACKEND="swarm", DOCKER_URL=Swarm.manager, HOST_PORT_RANGE=PORTS,
                                     CONTAINER_PREFIX=PREFIX, **settings)
        return portal
    yield start
    swarm.clean()


def started(portal, user, slug="tiny"):
    client = Client(portal.url, user)
    answer = client.post("/api/container/start", params={"desktop_type": slug})
    assert answer.status_code == 202, answer.text
    return client


def test_a_desktop_starts_is_proxied_stops_resumes_and_is_removed_on_each_backend(backend, signed_in_portal):
    portal, _ = signed_in_portal(**backend)
    anna, ben = started(portal, "anna.schmidt"), Client(portal.url, "ben")
    body = wait_status(anna, "tiny", "running")
    assert body["url"] == portal.url + "/desktop/anna.schmidt-tiny/"
    page = anna.get("/desktop/anna.schmidt-tiny/vnc.html")
    assert page.status_code == 200 and "noVNC" in page.text, page.text[:300]
    assert ben.get("/desktop/anna.schmidt-tiny/vnc.html").status_code == 403
    assert anna.post("/api/container/stop", params={"desktop_type": "tiny"}).status_code == 200
    wait_status(anna, "tiny", "stopped")
    assert anna.get("/desktop/anna.schmidt-tiny/vnc.html").status_code == 409
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    assert anna.get("/desktop/anna.schmidt-tiny/vnc.html").status_code == 200
    assert anna.delete("/api/container/remove", params={"desktop_type": "tiny"}).status_code == 200
    wait_status(anna, "tiny", "removed")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    assert anna.get("/desktop/anna.schmidt-tiny/vnc.html").status_code == 200


def desktops_on_engine(backend, portal, desktop):
    """The containers (one engine) or services (Swarm) that the engine has of `desktop`."""
    client = docker.DockerClient(base_url=backend.get("DOCKER_URL", DOCKER_URL), version="1.41", timeout=60)
    try:
        label = {"label": "de.iservdesk.desktop=%s" % desktop}
        if backend.get("DOCKER_BACKEND") == "swarm":
            return [service.name for service in client.services.list(filters=label)]
        return [container.name for container in client.containers.list(all=True, filters={**label, "name": portal.prefix})]
    finally:
        client.close()


def test_starts_at_once_give_one_desktop_which_an_admin_stops_and_removes_on_each_backend(
        backend, signed_in_portal):
    portal, _ = signed_in_portal(**backend)
    anna, admin = Client(portal.url, "anna.schmidt"), Client(portal.url, "admin")
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: anna.post("/api/container/start", params={"desktop_type": "tiny"}),
                                range(20)))
    assert {answer.status_code for answer in answers} <= {200, 202}
    wait_status(anna, "tiny", "running")
    assert len(desktops_on_engine(backend, portal, "anna.schmidt-tiny")) == 1
    listing = admin.get("/api/admin/containers").json()
    entry = next(entry for entry in listing["containers"] if entry["owner"] == "anna.schmidt")
    assert listing["statistics"]["running"] == 1 and entry["host_port"] and entry["container_id"]
    stopped = admin.post("/api/admin/container/%s/stop" % entry["container_id"])
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    wait_status(anna, "tiny", "stopped")
    removed = admin.delete("/api/admin/container/%s/remove" % entry["container_id"])
    assert removed.status_code == 200, removed.text
    wait_status(anna, "tiny", "removed")
    assert desktops_on_engine(backend, portal, "anna.schmidt-tiny") == []


def test_desktops_spread_over_the_nodes_and_the_proxy_reaches_each(on_swarm, swarm):
    portal = on_swarm()
    clients = [started(portal, user) for user in USERS]
    for client in clients:
        wait_status(client, "tiny", "running")
    admin = Client(portal.url, "admin")
    nodes = admin.get("/api/admin/nodes").json()
    assert nodes["backend"] == "swarm"
    by_host = {node["hostname"]: node for node in nodes["nodes"]}
    assert sorted(by_host) == ["isdlab-%d" % node for node in range(1, NODES + 1)]
    # Six desktops of 256 MiB each on three equal nodes: two each.
    assert sorted(len(node["desktops"]) for node in by_host.values()) == [2, 2, 2], by_host
    for node in by_host.values():
        assert node["state"] == "ready" and node["availability"] == "active"
        assert node["reserved"] >= 2 * 256 * 2 ** 20 and node["free"] == node["memory"] - node["reserved"]
    # Each desktop is where the Swarm says, on its node's address, and the proxy reaches it.
    for client, user in zip(clients, USERS):
        name = "%s-tiny" % user
        service = swarm.service(name)
        task = next(task for task in service.tasks() if task["DesiredState"] == "running")
        node = next(node for node in by_host.values() if node["id"] == task["NodeID"])
        assert name in node["desktops"]
        page = client.get("/desktop/%s/vnc.html" % name)
        assert page.status_code == 200 and "noVNC" in page.text


def test_a_home_stays_on_its_node_through_stop_start_and_remove(on_swarm, swarm):
    portal = on_swarm()
    anna = started(portal, "anna.schmidt")
    wait_status(anna, "tiny", "running")
    service = swarm.services()[0]
    task = next(task for task in service.tasks() if task["DesiredState"] == "running")
    node = next(number for number, client in swarm.clients.items()
                if client.info()["Swarm"]["NodeID"] == task["NodeID"])
    home = "%s-home-anna.schmidt-tiny" % PREFIX
    volume = swarm.clients[node].volumes.get(home)
    assert volume.attrs["Labels"]["de.iservdesk.owner"] == "0cfd628e-e095-4b3f-8939-b287627ca408"
    container = swarm.clients[node].containers.list(filters={"name": service.name})[0]
    container.exec_run(["sh", "-c", "echo mine > /home/kasm-user/mark.txt"], user="1000")

    def where():
        running = [task for task in swarm.services()[0].tasks() if task["Status"]["State"] == "running"]
        return running[0]["NodeID"] if running else None
    for step in ("stop", "remove"):
        if step == "stop":
            anna.post("/api/container/stop", params={"desktop_type": "tiny"})
            wait_status(anna, "tiny", "stopped")
        else:
            anna.delete("/api/container/remove", params={"desktop_type": "tiny"})
            wait_status(anna, "tiny", "removed")
            assert not swarm.services()
        anna.post("/api/container/start", params={"desktop_type": "tiny"})
        wait_status(anna, "tiny", "running")
        assert wait_for(where, 30, "the desktop's task") == task["NodeID"], step
        container = swarm.clients[node].containers.list(filters={"name": service.name})[0]
        assert container.exec_run(["cat", "/home/kasm-user/mark.txt"]).output == b"mine\n", step
    # No other node made a home of that name.
    assert [number for number, client in swarm.clients.items()
            if client.volumes.list(filters={"name": home})] == [node]


def probe(address, port):
    """A Python program that prints whether address:port accepts a connection within 3 s."""
    return ("import socket\ntry:\n socket.create_connection((%r, %d), timeout=3).close()\n print('yes')\n"
            "except OSError:\n print('no')") % (address, port)


def connects(address, port, namespace=None):
    """True when a TCP connection to address:port is accepted (from the portal's address,
    or from inside the network namespace of another node)."""
    if namespace is None:
        try:
            socket.create_connection((address, port), timeout=3).close()
            return True
        except OSError:
            return False
    output = subprocess.run(["ip", "netns", "exec", namespace, "python3", "-c", probe(address, port)],
                            capture_output=True, text=True, timeout=30).stdout.strip()
    assert output in ("yes", "no"), output
    return output == "yes"


def test_a_desktops_port_answers_the_portal_only(on_swarm, swarm):
    portal = on_swarm()
    clients = [started(portal, user) for user in USERS[:3]]
    for client in clients:
        wait_status(client, "tiny", "running")
    for service in swarm.services():
        task = next(task for task in service.tasks() if task["Status"]["State"] == "running")
        port = task["Status"]["PortStatus"]["Ports"][0]["PublishedPort"]
        node = next(number for number, client in swarm.clients.items()
                    if client.info()["Swarm"]["NodeID"] == task["NodeID"])
        assert connects(swarm.address(node), port), "the portal must reach %s" % service.name
        other = node % NODES + 1
        assert not connects(swarm.address(node), port, namespace="isdlab-%d" % other), \
            "node %d reached %s on node %d" % (other, service.name, node)
    # Nor does one desktop reach another's port 6901 on the desktops' network.
    containers = [(number, container) for number, client in swarm.clients.items()
                  for container in client.containers.list(filters={"name": PREFIX})]
    addresses = [next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
                 for _, container in containers]
    number, first = containers[0]
    for address in addresses[1:]:
        result = first.exec_run(["python3", "-c", probe(address, 6901)])
        assert result.output.strip() == b"no", "%s reached %s: %s" % (first.name, address, result.output)


def test_a_node_that_goes_away_loses_its_desktops_and_the_rest_keep_working(on_swarm, swarm):
    portal = on_swarm()
    clients = dict((user, started(portal, user)) for user in USERS)
    for client in clients.values():
        wait_status(client, "tiny", "running")
    admin = Client(portal.url, "admin")
    answer = admin.get("/api/admin/nodes").json()
    assert answer["shared_homes"] is False
    nodes = {node["hostname"]: node for node in answer["nodes"]}
    gone = set(nodes["isdlab-3"]["desktops"])
    assert gone
    lab("cut", "3")
    try:
        for name in gone:
            user = name.rsplit("-", 1)[0]
            body = wait_status(clients[user], "tiny", "lost", timeout=120)
            assert body["message"]
            assert clients[user].get("/desktop/%s/vnc.html" % name).status_code == 409
            again = clients[user].post("/api/container/start", params={"desktop_type": "tiny"})
            assert again.status_code == 503 and "server" in again.json()["message"]
        assert requests.get(portal.url + "/healthz", timeout=10).status_code == 200
        nodes = {node["hostname"]: node for node in admin.get("/api/admin/nodes").json()["nodes"]}
        assert nodes["isdlab-3"]["state"] == "down"
        assert sorted(nodes["isdlab-3"]["affected"]) == sorted(nodes["isdlab-3"]["homes"]) and \
            set(nodes["isdlab-3"]["homes"]) >= gone
        # Everyone else keeps working, and a new desktop goes to a node that answers.
        for user, client in clients.items():
            if "%s-tiny" % user not in gone:
                assert client.get("/desktop/%s-tiny/vnc.html" % user).status_code == 200
        lehrer = started(portal, "lehrer", "demo")
        wait_status(lehrer, "demo", "running")
    finally:
        lab("reconnect", "3")
    # Back: the Swarm shuts down what it gave up, the portal shows those desktops stopped,
    # and they start again on their node, with their files.
    for name in gone:
        user = name.rsplit("-", 1)[0]
        body = wait_status(clients[user], "tiny", "stopped", timeout=120)
        assert "files are kept" in body["message"]
        clients[user].post("/api/container/start", params={"desktop_type": "tiny"})
        wait_status(clients[user], "tiny", "running")
        assert clients[user].get("/desktop/%s/vnc.html" % name).status_code == 200


def test_a_drained_node_names_the_desktops_whose_homes_it_holds(on_swarm, swarm):
    portal = on_swarm()
    anna = started(portal, "anna.schmidt")
    wait_status(anna, "tiny", "running")
    admin = Client(portal.url, "admin")
    node = next(node for node in admin.get("/api/admin/nodes").json()["nodes"]
                if "anna.schmidt-tiny" in node["desktops"])
    assert node["homes"] == ["anna.schmidt-tiny"] and node["affected"] == []
    anna.post("/api/container/stop", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "stopped")
    drain(swarm, node["id"], "drain")
    try:
        drained = next(found for found in admin.get("/api/admin/nodes").json()["nodes"] if found["id"] == node["id"])
        assert drained["availability"] == "drain" and drained["affected"] == ["anna.schmidt-tiny"]
        # Not moved silently: its start says the files' server is not available.
        answer = anna.post("/api/container/start", params={"desktop_type": "tiny"})
        assert answer.status_code == 503 and "server" in answer.json()["message"], answer.text
    finally:
        drain(swarm, node["id"], "active")


def test_a_full_swarm_answers_429(on_swarm, swarm, tmp_path):
    memory = swarm.clients[1].info()["MemTotal"]
    portal = on_swarm()
    # A type that reserves 60 % of a node: one per node fits.
    catalog = tmp_path / "desktops.toml"
    catalog.write_text(catalog.read_text() + '\n[desktop.big]\nname.de = "Groß"\nname.en = "Big"\nimage = "%s"\n'
                       'memory = "%dm"\n[desktop.big.environment]\nDEMO_MODE = "tiny"\n'
                       % (devtools_image(), memory * 6 // 10 >> 20))
    portal.stop()
    portal.restart()
    with concurrent.futures.ThreadPoolExecutor(NODES) as pool:
        clients = list(pool.map(lambda user: started(portal, user, "big"), USERS[:NODES]))
    for client in clients:
        wait_status(client, "big", "running")
    answer = Client(portal.url, USERS[NODES]).post("/api/container/start", params={"desktop_type": "big"})
    assert answer.status_code == 429, answer.text
    assert "in use" in answer.json()["message"]
    # A small one still fits.
    small = started(portal, USERS[NODES], "tiny")
    wait_status(small, "tiny", "running")


def devtools_image():
    import devtools
    return devtools.demo_image_tag()


def drain(swarm, node_id, availability):
    api = swarm.clients[1].api
    attrs = api.inspect_node(node_id)
    api.update_node(node_id, attrs["Version"]["Index"], {**attrs["Spec"], "Availability": availability})


def test_the_admin_panel_shows_the_nodes_and_what_a_drain_holds_up_in_chromium(on_swarm, swarm, chromium):
    import browser
    from selenium.webdriver.common.by import By

    portal = on_swarm()
    anna = started(portal, "anna.schmidt")
    wait_status(anna, "tiny", "running")
    anna.post("/api/container/stop", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "stopped")
    node = next(node for node in Client(portal.url, "admin").get("/api/admin/nodes").json()["nodes"]
                if node["homes"] == ["anna.schmidt-tiny"])
    drain(swarm, node["id"], "drain")
    try:
        for language, drained, affected in (("de", "Entleert (drain)", "Starten erst wieder"),
                                            ("en", "Drained", "Cannot start until")):
            driver = chromium(language=language)
            browser.browser_sign_in(driver, portal.url, "admin")
            driver.get(portal.url + "/admin")

            def rows(d):
                found = d.find_elements(By.CSS_SELECTOR, "#nodes tbody tr")
                return found if len(found) == NODES and all(row.is_displayed() for row in found) else None
            shown = browser.wait_until(driver, rows, 20, "the nodes")
            texts = {row.get_attribute("data-node"): row.text for row in shown}
            assert drained in texts[node["hostname"]] and affected in texts[node["hostname"]]
            assert "anna.schmidt-tiny" in texts[node["hostname"]]
            others = [text for hostname, text in texts.items() if hostname != node["hostname"]]
            assert all(drained not in text and affected not in text for text in others), texts
            browser.save_screenshot(driver, "admin-swarm-nodes-%s" % language)
    finally:
        drain(swarm, node["id"], "active")


def iservdesk(tmp_path, command):
    """(exit status, output) of an `iservdesk` command with the Swarm portals' settings."""
    from conftest import iservdesk_command, write_config
    path = write_config(tmp_path / "command.env", DOCKER_BACKEND="swarm", DOCKER_URL=Swarm.manager,
                        HOST_PORT_RANGE=PORTS, CONTAINER_PREFIX=PREFIX)
    result = subprocess.run(iservdesk_command("--config", path, command), cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    return result.returncode, result.stdout + result.stderr


def test_check_verifies_by_its_effect_that_desktops_answer_the_portal_only(on_swarm, swarm, tmp_path):
    portal = on_swarm()
    clients = [started(portal, user) for user in USERS[:NODES]]
    for client in clients:
        wait_status(client, "tiny", "running")
    hosting = {node["hostname"] for node in Client(portal.url, "admin").get("/api/admin/nodes").json()["nodes"]
               if node["desktops"]}
    assert "isdlab-2" in hosting, "the desktops are spread over the nodes"
    code, output = iservdesk(tmp_path, "check")
    assert "OK   Swarm ports: no node reaches a desktop on another node (one desktop on each of %d nodes tried)" \
        % len(hosting) in output, output
    rule = ["-p", "tcp", "-m", "conntrack", "--ctstate", "DNAT", "--ctorigdstport", PORTS.replace("-", ":"),
            "!", "--ctorigsrc", "198.18.0.1", "-j", "DROP"]
    subprocess.run(["nsenter", "--net=/run/netns/isdlab-2", "iptables", "-D", "DOCKER-USER"] + rule, check=True)
    try:
        code, output = iservdesk(tmp_path, "check")
        line = next((line for line in output.splitlines() if line.startswith("FAIL Swarm ports")), "")
        assert "isdlab-1 reached isdlab-2 198.18.0.12:" in line and "isdlab-3 reached isdlab-2" in line, output
        assert "reached isdlab-1" not in line and "reached isdlab-3" not in line, line
        assert code != 0
    finally:
        subprocess.run(["nsenter", "--net=/run/netns/isdlab-2", "iptables", "-I", "DOCKER-USER"] + rule,
                       check=True)


def test_check_and_pull_look_at_every_node(swarm, docker_client, demo_image, tmp_path):
    def run(command):
        return iservdesk(tmp_path, command)
    code, output = run("check")
    for node in range(1, NODES + 1):
        assert "OK   Swarm node: isdlab-%d (198.18.0.1%d): ready, active" % (node, node) in output, output
        assert "OK   Swarm image: %s runs on isdlab-%d" % (demo_image, node) in output, output
    # A node without the image: check names it, and so does pull (nothing can be pulled here).
    swarm.clients[3].images.remove(demo_image, force=True)
    try:
        code, output = run("check")
        assert code != 0 and "FAIL Swarm image: %s on isdlab-3: " % demo_image in output, output
        assert "runs on isdlab-1" in output and "runs on isdlab-2" in output
        code, output = run("pull")
        assert code != 0, output
        assert "on isdlab-3: " in output and "on isdlab-1: ok" in output and "on isdlab-2: ok" in output, output
        assert "the copy here is used" in output
    finally:
        saved = subprocess.Popen(["docker", "save", demo_image], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", "unix:///run/isdlab/3/docker.sock", "load", "-q"], stdin=saved.stdout,
                       check=True, stdout=subprocess.DEVNULL)
        saved.wait()
    assert not swarm.services(), "the probes are removed"


def test_the_swarms_own_ports_are_never_given_to_a_desktop(swarm):
    from iservdesk.desktops.swarm import SwarmEngine
    engine = SwarmEngine(Swarm.manager, port_range=range(7946, 7948))
    try:
        port = engine.reserve()[0]
        assert port == 7947, "7946 is every node's gossip port"
    finally:
        engine.close()


def test_shared_homes_take_files_in_and_out_and_follow_a_desktop_to_another_node(on_swarm, swarm):
    portal = on_swarm(**SHARED)
    anna = started(portal, "anna.schmidt")
    wait_status(anna, "tiny", "running")
    home = "%s-home-anna.schmidt-tiny" % PREFIX
    folder = os.path.join(SHARED_HOMES, home)
    assert os.stat(folder).st_uid == 1000, "the home's folder belongs to the desktop's user"
    answer = anna.put("/api/upload/home", params={"desktop_type": "tiny", "name": "Referat.txt"},
                      data=b"shared\n")
    assert answer.status_code in (200, 201), answer.text

    def running_on():
        tasks = [task for task in swarm.service("anna.schmidt-tiny").tasks() if task["Status"]["State"] == "running"]
        if not tasks:
            return None
        number = next(number for number, client in swarm.clients.items()
                      if client.info()["Swarm"]["NodeID"] == tasks[0]["NodeID"])
        return number, tasks[0]["NodeID"]

    def read_inside(number):
        container = swarm.clients[number].containers.list(filters={"label": "de.iservdesk.desktop=anna.schmidt-tiny"})[0]
        return container.exec_run(["cat", "/home/kasm-user/Uploads/Referat.txt"]).output

    first, node_id = wait_for(running_on, 30, "anna's task")
    assert read_inside(first) == b"shared\n"
    nodes = Client(portal.url, "admin").get("/api/admin/nodes").json()
    assert nodes["shared_homes"] is True and not any(node["homes"] for node in nodes["nodes"]), \
        "shared homes pin no desktop to a node"
    anna.post("/api/container/stop", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "stopped")
    drain(swarm, node_id, "drain")
    try:
        anna.post("/api/container/start", params={"desktop_type": "tiny"})
        wait_status(anna, "tiny", "running")
        second, _ = wait_for(running_on, 30, "anna's task")
        assert second != first, "the drained node runs nothing"
        assert read_inside(second) == b"shared\n"
        listed = anna.get("/api/files", params={"desktop_type": "tiny", "path": "Uploads"}).json()
        assert [entry["name"] for entry in listed["entries"]] == ["Referat.txt"]
        assert anna.get("/api/files/download", params={"desktop_type": "tiny", "path": "Uploads/Referat.txt"}
                        ).content == b"shared\n"
    finally:
        drain(swarm, node_id, "active")
