"""The systemd units in systemd/: checked by systemd-analyze offline (there is no systemd
running here), held to what the CLI and the configuration offer, and the portal run under
the process restrictions of the unit that the kernel can impose without systemd."""

import datetime
import os
import re
import shutil
import subprocess
import sys

import pytest
import requests
import websocket

from conftest import (CLIENT_ID, CLIENT_SECRET, ROOT, failed, free_port, remove_desktops, stop_process,
                      wait_for, write_config)
from flows import Client, wait_status
from iservdesk import cli, config as configmodule

UNITS = os.path.join(ROOT, "systemd")
SERVICES = ("iservdesk.service", "iservdesk-cleanup.service")
TIMER = "iservdesk-cleanup.timer"
INSTALLED = "/usr/bin/iservdesk"


def systemd_analyze():
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: `make deps` (apt-get install systemd).", pytrace=False)
    return path


def unit(name):
    """The unit file as {section: {key: [values]}} (keys may repeat)."""
    sections = {}
    section = None
    with open(os.path.join(UNITS, name)) as stream:
        for line in stream:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = sections.setdefault(line.strip("[]"), {})
                continue
            key, value = line.split("=", 1)
            section.setdefault(key, []).append(value)
    return sections


def installable_copies(folder):
    """The units, with the Debian package's /usr/bin/iservdesk (absent here) replaced by this
    checkout's `python3 -m iservdesk`: verify insists that ExecStart's program exists."""
    for name in SERVICES + (TIMER,):
        with open(os.path.join(UNITS, name)) as stream:
            text = stream.read()
        if name != TIMER:
            assert INSTALLED + " " in text, name
        with open(os.path.join(folder, name), "w") as stream:
            stream.write(text.replace(INSTALLED + " ", "%s -m iservdesk " % sys.executable))
    return [os.path.join(folder, name) for name in SERVICES + (TIMER,)]


def verify(paths):
    return subprocess.run([systemd_analyze(), "verify"] + list(paths), capture_output=True, text=True,
                          timeout=60, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})


def test_units_pass_systemd_analyze_verify(tmp_path):
    result = verify(installable_copies(str(tmp_path)))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_reports_a_mistake(tmp_path):
    # The check above has teeth: systemd-analyze verify exits 0 on a bad value, but says so.
    path = installable_copies(str(tmp_path))[0]
    with open(path) as stream:
        text = stream.read().replace("Type=notify", "Type=notfy")
    with open(path, "w") as stream:
        stream.write(text)
    assert "Failed to parse service type" in verify([path]).stderr


@pytest.mark.parametrize("name", SERVICES)
def test_hardening_is_rated_ok_or_better(tmp_path, name):
    path = [p for p in installable_copies(str(tmp_path)) if p.endswith("/" + name)][0]
    result = subprocess.run([systemd_analyze(), "security", "--offline=yes", path], capture_output=True,
                            text=True, timeout=60)
    found = re.search(r"Overall exposure level for %s: ([0-9.]+) (\w+)" % re.escape(name), result.stdout)
    assert found, result.stdout + result.stderr
    exposure, verdict = float(found.group(1)), found.group(2)
    assert verdict in ("SAFE", "OK") and exposure <= 2.0, result.stdout  # README records 1.3 OK


def test_units_run_what_the_cli_and_the_settings_provide():
    database_folder = os.path.dirname(configmodule.BY_NAME["DATABASE_URI"].parse(
        configmodule.BY_NAME["DATABASE_URI"].default))
    for name in SERVICES:
        service = unit(name)["Service"]
        for line in service.get("ExecStartPre", []) + service["ExecStart"]:
            program, *arguments = line.split()
            assert program == INSTALLED, line
            assert cli.parser().parse_args(arguments).command == arguments[0]  # SystemExit if unknown
        assert service["EnvironmentFile"] == [configmodule.DEFAULT_PATH]
        assert "/var/lib/" + service["StateDirectory"][0] == database_folder
        assert (service["User"], service["SupplementaryGroups"]) == (["iservdesk"], ["docker"])
    portal = unit("iservdesk.service")
    assert portal["Service"]["Type"] == ["notify"]  # server.py sends READY=1 and STOPPING=1
    assert portal["Service"]["Restart"] == ["on-failure"]
    assert portal["Install"]["WantedBy"] == ["multi-user.target"]
    assert [line.split()[1] for line in portal["Service"]["ExecStart"]] == ["serve"]
    cleaning = unit("iservdesk-cleanup.service")
    assert cleaning["Service"]["Type"] == ["oneshot"]
    assert [line.split()[1] for line in cleaning["Service"]["ExecStart"]] == ["cleanup"]
    assert "Install" not in cleaning  # started by the timer only
    timer = unit(TIMER)
    assert timer["Timer"]["Persistent"] == ["true"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_the_timer_fires_every_five_minutes():
    calendar = unit(TIMER)["Timer"]["OnCalendar"][0]
    result = subprocess.run([systemd_analyze(), "calendar", "--iterations=4", calendar], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "TZ": "UTC", "LC_ALL": "C"})
    assert result.returncode == 0, result.stderr
    moments = [datetime.datetime.strptime(found, "%Y-%m-%d %H:%M:%S") for found in
               re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", result.stdout)]
    assert len(moments) == 4
    gaps = {later - earlier for earlier, later in zip(moments, moments[1:])}
    assert gaps == {datetime.timedelta(minutes=5)}


# Imitates two of the unit's settings with prctl(2), as systemd applies them:
# NoNewPrivileges= and MemoryDenyWriteExecute= (PR_SET_MDWE, Linux 6.3+). Then execs.
RESTRICTED = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
    sys.exit("PR_SET_NO_NEW_PRIVS failed: errno %d" % ctypes.get_errno())
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit("PR_SET_MDWE failed: errno %d" % ctypes.get_errno())
os.execv(sys.executable, [sys.executable] + sys.argv[1:])
"""


def kernel_denies_write_execute():
    """True if this kernel can imitate MemoryDenyWriteExecute= (checked in a child)."""
    probe = ("import mmap\ntry:\n    mmap.mmap(-1, 4096, prot=7)\nexcept OSError:\n    raise SystemExit(0)\n"
             "raise SystemExit(1)")
    return subprocess.run([sys.executable, "-c", RESTRICTED, "-c", probe], capture_output=True,
                          timeout=60).returncode == 0


def test_portal_works_without_new_privileges_and_writable_executable_memory(idp, docker_client, demo_image,
                                                                             tmp_path, request):
    if not kernel_denies_write_execute():
        pytest.fail("This kernel (%s) cannot imitate MemoryDenyWriteExecute= (prctl PR_SET_MDWE needs "
                    "Linux 6.3 or later); run the tests on a newer kernel." % os.uname().release,
                    pytrace=False)
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    provider = idp(clients=[(CLIENT_ID, CLIENT_SECRET, "client_secret_basic", url + "/authorize")])
    prefix = "iservdesk-test-restricted-%d" % port
    path = write_config(tmp_path / "restricted.env", LISTEN="127.0.0.1:%d" % port, PUBLIC_URL=url,
                        OAUTH_ISSUER=provider.issuer, OAUTH_CLIENT_ID=CLIENT_ID,
                        OAUTH_CLIENT_SECRET=CLIENT_SECRET, CONTAINER_PREFIX=prefix)
    log_path = str(tmp_path / "restricted.log")
    with open(log_path, "wb") as log_stream:
        command = [sys.executable, "-c", RESTRICTED, "-m", "iservdesk", "--config", path, "serve"]
        process = subprocess.Popen(command, cwd=ROOT, stdout=log_stream, stderr=subprocess.STDOUT)
    try:
        def healthy():
            if process.poll() is not None:
                raise AssertionError("the portal exited with %s" % process.returncode)
            return requests.get(url + "/healthz", timeout=5).status_code == 200
        wait_for(healthy, 30, "the restricted portal")
        with open("/proc/%d/status" % process.pid) as stream:
            assert "NoNewPrivs:\t1" in stream.read()
        # Sign-in (JOSE signatures), a desktop start (Docker) and a WebSocket through the proxy.
        anna = Client(url, "anna.schmidt")
        anna.post("/api/container/start", params={"desktop_type": "demo"})
        wait_status(anna, "demo", "running")
        ws = websocket.create_connection(url.replace("http", "ws") + "/desktop/anna.schmidt-demo/websockify",
                                         subprotocols=["binary"], origin=url,
                                         cookie="iservdesk_session=%s" % anna.session_id, timeout=15)
        assert ws.recv().startswith(b"RFB 003.008")
        ws.close()
    finally:
        stop_process(process, 20)
        remove_desktops(prefix, dump_logs=failed(request))
        if failed(request):
            with open(log_path, errors="replace") as stream:
                print("\n----- restricted portal log -----\n" + stream.read())
    assert process.returncode == 0
