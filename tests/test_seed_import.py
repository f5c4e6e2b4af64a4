"""`iservdesk import-seed` on the real engine: containers made the old product's way (name
kasm-<user>-<type>-<id>, label managed_by=iserv-remote-desktop, files inside the container)
are listed by --dry-run, moved into the person's home with --yes (binary files whole, links
kept as links), and removed; someone known only from the old database gets their user row
and their last access; a home already used gets the files in a folder of their own."""

import hashlib
import io
import os
import sqlite3
import tarfile

from devtools import demo_image_tag
from flows import Client, wait_status
from proxying import database
from test_cleanup import config_path_of, run_command

PICTURE = os.urandom(700 * 1024)
SEED_LABELS = {"managed_by": "iserv-remote-desktop"}


def seed_container(docker_client, name, files):
    """A stopped container as the old product left it: its files in /home/kasm-user."""
    container = docker_client.containers.create(demo_image_tag(), name=name, labels=SEED_LABELS)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            elif isinstance(data, str):  # a link
                info.type, info.linkname = tarfile.SYMTYPE, data
            else:
                info.size = len(data)
            info.uid = info.gid = 1000
            tar.addfile(info, io.BytesIO(data) if isinstance(data, bytes) else None)
    assert container.put_archive("/home/kasm-user", archive.getvalue())
    return container


def old_database(path):
    con = sqlite3.connect(str(path))
    con.executescript("""
        CREATE TABLE user (id INTEGER PRIMARY KEY, username TEXT, email TEXT, user_id TEXT, uuid TEXT);
        CREATE TABLE container (id INTEGER PRIMARY KEY, container_name TEXT, last_accessed TEXT);
        INSERT INTO user (username, email, uuid) VALUES ('gast', 'gast@dev-school.example', 'uuid-gast-old');
        INSERT INTO container (container_name, last_accessed) VALUES ('kasm-gast-tiny-5e55', '2026-06-30T10:00:00');
    """)
    con.commit()
    con.close()
    return "sqlite:///%s" % path


def test_the_old_products_containers_move_into_homes_and_go(signed_in_portal, demo_image, docker_client, tmp_path):
    portal, _ = signed_in_portal()
    anna, ben = Client(portal.url, "anna.schmidt"), Client(portal.url, "ben")
    # Ben has used his iservdesk desktop already: his old files go into a folder of their own.
    ben.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(ben, "tiny", "running")
    ben.put("/api/upload/home", params={"desktop_type": "tiny", "name": "neu.txt"}, data=b"new")
    made = [seed_container(docker_client, "kasm-anna.schmidt-tiny-ab12cd34", {
                "Dokumente": None, "Dokumente/Referat.odt": b"Referat", "bild.png": PICTURE,
                "verknuepfung": "Dokumente/Referat.odt"}),
            seed_container(docker_client, "kasm-ben-tiny-77aa", {"alt.txt": b"old"}),
            seed_container(docker_client, "kasm-gast-tiny-5e55", {"gast.txt": b"guest"}),
            seed_container(docker_client, "kasm-nobody-tiny-0000", {"x.txt": b"x"}),
            seed_container(docker_client, "kasm-anna.schmidt-windows-1111", {"y.txt": b"y"})]
    try:
        config = config_path_of(portal, tmp_path)
        url = old_database(tmp_path / "old.db")
        dry = run_command("--config", config, "import-seed", "--database", url, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        lines = dry.stdout.splitlines()
        assert "would move kasm-anna.schmidt-tiny-ab12cd34: the files of anna.schmidt" in lines[0], lines
        assert any(line.startswith("would skip kasm-nobody-tiny-0000: nobody has not signed in here") for line in lines)
        assert any(line.startswith("would skip kasm-anna.schmidt-windows-1111: the name is not") for line in lines)
        assert any("would move kasm-gast-tiny-5e55: the files of gast (uuid-gast-old)" in line for line in lines)
        assert len(docker_client.containers.list(all=True, filters={"label": "managed_by=iserv-remote-desktop"})) == 5
        refused = run_command("--config", config, "import-seed", "--database", url)  # no terminal, no --yes
        assert refused.returncode != 0 and "--yes" in refused.stderr

        done = run_command("--config", config, "import-seed", "--database", url, "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        assert sorted(line for line in done.stdout.splitlines() if line.startswith("moved")) == [
            "moved kasm-anna.schmidt-tiny-ab12cd34", "moved kasm-ben-tiny-77aa", "moved kasm-gast-tiny-5e55"]
        left = {container.name for container in docker_client.containers.list(
            all=True, filters={"label": "managed_by=iserv-remote-desktop"})}
        assert left == {"kasm-nobody-tiny-0000", "kasm-anna.schmidt-windows-1111"}

        # Anna's files are in her home, whole, with the link as a link.
        got = anna.get("/api/files/download", params={"desktop_type": "tiny", "path": "bild.png"})
        assert hashlib.sha256(got.content).digest() == hashlib.sha256(PICTURE).digest()
        listed = {entry["name"]: entry["kind"] for entry in anna.get(
            "/api/files", params={"desktop_type": "tiny"}).json()["entries"]}
        assert listed["Dokumente"] == "folder" and listed["verknuepfung"] == "link"
        anna.post("/api/container/start", params={"desktop_type": "tiny"})
        wait_status(anna, "tiny", "running")
        container = docker_client.containers.get(portal.prefix + "-anna.schmidt-tiny")
        seen = container.exec_run(["sh", "-c", "stat -c %u /home/kasm-user/bild.png; cat /home/kasm-user/verknuepfung"])
        assert seen.output.decode().split() == ["1000", "Referat"]
        # Ben's new file stays; the old ones are beside it.
        assert ben.get("/api/files/download", params={"desktop_type": "tiny", "path": "Uploads/neu.txt"}).content == b"new"
        assert ben.get("/api/files/download", params={"desktop_type": "tiny",
                                                      "path": "Alter Desktop 77aa/alt.txt"}).content == b"old"
        # Gast, known only from the old database: a user row with the uuid and last access.
        con = database(tmp_path)
        gast = con.execute("SELECT uuid, last_login_at FROM users WHERE username = 'gast'").fetchone()
        imports = con.execute("SELECT actor, target FROM events WHERE action = 'seed.import' ORDER BY id").fetchall()
        con.close()
        assert gast == ("uuid-gast-old", "2026-06-30T10:00:00.000000Z")
        assert sorted(imports) == [("cli", "anna.schmidt-tiny"), ("cli", "ben-tiny"), ("cli", "gast-tiny")]
        volume = docker_client.volumes.get(portal.prefix + "-home-gast-tiny")
        assert volume.attrs["Labels"]["de.iservdesk.owner"] == "uuid-gast-old"

        # The same from the admin panel: the plan, then the confirmed move.
        made.append(seed_container(docker_client, "kasm-max.muster-demo-4242", {"max.txt": b"max"}))
        max_ = Client(portal.url, "max.muster")
        admin = Client(portal.url, "admin")
        assert max_.get("/api/admin/import-seed").status_code == 403
        plan = admin.get("/api/admin/import-seed").json()["moves"]
        assert [(move["container"], move["why"] is None) for move in plan] == [
            ("kasm-anna.schmidt-windows-1111", False), ("kasm-max.muster-demo-4242", True),
            ("kasm-nobody-tiny-0000", False)]
        assert admin.post("/api/admin/import-seed").json() == {"moved": ["kasm-max.muster-demo-4242"], "failed": []}
        assert max_.get("/api/files/download", params={"desktop_type": "demo", "path": "max.txt"}).content == b"max"
    finally:
        for container in made:
            try:
                container.remove(force=True)
            except Exception:
                pass
