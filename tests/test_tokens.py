"""API tokens in-process (tests/wsgi.py): made in the browser and shown once, stored
hashed, working with Bearer and X-Session-ID on the API (not in a URL, not on /desktop/),
each use recorded, expiring with the clock, revoked, never logged; service accounts'
tokens with admin rights, made by admins only."""

import datetime

from iservdesk import db, sessions

pytest_plugins = ("wsgi",)


def bearer(token):
    return {"Authorization": "Bearer " + token}


def test_a_persons_token_works_on_the_api_until_it_expires_or_is_revoked(web):
    portal = web()
    portal.desktop("anna.schmidt", "tiny", "running")
    anna = portal.signed_in("anna.schmidt")
    made = anna.post("/api/tokens", json_body={"name": "Mein Skript", "expires_in_days": 30})
    assert made.status == 200, made.body
    token = made.json()["token"]
    assert token.startswith("isd_") and made.json()["state"] == "active"
    assert made.json()["expires_at"] == (portal.clock() + datetime.timedelta(days=30)).isoformat()
    # Stored as its hash only; listed without it.
    assert db.ApiToken.get().token_hash == sessions.digest(token)
    listed = anna.get("/api/tokens").json()["tokens"]
    assert [item["name"] for item in listed] == ["Mein Skript"] and token not in str(listed)

    script = portal.browser()
    status = script.get("/api/container/status?desktop_type=tiny", headers=bearer(token))
    assert status.status == 200 and status.json()["name"] == "anna.schmidt-tiny"
    assert script.get("/session", headers={"X-Session-ID": token}).json()["username"] == "anna.schmidt"
    # No CSRF token needed (a page cannot make a browser send it); acts as Anna.
    stopped = script.post("/api/container/stop?desktop_type=tiny", headers=bearer(token), csrf=False)
    assert stopped.status == 200 and stopped.json()["status"] == "stopped"
    assert db.ApiToken.get().last_used_at == portal.clock()
    # Not in a URL, not under /desktop/, not to make more tokens.
    assert script.get("/api/container/list?session_id=" + token).status == 401
    desktop = script.get("/desktop/anna.schmidt-tiny/", headers=bearer(token))
    assert desktop.status in (302, 401, 403) and b"noVNC" not in desktop.body
    refused = script.post("/api/tokens", json_body={"name": "more"}, headers=bearer(token), csrf=False)
    assert (refused.status, refused.json()["error"]) == (403, "browser_only")
    # Not someone else's: Ben cannot revoke it.
    ben = portal.signed_in("ben")
    assert ben.delete("/api/tokens/%d" % listed[0]["id"]).status == 404

    # Expiry follows the clock; a new token is revoked by its owner.
    portal.clock.advance(days=31)
    assert script.get("/api/container/list", headers=bearer(token)).status == 401
    anna = portal.signed_in("anna.schmidt")
    second = anna.post("/api/tokens", json_body={"name": "zweites", "expires_in_days": 1}).json()
    assert script.get("/api/container/list", headers=bearer(second["token"])).status == 200
    revoked = anna.delete("/api/tokens/%d" % second["id"])
    assert revoked.json()["state"] == "revoked"
    assert script.get("/api/container/list", headers=bearer(second["token"])).status == 401
    states = {item["name"]: item["state"] for item in anna.get("/api/tokens").json()["tokens"]}
    assert states == {"Mein Skript": "expired", "zweites": "revoked"}
    # Bad input gets a message; audited; the token is in no log line.
    assert anna.post("/api/tokens", json_body={"name": "", "expires_in_days": 5}).json()["error"] == "bad_token_name"
    assert anna.post("/api/tokens", json_body={"name": "x", "expires_in_days": 999}).json()["error"] == "bad_expiry"
    assert [action for action, _ in portal.events("token.create")] == ["anna.schmidt", "anna.schmidt"]
    assert portal.events("token.revoke") == [("anna.schmidt", "anna.schmidt")]
    assert token not in portal.log() and second["token"] not in portal.log()


def test_admins_make_service_tokens_with_admin_rights(web):
    portal = web()
    portal.desktop("ben", "tiny", "running")
    admin, anna = portal.signed_in("admin"), portal.signed_in("anna.schmidt")
    refused = anna.post("/api/admin/tokens", json_body={"service": "backup"})
    assert (refused.status, refused.json()["error"]) == (403, "admin_only")
    made = admin.post("/api/admin/tokens", json_body={"service": "monitoring", "expires_in_days": 7}).json()
    assert made["admin"] is True and made["owner"] == "service-monitoring"
    script = portal.browser()
    listing = script.get("/api/admin/containers", headers=bearer(made["token"]))
    assert listing.status == 200 and [item["owner"] for item in listing.json()["containers"]] == ["ben"]
    # A person's token has that person's rights: no admin routes for Anna's.
    personal = anna.post("/api/tokens", json_body={"name": "s", "expires_in_days": 1}).json()["token"]
    assert script.get("/api/admin/containers", headers=bearer(personal)).status == 403
    assert {item["owner"] for item in admin.get("/api/admin/tokens").json()["tokens"]} == {
        "service-monitoring", "anna.schmidt"}
    assert admin.delete("/api/admin/tokens/%d" % made["id"]).json()["state"] == "revoked"
    assert script.get("/api/admin/containers", headers=bearer(made["token"])).status == 401
