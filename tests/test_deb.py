"""The Debian package's sources in packaging/debian, held to the code: dependencies cover every
import with setup.cfg's version floors, and the settings file postinst writes is the one
`iservdesk check` explains. Fast and offline; `make test-deb` builds and installs the package."""

import ast
import configparser
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from iservdesk import config as configmodule

DEBIAN = os.path.join(ROOT, "packaging", "debian")
# Top-level import name -> Debian package, for what the code imports from outside the stdlib.
PACKAGES = {"bottle": "python3-bottle", "authlib": "python3-authlib", "docker": "python3-docker",
            "peewee": "python3-peewee", "gevent": "python3-gevent",
            "geventwebsocket": "python3-gevent-websocket", "requests": "python3-requests",
            "dotenv": "python3-dotenv"}
# Imported only where a feature needs them (in a try), so Suggests, not Depends: reading the
# old product's PostgreSQL database in `iservdesk import-seed`.
OPTIONAL = {"psycopg2": "python3-psycopg2"}
# setup.cfg's distribution name -> Debian package.
DISTRIBUTIONS = {"bottle": "python3-bottle", "authlib": "python3-authlib", "docker": "python3-docker",
                 "peewee": "python3-peewee", "gevent": "python3-gevent",
                 "gevent-websocket": "python3-gevent-websocket", "requests": "python3-requests",
                 "python-dotenv": "python3-dotenv"}


def read(*path):
    with open(os.path.join(*path), encoding="utf-8") as stream:
        return stream.read()


def depends():
    """{package: version floor or None} from the binary package's Depends."""
    control = read(DEBIAN, "control")
    field = re.search(r"^Depends:(.*?)^\S", control.split("\nPackage:", 1)[1], re.S | re.M).group(1)
    result = {}
    for item in field.split(","):
        item = item.strip()
        if not item or item.startswith("$"):
            continue
        match = re.fullmatch(r"([a-z0-9.+-]+)(?:\s*\(>=\s*([^)]+)\))?", item)
        assert match, item
        result[match.group(1)] = match.group(2)
    return result


def third_party_imports():
    names = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "iservdesk")):
        for name in files:
            if not name.endswith(".py"):
                continue
            tree = ast.parse(read(folder, name))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name != "iservdesk"}


def test_depends_cover_every_import():
    unknown = third_party_imports() - set(PACKAGES) - set(OPTIONAL)
    assert not unknown, "imported, but not mapped to a Debian package here and in control: %s" % unknown
    missing = {PACKAGES[name] for name in third_party_imports() - set(OPTIONAL)} - set(depends())
    assert not missing, "packaging/debian/control Depends lacks %s" % sorted(missing)
    suggests = re.search(r"^Suggests:(.*)$", read(DEBIAN, "control"), re.M).group(1)
    assert {OPTIONAL[name] for name in third_party_imports() & set(OPTIONAL)} <= {
        item.strip() for item in suggests.split(",")}


def test_version_floors_match_setup_cfg():
    setup = configparser.ConfigParser()
    setup.read(os.path.join(ROOT, "setup.cfg"))
    floors = {}
    for line in setup["options"]["install_requires"].strip().splitlines():
        name, floor = [part.strip() for part in line.split(">=")]
        floors[DISTRIBUTIONS[name]] = floor
    declared = depends()
    assert {package: declared.get(package) for package in floors} == floors


def postinst_sed_expressions():
    text = read(DEBIAN, "iservdesk.postinst")
    block = text[text.index("iservdesk settings | sed"):text.index('} > "$tmp"')]
    return re.findall(r"-e (['\"])(.*?)\1", block)


def generated_settings(key="0123456789abcdef" * 4):
    """What postinst writes to /etc/iservdesk/iservdesk.env, made with its own sed program."""
    command = ["sed"]
    for _, expression in postinst_sed_expressions():
        command += ["-e", expression.replace("$key", key)]
    return subprocess.run(command, input=configmodule.env_example(), capture_output=True, text=True,
                          check=True).stdout


def test_created_settings_name_what_is_missing(tmp_path):
    path = tmp_path / "iservdesk.env"
    text = generated_settings()
    path.write_text(text)
    assert "SECRET_KEY=" + "0123456789abcdef" * 4 in text.splitlines()
    with pytest.raises(configmodule.ConfigError, match="missing, it must be set"):
        configmodule.load(str(path), environ={})
    # The four settings postinst asks for (and the README names) are all that is missing.
    filled = text
    for name, value in (("PUBLIC_URL", "https://desk.school.example"), ("OAUTH_CLIENT_ID", "iservdesk"),
                        ("OAUTH_CLIENT_SECRET", "s3cret"), ("OAUTH_ISSUER", "https://school.example/iserv")):
        assert "\n%s=\n" % name in filled, name
        filled = filled.replace("\n%s=\n" % name, "\n%s=%s\n" % (name, value))
    path.write_text(filled)
    loaded = configmodule.load(str(path), environ={})
    assert loaded.secret_key == "0123456789abcdef" * 4


def test_required_settings_are_the_ones_postinst_names():
    required = {setting.name for setting in configmodule.SCHEMA if setting.default is None} - {"SECRET_KEY"}
    postinst = read(DEBIAN, "iservdesk.postinst")
    message = re.search(r'not started: set (.*?) in ', postinst).group(1)
    named = set(re.findall(r"[A-Z_]{5,}", message))
    # PUBLIC_URL may be left out for DOCKER_HOST_URL, OAUTH_ISSUER for all four OAUTH_*
    # endpoints (the old product's settings): a new installation sets both.
    assert named == required | {"PUBLIC_URL", "OAUTH_ISSUER"}


@pytest.mark.parametrize("script", ["iservdesk.postinst", "iservdesk.prerm", "iservdesk.postrm"])
def test_maintainer_scripts_are_posix_sh(script):
    path = os.path.join(DEBIAN, script)
    assert read(path).startswith("#!/bin/sh\n")
    assert "#DEBHELPER#" in read(path)
    subprocess.run(["sh", "-n", path], check=True)
    checkbashisms = "/usr/bin/checkbashisms"
    if os.path.exists(checkbashisms):
        subprocess.run([checkbashisms, path], check=True)


def test_units_match_what_the_package_installs():
    rules = read(DEBIAN, "rules")
    for name in os.listdir(os.path.join(ROOT, "systemd")):
        assert name in rules, "%s is not installed by packaging/debian/rules" % name
        unit = read(ROOT, "systemd", name)
        if name.endswith(".service"):
            assert "/usr/bin/iservdesk " in unit and "EnvironmentFile=/etc/iservdesk/iservdesk.env" in unit


def test_man_page_names_every_command():
    from iservdesk import cli
    page = read(ROOT, "packaging", "iservdesk.1")
    commands = cli.parser()._subparsers._group_actions[0].choices
    for name in commands:
        assert re.search(r"^\.(B|BR) %s\b" % name.replace("-", r"\\-"), page, re.M), \
            "packaging/iservdesk.1 does not describe `iservdesk %s`" % name
