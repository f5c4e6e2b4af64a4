"""The demo desktop image behaves like a kasmweb image on the wire (real containers)."""

import base64
import secrets
import ssl

import pytest
import requests
import urllib3
import websocket

from conftest import free_port, wait_for

# The image makes a new self-signed certificate at every start: there is nothing to pin.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def start_desktop(containers, image, **environment):
    port = free_port()
    password = secrets.token_urlsafe(24)
    container = containers.run(
        image, environment={"VNC_PW": password, **environment},
        ports={"6901/tcp": ("127.0.0.1", port)}, shm_size="512m")
    url = "https://127.0.0.1:%d" % port
    wait_for(lambda: requests.get(url + "/", verify=False, timeout=2).status_code == 401,
             30, "the desktop's web server")
    return container, url, password


def rfb_banner(url, password, path="/websockify"):
    token = base64.b64encode(("kasm_user:" + password).encode()).decode()
    ws = websocket.create_connection(
        url.replace("https://", "wss://") + path, subprotocols=["binary"],
        header=["Authorization: Basic " + token], origin=url,
        sslopt={"cert_reqs": ssl.CERT_NONE}, timeout=10)
    try:
        return ws.recv()
    finally:
        ws.close()


@pytest.fixture
def desktop(containers, demo_image):
    return start_desktop(containers, demo_image)


def test_every_page_needs_basic_auth(desktop):
    _, url, password = desktop
    for path in ("/", "/vnc.html", "/app/ui.js"):
        assert requests.get(url + path, verify=False, timeout=10).status_code == 401, path
        assert requests.get(url + path, auth=("kasm_user", "wrong"), verify=False, timeout=10).status_code == 401
        assert requests.get(url + path, auth=("kasm_user", password), verify=False, timeout=10).status_code == 200


def test_web_client_is_served_at_the_root_with_relative_assets(desktop):
    _, url, password = desktop
    page = requests.get(url + "/?autoconnect=1&path=desktop/x/websockify", auth=("kasm_user", password),
                        verify=False, timeout=10)
    assert page.status_code == 200
    assert "noVNC" in page.text
    assert 'src="/' not in page.text and 'href="/' not in page.text


def test_websocket_speaks_rfb_with_credentials_only(desktop):
    _, url, password = desktop
    banner = wait_for(lambda: rfb_banner(url, password), 20, "the RFB banner")
    assert banner.startswith(b"RFB 003.00")
    with pytest.raises(websocket.WebSocketBadStatusException):
        rfb_banner(url, "wrong-password")


def test_runs_as_uid_1000_with_a_writable_home(desktop):
    container, _, _ = desktop
    result = container.exec_run(["sh", "-c", "id -u; echo $HOME; touch $HOME/probe && echo writable"])
    assert result.exit_code == 0
    assert result.output.decode().split() == ["1000", "/home/kasm-user", "writable"]


def test_a_real_x_desktop_runs(desktop):
    container, _, _ = desktop
    def processes():
        names = {row[-1].split()[0].rsplit("/", 1)[-1] for row in container.top()["Processes"]}
        return {"Xvnc", "twm", "xterm"} <= names and names
    wait_for(processes, 20, "Xvnc, twm and xterm")


def test_each_start_makes_a_new_certificate(containers, demo_image):
    _, first_url, _ = start_desktop(containers, demo_image)
    _, second_url, _ = start_desktop(containers, demo_image)
    first = ssl.get_server_certificate(("127.0.0.1", int(first_url.rsplit(":", 1)[1])))
    second = ssl.get_server_certificate(("127.0.0.1", int(second_url.rsplit(":", 1)[1])))
    assert first != second


def test_tiny_mode_serves_the_web_client_without_a_desktop(containers, demo_image):
    container, url, password = start_desktop(containers, demo_image, DEMO_MODE="tiny")
    assert requests.get(url + "/", auth=("kasm_user", password), verify=False, timeout=10).status_code == 200
    names = {row[-1] for row in container.top()["Processes"]}
    assert not any("Xvnc" in name for name in names)


def test_refuses_to_start_without_a_password(containers, demo_image, docker_client):
    container = containers.run(demo_image)
    assert container.wait(timeout=30)["StatusCode"] != 0
    assert b"VNC_PW" in container.logs()
