"""The demo desktop image behaves like a kasmweb image on the wire (real containers)."""

import base64
import secrets
import ssl
import struct
import time

import pytest
import requests
import urllib3
import websocket

from conftest import free_port, wait_for
from rfb import Rfb

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


# KasmVNC's owner-only API and its view-only user (see the docstring of
# /usr/local/bin/demo-desktop-websockify in scripts/build-demo-desktop).

def viewer_desktop(containers, image, **environment):
    viewer_password = secrets.token_urlsafe(24)
    container, url, password = start_desktop(containers, image, VNC_VIEW_ONLY_PW=viewer_password,
                                             **environment)
    return container, url, password, viewer_password


def screenshot(url, user, password, **params):
    return requests.get(url + "/api/get_screenshot", params=params, auth=(user, password),
                        verify=False, timeout=20)


def jpeg_size(data):
    """(width, height) from a baseline/progressive JPEG's frame header."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9", "not a complete JPEG"
    pos = 2
    while pos < len(data):
        assert data[pos] == 0xFF
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    raise AssertionError("no frame header in the JPEG")


def steady_screenshot(url, password):
    """A full-size screenshot once the screen stopped changing (X up, xterm drawn)."""
    last = [None]
    def steady():
        answer = screenshot(url, "kasm_user", password, quality=9)
        same = answer.status_code == 200 and answer.content == last[0]
        last[0] = answer.content if answer.status_code == 200 else None
        if not same:
            time.sleep(0.5)
        return same and answer.content
    return wait_for(steady, 30, "a steady screen")


def test_owner_gets_a_screenshot_scaled_to_fit(containers, demo_image):
    _, url, password, _ = viewer_desktop(containers, demo_image)
    full = steady_screenshot(url, password)
    assert jpeg_size(full) == (1280, 720)  # VNC_RESOLUTION's default, never enlarged
    for (width, height), expected in [((320, 240), (320, 180)), ((100, 500), (100, 56)),
                                      ((2000, 360), (640, 360)), ((4096, 4096), (1280, 720))]:
        answer = screenshot(url, "kasm_user", password, width=width, height=height)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "image/jpeg"
        assert jpeg_size(answer.content) == expected, (width, height)
    small = screenshot(url, "kasm_user", password, width=320, height=180, quality=0).content
    large = screenshot(url, "kasm_user", password, width=320, height=180, quality=9).content
    assert len(small) < len(large)
    # KasmVNC's answers to what it does not accept: 400, text/plain.
    for params in ({"quality": 10}, {"width": 0}, {"height": 0}):
        answer = screenshot(url, "kasm_user", password, **params)
        assert (answer.status_code, answer.text) == (400, "400 Bad Request"), params


def test_screenshot_follows_the_screen(containers, demo_image):
    container, url, password, _ = viewer_desktop(containers, demo_image)
    before = steady_screenshot(url, password)
    thumbnail = screenshot(url, "kasm_user", password, width=160, height=90, deduplicate="true")
    assert thumbnail.headers["Content-Type"] == "image/jpeg"
    # Same size and quality, unchanged screen: KasmVNC's deduplicate answers the hash.
    again = screenshot(url, "kasm_user", password, width=160, height=90, deduplicate="true")
    assert again.headers["Content-Type"].startswith("text/plain")
    assert len(again.text) == 16 and int(again.text, 16) >= 0
    container.exec_run(["xlogo", "-display", ":1", "-geometry", "1280x720+0+0", "-bg", "red",
                        "-fg", "red"], detach=True)
    wait_for(lambda: screenshot(url, "kasm_user", password, quality=9).content != before,
             20, "a changed screenshot")
    changed = screenshot(url, "kasm_user", password, width=160, height=90, deduplicate="true")
    assert changed.headers["Content-Type"] == "image/jpeg"
    assert changed.content != thumbnail.content


def test_screenshot_api_is_for_the_owner_only(containers, demo_image):
    _, url, password, viewer_password = viewer_desktop(containers, demo_image)
    # KasmVNC answers a user without the owner flag 401 "401 Unauthorized" (no
    # WWW-Authenticate) under /api/, not 403.
    answer = screenshot(url, "kasm_viewer", viewer_password, width=320, height=180)
    assert (answer.status_code, answer.text) == (401, "401 Unauthorized")
    assert "WWW-Authenticate" not in answer.headers
    assert answer.headers["Content-Type"] == "text/plain"
    for user, wrong in (("kasm_user", viewer_password), ("kasm_viewer", password),
                        ("kasm_user", "wrong"), ("someone", password)):
        answer = screenshot(url, user, wrong, width=320, height=180)
        assert answer.status_code == 401, user
        assert "Basic" in answer.headers["WWW-Authenticate"]
        assert "image" not in answer.headers.get("Content-Type", "")
    assert requests.get(url + "/api/get_screenshot", verify=False, timeout=10).status_code == 401
    # The viewer may load the web client (as on KasmVNC), only not the owner's API.
    page = requests.get(url + "/", auth=("kasm_viewer", viewer_password), verify=False, timeout=10)
    assert page.status_code == 200


def test_no_viewer_without_a_view_only_password(desktop):
    _, url, password = desktop
    for secret in ("", "vncviewonlypassword", password):
        assert requests.get(url + "/", auth=("kasm_viewer", secret), verify=False,
                            timeout=10).status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException):
        Rfb(url, "kasm_viewer", "")


def test_viewer_sees_the_screen_but_its_input_never_reaches_it(containers, demo_image):
    _, url, password, viewer_password = viewer_desktop(containers, demo_image)
    before = steady_screenshot(url, password)
    viewer = wait_for(lambda: Rfb(url, "kasm_viewer", viewer_password), 20, "the viewer's RFB")
    assert (viewer.width, viewer.height) == (1280, 720)
    viewer.type_and_click()
    # The stream stays in step after the dropped messages: an update still arrives.
    viewer.framebuffer_update()
    time.sleep(1.5)
    assert screenshot(url, "kasm_user", password, quality=9).content == before
    # The same input from the owner does change the screen: the check above can fail.
    owner = Rfb(url, "kasm_user", password)
    owner.type_and_click()
    wait_for(lambda: screenshot(url, "kasm_user", password, quality=9).content != before,
             10, "the owner's input on the screen")
    owner.ws.close()


def test_tiny_mode_has_no_screen_to_show(containers, demo_image):
    # KasmVNC without a screen copy answers 400 "400 Bad Request": so does the demo image
    # without X. The owner check comes first, as in KasmVNC.
    _, url, password, viewer_password = viewer_desktop(containers, demo_image, DEMO_MODE="tiny")
    answer = screenshot(url, "kasm_user", password, width=320, height=180)
    assert (answer.status_code, answer.text) == (400, "400 Bad Request")
    assert screenshot(url, "kasm_viewer", viewer_password).status_code == 401
    assert screenshot(url, "kasm_user", "wrong").status_code == 401


def test_strict_mode_answers_the_same(containers, demo_image):
    _, url, password, viewer_password = viewer_desktop(containers, demo_image, DEMO_MODE="strict")
    assert jpeg_size(steady_screenshot(url, password)) == (1280, 720)
    assert screenshot(url, "kasm_viewer", viewer_password).status_code == 401
    assert screenshot(url, "kasm_user", "wrong").status_code == 401
    viewer = wait_for(lambda: Rfb(url, "kasm_viewer", viewer_password), 20, "the viewer's RFB")
    before = screenshot(url, "kasm_user", password, quality=9).content
    viewer.type_and_click()
    viewer.framebuffer_update()
    time.sleep(1)
    assert screenshot(url, "kasm_user", password, quality=9).content == before
