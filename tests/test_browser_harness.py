"""The real-browser harness (scripts/devtools.py starts Chromium, tests/browser.py waits
and reads the page) against the real demo desktop, without the portal: headless Chromium
opens the desktop's noVNC client, which connects and shows the X desktop. If this fails,
the portal's browser tests cannot be trusted either."""

import base64
import secrets
import ssl

import requests
import websocket

import browser
from conftest import free_port, wait_for


def rfb_banner(port, password):
    """The VNC server's first message through the desktop's WebSocket (Basic auth)."""
    token = base64.b64encode(("kasm_user:" + password).encode()).decode()
    ws = websocket.create_connection(
        "wss://127.0.0.1:%d/websockify" % port, subprotocols=["binary"],
        header=["Authorization: Basic " + token], sslopt={"cert_reqs": ssl.CERT_NONE}, timeout=5)
    try:
        return ws.recv()
    finally:
        ws.close()


def connected_and_drawn_at(driver, size):
    # A resize clears the canvas until the next framebuffer update: check all at once.
    state = browser.novnc_state(driver)
    if state["connected"] and browser.canvas_not_blank(state) \
            and [state["canvas"]["width"], state["canvas"]["height"]] == size:
        return state
    return None


def test_chromium_connects_to_the_demo_desktop_and_shows_its_screen(containers, demo_image, chromium):
    port, password = free_port(), secrets.token_urlsafe(24)
    containers.run(demo_image, environment={"VNC_PW": password}, ports={"6901/tcp": ("127.0.0.1", port)},
                   shm_size="512m")
    wait_for(lambda: requests.get("https://127.0.0.1:%d/" % port, verify=False, timeout=2).status_code == 401,
             30, "the desktop's web server")
    # The web server answers before Xvnc listens; noVNC does not retry a failed connect.
    assert wait_for(lambda: rfb_banner(port, password), 30, "the RFB banner").startswith(b"RFB ")

    driver = chromium(ignore_certificate_errors=True)
    # Chromium keeps the credentials of a top-level URL and uses them for the page's
    # assets and for noVNC's WebSocket. (fetch() then refuses relative URLs, so noVNC
    # loads no translation; nothing here reads its texts.)
    browser.load(driver, "https://kasm_user:%s@127.0.0.1:%d/?autoconnect=1&resize=remote&path=websockify"
                 % (password, port), lambda d: browser.novnc_state(d)["connected"], 30,
                 "noVNC to connect", describe=browser.novnc_state)
    viewport = driver.execute_script("return [innerWidth, innerHeight];")
    # resize=remote: the X server takes the browser's size (Xvnc starts at 1280x720).
    state = browser.wait_until(driver, lambda d: connected_and_drawn_at(d, viewport), 15,
                               "the remote desktop to take the viewport's size %r" % (viewport,),
                               describe=browser.novnc_state)
    browser.save_screenshot(driver, "harness-novnc-connected")
    assert not state["credentials_asked"] and state["status_kind"] != "error", state
    assert "demo-desktop" in state["title"], state  # noVNC shows the VNC desktop's name
    assert viewport == [1280, 800]
