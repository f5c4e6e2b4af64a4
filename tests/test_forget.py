"""Deleting a person's data (iservdesk/forget.py) with `iservdesk forget`, against a real
portal, real containers and real volumes: --dry-run lists and changes nothing; then no
container, volume, row, session or audit entry names the person any more, the audit log
keeps what happened under a pseudonym, and everyone else's desktops and files stay."""

import json

from flows import Client, wait_status
from test_cleanup import ANNA_UUID, State, config_path_of, run_command, start


def test_forget_removes_everything_of_a_person_and_keeps_a_pseudonymous_audit_log(
        signed_in_portal, demo_image, docker_client, tmp_path):
    portal, _ = signed_in_portal()
    state = State(str(tmp_path / "iservdesk.db"))
    config = config_path_of(portal, tmp_path)
    anna, ben = Client(portal.url, "anna.schmidt"), Client(portal.url, "ben")
    start(anna, "tiny")
    start(anna, "demo")
    anna.post("/api/container/stop", params={"desktop_type": "demo"})
    wait_status(anna, "demo", "stopped")
    start(ben, "tiny")
    label = "de.iservdesk.owner=" + ANNA_UUID

    def annas():
        return (sorted(container.name for container in docker_client.containers.list(all=True, filters={"label": label})),
                sorted(volume.name for volume in docker_client.volumes.list(filters={"label": label})))
    containers, volumes = annas()
    assert len(containers) == 2 and len(volumes) == 2

    dry = run_command("--config", config, "forget", "anna.schmidt", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert {"would remove container %s" % name for name in containers} <= set(lines)
    assert {"would remove home volume %s (with every file in it)" % name for name in volumes} <= set(lines)
    assert lines[-1].startswith("would forget anna.schmidt (%s) as person-" % ANNA_UUID)
    assert annas() == (containers, volumes) and state.row("anna.schmidt-tiny") is not None

    done = run_command("--config", config, "forget", ANNA_UUID)
    assert done.returncode == 0, done.stderr
    alias = done.stdout.splitlines()[-1].rsplit(" ", 1)[1]
    assert alias.startswith("person-") and len(alias) == 17
    assert annas() == ([], [])
    assert state.execute("SELECT * FROM users WHERE uuid = ?", ANNA_UUID) == []
    assert state.execute("SELECT * FROM desktops WHERE name LIKE 'anna.schmidt%'") == []
    assert anna.get("/api/container/list").status_code == 401  # her session is gone
    # The audit log: what happened stays, her name does not.
    dump = json.dumps([tuple(row) for row in state.execute("SELECT actor, action, target, detail FROM events")])
    assert "anna.schmidt" not in dump and ANNA_UUID not in dump
    assert (alias, "login", "") in state.events()
    assert ("cli", "person.forget", alias) in state.events()
    assert any(actor == alias and action == "desktop.stop" and target == alias + "-demo"
               for actor, action, target in state.events())
    # Ben keeps everything; running again is the same pseudonym, and nothing more to do.
    assert wait_status(ben, "tiny", "running")["status"] == "running"
    assert state.row("ben-tiny") is not None
    again = run_command("--config", config, "forget", "anna.schmidt")
    assert again.returncode == 1 and "Nobody with the account name or uuid anna.schmidt" in again.stderr


def test_homes_of_people_long_gone_are_announced_then_removed_unless_they_came_back(
        signed_in_portal, demo_image, docker_client, tmp_path):
    import datetime
    from iservdesk import cleanup
    from test_cleanup import cleaner, stamp

    portal, _ = signed_in_portal(REMOVE_HOMES_AFTER="400d")
    state = State(str(tmp_path / "iservdesk.db"))
    people = {name: Client(portal.url, name) for name in ("anna.schmidt", "ben", "max.muster")}
    for client in people.values():
        start(client, "tiny")
        client.post("/api/container/stop", params={"desktop_type": "tiny"})
        wait_status(client, "tiny", "stopped")
    now = datetime.datetime.now(datetime.timezone.utc)
    later = now + datetime.timedelta(days=401)
    # Ben signed in again last week (of then).
    state.execute("UPDATE users SET last_login_at = ? WHERE username = 'ben'", stamp(later - datetime.timedelta(days=7)))
    config, desktops, database = cleaner(config_path_of(portal, tmp_path))
    assert cleanup.run(config, desktops, database, now).homes_announced == []  # nobody is due today

    dry = cleanup.run(config, desktops, database, later, dry_run=True)
    assert sorted(dry.homes_announced) == ["anna.schmidt", "max.muster"] and dry.homes_removed == []
    first = cleanup.run(config, desktops, database, later)
    assert sorted(first.homes_announced) == ["anna.schmidt", "max.muster"] and first.homes_removed == []
    assert "2 people's announced for the next pass" in first.summary()
    assert docker_client.volumes.get(portal.prefix + "-home-anna.schmidt-tiny")  # nothing gone yet
    # Max signs in again before the next pass: his homes stay, and his clock starts anew.
    state.execute("UPDATE users SET last_login_at = ? WHERE username = 'max.muster'", stamp(later))
    second = cleanup.run(config, desktops, database, later + datetime.timedelta(minutes=5))
    assert second.homes_removed == [portal.prefix + "-home-anna.schmidt-tiny"]
    names = {volume.name for volume in docker_client.volumes.list()}
    assert portal.prefix + "-home-anna.schmidt-tiny" not in names
    assert {portal.prefix + "-home-ben-tiny", portal.prefix + "-home-max.muster-tiny"} <= names
    assert state.row("anna.schmidt-tiny")["status"] == "removed" and state.row("anna.schmidt-tiny")["container_id"] is None
    assert ("cleanup", "home.remove", "anna.schmidt") in state.events()
    assert state.execute("SELECT name FROM meta WHERE name LIKE 'homes-due:%'") == []


def test_an_admin_sees_what_goes_and_then_forgets_a_person_in_the_panel(signed_in_portal, chromium, demo_image,
                                                                        docker_client):
    from selenium.webdriver.common.by import By

    import browser
    from browser import browser_sign_in

    portal, _ = signed_in_portal()
    start(Client(portal.url, "anna.schmidt"), "tiny")
    driver = chromium(language="de")
    browser_sign_in(driver, portal.url, "admin")
    driver.get(portal.url + "/admin")
    field = browser.wait_until(driver, lambda d: d.find_element(By.ID, "forget-person"), 20, "the admin panel")
    field.send_keys("anna.schmidt")
    driver.find_element(By.CSS_SELECTOR, "#forget-form button[type=submit]").click()
    plan = browser.wait_until(driver, lambda d: (lambda e: e.text if e.is_displayed() else None)(
        d.find_element(By.ID, "forget-plan")), 20, "what goes")
    assert "Container %s-anna.schmidt-tiny" % portal.prefix in plan, plan
    assert "Home-Ordner %s-home-anna.schmidt-tiny mit allen Dateien darin" % portal.prefix in plan, plan
    assert "aus anna.schmidt wird person-" in plan, plan
    browser.save_screenshot(driver, "admin-forget-de")
    driver.find_element(By.ID, "forget-confirm").click()
    alert = browser.wait_until(driver, lambda d: d.switch_to.alert, 10, "the confirmation")
    assert "Alle Daten von anna.schmidt endgültig löschen?" in alert.text
    alert.accept()
    notice = browser.wait_until(driver, lambda d: (lambda text: text if "person-" in text else None)(
        d.find_element(By.ID, "notice").text), 20, "the notice")
    assert notice.startswith("Gelöscht. Im Protokoll steht jetzt person-"), notice
    assert docker_client.containers.list(all=True, filters={"label": "de.iservdesk.owner=" + ANNA_UUID}) == []
