"""The file browser and the upload dialog in real Chromium: a student picks several files
at once, sees them arrive with progress, finds them in ~/Uploads, goes into a folder and
back, deletes one, and is told at once when a file is too large; in German and English
(screenshots in tests/browser.py's folder). A teacher hands out material and collects an
assignment on the class page."""

import hashlib
import io
import os
import zipfile

from selenium.webdriver.common.by import By

import browser
from browser import browser_sign_in
from flows import Client, wait_status


def visible_text(driver, selector):
    elements = driver.find_elements(By.CSS_SELECTOR, selector)
    return elements[0].text if elements and elements[0].is_displayed() else None


def rows(driver):
    return [row.get_attribute("data-name") for row in driver.find_elements(By.CSS_SELECTOR, "#files-table tbody tr")
            if row.get_attribute("data-name")]


def test_a_student_uploads_several_files_browses_deletes_and_is_told_what_does_not_fit(
        signed_in_portal, chromium, demo_image, tmp_path):
    portal, _ = signed_in_portal(UPLOAD_MAX_SIZE="3m")
    anna = Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    picked = []
    for name, size in (("Referat Äpfel.pdf", 2 * 1024 * 1024 + 5), ("notizen.txt", 1000), ("zu groß.bin", 4 * 1024 * 1024)):
        path = tmp_path / name
        path.write_bytes(os.urandom(size))
        picked.append(path)

    driver = chromium(language="de")
    browser_sign_in(driver, portal.url, "anna.schmidt")
    browser.wait_until(driver, lambda d: visible_text(d, "#desktop-tiny .badge") == "Läuft", 20, "the running desktop")
    driver.find_element(By.CSS_SELECTOR, "#desktop-tiny button[data-action=files]").click()
    browser.wait_until(driver, lambda d: visible_text(d, "#files-usage"), 20, "the file browser")
    assert visible_text(driver, "#files-title") == "Dateien: Klein"
    assert visible_text(driver, "#files-target") == "Hochladen nach: ~/Uploads"
    # Three files at once through the picker: two arrive, the third is refused at once.
    driver.find_element(By.ID, "files-input").send_keys("\n".join(str(path) for path in picked))
    browser.wait_until(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#files-progress li.done")) == 2,
                       60, "two uploads to finish")
    refused = driver.find_element(By.CSS_SELECTOR, "#files-progress li.refused").text
    assert refused == "zu groß.bin ist zu groß (4 MB); eine Datei darf höchstens 3 MB haben.", refused
    done = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#files-progress li.done")]
    assert done == ["Hochgeladen: Referat Äpfel.pdf", "Hochgeladen: notizen.txt"], done
    # The browser now shows Uploads with both; the desktop has them byte for byte.
    browser.wait_until(driver, lambda d: rows(d) == ["notizen.txt", "Referat Äpfel.pdf"], 20, "the Uploads folder")
    assert visible_text(driver, "#files-path") == "Persönlicher Ordner / Uploads"
    browser.save_screenshot(driver, "files-uploaded-de")
    got = anna.get("/api/files/download", params={"desktop_type": "tiny", "path": "Uploads/Referat Äpfel.pdf"})
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(picked[0].read_bytes()).digest()
    # Back to the home, into Uploads again, delete one (confirmed).
    driver.find_element(By.CSS_SELECTOR, "#files-path button[data-path='']").click()
    browser.wait_until(driver, lambda d: "Uploads" in rows(d), 20, "the home")
    driver.find_element(By.CSS_SELECTOR, "#files-table tr[data-name=Uploads] button[data-action=go]").click()
    browser.wait_until(driver, lambda d: "notizen.txt" in rows(d), 20, "Uploads again")
    driver.find_element(By.CSS_SELECTOR, "#files-table tr[data-name='notizen.txt'] button[data-action=delete]").click()
    alert = driver.switch_to.alert
    assert alert.text == "„notizen.txt“ löschen? Das lässt sich nicht rückgängig machen."
    alert.accept()
    browser.wait_until(driver, lambda d: rows(d) == ["Referat Äpfel.pdf"], 20, "the deletion")
    assert visible_text(driver, "#files-notice") == "Gelöscht: notizen.txt"
    # The download link of a file is the portal's own, saved as a download.
    link = driver.find_element(By.CSS_SELECTOR, "#files-table tr[data-name='Referat Äpfel.pdf'] a")
    assert link.get_attribute("download") == "Referat Äpfel.pdf"
    assert "/api/files/download?desktop_type=tiny&path=Uploads%2FReferat%20%C3%84pfel.pdf" in link.get_attribute("href")

    # The card says how much the home holds (as last measured).
    driver.find_element(By.ID, "files-close").click()
    driver.refresh()
    size = browser.wait_until(driver, lambda d: visible_text(d, "#desktop-tiny .home-size"), 20, "the home's size")
    assert size == "Dein Ordner: 2 MB", size

    # English.
    driver.get(portal.url + "/lang/en?next=/")
    browser.wait_until(driver, lambda d: visible_text(d, "#desktop-tiny .badge") == "Running", 20, "the English page")
    driver.find_element(By.CSS_SELECTOR, "#desktop-tiny button[data-action=files]").click()
    browser.wait_until(driver, lambda d: "Uploads" in rows(d), 20, "the English file browser")
    assert visible_text(driver, "#files-title") == "Files: Tiny"
    assert visible_text(driver, "#files-usage").startswith("Used: 2 MB of 5 GB")
    browser.save_screenshot(driver, "files-home-en")
    driver.find_element(By.ID, "files-input").send_keys(str(picked[2]))
    refusal = browser.wait_until(driver, lambda d: visible_text(d, "#files-progress li.refused"), 10, "the refusal")
    assert refusal == "zu groß.bin is too large (4 MB); a file may have at most 3 MB.", refusal
    driver.get(portal.url + "/lang/de?next=/")


def test_a_teacher_hands_out_material_and_collects_on_the_class_page(signed_in_portal, chromium, demo_image, tmp_path):
    portal, _ = signed_in_portal()
    anna = Client(portal.url, "anna.schmidt")
    Client(portal.url, "max.muster")  # a member who has not started a desktop yet
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    sheet = tmp_path / "Arbeitsblatt.pdf"
    sheet.write_bytes(b"%PDF worksheet" + os.urandom(1000))

    driver = chromium(language="de")
    browser_sign_in(driver, portal.url, "lehrer")
    driver.get(portal.url + "/class/klasse-7a")
    browser.wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#member-anna\\.schmidt"), 20, "the class")
    driver.find_element(By.ID, "material-name").send_keys("Bruchrechnung")
    driver.find_element(By.ID, "material-files").send_keys(str(sheet))
    driver.find_element(By.CSS_SELECTOR, "#material-form button[type=submit]").click()
    item = browser.wait_until(driver, lambda d: visible_text(d, "#handouts li[data-kind=material]"), 30,
                              "the material in the list")
    assert "Bruchrechnung" in item and "1 von 2" in item, item  # Anna has it; Max has no home yet
    assert anna.get("/api/files/download", params={
        "desktop_type": "tiny", "path": "Material/klasse-7a/Bruchrechnung/Arbeitsblatt.pdf"}).content == sheet.read_bytes()

    driver.find_element(By.ID, "assignment-name").send_keys("Hausaufgabe 1")
    driver.find_element(By.CSS_SELECTOR, "#assignment-form button[type=submit]").click()
    browser.wait_until(driver, lambda d: visible_text(d, "#handouts li[data-kind=assignment]"), 30, "the assignment")
    assert anna.put("/api/upload/home", params={"desktop_type": "tiny", "folder": "Abgabe/Hausaufgabe 1",
                                                "name": "loesung.txt"}, data=b"3/4").status_code == 200
    driver.find_element(By.CSS_SELECTOR, "#handouts li[data-kind=assignment] button[data-action=collect]").click()
    text = browser.wait_until(driver, lambda d: (lambda t: t if t and "Eingesammelt" in t else None)(
        visible_text(d, "#handouts li[data-kind=assignment]")), 30, "the collection")
    assert "1 abgegeben, nichts von: Max Mustermann" in text, text
    driver.execute_script("document.getElementById('handouts-section').scrollIntoView()")
    browser.save_screenshot(driver, "class-handouts-de")
    link = driver.find_element(By.CSS_SELECTOR, "#handouts li[data-kind=assignment] a.collected")
    teacher = Client(portal.url, "lehrer")
    archive = zipfile.ZipFile(io.BytesIO(teacher.get(link.get_attribute("href").replace(portal.url, "")).content))
    assert archive.read("Schmidt_Anna/loesung.txt") == b"3/4"


def test_a_person_makes_a_token_sees_it_once_and_revokes_it(signed_in_portal, chromium):
    portal, _ = signed_in_portal()
    driver = chromium(language="de")
    browser_sign_in(driver, portal.url, "anna.schmidt")
    browser.wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#tokens summary"), 20, "the overview")
    driver.find_element(By.CSS_SELECTOR, "#tokens summary").click()
    driver.find_element(By.CSS_SELECTOR, "#tokens input[name=name]").send_keys("Stundenplan-Skript")
    driver.find_element(By.CSS_SELECTOR, "#tokens button[type=submit]").click()
    token = browser.wait_until(driver, lambda d: visible_text(d, "#token-new code"), 20, "the new token")
    assert token.startswith("isd_")
    item = browser.wait_until(driver, lambda d: visible_text(d, "#tokens li[data-state=active]"), 20, "the list")
    assert item.startswith("„Stundenplan-Skript“ – aktiv, gültig bis") and "zuletzt benutzt: noch nie" in item, item
    driver.execute_script("document.getElementById('tokens').scrollIntoView()")
    browser.save_screenshot(driver, "tokens-de")
    import requests
    assert requests.get(portal.url + "/api/container/list", headers={"Authorization": "Bearer " + token},
                        timeout=30).status_code == 200
    driver.find_element(By.CSS_SELECTOR, "#tokens li[data-state=active] button[data-action=revoke]").click()
    browser.wait_until(driver, lambda d: visible_text(d, "#tokens li[data-state=revoked]"), 20, "the revocation")
    assert requests.get(portal.url + "/api/container/list", headers={"Authorization": "Bearer " + token},
                        timeout=30).status_code == 401
    assert token not in portal.log()


def test_an_admin_sees_homes_by_size_and_moves_the_old_products_files(signed_in_portal, chromium, demo_image,
                                                                      docker_client):
    from conftest import container_of
    from test_seed_import import seed_container
    portal, _ = signed_in_portal(HOME_QUOTA="1m")
    anna = Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "tiny"})
    wait_status(anna, "tiny", "running")
    made = container_of(docker_client, portal, "anna.schmidt-tiny").exec_run(
        ["dd", "if=/dev/zero", "of=/home/kasm-user/gross.bin", "bs=1M", "count=3"], user="1000")
    assert made.exit_code == 0
    assert anna.get("/api/files", params={"desktop_type": "tiny"}).status_code == 200  # measures the home
    old = seed_container(docker_client, "kasm-anna.schmidt-demo-c0de", {"alt.txt": b"aus dem alten System"})
    try:
        driver = chromium(language="en")
        browser_sign_in(driver, portal.url, "admin")
        driver.get(portal.url + "/admin")
        row = browser.wait_until(driver, lambda d: visible_text(d, "#homes tr.over-quota"), 20, "the home over quota")
        assert "3 MB" in row and "over HOME_QUOTA (1 MB)" in row, row
        item = browser.wait_until(driver, lambda d: visible_text(d, "#seed li"), 20, "the old product's container")
        assert item == "kasm-anna.schmidt-demo-c0de: files of anna.schmidt into the “demo” folder", item
        driver.execute_script("document.getElementById('homes').scrollIntoView()")
        browser.save_screenshot(driver, "admin-homes-en")
        driver.find_element(By.CSS_SELECTOR, "#seed button[data-action=import-seed]").click()
        driver.switch_to.alert.accept()
        notice = browser.wait_until(driver, lambda d: (lambda t: t if t and "Moved" in t else None)(
            visible_text(d, "#notice")), 60, "the import")
        assert notice == "Moved: 1, failed: 0.", notice
        browser.wait_until(driver, lambda d: not d.find_element(By.ID, "seed").is_displayed(), 20, "the section to go")
        assert anna.get("/api/files/download", params={"desktop_type": "demo", "path": "alt.txt"}).content == \
            "aus dem alten System".encode()
    finally:
        try:
            old.remove(force=True)
        except Exception:
            pass
