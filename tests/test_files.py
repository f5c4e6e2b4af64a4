"""Files out of homes (iservdesk/files.py): a home, or all of a person's homes, as one zip
streamed through the portal, with real desktops and real volumes: binary files arrive
whole (checksums), folders stay folders, a stopped and a removed desktop's files come
too, symbolic links (to /etc/shadow, out of the home) yield nothing, nobody gets another
person's home, and no reader container is left behind."""

import hashlib
import io
import os
import tarfile
import zipfile

from conftest import container_of
from flows import Client, wait_status
from proxying import database
from test_cleanup import start

RANDOM = os.urandom(3 * 1024 * 1024 + 17)
TEXT = "Hallo Welt, äöü ß\n".encode()


def put_home_files(container):
    """Files, a folder and two hostile links into the home, as the desktop's user would."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name in ("Dokumente", "Bilder"):
            info = tarfile.TarInfo(name)
            info.type, info.uid, info.gid, info.mode = tarfile.DIRTYPE, 1000, 1000, 0o755
            tar.addfile(info)
        for name, data in (("Dokumente/Bericht über Äpfel.txt", TEXT), ("Bilder/zufall.bin", RANDOM)):
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid, info.mode = len(data), 1000, 1000, 0o644
            tar.addfile(info, io.BytesIO(data))
    assert container.put_archive("/home/kasm-user", archive.getvalue())
    # Links made inside the desktop (Docker's archive API refuses to write ones leading out).
    for target, name in (("/etc/shadow", "shadow"), ("../../etc", "oben"), ("/etc/passwd", "Dokumente/passwd")):
        made = container.exec_run(["ln", "-s", target, "/home/kasm-user/" + name], user="1000")
        assert made.exit_code == 0, made.output


def zip_of(answer):
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(answer.content))


def test_a_home_comes_out_whole_as_a_zip_without_its_links_also_when_stopped_or_removed(
        signed_in_portal, demo_image, docker_client, tmp_path):
    portal, _ = signed_in_portal()
    anna, ben = Client(portal.url, "anna.schmidt"), Client(portal.url, "ben")
    start(anna, "tiny")
    put_home_files(container_of(docker_client, portal, "anna.schmidt-tiny"))
    before = {container.id for container in docker_client.containers.list(all=True)}

    def check(archive):
        names = archive.namelist()
        assert "tiny/Dokumente/Bericht über Äpfel.txt" in names and "tiny/Bilder/zufall.bin" in names
        assert archive.read("tiny/Dokumente/Bericht über Äpfel.txt") == TEXT
        assert hashlib.sha256(archive.read("tiny/Bilder/zufall.bin")).digest() == hashlib.sha256(RANDOM).digest()
        assert "tiny/Dokumente/" in names  # folders stay folders
        assert not [name for name in names if name.endswith(("shadow", "oben", "passwd")) or "/etc" in name]
        assert all(b"root:" not in archive.read(name) for name in names if not name.endswith("/"))

    answer = anna.get("/api/files/home.zip", params={"desktop_type": "tiny"})
    assert answer.headers["Content-Disposition"] == (
        'attachment; filename="anna.schmidt-tiny.zip"; filename*=UTF-8\'\'anna.schmidt-tiny.zip')
    check(zip_of(answer))
    anna.post("/api/container/stop", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "stopped")
    check(zip_of(anna.get("/api/files/home.zip", params={"desktop_type": "tiny"})))
    anna.post("/api/container/remove", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "removed")
    check(zip_of(anna.get("/api/files/home.zip", params={"desktop_type": "tiny"})))

    # Everything of the person: a folder per desktop type.
    start(anna, "demo")
    export = zip_of(anna.get("/api/files/export.zip"))
    check(export)
    assert any(name.startswith("demo/") for name in export.namelist())
    # Ben has no home yet, and never gets Anna's.
    refused = ben.get("/api/files/export.zip")
    assert (refused.status_code, refused.json()["error"]) == (404, "no_home")
    assert ben.get("/api/files/home.zip", params={"desktop_type": "tiny"}).status_code == 404
    # No reader container stays; the downloads are in the audit log.
    left = {container.id for container in docker_client.containers.list(all=True)} - before
    assert {docker_client.containers.get(item).name for item in left} <= {portal.prefix + "-anna.schmidt-demo",
                                                                          portal.prefix + "-anna.schmidt-tiny"}
    con = database(tmp_path)
    downloads = con.execute("SELECT actor, target FROM events WHERE action = 'files.download'").fetchall()
    con.close()
    assert downloads == [("anna.schmidt", "tiny")] * 3 + [("anna.schmidt", "all")]
