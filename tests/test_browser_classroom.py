"""The classroom in real headless Chromium (issue 16, first slice): a teacher in two classes
(lehrer) finds them on the dashboard, opens a class page, and watches a student's running
demo desktop in the portal's view-only viewer, while the student's dashboard shows who is
watching since when, and afterwards the watch in its history. Who may see a class page:
a teacher in no class and a student get 403, a signed-out visitor the sign-in, and with
CLASSROOM=off it is 404. Screenshots of the class page and the student's banner in German
and English go to the run's screenshot folder (tests/browser.py)."""

import requests
from selenium.webdriver.common.by import By

import browser
from browser import browser_sign_in
from flows import Client, wait_status
from proxying import database

TEACHER, STUDENT, CLASSMATE = "lehrer", "anna.schmidt", "max.muster"


def viewer_state(driver):
    """The portal viewer's state (data-* of #viewer, as in test_viewer.py)."""
    return driver.execute_script(
        "const v = document.getElementById('viewer'), status = document.getElementById('status');"
        "return v ? Object.assign({status: status ? status.textContent : null}, v.dataset) : null;")


def viewer_connected(driver):
    state = viewer_state(driver)
    if state and state.get("state") in ("failed", "closed"):
        raise AssertionError("the viewer gave up: %r" % state)
    return state if state and state.get("state") == "connected" else None


def shown(driver, element_id):
    """The element's text when it is there and not hidden, else None."""
    elements = driver.find_elements(By.ID, element_id)
    return elements[0].text if elements and elements[0].is_displayed() else None


def class_links(driver):
    return [link.get_attribute("href").rsplit("/", 2)[-2:]
            for link in driver.find_elements(By.CSS_SELECTOR, "#class-list a")]


def watch_link(driver, username):
    links = driver.find_elements(By.CSS_SELECTOR, "#member-%s a.watch" % username.replace(".", "\\."))
    return links[0] if links else None


def test_a_teacher_watches_a_students_desktop_and_the_student_sees_it(signed_in_portal, chromium, demo_image,
                                                                       tmp_path):
    portal, _ = signed_in_portal(CLASS_GROUPS="klasse-*")
    anna = Client(portal.url, STUDENT)
    anna.post("/api/container/start", params={"desktop_type": "demo"})
    Client(portal.url, CLASSMATE)  # known from a sign-in, without a desktop
    wait_status(anna, "demo", "running")

    student = chromium(language="de")
    browser_sign_in(student, portal.url, STUDENT)
    browser.wait_until(student, lambda d: d.find_elements(By.CSS_SELECTOR, "#desktop-demo[data-status=running]"),
                       20, "anna's running desktop on her dashboard")
    assert shown(student, "watching") is None and shown(student, "watch-history") is None
    assert not student.find_elements(By.ID, "classes")  # students have no classes

    teacher = chromium(language="de")
    browser_sign_in(teacher, portal.url, TEACHER)
    browser.wait_until(teacher, lambda d: shown(d, "classes"), 20, "the teacher's classes")
    assert "Meine Klassen" in shown(teacher, "classes")
    assert class_links(teacher) == [["class", "klasse-7a"], ["class", "klasse-8b"]]
    assert "Mitglieder: 2" in teacher.find_element(By.CSS_SELECTOR, "#class-list li:first-child").text
    browser.save_screenshot(teacher, "dashboard-teacher-de")

    teacher.find_element(By.CSS_SELECTOR, '#class-list a[href="/class/klasse-7a"]').click()
    browser.wait_until(teacher, lambda d: watch_link(d, STUDENT), 20, "anna's desktop with a Watch link")
    page = teacher.find_element(By.TAG_NAME, "main").text
    # IServ's name of the group, its account name under it.
    assert teacher.find_element(By.TAG_NAME, "h1").text == "Klasse 7a"
    assert teacher.find_element(By.CLASS_NAME, "group-account").text == "klasse-7a"
    assert teacher.title.startswith("Klasse 7a – Klassenseite")
    assert "Nur wer sich schon einmal angemeldet hat, erscheint hier." in page
    assert "sieht" in page and "protokolliert" in page
    anna_tile = teacher.find_element(By.ID, "member-anna.schmidt")
    assert "Anna Schmidt" in anna_tile.text and "Demo-Desktop" in anna_tile.text and "Läuft" in anna_tile.text
    assert "Noch kein Desktop." in teacher.find_element(By.ID, "member-max.muster").text
    assert not teacher.find_elements(By.ID, "member-lehrer")  # the teacher is no member
    link = watch_link(teacher, STUDENT)
    assert link.text == "Zuschauen"
    assert (link.get_attribute("target"), link.get_attribute("rel")) == ("_blank", "noopener")
    assert link.get_attribute("href") == portal.url + "/desktop/anna.schmidt-demo/"
    browser.save_screenshot(teacher, "class-de")

    class_tab = teacher.current_window_handle
    link.click()
    browser.wait_until(teacher, lambda d: len(d.window_handles) == 2, 10, "the viewer's tab")
    viewer_tab = [handle for handle in teacher.window_handles if handle != class_tab][0]
    teacher.switch_to.window(viewer_tab)
    state = browser.wait_until(teacher, viewer_connected, 30, "the view-only viewer", describe=viewer_state)
    assert state["viewOnly"] == "true"
    assert teacher.find_element(By.ID, "viewer").get_attribute("data-view-only") == "true"
    assert browser.wait_until(teacher, lambda d: browser.canvas_not_blank(browser.novnc_state(d)), 15,
                              "the canvas to show anna's desktop", describe=browser.novnc_state)
    assert "/desktop/anna.schmidt-demo/" in teacher.current_url

    # Live, from the "watch" event of /api/events (the page polls only every 30 s).
    banner = browser.wait_until(student, lambda d: shown(d, "watching"), 8, "the banner on anna's dashboard")
    assert "Lena Lehrer sieht deinen Bildschirm seit " in banner, banner
    assert "anna.schmidt-demo" in banner
    ongoing = browser.wait_until(student, lambda d: shown(d, "watch-history"), 20, "the ongoing watch's history")
    assert "Lena Lehrer hat anna.schmidt-demo angesehen" in ongoing and "bis jetzt" in ongoing
    browser.save_screenshot(student, "watched-banner-de")
    # And in the desktop's own tab: the portal's bar over her desktop.
    dashboard = student.current_window_handle
    student.switch_to.new_window("tab")
    desktop_tab = student.current_window_handle
    browser.load(student, portal.url + "/desktop/anna.schmidt-demo/",
                 lambda d: browser.canvas_not_blank(browser.novnc_state(d)), 30, "anna's own desktop",
                 describe=browser.novnc_state)
    bar = browser.wait_until(student, lambda d: shown(d, "desktop-notices"), 10, "the bar in anna's desktop tab")
    assert "Lena Lehrer sieht deinen Bildschirm seit " in bar and "Niemand außer dir" in bar, bar
    browser.save_screenshot(student, "watched-desktop-tab-de")
    student.switch_to.window(dashboard)

    # The same in English, while the watch goes on.
    student.get(portal.url + "/lang/en?next=/")
    banner = browser.wait_until(student, lambda d: shown(d, "watching"), 20, "the English banner")
    assert "Lena Lehrer is watching your screen since " in banner, banner
    browser.save_screenshot(student, "watched-banner-en")
    teacher.switch_to.window(class_tab)
    teacher.get(portal.url + "/lang/en?next=/class/klasse-7a")
    browser.wait_until(teacher, lambda d: watch_link(d, STUDENT) and watch_link(d, STUDENT).text == "Watch", 20,
                       "the English class page")
    page = teacher.find_element(By.TAG_NAME, "main").text
    assert "Only people who have signed in at least once appear here." in page
    assert "The student sees at once that you are watching" in page and "logged" in page
    browser.save_screenshot(teacher, "class-en")

    # The viewer's tab closes: the banner says so at once; while the class page stays open
    # with its thumbnails, it says that instead (the look ends 20 s after the page closes:
    # tests/test_web_classroom.py). The history keeps the watch.
    teacher.switch_to.window(viewer_tab)
    teacher.close()
    teacher.switch_to.window(class_tab)

    def only_pictures(driver):
        text = shown(driver, "watching") or ""
        return text if "is watching your screen" not in text and "small picture of your screen" in text else None
    banner = browser.wait_until(student, only_pictures, 8, "the banner to say only the thumbnails")
    assert "Lena Lehrer sees a small picture of your screen on the class page since " in banner, banner
    student.switch_to.window(desktop_tab)  # loaded in German, before the switch
    bar = browser.wait_until(student, lambda d: (lambda text: text if "sieht deinen Bildschirm" not in text
                                                 else None)(shown(d, "desktop-notices") or ""),
                             8, "the desktop tab's bar to say only the thumbnails")
    assert "Lena Lehrer sieht seit " in bar and "kleines Bild deines Bildschirms" in bar, bar
    student.switch_to.window(dashboard)

    def ended(driver):
        text = shown(driver, "watch-history") or ""
        return text if "watched" in text and "to now" not in text else None
    history = browser.wait_until(student, ended, 20, "the ended watch in the history")
    assert "Who watched (30 days)" in history and "Lena Lehrer watched anna.schmidt-demo" in history, history
    browser.save_screenshot(student, "watch-history-en")

    assert "Traceback" not in portal.log()
    con = database(tmp_path)
    actions = con.execute("SELECT action, actor, target FROM events WHERE action LIKE 'class.watch.%'"
                          " ORDER BY id").fetchall()
    con.close()
    assert actions == [("class.watch.start", TEACHER, "anna.schmidt-demo"),
                       ("class.watch.end", TEACHER, "anna.schmidt-demo")], actions

    # The end of the lesson: one click, a confirmation that says how many, and the class's
    # desktops stop (their files stay).
    teacher.find_element(By.ID, "stop-class").click()
    alert = browser.wait_until(teacher, lambda d: d.switch_to.alert, 10, "the confirmation")
    assert "1" in alert.text and ("files are kept" in alert.text or "Dateien bleiben" in alert.text), alert.text
    alert.accept()
    wait_status(anna, "demo", "stopped", timeout=30)
    notice = browser.wait_until(teacher, lambda d: shown(d, "notice"), 10, "the notice")
    assert "Stopped: 1" in notice or "Gestoppt: 1" in notice, notice
    browser.save_screenshot(teacher, "class-stopped-en")


def test_only_the_classes_teachers_and_admins_see_a_class_page(signed_in_portal, chromium):
    portal, _ = signed_in_portal(CLASS_GROUPS="klasse-*")
    Client(portal.url, STUDENT)  # klasse-7a exists once someone signed in with it
    for username, status in (("lehrer", 200), ("admin", 200), ("mueller", 403), ("ben", 403), (STUDENT, 403)):
        client = Client(portal.url, username)
        for spelling in ("/class/klasse-7a", "/class/Klasse-7A"):
            answer = client.get(spelling)
            assert answer.status_code == status, (username, spelling, answer.status_code)
    assert Client(portal.url, "lehrer").get("/class/klasse-9z").status_code == 403
    signed_out = requests.get(portal.url + "/class/klasse-7a", allow_redirects=False, timeout=30)
    assert signed_out.status_code == 302
    assert signed_out.headers["Location"] == portal.url + "/login?next=/class/klasse-7a"

    driver = chromium(language="de")
    browser_sign_in(driver, portal.url, "mueller")  # a teacher, but in no class
    empty = browser.wait_until(driver, lambda d: shown(d, "classes"), 20, "mueller's (empty) classes")
    assert "Du bist in keiner Klasse" in empty and class_links(driver) == []
    driver.get(portal.url + "/class/klasse-7a")
    assert "Kein Zugriff" in driver.find_element(By.TAG_NAME, "h1").text
    assert "nicht zu deinen Klassen" in driver.find_element(By.TAG_NAME, "main").text
    browser.save_screenshot(driver, "class-forbidden-de")

    driver = chromium(language="en")
    browser_sign_in(driver, portal.url, "ben")
    browser.wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#desktops .card"), 20, "ben's cards")
    assert not driver.find_elements(By.ID, "classes")
    driver.get(portal.url + "/class/klasse-7a")
    assert "No access" in driver.find_element(By.TAG_NAME, "h1").text
    assert not driver.find_elements(By.ID, "members")


def test_with_the_classroom_off_there_is_no_class_page(signed_in_portal, chromium):
    portal, _ = signed_in_portal(CLASSROOM="off", CLASS_GROUPS="klasse-*")
    teacher = Client(portal.url, "lehrer")
    assert teacher.get("/class/klasse-7a").status_code == 404
    assert teacher.get("/api/classes").status_code == 404
    driver = chromium(language="de")
    browser_sign_in(driver, portal.url, "lehrer")
    browser.wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#desktops .card"), 20, "the cards")
    assert not driver.find_elements(By.ID, "classes") and not driver.find_elements(By.ID, "watching")
    assert not [line for line in browser.browser_log(driver) if "/api/" in line]  # no classroom calls
    driver.get(portal.url + "/class/klasse-7a")
    assert "Nicht gefunden" in driver.find_element(By.TAG_NAME, "h1").text


def test_a_teacher_shows_their_screen_to_exactly_the_class_and_ending_it_closes_the_viewers(
        signed_in_portal, chromium, demo_image, tmp_path):
    portal, _ = signed_in_portal(CLASS_GROUPS="klasse-*")
    Client(portal.url, CLASSMATE)
    lehrer = Client(portal.url, TEACHER)
    lehrer.post("/api/container/start", params={"desktop_type": "demo"})
    wait_status(lehrer, "demo", "running")

    # Anna (klasse-7a) and Ben (klasse-8b) have their dashboards open.
    student, other = chromium(language="de"), chromium(language="en")
    browser_sign_in(student, portal.url, STUDENT)
    browser_sign_in(other, portal.url, "ben")
    for driver in (student, other):
        browser.wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#desktop-demo"), 20, "the dashboard")
    assert shown(student, "demos") is None

    teacher = chromium(language="de")
    browser_sign_in(teacher, portal.url, TEACHER)
    teacher.get(portal.url + "/class/klasse-7a")
    start = browser.wait_until(teacher, lambda d: d.find_elements(By.CSS_SELECTOR, "#demo-controls [data-action=start-demo]"),
                               20, "the 'show my screen' button")[0]
    assert "Meinen Bildschirm zeigen" in shown(teacher, "demo") and start.text == "Der Klasse zeigen"
    start.click()
    active = browser.wait_until(teacher, lambda d: d.find_elements(By.CSS_SELECTOR, ".demo-active"), 10,
                                "the running demo on the class page")[0]
    assert "Die Klasse sieht deinen Desktop lehrer-demo seit " in active.text, active.text
    browser.save_screenshot(teacher, "class-demo-de")

    # Live on Anna's dashboard (the "demo" event), never on Ben's.
    card = browser.wait_until(student, lambda d: shown(d, "demos"), 8, "the demo card on anna's dashboard")
    assert "Bildschirm von Lena Lehrer" in card and "Für Klasse 7a, seit " in card, card
    browser.save_screenshot(student, "demo-card-de")
    dashboard = student.current_window_handle
    student.find_element(By.CSS_SELECTOR, "#demos a.open-demo").click()
    browser.wait_until(student, lambda d: len(d.window_handles) == 2, 10, "the viewer's tab")
    student.switch_to.window([handle for handle in student.window_handles if handle != dashboard][0])
    state = browser.wait_until(student, viewer_connected, 30, "the view-only viewer", describe=viewer_state)
    assert state["viewOnly"] == "true"
    assert browser.wait_until(student, lambda d: browser.canvas_not_blank(browser.novnc_state(d)), 15,
                              "the canvas to show the teacher's desktop", describe=browser.novnc_state)
    browser.save_screenshot(student, "demo-viewer-de")
    assert shown(other, "demos") is None

    # The teacher ends it: the viewer closes and the card goes, at once.
    teacher.find_element(By.CSS_SELECTOR, "#demo-controls [data-action=end-demo]").click()

    def closed(driver):
        state = viewer_state(driver)
        return state if state and state.get("state") in ("closed", "failed") else None
    browser.wait_until(student, closed, 10, "the viewer to close", describe=viewer_state)
    student.switch_to.window(dashboard)
    browser.wait_until(student, lambda d: shown(d, "demos") is None, 8, "the card to go")
    assert browser.wait_until(teacher, lambda d: d.find_elements(By.CSS_SELECTOR, "#demo-controls [data-action=start-demo]"),
                              10, "the class page to offer showing again")
    teacher.get(portal.url + "/lang/en?next=/class/klasse-7a")
    browser.wait_until(teacher, lambda d: "Show my screen" in (shown(d, "demo") or ""), 20, "the English class page")
    browser.save_screenshot(teacher, "class-demo-en")

    assert "Traceback" not in portal.log()
    con = database(tmp_path)
    actions = con.execute("SELECT action, actor, target FROM events WHERE action LIKE 'class.demo.%' ORDER BY id"
                          ).fetchall()
    con.close()
    assert actions == [("class.demo.start", TEACHER, "klasse-7a"), ("class.demo.end", TEACHER, "klasse-7a")]
