"""`iservdesk check` against real parts: SQLite files, the Docker engine, the development
identity provider, and nginx with the shipped site. Each FAIL and WARN is provoked for
real; a healthy installation gets OK on every line."""

import io
import os
import shutil
import socket
import sqlite3
import subprocess
import sys

import pytest

from conftest import CLIENT_ID, CLIENT_SECRET, DEMO_IMAGE, ROOT, iservdesk_command, write_config
from devtools import SITE, Site
from iservdesk import check, config as configmodule, db

CHECKS = ["configuration", "database", "Docker engine", "catalog", "image", "HOST_PORT_RANGE",
          "identity provider", "redirect URI", "PUBLIC_URL", "VNC_PASSWORD", "nginx"]


class Installation:
    """A complete, healthy installation in a temporary folder; change() breaks a part of it."""

    def __init__(self, folder, issuer, site_text=None):
        self.folder = folder
        self.settings = {"PUBLIC_URL": "https://desk.school.example", "OAUTH_ISSUER": issuer,
                         "LISTEN": "127.0.0.1:8080"}
        nginx_folder = os.path.join(folder, "nginx")
        os.makedirs(nginx_folder, exist_ok=True)
        self.site = Site(nginx_folder, upstream="127.0.0.1:8080", text=site_text)
        self.nginx = self.site.command()
        path = self.write()
        db.migrate(db.open_database(configmodule.load(path, environ={}).database_uri))

    def write(self, **overrides):
        self.path = write_config(os.path.join(self.folder, "iservdesk.env"), **{**self.settings, **overrides})
        return self.path

    def check(self, **overrides):
        """(exit status, {check name: (status, text)}, output) of check.main over the file."""
        self.write(**overrides)
        out = io.StringIO()
        status = check.main(self.path, environ={}, out=out, nginx=self.nginx)
        lines = {}
        for line in out.getvalue().splitlines():
            level, rest = line.split(None, 1)
            name, text = rest.split(": ", 1)
            lines.setdefault(name, (level, text))
        return status, lines, out.getvalue()


@pytest.fixture
def installation(tmp_path, idp, docker_client, demo_image):
    provider = idp(clients=[(CLIENT_ID, CLIENT_SECRET, "client_secret_basic",
                             "https://desk.school.example/authorize")])
    return Installation(str(tmp_path), provider.issuer)


def test_a_healthy_installation_is_ok_on_every_line(installation):
    status, lines, output = installation.check()
    assert status == 0, output
    assert list(lines) == CHECKS
    assert {level for level, _ in lines.values()} == {"OK"}, output
    assert lines["image"][1] == "%s is present" % DEMO_IMAGE
    assert lines["nginx"][1] == "the configuration is valid and proxies to 127.0.0.1:8080"
    assert lines["redirect URI"][1].startswith("https://desk.school.example/authorize")


def _hold_a_port(installation):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    installation.holder = holder  # closed with the test
    port = holder.getsockname()[1]
    return {"HOST_PORT_RANGE": "%d-%d" % (port, port)}


def _old_database(installation):
    path = os.path.join(installation.folder, "old.db")
    con = sqlite3.connect(path)
    with open(os.path.join(ROOT, "tests", "data", "schema-v1.sql")) as stream:
        con.executescript(stream.read())
    con.close()
    return {"DATABASE_URI": "sqlite:///" + path}


def _bad_catalog(installation):
    path = os.path.join(installation.folder, "bad.toml")
    with open(path, "w") as stream:
        stream.write('[desktop.demo]\nname.de = "Demo"\nname.en = "Demo"\nimage = "x"\ncolour = "blue"\n')
    return {"DESKTOPS_FILE": path}


def _broken_nginx(installation):
    with open(SITE) as stream:
        text = stream.read().replace("proxy_read_timeout 12h;", "proxy_read_timeout twelve-hours;")
    folder = os.path.join(installation.folder, "broken-nginx")
    os.makedirs(folder)
    installation.nginx = Site(folder, text=text).command()
    return {}


@pytest.mark.parametrize("name,breaks,expected", [
    ("database", lambda i: {"DATABASE_URI": "sqlite:///" + os.path.join(i.folder, "never.db")},
     "does not exist. Create it with `iservdesk init-db`"),
    ("database", _old_database, "schema version 1, expected %d (run iservdesk init-db)" % db.SCHEMA_VERSION),
    ("Docker engine", lambda i: {"DOCKER_URL": "unix://" + os.path.join(i.folder, "no.sock")},
     "does not answer: socket not found. Start it (`systemctl start docker`)"),
    ("catalog", _bad_catalog, "colour"),
    ("HOST_PORT_RANGE", _hold_a_port, "0 of 1 ports free; no desktop can start"),
    ("identity provider", lambda i: {"OAUTH_ISSUER": "http://127.0.0.1:9/iserv"},
     "no discovery document for OAUTH_ISSUER http://127.0.0.1:9/iserv"),
    ("nginx", _broken_nginx, "`nginx -t` fails: "),
])
def test_each_failure_is_a_fail_line_with_the_fix_and_exit_1(installation, name, breaks, expected):
    status, lines, output = installation.check(**breaks(installation))
    assert status == 1, output
    assert lines[name][0] == "FAIL", output
    assert expected in lines[name][1], output
    assert [level for level, _ in lines.values()].count("FAIL") == 1, output
    if hasattr(installation, "holder"):
        installation.holder.close()


def _missing_image(installation):
    path = os.path.join(installation.folder, "missing.toml")
    with open(path, "w") as stream:
        stream.write('[desktop.demo]\nname.de = "Demo"\nname.en = "Demo"\n'
                     'image = "iservdesk-test/absent:1"\n')
    return {"DESKTOPS_FILE": path}


def _no_site(installation):
    folder = os.path.join(installation.folder, "plain-nginx")
    os.makedirs(folder)
    conf = os.path.join(folder, "nginx.conf")
    with open(conf, "w") as stream:
        stream.write("pid %s/nginx.pid;\nevents {}\nhttp {\n}\n" % folder)
    installation.nginx = ["/usr/sbin/nginx", "-p", folder, "-c", conf,
                          "-e", os.path.join(folder, "error.log")]
    return {}


def _no_nginx(installation):
    installation.nginx = [os.path.join(installation.folder, "no-nginx-here")]
    return {}


@pytest.mark.parametrize("name,warns,expected", [
    ("image", _missing_image, "iservdesk-test/absent:1 is not on this host: it is pulled at the first start"),
    ("PUBLIC_URL", lambda i: {"PUBLIC_URL": "http://desk.school.example"}, "plain http"),
    ("VNC_PASSWORD", lambda i: {"VNC_PASSWORD": "one-for-all"}, "every desktop container shares"),
    ("redirect URI", lambda i: {"OAUTH_REDIRECT_URI": "https://elsewhere.example/callback"},
     "but the portal answers sign-ins at https://desk.school.example/authorize"),
    ("nginx", _no_site, "no site proxies to LISTEN 127.0.0.1:8080"),
    ("nginx", _no_nginx, "not installed"),
])
def test_each_warning_is_a_warn_line_and_exit_0(installation, name, warns, expected):
    status, lines, output = installation.check(**warns(installation))
    assert status == 0, output
    assert lines[name][0] == "WARN", output
    assert expected in lines[name][1], output
    assert "one-for-all" not in output  # a secret is never echoed
    assert [level for level, _ in lines.values()].count("WARN") == 1, output


def test_a_shared_vnc_password_warns_and_says_why_without_echoing_it(installation):
    status, lines, output = installation.check(VNC_PASSWORD="one-for-every-desktop-7f3a")
    assert status == 0, output
    level, text = lines["VNC_PASSWORD"]
    assert level == "WARN", output
    assert "every desktop container shares this one password" in text
    assert "each desktop's user can read it in their own container's environment" in text
    assert "can enter every desktop that a process on this host or a container can reach" in text
    assert "Leave it empty" in text
    assert "one-for-every-desktop-7f3a" not in output


def test_a_missing_configuration_says_which_file_and_what_to_set(tmp_path):
    path = str(tmp_path / "iservdesk.env")
    result = subprocess.run(iservdesk_command("--config", path, "check"), cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == (
        "FAIL configuration: %s does not exist. Create it from the template: `iservdesk settings > %s`, then "
        "set PUBLIC_URL, SECRET_KEY (`openssl rand -hex 32`), OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET and "
        "OAUTH_ISSUER; or name another file with --config or $ISERVDESK_CONFIG.\n" % (path, path))


def test_a_bad_setting_is_named_without_echoing_secrets(tmp_path):
    path = write_config(tmp_path / "iservdesk.env", SECRET_KEY="too-short-secret")
    result = subprocess.run(iservdesk_command("--config", path, "check"), cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout.startswith(
        "FAIL configuration: SECRET_KEY: is not valid: must be at least 32 characters")
    assert "Edit %s" % path in result.stdout
    assert "too-short-secret" not in result.stdout + result.stderr


def test_the_seeds_installation_script_runs_the_check(tmp_path, docker_client):
    path = write_config(tmp_path / "iservdesk.env")
    command = subprocess.run(iservdesk_command("--config", path, "check"), cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    # From another folder, as an admin would run it.
    script = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "test_installation.py"),
                             "--config", path], cwd=str(tmp_path), capture_output=True, text=True,
                            timeout=120)
    def verdicts(output):  # without the details (free ports change while others' tests run)
        return [line.split(":", 1)[0] for line in output.splitlines()]
    assert (script.returncode, verdicts(script.stdout)) == (command.returncode, verdicts(command.stdout))
    assert len(verdicts(command.stdout)) == len(CHECKS)
    assert command.returncode == 1  # no database yet, no identity provider
    assert command.stdout.splitlines()[1].startswith("FAIL database: ")
    if shutil.which("nginx") is None:
        assert "WARN nginx: not installed" in command.stdout
