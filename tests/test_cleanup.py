"""iservdesk cleanup against a real portal, the real engine and real SQLite files.

Passes run in-process (cleanup.run with a chosen `now`) and as the real command. Where a
test needs history ("last used three hours ago"), it rewrites the timestamps in the
database; the clock of a pass is always passed in, never patched.
"""

import datetime
import os
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import ROOT, container_of, iservdesk_command, wait_for, write_config
from flows import Client, wait_status
from proxying import open_ws
from iservdesk import cleanup, cli, config as configmodule, db, sessions

LABEL = "de.iservdesk."
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
ANNA_UUID = "0cfd628e-e095-4b3f-8939-b287627ca408"
BEN_UUID = "31a3421d-cbf0-4679-976c-82d52839f0a5"


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def stamp(moment):
    return moment.strftime(db.UTCDateTimeField.FORMAT)


class State:
    """The portal's SQLite file, read and rewritten behind its back with plain sqlite3."""

    def __init__(self, path):
        self.path = path

    def execute(self, sql, *params):
        con = sqlite3.connect(self.path, isolation_level=None, timeout=15)
        con.row_factory = sqlite3.Row
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def row(self, name):
        rows = self.execute("SELECT * FROM desktops WHERE name = ?", name)
        return rows[0] if rows else None

    def age(self, name, **fields):
        """Move the row's timestamps into the past: field=timedelta ago."""
        now = utcnow()
        for field, ago in fields.items():
            self.execute("UPDATE desktops SET %s = ? WHERE name = ?" % field, stamp(now - ago), name)

    def events(self, action=None):
        rows = self.execute("SELECT actor, action, target FROM events ORDER BY id")
        return [tuple(row) for row in rows if action is None or row["action"] == action]


def config_path_of(portal, tmp_path):
    return str(tmp_path / ("portal-%s.env" % portal.url.rsplit(":", 1)[1]))


def cleaner(config_path):
    """(config, Desktops, database) for in-process passes over a portal's engine and database."""
    config = configmodule.load(config_path, environ={})
    database, desktops = cli.open_desktops(config)
    return config, desktops, database


def fresh_cleaner(tmp_path):
    """cleaner() over a new, migrated database (no portal)."""
    path = write_config(tmp_path / "cleanup.env")
    config = configmodule.load(path, environ={})
    db.migrate(db.open_database(config.database_uri))
    return cleaner(path)


def run_command(*args, env=None):
    return subprocess.run(iservdesk_command(*args), cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def start(client, slug):
    client.post("/api/container/start", params={"desktop_type": slug})
    return wait_status(client, slug, "running")


@pytest.fixture
def site(signed_in_portal, docker_client, demo_image, tmp_path):
    """A portal with its identity provider -> (portal, State of its database, its config file)."""
    portal, _ = signed_in_portal()
    return portal, State(str(tmp_path / "iservdesk.db")), config_path_of(portal, tmp_path)


def test_idle_and_long_stopped_desktops_go_while_a_connected_one_stays(site, docker_client):
    portal, state, config_path = site
    anna, ben, max_ = (Client(portal.url, name) for name in ("anna.schmidt", "ben", "max.muster"))
    start(anna, "tiny")
    start(ben, "demo")
    start(max_, "tiny")
    max_.post("/api/container/stop", json={"desktop_type": "tiny"})
    wait_status(max_, "tiny", "stopped")
    # History: Anna and Ben last used their desktops three hours ago; Max stopped his a week
    # and half an hour ago.
    for name in ("anna.schmidt-tiny", "ben-demo"):
        state.age(name, last_access_at=3 * HOUR, started_at=3 * HOUR)
    state.age("max.muster-tiny", stopped_at=7 * DAY + HOUR / 2)
    anna_used_at = db.UTCDateTimeField().python_value(state.row("anna.schmidt-tiny")["last_access_at"])

    # Ben opens his desktop now, and keeps it open.
    viewer = open_ws(portal, "ben-demo", ben.session_id)
    assert viewer.recv().startswith(b"RFB 003.00")
    config, desktops, database = cleaner(config_path)
    assert (config.idle_timeout, config.remove_stopped_after) == (2 * HOUR, 7 * DAY)

    # A minute short of IDLE_TIMEOUT, Anna's desktop is not idle yet (nor Max's stopped long enough).
    early = cleanup.run(config, desktops, database, anna_used_at + 2 * HOUR - datetime.timedelta(minutes=1))
    assert (early.stopped, early.removed, early.error) == ([], [], "")

    now = utcnow()
    planned = cleanup.run(config, desktops, database, now, dry_run=True)
    assert (planned.stopped, planned.removed) == (["anna.schmidt-tiny"], ["max.muster-tiny"])
    assert planned.summary().startswith("cleanup (dry run, nothing changed): 1 idle desktops stopped, "
                                        "1 stopped desktops removed")
    assert state.row("anna.schmidt-tiny")["status"] == "running"
    assert container_of(docker_client, portal, "max.muster-tiny") is not None

    report = cleanup.run(config, desktops, database, now)
    assert (report.stopped, report.removed, report.error) == (["anna.schmidt-tiny"], ["max.muster-tiny"], "")
    anna_row = state.row("anna.schmidt-tiny")
    assert anna_row["status"] == "stopped" and "2 hours without use" in anna_row["message"]
    assert anna_row["stopped_at"] == stamp(now)
    assert container_of(docker_client, portal, "anna.schmidt-tiny").status == "exited"
    assert "without use" in wait_status(anna, "tiny", "stopped")["message"]  # the portal shows it
    assert container_of(docker_client, portal, "max.muster-tiny") is None
    assert docker_client.volumes.get(portal.prefix + "-home-max.muster-tiny")  # files stay
    assert state.row("max.muster-tiny")["status"] == "removed"
    assert ("cleanup", "desktop.stop", "anna.schmidt-tiny") in state.events()
    assert ("cleanup", "desktop.remove", "max.muster-tiny") in state.events()

    # The connected desktop runs on, and its viewer is still connected.
    assert container_of(docker_client, portal, "ben-demo").status == "running"
    assert state.row("ben-demo")["status"] == "running"
    viewer.send_binary(b"RFB 003.008\n")
    assert viewer.recv()  # the server's security types
    viewer.close()

    again = cleanup.run(config, desktops, database, now)
    assert (again.stopped, again.removed, again.repairs) == ([], [], [])
    # Stopped now, removed a week later; the portal resumes it meanwhile.
    later = cleanup.run(config, desktops, database, now + 7 * DAY + datetime.timedelta(seconds=1))
    assert "anna.schmidt-tiny" in later.removed
    assert later.sessions == 3  # a week on, every session has expired too
    anna = Client(portal.url, "anna.schmidt")
    assert start(anna, "tiny")["status"] == "running"


def test_cleanup_command_prints_one_summary_line_and_logs_each_action(site, docker_client):
    portal, state, config_path = site
    anna = Client(portal.url, "anna.schmidt")
    start(anna, "tiny")
    state.age("anna.schmidt-tiny", last_access_at=5 * HOUR)

    dry = run_command("--config", config_path, "cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "cleanup (dry run, nothing changed): 1 idle desktops stopped, 0 stopped desktops removed, "
        "0 stray containers removed (0 waiting), 0 records repaired, 0 expired sessions and 0 abandoned "
        "sign-ins deleted"]
    assert ("cleanup would stop desktop anna.schmidt-tiny: unused for 5 hours (IDLE_TIMEOUT 2 hours)"
            in dry.stderr)
    assert state.row("anna.schmidt-tiny")["status"] == "running"

    done = run_command("--config", config_path, "cleanup")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cleanup: 1 idle desktops stopped,") and done.stdout.count("\n") == 1
    actions = [line for line in done.stderr.splitlines() if "cleanup stopped" in line]
    assert actions == ["INFO iservdesk.cleanup: cleanup stopped desktop anna.schmidt-tiny: "
                       "unused for 5 hours (IDLE_TIMEOUT 2 hours)"]
    assert container_of(docker_client, portal, "anna.schmidt-tiny").status == "exited"
    wait_status(anna, "tiny", "stopped")


def test_unreachable_engine_exits_1_after_expiring_sessions(tmp_path, docker_client):
    config_path = write_config(tmp_path / "cleanup.env")
    assert run_command("--config", config_path, "init-db").returncode == 0
    state = State(str(tmp_path / "iservdesk.db"))
    state.execute("INSERT INTO users (uuid, username, created_at) VALUES ('u-1', 'anna', ?)", stamp(utcnow()))
    old = utcnow() - DAY
    state.execute("INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at) "
                  "VALUES ('h', 1, ?, ?, ?)", stamp(old), stamp(old), stamp(old + 12 * HOUR))

    no_engine = "unix://" + str(tmp_path / "no.sock")
    result = run_command("--config", config_path, "cleanup", env={"DOCKER_URL": no_engine})
    assert result.returncode == 1
    assert result.stdout.startswith("cleanup: ") and result.stdout.count("\n") == 1
    assert "1 expired sessions" in result.stdout and "the Docker engine did not answer" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "iservdesk: The Docker engine at %s does not answer: socket not found" % no_engine)
    assert state.execute("SELECT count(*) FROM sessions")[0][0] == 0


def test_sessions_and_sign_ins_expire_at_the_chosen_time(tmp_path, docker_client):
    config, desktops, database = fresh_cleaner(tmp_path)
    t0 = datetime.datetime(2026, 11, 26, 7, 45, tzinfo=datetime.timezone.utc)
    policy = sessions.Policy.from_config(config)
    with database.connection_context():
        user = db.User.create(uuid="u-1", username="anna")
        sessions.create(user, policy, t0)
        db.Login.create(state_hash="s", browser_hash="b", nonce="n", code_verifier="v", created_at=t0)

    early = cleanup.run(config, desktops, database, t0 + datetime.timedelta(minutes=30))
    assert (early.sessions, early.logins) == (0, 0)
    at_idle = t0 + config.session_idle_timeout
    planned = cleanup.run(config, desktops, database, at_idle, dry_run=True)
    assert (planned.sessions, planned.logins) == (1, 1)
    with database.connection_context():
        assert (db.Session.select().count(), db.Login.select().count()) == (1, 1)
    report = cleanup.run(config, desktops, database, at_idle)
    assert (report.sessions, report.logins, report.error) == (1, 1, "")
    with database.connection_context():
        assert (db.Session.select().count(), db.Login.select().count()) == (0, 0)


def test_abandoned_sign_ins_outlive_the_sign_in_window():
    from iservdesk.web import auth
    assert cleanup.ABANDONED_LOGIN >= auth.LOGIN_TTL


def test_labelled_containers_are_adopted_or_after_a_grace_removed_and_gone_ones_forgotten(
        tmp_path, containers, docker_client, demo_image):
    config, desktops, database = fresh_cleaner(tmp_path)
    ours = {LABEL + "installation": desktops.labels[LABEL + "installation"]}
    t0 = utcnow()
    with database.connection_context():
        anna = db.User.create(uuid=ANNA_UUID, username="anna.schmidt")
        gone = db.Desktop.create(user=anna, desktop_type="demo", name="anna.schmidt-demo", status="stopped",
                                 container_id="f" * 64, host_port=None, stopped_at=t0)
    environment = {"VNC_PW": "secret-of-the-container", "DEMO_MODE": "tiny"}
    # Anna's tiny desktop, created by an older copy of the database (restored from a backup).
    orphan = containers.run(demo_image, environment=environment, labels={
        **ours, LABEL + "owner": ANNA_UUID, LABEL + "type": "tiny", LABEL + "desktop": "anna.schmidt-tiny"})
    home = docker_client.volumes.create(config.container_prefix + "-home-nobody-tiny")
    # A user nobody here knows, and a desktop type the catalog does not have.
    stranger = containers.run(demo_image, environment=environment,
                              volumes={home.name: {"bind": "/home/kasm-user"}},
                              labels={**ours, LABEL + "owner": "unknown-uuid", LABEL + "type": "tiny"})
    retired = containers.run(demo_image, environment=environment, labels={
        **ours, LABEL + "owner": ANNA_UUID, LABEL + "type": "windows"})
    foreign = containers.run(demo_image, environment=environment, labels={
        LABEL + "installation": "another-one", LABEL + "owner": "unknown-uuid", LABEL + "type": "tiny"})

    first = cleanup.run(config, desktops, database, t0)
    assert sorted(first.repairs) == ["anna.schmidt-demo: container gone",
                                     "anna.schmidt-tiny: adopted container %s" % orphan.name]
    assert sorted(first.strays_waiting) == sorted([stranger.name, retired.name])
    with database.connection_context():
        adopted = db.Desktop.get(db.Desktop.name == "anna.schmidt-tiny")
        assert (adopted.container_id, adopted.status, adopted.secret) == (orphan.id, "running",
                                                                          "secret-of-the-container")
        assert db.Desktop.get_by_id(gone.id).status == "removed"

    # A stray is removed only once it has been seen as one for STRAY_GRACE.
    strays = sorted([stranger.name, retired.name])
    almost = t0 + cleanup.STRAY_GRACE - datetime.timedelta(seconds=1)
    waiting = cleanup.run(config, desktops, database, almost)
    assert (waiting.strays_removed, sorted(waiting.strays_waiting)) == ([], strays)
    planned = cleanup.run(config, desktops, database, t0 + cleanup.STRAY_GRACE, dry_run=True)
    assert sorted(planned.strays_removed) == strays
    stranger.reload()  # the dry run left it (NotFound otherwise)
    report = cleanup.run(config, desktops, database, t0 + cleanup.STRAY_GRACE)
    assert sorted(report.strays_removed) == strays
    remaining = {c.id for c in docker_client.containers.list(all=True)}
    assert stranger.id not in remaining and retired.id not in remaining
    assert orphan.id in remaining and foreign.id in remaining  # adopted, and another installation's
    assert docker_client.volumes.get(home.name)  # home volumes are never deleted
    home.remove()
    with database.connection_context():
        assert db.KeyValue.select().where(db.KeyValue.name.startswith(cleanup.STRAY_MARK)).count() == 0
        assert db.Event.select().where(db.Event.action == "container.remove").count() == 2


def test_a_stray_seen_for_the_first_time_is_never_removed(tmp_path, containers, docker_client, demo_image):
    config, desktops, database = fresh_cleaner(tmp_path)
    stray = containers.run(demo_image, environment={"VNC_PW": "x", "DEMO_MODE": "tiny"}, labels={
        LABEL + "installation": desktops.labels[LABEL + "installation"], LABEL + "owner": "unknown", LABEL + "type": "tiny"})
    # However late the first pass is: the grace counts from when cleanup first saw it.
    report = cleanup.run(config, desktops, database, utcnow() + 30 * DAY)
    assert (report.strays_removed, report.strays_waiting) == ([], [stray.name])
    stray.reload()
    assert stray.status == "running"


def test_two_cleanups_at_once_do_each_thing_once(site, docker_client):
    portal, state, config_path = site
    users = [Client(portal.url, name) for name in ("anna.schmidt", "ben", "max.muster", "mueller")]
    for user in users:
        user.post("/api/container/start", params={"desktop_type": "tiny"})
    for user in users:
        wait_status(user, "tiny", "running")
    for user in users[:3]:
        state.age(user.username + "-tiny", last_access_at=3 * HOUR)
    users[3].post("/api/container/stop", json={"desktop_type": "tiny"})
    wait_status(users[3], "tiny", "stopped")
    state.age("mueller-tiny", stopped_at=8 * DAY)

    processes = [subprocess.Popen(iservdesk_command("--config", config_path, "cleanup"), cwd=ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    results = [(process.wait(120), *process.communicate()) for process in processes]
    for status, out, err in results:
        assert status == 0, err
        assert "Traceback" not in err and "ERROR" not in err, err
    stopped = sum(int(out.split(": ", 1)[1].split(" idle")[0]) for _, out, _ in results)
    assert stopped == 3  # each desktop stopped by exactly one of them
    by_cleanup = [(action, target) for actor, action, target in state.events() if actor == "cleanup"]
    assert sorted(by_cleanup) == [("desktop.remove", "mueller-tiny"), ("desktop.stop", "anna.schmidt-tiny"),
                                  ("desktop.stop", "ben-tiny"), ("desktop.stop", "max.muster-tiny")]
    for user in users[:3]:
        assert "without use" in wait_status(user, "tiny", "stopped")["message"]
        assert container_of(docker_client, portal, user.username + "-tiny").status == "exited"
    assert container_of(docker_client, portal, "mueller-tiny") is None
    assert "reconciled" not in portal.log()  # the portal saw nothing it had to repair


def test_cleanup_during_starts_leaves_the_portals_jobs_alone(site, docker_client):
    portal, state, config_path = site
    users = [Client(portal.url, name) for name in ("anna.schmidt", "ben", "max.muster", "mueller", "admin")]
    # One desktop to resume: stopped, so its start job starts the existing container.
    start(users[0], "tiny")
    users[0].post("/api/container/stop", json={"desktop_type": "tiny"})
    wait_status(users[0], "tiny", "stopped")
    resumed = container_of(docker_client, portal, "anna.schmidt-tiny").id

    config, desktops, database = cleaner(config_path)
    passes, done, failures = [], threading.Event(), []  # (began, ended, report)

    def keep_cleaning():
        try:
            while not done.is_set():
                began = time.monotonic()
                report = cleanup.run(config, desktops, database, utcnow())
                passes.append((began, time.monotonic(), report))
        except Exception as error:  # reported below: a thread's exception would vanish
            failures.append(error)
    cleaner_thread = threading.Thread(target=keep_cleaning)
    cleaner_thread.start()
    try:
        wait_for(lambda: len(passes) >= 2, 30, "two cleanup passes")
        first_click = time.monotonic()
        for user in users:
            for slug in ("demo", "tiny"):
                user.post("/api/container/start", params={"desktop_type": slug})
        for user in users:
            for slug in ("demo", "tiny"):
                wait_status(user, slug, "running", timeout=120)
        all_running = time.monotonic()
        count = len(passes)
        wait_for(lambda: len(passes) >= count + 2, 30, "two more passes")
    finally:
        done.set()
        cleaner_thread.join(60)
    assert not failures, failures
    overlapping = [report for began, ended, report in passes if ended > first_click and began < all_running]
    assert len(overlapping) >= 5, "only %d passes overlapped %.1f s of starts" % (
        len(overlapping), all_running - first_click)
    reports = [report for _, _, report in passes]
    for report in reports:
        assert (report.repairs, report.stopped, report.removed, report.strays_removed, report.strays_waiting,
                report.error) == ([], [], [], [], [], ""), report
    for user in users:
        for slug in ("demo", "tiny"):
            row = state.row("%s-%s" % (user.username, slug))
            container = container_of(docker_client, portal, row["name"])
            assert (row["status"], row["container_id"]) == ("running", container.id)
    assert container_of(docker_client, portal, "anna.schmidt-tiny").id == resumed
    log = portal.log()
    for trouble in ("reconciled", "failed to start", "interrupted"):
        assert trouble not in log, log


def test_a_container_of_another_person_under_a_desktops_name_is_neither_adopted_nor_kept(
        tmp_path, containers, docker_client, demo_image, caplog):
    config, desktops, database = fresh_cleaner(tmp_path)
    ours = {LABEL + "installation": desktops.labels[LABEL + "installation"]}
    environment = {"VNC_PW": "bens-secret", "DEMO_MODE": "tiny"}
    # Ben's containers: one labelled as Anna's tiny desktop, one that an older release (which
    # adopted by name) linked to Anna's demo desktop.
    named = containers.run(demo_image, environment=environment, labels={
        **ours, LABEL + "owner": BEN_UUID, LABEL + "type": "tiny", LABEL + "desktop": "anna.schmidt-tiny"})
    linked = containers.run(demo_image, environment=environment, labels={
        **ours, LABEL + "owner": BEN_UUID, LABEL + "type": "demo", LABEL + "desktop": "anna.schmidt-demo"})
    with database.connection_context():
        anna = db.User.create(uuid=ANNA_UUID, username="anna.schmidt")
        db.User.create(uuid=BEN_UUID, username="ben")
        db.Desktop.create(user=anna, desktop_type="tiny", name="anna.schmidt-tiny", status="removed")
        db.Desktop.create(user=anna, desktop_type="demo", name="anna.schmidt-demo", status="running",
                          container_id=linked.id, secret="bens-secret")

    t0 = utcnow()
    first = cleanup.run(config, desktops, database, t0)
    assert first.repairs == ["anna.schmidt-demo: let go of another person's container %s" % linked.name]
    assert (first.strays_waiting, first.error) == ([], "")
    second = cleanup.run(config, desktops, database, t0 + HOUR)
    assert (second.repairs, second.strays_waiting, second.strays_removed) == ([], [], [])
    with database.connection_context():
        rows = {row.name: row for row in db.Desktop.select()}
    assert set(rows) == {"anna.schmidt-tiny", "anna.schmidt-demo"}  # nothing made for Ben
    assert {row.container_id for row in rows.values()} == {None}
    assert rows["anna.schmidt-demo"].secret is None
    for container in (named, linked):
        container.reload()
        assert container.status == "running"  # left alone
    assert "is found under desktop anna.schmidt-tiny of another person" in caplog.text
    assert "is found under desktop anna.schmidt-demo of another person" in caplog.text
