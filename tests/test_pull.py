"""A desktop whose image is missing is pulled from a registry in the background, with
progress; a failed pull ends in status error and can be retried. Real registry (Debian's
docker-registry on 127.0.0.1), real engine."""

import json
import threading

from flows import Client, wait_status

CATALOG = """
[desktop.fresh]
name.de = "Frisch"
name.en = "Fresh"
image = "{fresh}"
[desktop.fresh.environment]
DEMO_MODE = "tiny"

[desktop.later]
name.de = "Später"
name.en = "Later"
image = "{later}"
[desktop.later.environment]
DEMO_MODE = "tiny"
"""


def test_missing_image_is_pulled_with_progress_events(signed_in_portal, docker_client, demo_image,
                                                      registry, tmp_path):
    fresh = registry.push_fresh(docker_client, demo_image, size=64 * 1024 * 1024)
    catalog = tmp_path / "pull.toml"
    catalog.write_text(CATALOG.format(fresh=fresh, later=registry.host + "/iservdesk-test/later:1"))
    portal, _ = signed_in_portal(DESKTOPS_FILE=str(catalog))
    anna = Client(portal.url, "anna.schmidt")

    seen, subscribed, done = [], threading.Event(), threading.Event()

    def listen():
        with anna.get("/api/events", stream=True, timeout=120) as response:
            for line in response.iter_lines(decode_unicode=True):
                subscribed.set()
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    if seen[-1]["status"] in ("running", "error"):
                        done.set()
                        return
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert subscribed.wait(30)

    answer = anna.post("/api/container/start", params={"desktop_type": "fresh"})
    assert answer.status_code == 202
    assert done.wait(120), seen
    statuses = [event["status"] for event in seen]
    assert statuses[-1] == "running", seen
    pulling = [event for event in seen if event["status"] == "pulling"]
    assert pulling, statuses
    percents = [event["progress"] for event in pulling if event["progress"] is not None]
    assert percents and percents == sorted(percents) and all(0 <= p <= 100 for p in percents)
    assert statuses.index("starting", statuses.index("pulling")) > statuses.index("pulling")
    assert docker_client.images.get(fresh)


def test_failed_pull_ends_in_error_and_can_be_retried(signed_in_portal, docker_client, demo_image,
                                                      registry, tmp_path):
    later = registry.host + "/iservdesk-test/later:1"
    catalog = tmp_path / "pull.toml"
    catalog.write_text(CATALOG.format(fresh=later, later=later))
    portal, _ = signed_in_portal(DESKTOPS_FILE=str(catalog))
    ben = Client(portal.url, "ben")

    ben.post("/api/container/start", params={"desktop_type": "later"})
    failed = wait_status(ben, "later", "error")
    # The person reads what happened; the registry's address and its words are for the log.
    assert "image could not be fetched" in failed["message"] and registry.host not in failed["message"]
    assert "pulling %s failed" % later in portal.log()

    # The admin publishes the image; the user tries again.
    docker_client.images.get(demo_image).tag(later.rsplit(":", 1)[0], tag="1")
    registry._push(docker_client, later.rsplit(":", 1)[0], "1")
    docker_client.images.remove(later)
    assert ben.post("/api/container/start", params={"desktop_type": "later"}).status_code == 202
    wait_status(ben, "later", "running")
