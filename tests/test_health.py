"""GET /healthz against a real `iservdesk serve`, a real engine and a real SQLite file."""

import json
import sqlite3

import requests

from conftest import DOCKER_URL, wait_for
from relay import Relay


def health(portal):
    response = requests.get(portal.url + "/healthz", timeout=30)
    return response.status_code, response.json()


def test_healthz_is_ok_with_database_and_engine(portal, docker_client):
    instance = portal()
    status, body = health(instance)
    assert status == 200
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "docker": "ok"}


def test_healthz_reports_a_down_engine_and_recovers_without_restart(portal, tmp_path, docker_client):
    socket_path = str(tmp_path / "engine.sock")
    instance = portal(DOCKER_URL="unix://" + socket_path, wait_healthy=False)

    status, body = health(instance)
    assert status == 503
    assert body["status"] == "error"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["docker"] == "error: engine_unreachable"
    assert socket_path not in json.dumps(body)  # the engine's socket stays in the log
    assert "The Docker engine at unix://%s does not answer" % socket_path in instance.log()

    relay = Relay(socket_path, DOCKER_URL[len("unix://"):])
    try:
        wait_for(lambda: health(instance)[0] == 200, 30, "healthz to recover")
        assert health(instance)[1]["checks"]["docker"] == "ok"
    finally:
        relay.stop()
    wait_for(lambda: health(instance)[0] == 503, 30, "healthz to notice the engine is gone again")
    assert instance.process.poll() is None


def test_healthz_reports_a_database_with_the_wrong_schema(portal, tmp_path, docker_client):
    instance = portal()
    con = sqlite3.connect(str(tmp_path / "iservdesk.db"))
    con.execute("PRAGMA user_version = 1")
    con.close()
    status, body = health(instance)
    assert status == 503
    assert body["checks"]["database"].startswith("error: schema version 1, expected")


def test_unknown_path_answers_json_under_api_and_a_page_elsewhere(portal, docker_client):
    instance = portal()
    api = requests.get(instance.url + "/api/nothing", timeout=10)
    assert (api.status_code, api.json()) == (404, {"error": "not_found", "message": "Not found."})
    page = requests.get(instance.url + "/nothing", timeout=10)
    assert page.status_code == 404
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Traceback" not in page.text
    wrong_method = requests.post(instance.url + "/healthz", timeout=10)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
