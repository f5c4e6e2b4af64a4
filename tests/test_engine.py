"""The desktops package's parts on their own: the Docker engine behind the Engine contract
(real engine, real containers), the screenshot through the proxy's TLS client, and the
reconciliation planner as the pure function it is (rows and containers in, repairs out)."""

import dataclasses
import datetime
import uuid

import pytest

from conftest import CONTAINER_PREFIX, DOCKER_URL, NAME_PREFIX, RUN_ID, TEST_LABEL
from iservdesk import proxy
from iservdesk.desktops import Status
from iservdesk.desktops.docker import DockerEngine
from iservdesk.desktops.engine import Container, ContainerExists, DesktopSpec
from iservdesk.desktops.reconcile import plan
from iservdesk.errors import DesktopUnreachable, NoFreePort
from upstream import Upstream

NOW = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def engine(docker_client):
    network = "%s-engine-%s" % (CONTAINER_PREFIX, uuid.uuid4().hex[:6])
    instance = DockerEngine(DOCKER_URL, port_range=range(7600, 7700), network=network,
                            network_labels={TEST_LABEL: RUN_ID})
    yield instance
    for container in docker_client.containers.list(all=True, filters={"label": "%s=%s" % (TEST_LABEL, RUN_ID)}):
        if container.name.startswith(NAME_PREFIX + RUN_ID + "-engine"):
            container.remove(force=True, v=True)
    for found in docker_client.networks.list(names=[network]):
        found.remove()
    instance.close()


def spec(demo_image, home, **changes):
    base = DesktopSpec(name="%s%s-engine-%s" % (NAME_PREFIX, RUN_ID, uuid.uuid4().hex[:6]), image=demo_image,
                       container_port=6901, environment={"VNC_PW": "pw", "DEMO_MODE": "tiny"},
                       labels={TEST_LABEL: RUN_ID}, home=home, shm_size="64m", memory="256m", cpus=1, pids=128)
    return dataclasses.replace(base, **changes)


def test_a_desktop_is_created_on_loopback_reached_by_its_port_and_its_files_outlive_a_stop(
        engine, docker_client, demo_image):
    home = "%s-engine-home-%s" % (CONTAINER_PREFIX, uuid.uuid4().hex[:6])
    engine.create_home(home, {TEST_LABEL: RUN_ID})
    try:
        made = engine.create(spec(demo_image, home))
        assert made.running and 7600 <= made.host_port < 7700
        binding = docker_client.containers.get(made.id).attrs["HostConfig"]["PortBindings"]["6901/tcp"][0]
        assert binding == {"HostIp": "127.0.0.1", "HostPort": str(made.host_port)}
        assert engine.inspect(made.id) == made and engine.list({TEST_LABEL: RUN_ID})
        with pytest.raises(ContainerExists):
            engine.create(spec(demo_image, home, name=made.name))

        engine.stop(made.id)
        assert not engine.inspect(made.id).running
        # Files go in and out of a stopped desktop, owned by its user.
        engine.write_file(made.id, "/home/kasm-user/worksheet.txt", b"\x00binary\xffdata")
        assert engine.read_file(made.id, "/home/kasm-user/worksheet.txt") == b"\x00binary\xffdata"
        assert engine.read_file(made.id, "/home/kasm-user/missing.txt") is None
        again = engine.start(made.id)
        assert again.running and again.id == made.id
        owner = docker_client.containers.get(made.id).exec_run(["stat", "-c", "%u", "/home/kasm-user/worksheet.txt"])
        assert owner.output.strip() == b"1000"
        engine.remove(made.id)
        engine.remove(made.id)  # idempotent
        assert engine.inspect(made.id) is None
        # The home stays, with the file.
        assert engine.home(home) is not None
    finally:
        docker_client.volumes.get(home).remove(force=True)


def test_a_full_port_range_is_refused_at_once_by_reserve(docker_client):
    full = DockerEngine(DOCKER_URL, port_range=range(0))
    with pytest.raises(NoFreePort):
        full.reserve()
    full.close()


def test_a_screenshot_comes_through_the_proxys_tls_client_with_the_owners_credentials(engine):
    jpeg = b"\xff\xd8\xff\xe0" + b"x" * 1000 + b"\xff\xd9"
    upstream = Upstream(lambda head, body: b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d"
                                           b"\r\n\r\n%s" % (len(jpeg), jpeg))
    try:
        assert engine.screenshot(upstream.port, "s3cret", 320, 180) == jpeg
        assert upstream.requests[-1][0].startswith("GET /api/get_screenshot?width=320&height=180 HTTP/1.1")
        assert upstream.headers()["authorization"] == "Basic a2FzbV91c2VyOnMzY3JldA=="
    finally:
        upstream.close()
    refusing = Upstream(lambda head, body: b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
    try:
        with pytest.raises(proxy.UpstreamError):
            proxy.screenshot(refusing.port, "wrong", 320, 180)
        with pytest.raises(DesktopUnreachable):
            engine.screenshot(refusing.port, "wrong", 320, 180)
    finally:
        refusing.close()


# -- the planner: a pure function --

@dataclasses.dataclass
class User:
    uuid: str
    username: str


@dataclasses.dataclass
class Row:
    id: int
    name: str
    user: User
    desktop_type: str
    status: str
    container_id: str = None


ANNA, BEN = User("uuid-anna", "anna"), User("uuid-ben", "ben")


def container(id, owner, state="running", desktop=None, slug="tiny"):
    labels = {"de.iservdesk.owner": owner.uuid, "de.iservdesk.type": slug,
              "de.iservdesk.desktop": desktop or "%s-%s" % (owner.username, slug)}
    return Container(id=id, name="c-" + id, state=state, labels=labels, host_port=7001, environment={})


def repairs(rows, containers, busy=()):
    result = plan(rows, containers, set(busy), {"tiny", "demo"}, {ANNA.uuid: ANNA, BEN.uuid: BEN}, NOW)
    return {repair.desktop: (repair.text, dict(repair.fields)) for repair in result.repairs}, result


def test_the_plan_repairs_each_way_a_row_and_the_engine_can_disagree():
    rows = [Row(1, "anna-tiny", ANNA, "tiny", Status.RUNNING, "a" * 12),   # container gone
            Row(2, "anna-demo", ANNA, "demo", Status.RUNNING, "b" * 12),   # stopped outside
            Row(3, "ben-tiny", BEN, "tiny", Status.STOPPED, "c" * 12),     # running again
            Row(4, "ben-demo", BEN, "demo", Status.STARTING, None)]        # its start died
    found, _ = repairs(rows, [container("b" * 12, ANNA, "exited", slug="demo"), container("c" * 12, BEN)])
    assert {name: text for name, (text, _) in found.items()} == {
        "anna-tiny": "container gone", "anna-demo": "stopped", "ben-tiny": "running again",
        "ben-demo": "interrupted start"}
    assert found["anna-demo"][1]["stopped_at"] == NOW and found["anna-tiny"][1]["container_id"] is None


def test_the_plan_marks_desktops_of_a_node_that_is_away_lost_and_back_as_the_node_says():
    rows = [Row(1, "anna-tiny", ANNA, "tiny", Status.RUNNING, "a" * 12),   # its node went away
            Row(2, "anna-demo", ANNA, "demo", Status.LOST, "b" * 12),      # back, and running
            Row(3, "ben-tiny", BEN, "tiny", Status.LOST, "c" * 12),        # back, shut down
            Row(4, "ben-demo", BEN, "demo", Status.LOST, "d" * 12)]        # still away
    found, _ = repairs(rows, [container("a" * 12, ANNA, "lost"), container("b" * 12, ANNA, slug="demo"),
                              container("c" * 12, BEN, "exited"), container("d" * 12, BEN, "lost", slug="demo")])
    assert {name: (text, fields["status"]) for name, (text, fields) in found.items()} == {
        "anna-tiny": ("lost with its node ?", Status.LOST), "anna-demo": ("running again", Status.RUNNING),
        "ben-tiny": ("stopped", Status.STOPPED)}
    assert "files are kept" in found["ben-tiny"][1]["message"]


def test_the_plan_leaves_busy_desktops_alone_and_adopts_only_what_is_its_owners():
    rows = [Row(1, "anna-tiny", ANNA, "tiny", Status.STARTING, None)]
    # The start job's own container, before the row names it: not adopted, not interrupted.
    found, _ = repairs(rows, [container("a" * 12, ANNA)], busy={"anna-tiny"})
    assert found == {}
    # Without a row: adopted into a new row of its owner's; another person's name is not taken.
    found, result = repairs([Row(2, "anna-demo", ANNA, "demo", Status.REMOVED)],
                            [container("d" * 12, BEN, desktop="anna-demo", slug="demo"),
                             container("e" * 12, ANNA, slug="tiny"),
                             container("f" * 12, User("uuid-nobody", "x"))])
    assert list(found) == ["anna-tiny"] and found["anna-tiny"][0] == "adopted container c-" + "e" * 12
    assert [stray.id for stray in result.strays] == ["f" * 12]
    assert any("another person" in note for note in result.notes)
    # A container labelled as another person's is let go of by the row that names it.
    found, _ = repairs([Row(3, "anna-tiny", ANNA, "tiny", Status.RUNNING, "g" * 12)], [container("g" * 12, BEN)])
    assert found["anna-tiny"][0].startswith("let go of another person's container")
