"""The start queue with a real portal and real demo desktops (START_CONCURRENCY=1): starts
beyond the slots wait in the fair order and see their place live over /api/events, never
more than one desktop is created and booting at once, a waiting start can be cancelled,
and waiting starts survive a restart of the portal. The queue's rules on their own are
test_queue.py's."""

import json
import threading
import time

import requests

from flows import Client, wait_status
from proxying import database, row_of


class Events:
    """Every desktop event of an admin's /api/events stream, with the time it arrived."""

    def __init__(self, portal, client):
        self.seen = []
        self.response = requests.get(portal.url + "/api/events", cookies=client.browser.cookies, stream=True,
                                     timeout=60)
        assert self.response.status_code == 200
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        kind = None
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "desktop":
                    self.seen.append((time.monotonic(), json.loads(line[6:])))
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed at the end of the test

    def close(self):
        self.response.close()


def test_starts_beyond_the_slots_wait_in_a_fair_order_and_see_their_place(signed_in_portal, demo_image):
    portal, _ = signed_in_portal(START_CONCURRENCY="1")
    admin = Client(portal.url, "admin")
    anna, ben, max_ = (Client(portal.url, name) for name in ("anna.schmidt", "ben", "max.muster"))
    events = Events(portal, admin)
    mine = Events(portal, anna)  # what Anna's own page hears
    try:
        answers = [person.post("/api/container/start", params={"desktop_type": slug}).json()
                   for person, slug in ((anna, "tiny"), (anna, "demo"), (ben, "tiny"), (max_, "tiny"))]
        assert [(item["name"], item["status"], item["queue_position"]) for item in answers] == [
            ("anna.schmidt-tiny", "starting", None), ("anna.schmidt-demo", "queued", 1),
            ("ben-tiny", "queued", 1), ("max.muster-tiny", "queued", 2)]
        # Anna's second desktop does not overtake Ben's and Max's first.
        queue = admin.get("/api/admin/queue").json()
        assert queue["concurrency"] == 1 and queue["starting"] == ["anna.schmidt-tiny"]
        assert [(item["position"], item["name"], item["owner"]) for item in queue["waiting"]] == [
            (1, "ben-tiny", "ben"), (2, "max.muster-tiny", "max.muster"), (3, "anna.schmidt-demo", "anna.schmidt")]
        statistics = admin.get("/api/admin/containers").json()["statistics"]
        assert statistics["queued"] == 3
        for person, slug in ((anna, "tiny"), (anna, "demo"), (ben, "tiny"), (max_, "tiny")):
            wait_status(person, slug, "running", timeout=120)
        time.sleep(0.5)  # the last events on their way
    finally:
        events.close()
        mine.close()

    # From the admin's stream: one desktop at a time was being created and booted, in the order.
    latest, busiest, began = {}, 0, []
    for _, desktop in events.seen:
        if desktop["status"] in ("starting", "pulling") and latest.get(desktop["name"]) not in ("starting", "pulling"):
            began.append(desktop["name"])
        latest[desktop["name"]] = desktop["status"]
        busiest = max(busiest, sum(1 for status in latest.values() if status in ("starting", "pulling")))
    assert busiest == 1, events.seen
    assert began == ["anna.schmidt-tiny", "ben-tiny", "max.muster-tiny", "anna.schmidt-demo"], began
    # Anna's page heard her place move up, live, and never anyone else's desktop.
    places = [desktop["queue_position"] for _, desktop in mine.seen
              if desktop["name"] == "anna.schmidt-demo" and desktop["status"] == "queued"]
    # Third in line once Ben and Max had clicked (their first starts go before her second),
    # then up by one with each start that finished.
    assert places[-3:] == [3, 2, 1], places
    assert {desktop["name"] for _, desktop in mine.seen} <= {"anna.schmidt-tiny", "anna.schmidt-demo"}


def test_a_waiting_start_can_be_cancelled_and_gives_up_its_place(signed_in_portal, demo_image, tmp_path):
    portal, _ = signed_in_portal(START_CONCURRENCY="1")
    anna, ben, max_ = (Client(portal.url, name) for name in ("anna.schmidt", "ben", "max.muster"))
    anna.post("/api/container/start", params={"desktop_type": "demo"})
    assert ben.post("/api/container/start", params={"desktop_type": "tiny"}).json()["queue_position"] == 1
    assert max_.post("/api/container/start", params={"desktop_type": "tiny"}).json()["queue_position"] == 2
    cancelled = ben.post("/api/container/stop", params={"desktop_type": "tiny"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] in ("removed", "stopped")
    assert max_.get("/api/container/status", params={"desktop_type": "tiny"}).json()["queue_position"] in (1, None)
    wait_status(max_, "tiny", "running", timeout=120)
    assert row_of(tmp_path, "ben-tiny")["container_id"] is None  # never created
    assert "ben stopped desktop ben-tiny" in portal.log()


def test_waiting_starts_survive_a_restart_in_their_order(signed_in_portal, demo_image, tmp_path):
    portal, _ = signed_in_portal(START_CONCURRENCY="1")
    people = {name: Client(portal.url, name) for name in ("anna.schmidt", "ben", "max.muster")}
    assert portal.stop() == 0
    con = database(tmp_path)
    ids = dict(con.execute("SELECT username, id FROM users").fetchall())
    for username, slug, waited in (("ben", "tiny", "08"), ("anna.schmidt", "tiny", "05"),
                                   ("max.muster", "tiny", "09"), ("anna.schmidt", "gone", "07")):
        con.execute("INSERT INTO desktops (user_id, desktop_type, name, status, created_at, queued_at) "
                    "VALUES (?, ?, ?, 'queued', '2026-12-07T07:50:00.000000Z', ?)",
                    (ids[username], slug, "%s-%s" % (username, slug), "2026-12-07T07:50:%s.000000Z" % waited))
    con.close()
    portal.restart()
    for name, slug in (("anna.schmidt", "tiny"), ("ben", "tiny"), ("max.muster", "tiny")):
        wait_status(people[name], slug, "running", timeout=120)
    rows = [row_of(tmp_path, name) for name in ("anna.schmidt-tiny", "ben-tiny", "max.muster-tiny")]
    assert [row["started_at"] for row in rows] == sorted(row["started_at"] for row in rows)
    assert all(row["queued_at"] is None for row in rows)
    # A type no longer in the catalog ends its wait with a clear error, not silently.
    gone = row_of(tmp_path, "anna.schmidt-gone")
    assert (gone["status"], gone["message"]) == ("error", "This desktop type is no longer offered.")
    assert "resumed 3 queued starts in their order (1 could not be)" in portal.log()
