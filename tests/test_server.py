"""The serve process: signals, systemd readiness, and logs that keep secrets out."""

import os
import signal
import socket

import requests

from conftest import wait_for


def test_sigterm_stops_the_server_cleanly(portal, docker_client):
    instance = portal()
    instance.process.send_signal(signal.SIGTERM)
    assert instance.process.wait(20) == 0
    log = instance.log()
    assert "received SIGTERM, stopping" in log
    assert "Traceback" not in log


def test_readiness_is_reported_to_systemd(portal, tmp_path, docker_client):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(30)
        instance = portal(env={"NOTIFY_SOCKET": path})
        assert listener.recv(256) == b"READY=1"
        instance.process.send_signal(signal.SIGTERM)
        assert listener.recv(256) == b"STOPPING=1"
    assert instance.process.wait(20) == 0


def test_access_log_hides_credentials_in_urls(portal, docker_client):
    instance = portal(LOG_LEVEL="DEBUG")
    secrets = {"code": "CODE-s3cr3t", "state": "STATE-s3cr3t", "session_id": "SESSION-s3cr3t"}
    requests.get(instance.url + "/healthz", params=secrets, timeout=10)
    wait_for(lambda: "/healthz?" in instance.log(), 10, "the access log line")
    instance.stop()
    log = instance.log()
    assert "GET /healthz?code=[hidden]&state=[hidden]&session_id=[hidden] 200" in log
    for value in secrets.values():
        assert value not in log


def test_a_busy_address_is_one_line_and_exit_1(portal, tmp_path, docker_client):
    import subprocess
    from conftest import ROOT, iservdesk_command, write_config
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path / "busy.env", LISTEN="127.0.0.1:%d" % port)
        result = subprocess.run(iservdesk_command("--config", path, "serve"), cwd=ROOT,
                                capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "iservdesk: LISTEN: cannot listen on 127.0.0.1:%d: Address already in use" % port)
