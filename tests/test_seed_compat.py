"""Requests of the old product (iserv-remote-desktop, SEED.md) against the real portal: a
start without a type starts KASM_IMAGE's type, status/stop/remove without one act on the
person's only desktop (and name the choices when there are several), DELETE remove works,
admin routes take the id our JSON shows, and answers carry the old names beside ours."""

from devtools import demo_image_tag
from flows import Client, wait_status

# One type runs KASM_IMAGE (what the old product started); another runs something else.
CATALOG = """
[desktop.ubuntu-desktop]
name.de = "Ubuntu"
name.en = "Ubuntu"
image = "{image}"
[desktop.ubuntu-desktop.environment]
DEMO_MODE = "tiny"

[desktop.ubuntu-chromium]
name.de = "Chromium"
name.en = "Chromium"
image = "{image}-not-this-one"
"""


def ok(answer, status=200):
    assert answer.status_code == status, answer.text
    return answer.json()


def test_the_old_products_requests_get_the_old_products_answers(signed_in_portal, demo_image, tmp_path):
    (tmp_path / "seed-desktops.toml").write_text(CATALOG.format(image=demo_image_tag()))
    portal, _ = signed_in_portal(DESKTOPS_FILE=str(tmp_path / "seed-desktops.toml"), KASM_IMAGE=demo_image_tag())
    anna, admin = Client(portal.url, "anna.schmidt"), Client(portal.url, "admin")

    # Nothing yet: status without a type says so.
    assert ok(anna.get("/api/container/status"), 404)["error"] == "no_desktop"
    # A start without a type: KASM_IMAGE's type; {success, container, url} as before.
    started = anna.post("/api/container/start")
    assert started.status_code in (200, 202), started.text
    body = started.json()
    assert body["success"] is True and body["desktop_type"] == "ubuntu-desktop"
    assert body["container"]["proxy_path"] == "anna.schmidt-ubuntu-desktop"
    assert body["url"] == portal.url + "/desktop/anna.schmidt-ubuntu-desktop/"
    wait_status(anna, "ubuntu-desktop", "running")
    # Status without a type: the only desktop, with the old names beside ours.
    status = ok(anna.get("/api/container/status"))
    assert status["status"] == "running" and status["username"] == "anna.schmidt"
    assert status["container_name"] == portal.prefix + "-anna.schmidt-ubuntu-desktop"
    assert status["last_accessed"] == status["last_access_at"]
    listing = ok(anna.get("/api/container/list"))
    assert [item["container_name"] for item in listing["containers"]] == [status["container_name"]]
    assert len(listing["desktops"]) == 2  # every type the person may use, as ours always was
    session = ok(anna.get("/session"))
    assert session["authenticated"] is True and session["user"]["username"] == "anna.schmidt"
    assert session["session"]["expires_at"] == session["expires_at"] and anna.session_id not in str(session)

    # Stop and remove without parameters, remove also as DELETE.
    assert ok(anna.post("/api/container/stop"))["status"] == "stopped"
    assert ok(anna.delete("/api/container/remove"))["status"] == "removed"
    assert ok(anna.get("/api/container/status"), 404)["error"] == "no_desktop"

    # Several desktops: no guessing, the choices are named.
    anna.post("/api/container/start", params={"desktop_type": "ubuntu-desktop"})
    wait_status(anna, "ubuntu-desktop", "running")
    anna.post("/api/container/start", params={"desktop_type": "ubuntu-chromium"})  # cannot pull: error
    wait_status(anna, "ubuntu-chromium", "error")
    refused = ok(anna.post("/api/container/stop"), 400)
    assert refused["error"] == "desktop_type_missing"
    assert "desktop_type=<ubuntu-chromium|ubuntu-desktop>" in refused["message"], refused["message"]

    # Admins: the id our JSON shows works in the routes; stop-all says stopped_count.
    containers = ok(admin.get("/api/admin/containers"))["containers"]
    running = next(item for item in containers if item["desktop_type"] == "ubuntu-desktop")
    stopped = ok(admin.post("/api/admin/container/%d/stop" % running["id"]))
    assert stopped["status"] == "stopped" and stopped["username"] == "anna.schmidt"
    assert ok(admin.post("/api/admin/containers/stop-all")) == {"stopped": 0, "stopped_count": 0}
    assert ok(admin.delete("/api/admin/container/%d/remove" % running["id"]))["status"] == "removed"
    assert ok(admin.post("/api/admin/container/999999/stop"), 404)["error"] == "desktop_not_found"


def test_stop_on_logout_stops_the_desktops_once_the_last_session_ends_and_keeps_the_files(
        signed_in_portal, demo_image):
    portal, _ = signed_in_portal(STOP_ON_LOGOUT="true")
    anna, phone = Client(portal.url, "anna.schmidt"), Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    assert anna.put("/api/upload/home", params={"desktop_type": "tiny", "name": "notiz.txt"},
                    data=b"bleibt").status_code == 200
    # Another session of hers is still open: the desktop stays.
    assert phone.post("/logout", headers={"Accept": "application/json"}).status_code == 200
    assert ok(anna.get("/api/container/status", params={"desktop_type": "tiny"}))["status"] == "running"
    assert anna.post("/logout", headers={"Accept": "application/json"}).status_code == 200
    again = Client(portal.url, "anna.schmidt")
    assert ok(again.get("/api/container/status", params={"desktop_type": "tiny"}))["status"] == "stopped"
    assert again.get("/api/files/download", params={"desktop_type": "tiny", "path": "Uploads/notiz.txt"}
                     ).content == b"bleibt"
    assert "STOP_ON_LOGOUT: stopped 1 desktops of anna.schmidt" in portal.log()


def test_by_default_a_desktop_outlives_a_sign_out(signed_in_portal, demo_image):
    portal, _ = signed_in_portal()
    anna = Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    anna.post("/logout", headers={"Accept": "application/json"})
    assert ok(Client(portal.url, "anna.schmidt").get("/api/container/status", params={"desktop_type": "tiny"}))[
        "status"] == "running"
