"""Files in and out of a home, file by file (iservdesk/files.py through /api/files and
/api/upload/home), with real desktops and real volumes: binary uploads come back whole
(checksums), a folder comes as a zip, a stopped desktop's home works the same, sizes and
quotas refuse before anything is written, hostile names are refused with a message, and
links (to /etc/shadow, to another person's volume, a folder that is a link) never yield
or receive a file."""

import hashlib
import io
import os
import zipfile

from conftest import container_of
from flows import Client, wait_status
from proxying import database
from test_cleanup import config_path_of, run_command, start

PAYLOAD = os.urandom(5 * 1024 * 1024 + 123)


def upload(client, name, data, folder=None, slug="tiny", **kwargs):
    params = {"desktop_type": slug, "name": name}
    if folder is not None:
        params["folder"] = folder
    return client.put("/api/upload/home", params=params, data=data, **kwargs)


def listing(client, path="", slug="tiny"):
    answer = client.get("/api/files", params={"desktop_type": slug, "path": path})
    assert answer.status_code == 200, answer.text
    return answer.json()


def names(client, path="", slug="tiny"):
    return {entry["name"]: entry["kind"] for entry in listing(client, path, slug)["entries"]}


def download(client, path, slug="tiny"):
    return client.get("/api/files/download", params={"desktop_type": slug, "path": path})


def refused(answer, status, code):
    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    return answer.json()["message"]


def test_uploads_come_back_whole_as_files_and_folders_also_while_the_desktop_is_stopped(
        signed_in_portal, demo_image, docker_client, tmp_path):
    portal, _ = signed_in_portal()
    anna, ben = Client(portal.url, "anna.schmidt"), Client(portal.url, "ben")
    start(anna, "tiny")
    before = {container.id for container in docker_client.containers.list(all=True)}

    # Into ~/Uploads by default (made on the first upload), sent block by block.
    answer = upload(anna, "Messung 1 (Physik).bin", io.BytesIO(PAYLOAD))
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == "Uploads/Messung 1 (Physik).bin" and answer.json()["size"] == len(PAYLOAD)
    # The desktop itself sees the file, owned by its user.
    container = container_of(docker_client, portal, "anna.schmidt-tiny")
    seen = container.exec_run(["stat", "-c", "%u %s", "/home/kasm-user/Uploads/Messung 1 (Physik).bin"])
    assert seen.output.decode().split() == ["1000", str(len(PAYLOAD))]
    got = download(anna, "Uploads/Messung 1 (Physik).bin")
    assert got.status_code == 200 and int(got.headers["Content-Length"]) == len(PAYLOAD)
    assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(PAYLOAD).hexdigest()
    assert "filename*=UTF-8''Messung%201%20%28Physik%29.bin" in got.headers["Content-Disposition"]

    # A folder of one's own choosing, with an umlaut, made on the way; a file replaced.
    assert upload(anna, "Übung.txt", b"eins", folder="Schule/Mathe").status_code == 200
    assert upload(anna, "Übung.txt", b"zwei", folder="Schule/Mathe").status_code == 200
    assert names(anna, "Schule/Mathe") == {"Übung.txt": "file"}
    zipped = download(anna, "Schule")
    assert zipped.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(zipped.content))
    assert archive.read("Schule/Mathe/Übung.txt") == b"zwei"
    home = listing(anna)
    assert {"Schule", "Uploads"} <= {entry["name"] for entry in home["entries"]}
    assert home["used"] >= len(PAYLOAD) and home["quota"] == 5 * 1024 ** 3 and home["upload_max"] == 1024 ** 3
    # Nobody else reaches Anna's home: Ben has none yet, and asks for his own only.
    refused(ben.get("/api/files", params={"desktop_type": "tiny"}), 404, "no_home")

    # Stopped: the same home, read and written.
    anna.post("/api/container/stop", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "stopped")
    assert upload(anna, "nachher.txt", b"while stopped").status_code == 200
    assert download(anna, "Uploads/nachher.txt").content == b"while stopped"
    # Delete a file and a folder with everything in it; the size follows.
    used = listing(anna)["used"]
    deleted = anna.delete("/api/files", params={"desktop_type": "tiny", "path": "Uploads/Messung 1 (Physik).bin"})
    assert deleted.status_code == 200 and deleted.json()["used"] <= used - len(PAYLOAD)
    assert anna.delete("/api/files", params={"desktop_type": "tiny", "path": "Schule"}).status_code == 200
    assert set(names(anna)) >= {"Uploads"} and "Schule" not in names(anna)
    refused(anna.delete("/api/files", params={"desktop_type": "tiny", "path": "Schule"}), 404, "no_such_file")
    refused(anna.delete("/api/files", params={"desktop_type": "tiny", "path": ""}), 400, "bad_name")
    refused(download(anna, "Uploads/gibt-es-nicht.txt"), 404, "no_such_file")

    # No helper container stays; uploads and deletes are audited; the size is recorded.
    left = {container.id for container in docker_client.containers.list(all=True)} - before
    assert left == set()
    con = database(tmp_path)
    actions = con.execute("SELECT action, target, detail FROM events WHERE action LIKE 'files.%' "
                          "ORDER BY id").fetchall()
    sizes = con.execute("SELECT volume, size FROM home_sizes").fetchall()
    con.close()
    assert [action for action, _, _ in actions].count("files.upload") == 4
    assert [action for action, _, _ in actions].count("files.delete") == 2
    assert sizes and sizes[0][0] == portal.prefix + "-home-anna.schmidt-tiny" and sizes[0][1] < len(PAYLOAD)


def test_sizes_and_quotas_refuse_before_anything_is_written(signed_in_portal, demo_image, docker_client, tmp_path):
    portal, _ = signed_in_portal(UPLOAD_MAX_SIZE="2m", HOME_QUOTA="3m")
    anna = Client(portal.url, "anna.schmidt")
    start(anna, "tiny")
    message = refused(upload(anna, "gross.bin", b"x" * (2 * 1024 * 1024 + 1)), 413, "file_too_large")
    assert "2.0 MiB" in message
    assert upload(anna, "eins.bin", b"x" * (2 * 1024 * 1024 - 10)).status_code == 200
    message = refused(upload(anna, "zwei.bin", b"y" * (1536 * 1024)), 413, "quota_exceeded")
    assert "holds 2.0 MiB of 3.0 MiB" in message and "1.5 MiB" in message
    assert "zwei.bin" not in names(anna, "Uploads")
    # Replacing a file counts only the difference.
    assert upload(anna, "eins.bin", b"z" * (2 * 1024 * 1024 - 10)).status_code == 200
    # No Content-Length (chunked): asked for one, nothing written.
    answer = upload(anna, "chunked.bin", iter([b"abc", b"def"]))
    refused(answer, 411, "length_required")
    # A body shorter than it said: refused, and the file it would have replaced stays.
    assert upload(anna, "bleibt.txt", b"old").status_code == 200
    broken = upload_cut_short(portal.url, anna, "bleibt.txt", b"new content that never ends", 1000)
    assert b"upload_incomplete" in broken or broken == b""
    assert download(anna, "Uploads/bleibt.txt").content == b"old"
    assert not [name for name in names(anna, "Uploads") if name.startswith(".iservdesk")]
    # What the desktop writes itself is not limited by Docker's volumes: cleanup measures the
    # homes used since their last measurement, the journal names the one over HOME_QUOTA,
    # and the admin panel lists homes by size and flags it.
    container = container_of(docker_client, portal, "anna.schmidt-tiny")
    made = container.exec_run(["dd", "if=/dev/zero", "of=/home/kasm-user/gross.bin", "bs=1M", "count=4"],
                              user="1000")
    assert made.exit_code == 0, made.output
    assert anna.post("/api/container/keep", params={"desktop_type": "tiny"}).status_code == 200  # used now
    done = run_command("--config", config_path_of(portal, tmp_path), "cleanup")
    assert done.returncode == 0, done.stderr
    assert "1 homes measured (1 over HOME_QUOTA)" in done.stdout + done.stderr, done.stdout + done.stderr
    assert "over HOME_QUOTA (3.0 MiB)" in done.stderr
    homes = Client(portal.url, "admin").get("/api/admin/homes").json()
    assert homes["quota"] == 3 * 1024 * 1024
    mine = [home for home in homes["homes"] if home["name"] == portal.prefix + "-home-anna.schmidt-tiny"][0]
    assert mine["size"] > 6 * 1024 * 1024 and mine["over_quota"] is True
    assert homes["homes"][0] == mine  # the largest first
    # Without the CSRF header an upload is refused before its body is read.
    answer = anna.browser.put(portal.url + "/api/upload/home", params={"desktop_type": "tiny", "name": "a"},
                              data=b"a", timeout=30)
    refused(answer, 403, "csrf_failed")


def upload_cut_short(url, client, name, data, claimed):
    """PUT `data` while claiming `claimed` bytes, then close the connection; the answer's bytes."""
    import socket
    import urllib.parse
    address = urllib.parse.urlsplit(url)
    cookie = "; ".join("%s=%s" % (key, value) for key, value in client.browser.cookies.items())
    path = "/api/upload/home?desktop_type=tiny&name=" + urllib.parse.quote(name)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(("PUT %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nX-CSRF-Token: %s\r\n"
                      "Content-Length: %d\r\n\r\n" % (path, address.netloc, cookie, client.csrf, claimed)).encode()
                     + data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk


HOSTILE = ["..", ".", "a/b", "nul\x00byte", "zeile\numbruch", "glocke\x07", "", "x" * 256]


def test_hostile_names_are_refused_with_a_message(signed_in_portal, demo_image):
    portal, _ = signed_in_portal()
    anna = Client(portal.url, "anna.schmidt")
    start(anna, "tiny")
    for name in HOSTILE:
        assert "name" in refused(upload(anna, name, b"data"), 400, "bad_name"), repr(name)
    for part in [name for name in HOSTILE if name and "/" not in name]:
        refused(upload(anna, "ok.txt", b"data", folder="Uploads/" + part), 400, "bad_name")
        refused(download(anna, "Uploads/%s/x" % part), 400, "bad_name")
        refused(anna.delete("/api/files", params={"desktop_type": "tiny", "path": part}), 400, "bad_name")
    refused(download(anna, "../../etc/shadow"), 400, "bad_name")
    assert "Uploads" not in names(anna)  # nothing was made on the way


def test_links_in_a_home_never_yield_or_take_a_file(signed_in_portal, demo_image, docker_client, tmp_path):
    """Links a student makes in their desktop: to /etc/shadow, to /etc, and to where
    another person's home volume lies on the host; downloads, zips and uploads refuse or
    leave them out."""
    portal, _ = signed_in_portal()
    anna, max_ = Client(portal.url, "anna.schmidt"), Client(portal.url, "max.muster")
    start(max_, "tiny")
    assert upload(max_, "geheim.txt", b"Max's secret").status_code == 200
    other = docker_client.volumes.get(portal.prefix + "-home-max.muster-tiny").attrs["Mountpoint"]
    start(anna, "tiny")
    container = container_of(docker_client, portal, "anna.schmidt-tiny")
    for target, name in (("/etc/shadow", "shadow"), ("/etc", "Systemordner"), (other, "max"),
                         (other + "/Uploads/geheim.txt", "geheim.txt")):
        made = container.exec_run(["ln", "-s", target, "/home/kasm-user/" + name], user="1000")
        assert made.exit_code == 0, made.output

    listed = {entry["name"]: entry for entry in listing(anna)["entries"]}
    assert {listed[name]["kind"] for name in ("shadow", "Systemordner", "max", "geheim.txt")} == {"link"}
    for path in ("shadow", "geheim.txt", "Systemordner/shadow", "max/Uploads/geheim.txt", "Systemordner"):
        message = refused(download(anna, path), 400, "link")
        assert "link" in message
    refused(anna.get("/api/files", params={"desktop_type": "tiny", "path": "max/Uploads"}), 400, "link")
    refused(upload(anna, "x.txt", b"into a link", folder="Systemordner"), 400, "link")
    refused(upload(anna, "shadow", b"over a link", folder=""), 400, "link")
    # The whole home as a zip: no link, nothing of /etc or of Max.
    everything = zipfile.ZipFile(io.BytesIO(download(anna, "").content))
    for name in everything.namelist():
        assert not name.rstrip("/").endswith(("shadow", "Systemordner", "max", "geheim.txt")), name
        if not name.endswith("/"):
            assert b"root:" not in everything.read(name) and b"secret" not in everything.read(name)
    # Deleting a link removes the link, never what it points to.
    assert anna.delete("/api/files", params={"desktop_type": "tiny", "path": "max"}).status_code == 200
    assert download(max_, "Uploads/geheim.txt").content == b"Max's secret"
    assert "max" not in names(anna)
