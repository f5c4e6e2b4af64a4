"""The web interface in a real browser (headless Chromium): sign in, start a desktop and
watch it get ready, open it, stop and remove it, switch language; the admin panel sees
another user's desktop appear live and stops it. Screenshots of every page, in both
languages, go to the run's screenshot folder (tests/browser.py)."""

import os
import re

import pytest
from selenium.webdriver.common.by import By

import browser
from browser import browser_sign_in, connected_and_drawn
from conftest import ROOT
from flows import Client, wait_status
from iservdesk.web import i18n


def card(driver, slug):
    return driver.find_element(By.ID, "desktop-" + slug)


def card_status(driver, slug):
    elements = driver.find_elements(By.ID, "desktop-" + slug)
    return elements[0].get_attribute("data-status") if elements else None


def click_action(driver, slug, action):
    card(driver, slug).find_element(By.CSS_SELECTOR, 'button[data-action="%s"]' % action).click()


def test_every_text_exists_in_both_languages():
    german, english = i18n.CATALOGUES["de"], i18n.CATALOGUES["en"]
    assert set(german) == set(english)
    assert all(german[key].strip() and english[key].strip() for key in german)
    for key in german:  # the same placeholders on both sides
        assert re.findall(r"{\w+}", german[key]) == re.findall(r"{\w+}", english[key]), key


def test_every_text_key_used_by_the_pages_exists():
    used = set()
    web = os.path.join(ROOT, "iservdesk", "web")
    for folder in ("templates", "static"):
        for name in os.listdir(os.path.join(web, folder)):
            if os.path.isdir(os.path.join(web, folder, name)):
                continue
            with open(os.path.join(web, folder, name), errors="replace") as stream:
                text = stream.read()
            used |= set(re.findall(r"""t\[["']([a-z_.]+)["']\]""", text))
            used |= set(re.findall(r"""d\.t\(["']([a-z_.]+[a-z_])["']""", text))
    used |= {"status." + status for status in ("absent", "new", "pulling", "starting", "running",
                                                "stopped", "removed", "error")}
    assert used and used <= set(i18n.CATALOGUES["de"]), used - set(i18n.CATALOGUES["de"])


@pytest.mark.parametrize("header,cookie,expected", [
    ("de-DE,de;q=0.9,en;q=0.8", None, "de"), ("en-GB,en;q=0.9", None, "en"),
    ("fr-FR, en;q=0.5, de;q=0.4", None, "en"), ("fr", None, "de"), (None, None, "de"),
    ("de", "en", "en"), ("en", "xx", "en"),
])
def test_language_comes_from_the_choice_then_the_browser(header, cookie, expected):
    assert i18n.choose(cookie, header) == expected


def test_a_student_starts_opens_stops_and_removes_a_desktop(signed_in_portal, chromium, demo_image):
    portal, _ = signed_in_portal()
    driver = chromium(language="de")
    driver.get(portal.url + "/")
    browser.wait_until(driver, lambda d: d.find_elements(By.ID, "login"), 20, "the welcome page")
    assert "Mit IServ anmelden" in driver.find_element(By.ID, "login").text
    browser.save_screenshot(driver, "welcome-de")
    browser_sign_in(driver, portal.url, "max.muster")
    browser.wait_until(driver, lambda d: card_status(d, "demo") == "absent", 20, "the desktop cards")
    assert driver.find_element(By.ID, "user-name").text == "Max Mustermann"
    assert "Demo-Desktop" in card(driver, "demo").text and "Noch nicht gestartet" in card(driver, "demo").text
    assert not driver.find_elements(By.ID, "desktop-teachers-only")
    assert not driver.find_elements(By.CSS_SELECTOR, ".admin-link")
    browser.save_screenshot(driver, "dashboard-de")

    click_action(driver, "demo", "start")
    browser.wait_until(driver, lambda d: card_status(d, "demo") in ("starting", "running"), 20, "starting")
    browser.wait_until(driver, lambda d: card_status(d, "demo") == "running", 60, "the desktop to be ready")
    assert "Läuft" in card(driver, "demo").text
    assert "Dein Desktop ist bereit." in driver.find_element(By.ID, "notice").text
    browser.save_screenshot(driver, "dashboard-running-de")

    open_link = card(driver, "demo").find_element(By.CSS_SELECTOR, "a.open")
    assert open_link.get_attribute("target") == "_blank" and open_link.get_attribute("rel") == "noopener"
    dashboard = driver.current_window_handle
    open_link.click()
    browser.wait_until(driver, lambda d: len(d.window_handles) == 2, 10, "the desktop's tab")
    driver.switch_to.window([handle for handle in driver.window_handles if handle != dashboard][0])
    browser.load(driver, driver.current_url, connected_and_drawn, 30, "noVNC in the new tab",
                 describe=browser.novnc_state)
    assert "/desktop/max.muster-demo/" in driver.current_url
    browser.save_screenshot(driver, "desktop-de")
    driver.close()
    driver.switch_to.window(dashboard)

    click_action(driver, "demo", "stop")
    browser.wait_until(driver, lambda d: card_status(d, "demo") == "stopped", 30, "the desktop to stop")
    click_action(driver, "demo", "remove")
    alert = driver.switch_to.alert
    assert "Dateien im Home-Ordner bleiben erhalten" in alert.text
    alert.accept()
    browser.wait_until(driver, lambda d: card_status(d, "demo") == "removed", 30, "the desktop to go")
    assert "vor" in card(driver, "demo").find_element(By.CSS_SELECTOR, ".last-access time").text
    assert card(driver, "demo").find_element(By.CSS_SELECTOR, ".last-access time").get_attribute("title")

    driver.find_element(By.CSS_SELECTOR, 'a[hreflang="en"]').click()
    browser.wait_until(driver, lambda d: d.find_elements(By.ID, "desktop-demo")
                       and "Your desktops" in d.find_element(By.TAG_NAME, "h1").text, 20, "English")
    assert "Removed" in card(driver, "demo").text
    browser.save_screenshot(driver, "dashboard-en")
    driver.refresh()  # the choice is remembered
    browser.wait_until(driver, lambda d: "Your desktops" in d.find_element(By.TAG_NAME, "h1").text, 20,
                       "English after reload")


def test_keyboard_reaches_every_action_with_a_visible_focus(signed_in_portal, chromium, demo_image):
    portal, _ = signed_in_portal()
    driver = chromium(language="en", window=(820, 1180))  # a tablet, upright
    driver.get(portal.url + "/")
    browser.wait_until(driver, lambda d: "Sign in with IServ" in d.find_element(By.ID, "login").text, 20,
                       "the English welcome page")
    browser.save_screenshot(driver, "welcome-en")
    browser_sign_in(driver, portal.url, "anna.schmidt")
    browser.wait_until(driver, lambda d: card_status(d, "tiny") == "absent", 20, "the cards")
    focused = []
    for _ in range(12):
        driver.switch_to.active_element.send_keys("\t")
        element = driver.switch_to.active_element
        if element.tag_name == "body":
            break  # past the last control
        outline = driver.execute_script("return getComputedStyle(arguments[0]).outlineStyle;", element)
        focused.append((element.tag_name, element.text or element.get_attribute("href"), outline))
    start_buttons = [item for item in focused if item[0] == "button" and item[1] == "Start"]
    assert start_buttons and all(item[2] != "none" for item in focused), [item for item in focused if item[2] == "none"]
    width = driver.execute_script("return document.documentElement.scrollWidth;")
    assert width <= 820  # no sideways scrolling on a tablet
    browser.save_screenshot(driver, "dashboard-tablet-en")
    driver.get(portal.url + "/admin")
    assert "This page is for administrators only." in driver.find_element(By.TAG_NAME, "main").text
    browser.save_screenshot(driver, "admin-forbidden-en")


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_admin_sees_desktops_appear_live_and_stops_them(signed_in_portal, chromium, demo_image, language):
    portal, _ = signed_in_portal()
    driver = chromium(language=language)
    browser_sign_in(driver, portal.url, "admin")
    driver.get(portal.url + "/admin")
    browser.wait_until(driver, lambda d: d.find_element(By.ID, "stat-total").text == "0", 20, "statistics")

    student = Client(portal.url, "ben")
    student.post("/api/container/start", params={"desktop_type": "tiny"})
    row_selector = 'tr[data-name="ben-tiny"]'
    browser.wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row_selector)
                       and "running" in d.find_element(By.CSS_SELECTOR, row_selector + " .badge").get_attribute("class"),
                       30, "ben's desktop to appear live")
    assert driver.find_element(By.ID, "stat-running").text == "1"
    assert driver.find_element(By.ID, "stat-users").text == "1"
    row_text = driver.find_element(By.CSS_SELECTOR, row_selector).text
    assert "Ben" in row_text and "tiny" in row_text
    browser.save_screenshot(driver, "admin-%s" % language)

    driver.find_element(By.ID, "filter").send_keys("nobody-matches")
    assert not driver.find_elements(By.CSS_SELECTOR, row_selector)
    driver.find_element(By.ID, "filter").clear()
    driver.find_element(By.ID, "filter").send_keys("ben")
    browser.wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, row_selector), 5, "the filter")

    driver.find_element(By.CSS_SELECTOR, row_selector + ' button[data-action="stop"]').click()
    wait_status(student, "tiny", "stopped")
    browser.wait_until(driver, lambda d: "stopped" in d.find_element(By.CSS_SELECTOR, row_selector + " .badge")
                       .get_attribute("class"), 20, "the table to show the stop")

    student.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(student, "tiny", "running")
    driver.find_element(By.ID, "stop-all").click()
    alert = driver.switch_to.alert
    assert "1" in alert.text
    alert.accept()
    wait_status(student, "tiny", "stopped")
    driver.refresh()
    browser.wait_until(driver, lambda d: "desktop.stop-all" in d.find_element(By.ID, "audit").text, 20,
                       "the audit log")
    assert "admin" in driver.find_element(By.ID, "audit").text
