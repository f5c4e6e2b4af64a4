"""A real browser (headless Chromium) through the portal's proxy: sign in at the
development identity provider, open a demo desktop at /desktop/<name>/, see noVNC
connected; a desktop that dies or is started from its status page. (What a hostile page
inside a desktop can do is in test_browser_hostile.py.)"""


import pytest

from selenium.webdriver.common.by import By

import browser
from browser import connected_and_drawn, running_in_browser
from conftest import container_of
from flows import wait_status


@pytest.mark.parametrize("slug", ["demo", "strict"])
def test_browser_opens_a_desktop_through_the_proxy_and_novnc_connects(signed_in_portal, chromium, demo_image,
                                                                      slug):
    # "strict": the desktop refuses any handshake but the browser's own, as KasmVNC does.
    portal, _ = signed_in_portal()
    driver = chromium()
    running_in_browser(driver, portal.url, "max.muster", slug)

    name = "max.muster-" + slug
    state = browser.load(driver, portal.url + "/desktop/" + name, connected_and_drawn, 30,
                         "noVNC to connect through the proxy", describe=browser.novnc_state)
    assert driver.current_url.startswith(portal.url + "/desktop/%s/?" % name)
    assert "path=desktop%%2F%s%%2Fwebsockify" % name in driver.current_url
    assert "demo-desktop" in state["title"]
    assert not state["credentials_asked"]
    browser.save_screenshot(driver, "proxy-novnc-connected-" + slug)


def test_a_desktop_dying_mid_session_disconnects_the_viewer_and_the_page_says_stopped(
        signed_in_portal, chromium, docker_client, demo_image):
    portal, _ = signed_in_portal()
    driver = chromium(language="en")
    api = running_in_browser(driver, portal.url, "max.muster", "demo")
    url = portal.url + "/desktop/max.muster-demo/"
    browser.load(driver, url, connected_and_drawn, 30, "noVNC to connect", describe=browser.novnc_state)

    container_of(docker_client, portal, "max.muster-demo").kill()
    # The relay closes the browser's WebSocket when the container's side goes: noVNC
    # leaves the connected state and tells the user.
    state = browser.wait_until(driver, lambda d: (lambda s: s if not s["connected"] and s["status_text"]
                                                  else None)(browser.novnc_state(d)), 20,
                               "noVNC to notice the lost desktop", describe=browser.novnc_state)
    assert state["status_shown"], state
    wait_status(api, "demo", "stopped", timeout=20)
    # Loading the desktop again shows the portal's page for a stopped desktop, not a 502.
    browser.load(driver, url, lambda d: d.find_elements(By.ID, "start"), 30, "the stopped page",
                 describe=lambda d: d.page_source[:3000])
    assert "stopped" in driver.find_element(By.TAG_NAME, "body").text.lower()
    browser.save_screenshot(driver, "proxy-desktop-died")


def test_starting_page_follows_progress_and_continues_to_the_desktop(signed_in_portal, chromium, demo_image):
    portal, _ = signed_in_portal()
    driver = chromium()
    api = running_in_browser(driver, portal.url, "ben", "demo")
    api.post("/api/container/stop", params={"desktop_type": "demo"})
    driver.get(portal.url + "/desktop/ben-demo/vnc.html")
    browser.wait_until(driver, lambda d: d.find_elements(By.ID, "start"), 20, "the status page")
    assert "gestoppt" in driver.find_element(By.ID, "status-de").text
    browser.save_screenshot(driver, "proxy-desktop-stopped")
    driver.find_element(By.ID, "start").click()
    browser.wait_until(driver, lambda d: "/desktop/ben-demo/?" in d.current_url, 30,
                       "the page to continue to the desktop by itself")
    # Loaded again only if Docker's new network interface made Chromium abort the page's
    # requests (ERR_NETWORK_CHANGED: browser and engine share this host only in tests).
    browser.load(driver, driver.current_url, connected_and_drawn, 30, "noVNC to connect",
                 describe=browser.novnc_state)
