"""The start of a lesson in real Chromium: a start that waits for a slot shows its place in
line on the overview and starts in its turn, and before an idle stop the owner is warned
on the overview and in the desktop's own tab, where one click keeps the desktop.
Screenshots in German (tests/browser.py's folder)."""

from selenium.webdriver.common.by import By

import browser
from browser import browser_sign_in
from devtools import CATALOG, SLOW_DESKTOP, demo_image_tag
from flows import Client, wait_status


def card_text(driver, slug, selector=""):
    elements = driver.find_elements(By.CSS_SELECTOR, "#desktop-%s %s" % (slug, selector))
    return elements[0].text if elements and elements[0].is_displayed() else None


def test_a_waiting_start_shows_its_place_and_starts_in_its_turn(signed_in_portal, chromium, demo_image, tmp_path):
    (tmp_path / "desktops.toml").write_text(CATALOG.format(image=demo_image_tag())
                                            + SLOW_DESKTOP.format(image=demo_image_tag(), seconds=6))
    portal, _ = signed_in_portal(START_CONCURRENCY="1")
    driver = chromium(language="de")
    browser_sign_in(driver, portal.url, "anna.schmidt")
    start = browser.wait_until(driver, lambda d: d.find_elements(
        By.CSS_SELECTOR, "#desktop-tiny button[data-action=start]"), 20, "anna's start button")[0]
    ben = Client(portal.url, "ben")
    assert ben.post("/api/container/start", params={"desktop_type": "slow"}).json()["status"] == "starting"
    start.click()
    place = browser.wait_until(driver, lambda d: card_text(d, "tiny", ".queue-position"), 10, "anna's place in line")
    assert place.startswith("Du bist auf Platz 1."), place
    assert card_text(driver, "tiny", ".badge") == "Wartet"
    assert card_text(driver, "tiny", "button[data-action=stop]") == "Abbrechen"
    browser.save_screenshot(driver, "dashboard-queued-de")
    # Ben's desktop answers, the slot goes to Anna: her card says so without a reload.
    browser.wait_until(driver, lambda d: card_text(d, "tiny", ".badge") == "Läuft", 60, "anna's desktop to run")
    assert wait_status(ben, "slow", "running")["status"] == "running"
    assert "Traceback" not in portal.log()


def test_the_owner_is_warned_before_an_idle_stop_and_one_click_keeps_the_desktop(signed_in_portal, chromium,
                                                                                 demo_image):
    # Stopped after 200 s unused, warned 190 s before: 10 s after the last use.
    portal, _ = signed_in_portal(IDLE_TIMEOUT="200s", IDLE_WARNING="190s")
    anna = Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "demo"})
    wait_status(anna, "demo", "running")
    driver = chromium(language="de")
    browser_sign_in(driver, portal.url, "anna.schmidt")
    browser.wait_until(driver, lambda d: card_text(d, "demo", ".badge") == "Läuft", 20, "the running desktop")
    if anna.get("/api/container/status", params={"desktop_type": "demo"}).json()["idle_warning_in"] > 2:
        assert card_text(driver, "demo", ".idle-warning") is None  # not yet
    warning = browser.wait_until(driver, lambda d: card_text(d, "demo", ".idle-warning"), 30, "the idle warning")
    assert "Dein Desktop wird in 4 Minuten gestoppt, weil er nicht benutzt wird — weiterarbeiten?" in warning, warning
    browser.save_screenshot(driver, "dashboard-idle-warning-de")
    before = anna.get("/api/container/status", params={"desktop_type": "demo"}).json()
    driver.find_element(By.CSS_SELECTOR, "#desktop-demo button[data-action=keep]").click()
    browser.wait_until(driver, lambda d: card_text(d, "demo", ".idle-warning") is None, 10, "the warning to go")
    after = anna.get("/api/container/status", params={"desktop_type": "demo"}).json()
    assert after["last_access_at"] > before["last_access_at"] and after["idle_stop_in"] > before["idle_stop_in"]
    assert "anna.schmidt keeps desktop anna.schmidt-demo running" in portal.log()

    # The same in English, ten seconds after the click.
    driver.get(portal.url + "/lang/en?next=/")
    warning = browser.wait_until(driver, lambda d: card_text(d, "demo", ".idle-warning"), 30, "the English warning")
    assert "Your desktop will be stopped in 4 minutes because it is not being used. Keep working?" in warning, warning
    assert "Keep working" in warning
    browser.save_screenshot(driver, "dashboard-idle-warning-en")
    driver.find_element(By.CSS_SELECTOR, "#desktop-demo button[data-action=keep]").click()
    browser.wait_until(driver, lambda d: card_text(d, "demo", ".idle-warning") is None, 10, "the warning to go")
    driver.get(portal.url + "/lang/de?next=/")

    # In the desktop's own tab (its screen unchanged, so no use): the same warning in the
    # portal's bar over the desktop, and the same click.
    driver.switch_to.new_window("tab")
    driver.get(portal.url + "/desktop/anna.schmidt-demo/")
    bar = browser.wait_until(driver, lambda d: (lambda e: e[0].text if e and e[0].is_displayed() else None)(
        d.find_elements(By.ID, "idle-warning")), 45, "the warning in the desktop's tab")
    assert "weil er nicht benutzt wird — weiterarbeiten?" in bar and "Weiterarbeiten" in bar, bar
    browser.save_screenshot(driver, "desktop-tab-idle-warning-de")
    driver.find_element(By.ID, "keep").click()
    browser.wait_until(driver, lambda d: not d.find_element(By.ID, "idle-warning").is_displayed(), 10,
                       "the tab's warning to go")


def test_a_teacher_prepares_the_class_on_the_class_page(signed_in_portal, chromium, demo_image):
    portal, _ = signed_in_portal(CLASS_GROUPS="klasse-*")
    anna, max_ = Client(portal.url, "anna.schmidt"), Client(portal.url, "max.muster")
    driver = chromium(language="en")
    browser_sign_in(driver, portal.url, "lehrer")
    driver.get(portal.url + "/class/klasse-7a")
    choice = browser.wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#prepare-type option[value=tiny]"),
                                20, "the desktop types to prepare")[0]
    assert "Nothing prepared yet." in driver.find_element(By.ID, "preparations").text
    choice.click()
    driver.find_element(By.CSS_SELECTOR, "#prepare-form button[type=submit]").click()  # time empty: now
    item = browser.wait_until(driver, lambda d: (lambda e: e[0].text if e else None)(
        d.find_elements(By.CSS_SELECTOR, "#preparations li[data-state=done]")), 20, "the preparation in the list")
    assert item.startswith("Tiny (") and "2 started, 0 opened" in item and "Cancel" in item, item
    for student in (anna, max_):
        wait_status(student, "tiny", "running", timeout=120)
    browser.save_screenshot(driver, "class-prepared-en")
    # Cancelled before anyone opened them: both stop (their files stay).
    driver.find_element(By.CSS_SELECTOR, "#preparations li[data-state=done] button").click()
    browser.wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#preparations li[data-state=cancelled]"),
                       20, "the cancelled preparation")
    for student in (anna, max_):
        wait_status(student, "tiny", "stopped", timeout=60)
