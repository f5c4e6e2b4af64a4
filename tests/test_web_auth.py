"""Sign-in, sessions, CSRF and sign-out, in-process (tests/wsgi.py): the app of make_app()
with a clock the test moves, a real SQLite file, and the development identity provider.

A test browser here follows the portal to the provider's login form, posts the
credentials there over real HTTP, and brings the code back to /authorize in the app.
What only a running `iservdesk serve` shows (what it writes to its log) stays in
test_signin.py.
"""

import json
import os
import re
import urllib.parse

import pytest
import requests

from conftest import CLIENT_ID, CLIENT_SECRET, ROOT, free_port
from flows import submit
from iservdesk import db, sessions

pytest_plugins = ("wsgi",)


def session_count():
    return db.Session.select().count()


def database_bytes(web):
    with open(web.database.database, "rb") as stream:
        return stream.read()


def whoami(browser):
    return browser.get("/session")


# -- sessions, with the clock --

def test_a_session_unused_for_the_idle_timeout_is_refused_and_deleted(web):
    portal = web()
    idle = portal.config.session_idle_timeout
    anna = portal.signed_in("anna.schmidt")
    assert whoami(anna).status == 200
    for _ in range(3):  # each use keeps it alive for another idle timeout
        portal.clock.advance(idle - sessions.TOUCH_INTERVAL)
        assert whoami(anna).status == 200
    assert session_count() == 1
    portal.clock.advance(idle)
    gone = whoami(anna)
    assert (gone.status, gone.json()["error"]) == (401, "unauthenticated")
    assert session_count() == 0
    assert anna.get("/").text.count('href="/login"') >= 1  # the start page offers sign-in again


def test_a_session_ends_at_its_lifetime_even_while_in_use(web):
    portal = web(SESSION_LIFETIME="8h", SESSION_IDLE_TIMEOUT="2h")
    started = portal.clock()
    anna = portal.signed_in("anna.schmidt")
    body = whoami(anna).json()
    assert body["expires_at"] == (started + portal.config.session_idle_timeout).isoformat()
    while portal.clock() + portal.config.session_idle_timeout / 2 < started + portal.config.session_lifetime:
        portal.clock.advance(portal.config.session_idle_timeout / 2)
        assert whoami(anna).status == 200, portal.clock()
    # Near the end the lifetime, not the idle timeout, is what /session reports.
    assert whoami(anna).json()["expires_at"] == (started + portal.config.session_lifetime).isoformat()
    portal.clock.advance(started + portal.config.session_lifetime - portal.clock())
    assert whoami(anna).status == 401
    assert session_count() == 0


def test_a_sign_in_left_longer_than_its_window_is_refused(signed_in_web):
    portal, _ = signed_in_web()
    browser = portal.browser()
    callback = portal.sign_in_at_provider(browser, "ben")
    portal.clock.advance(minutes=10, seconds=1)
    late = browser.get(portal.callback_target(callback))
    assert late.status == 400 and "expired or was already used" in late.text
    assert session_count() == 0


# -- CSRF --

def test_state_changes_with_the_cookie_need_the_csrf_token_of_that_session(web):
    portal = web()
    ben, other = portal.signed_in("ben"), portal.signed_in("anna.schmidt")
    stop = "/api/container/stop?desktop_type=tiny"
    without = ben.post(stop, csrf=False)
    assert (without.status, without.json()["error"]) == (403, "csrf_failed")
    for token in ("", "0" * 64, other.csrf):
        refused = ben.post(stop, headers={"X-CSRF-Token": token}, csrf=False)
        assert (refused.status, refused.json()["error"]) == (403, "csrf_failed"), token
    # With the token (header or form field) the request gets past the check to the desktop.
    assert ben.post(stop).json()["error"] == "desktop_not_found"
    assert ben.post("/api/container/stop", form={"desktop_type": "tiny", "csrf_token": ben.csrf},
                    csrf=False).json()["error"] == "desktop_not_found"
    assert ben.get("/api/container/list").status == 200  # reading needs none
    # Scripts that name their session (no cookie) need no token: no page can make a
    # browser send those.
    session_id = ben.session_id()
    for headers, target in (({"Authorization": "Bearer " + session_id}, stop),
                            ({"X-Session-ID": session_id}, stop),
                            ({}, stop + "&session_id=" + session_id)):
        answer = portal.browser().post(target, headers=headers)
        assert answer.json()["error"] == "desktop_not_found", headers


# -- signing in (moved here from test_signin.py, which ran each against `iservdesk serve`) --

def test_sign_in_creates_a_session_reported_by_session(signed_in_web):
    portal, provider = signed_in_web()
    browser, callback, answer = portal.sign_in("anna.schmidt", next_path="/admin")
    assert answer.status == 302
    assert answer.location == portal.config.public_url + "/admin"
    cookie = [value for value in answer.header_list("Set-Cookie") if value.startswith("iservdesk_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # PUBLIC_URL is http here

    me = whoami(browser)
    assert me.status == 200
    body = me.json()
    assert body["username"] == "anna.schmidt"
    assert body["display_name"] == "Anna Schmidt"
    assert body["groups"] == ["klasse-7a", "schueler"]
    assert body["roles"] == ["role_student"]
    assert (body["is_admin"], body["is_teacher"]) == (False, False)
    assert body["expires_at"] and len(body["csrf_token"]) == 64

    # Only a hash of the session id is stored.
    session_id = browser.session_id()
    assert len(session_id) >= 43
    assert session_id.encode() not in database_bytes(portal)
    assert session_count() == 1


def test_next_path_must_be_local(signed_in_web):
    portal, _ = signed_in_web()
    _, _, answer = portal.sign_in("ben", next_path="//evil.example/x")
    assert answer.location == portal.config.public_url + "/"


def test_authorization_request_uses_pkce_nonce_state_and_offered_scopes(signed_in_web):
    portal, provider = signed_in_web()
    redirect = portal.browser().get("/login").location
    assert redirect.startswith(provider.base + "/iserv/oauth/v2/auth?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
    assert query["scope"] == "openid profile email uuid groups roles"
    assert query["redirect_uri"] == portal.config.public_url + "/authorize"


def test_prefixed_scopes_and_client_secret_post(signed_in_web):
    portal, provider = signed_in_web(method="client_secret_post", prefixed_scopes=True)
    redirect = portal.browser().get("/login").location
    scope = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))["scope"]
    assert scope == "openid profile email uuid iserv:groups iserv:roles"
    browser, _, answer = portal.sign_in("mueller")
    assert answer.status == 302
    body = whoami(browser).json()
    assert (body["username"], body["is_teacher"], body["is_admin"]) == ("mueller", True, False)
    assert "teachers" in body["groups"]


@pytest.mark.parametrize("issuer_form", ["host", "discovery-url"])
def test_other_forms_of_oauth_issuer_find_discovery(signed_in_web, issuer_form):
    # "host": only <host>/iserv/public/.well-known/... answers, as on some IServ installs.
    portal, provider = signed_in_web(issuer_path="/idp", issuer_form=issuer_form)
    assert requests.get(provider.base + "/.well-known/openid-configuration", timeout=10).status_code == 404
    browser, _, answer = portal.sign_in("ben")
    assert answer.status == 302, answer
    assert whoami(browser).json()["username"] == "ben"


def test_dotted_account_name_and_admin_roles(signed_in_web):
    portal, _ = signed_in_web()
    browser, _, answer = portal.sign_in("max.muster")
    assert answer.status == 302
    assert whoami(browser).json()["username"] == "max.muster"
    admin, _, _ = portal.sign_in("admin")
    assert whoami(admin).json()["is_admin"] is True


def test_session_carriers_for_api_clients(signed_in_web):
    portal, _ = signed_in_web()
    browser, _, _ = portal.sign_in("ben")
    session_id = browser.session_id()
    for headers, target in (({"Authorization": "Bearer " + session_id}, "/session"),
                            ({"X-Session-ID": session_id}, "/session"),
                            ({}, "/session?session_id=" + urllib.parse.quote(session_id))):
        response = portal.browser().get(target, headers=headers)
        assert response.status == 200, headers
        assert response.json()["username"] == "ben"
    anonymous = portal.browser().get("/session")
    assert anonymous.status == 401
    assert anonymous.json() == {"error": "unauthenticated", "message": "Please sign in."}
    wrong = portal.browser().get("/session", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401


def refused(answer, status, text):
    assert answer.status == status, answer
    assert answer.header("Content-Type").startswith("text/html")
    assert text in answer.text
    assert "Traceback" not in answer.text
    assert "iservdesk_session" not in " ".join(answer.header_list("Set-Cookie"))
    assert session_count() == 0


@pytest.mark.parametrize("mode", ["unknown-key", "wrong-iss", "wrong-aud", "expired", "wrong-nonce"])
def test_invalid_id_tokens_are_refused(signed_in_web, mode):
    portal, provider = signed_in_web(misbehave=mode)
    _, _, answer = portal.sign_in("ben")
    refused(answer, 401, "could not be verified")
    assert "ID token refused" in portal.log()


def test_user_who_denies_is_not_signed_in(signed_in_web):
    portal, _ = signed_in_web()
    browser = portal.browser()
    callback = portal.sign_in_at_provider(browser, "ben", "", action="deny")
    refused(browser.get(portal.callback_target(callback)), 403, "You cancelled")


def test_reused_state_is_refused(signed_in_web):
    portal, _ = signed_in_web()
    browser, callback, answer = portal.sign_in("ben")
    assert answer.status == 302
    browser.cookies.clear()
    browser.cookies["iservdesk_login"] = "whatever"
    again = browser.get(portal.callback_target(callback))
    assert again.status == 400
    assert "expired or was already used" in again.text
    assert session_count() == 1


def test_unknown_or_missing_state_is_refused(signed_in_web):
    portal, _ = signed_in_web()
    browser = portal.browser()
    callback = portal.sign_in_at_provider(browser, "ben")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    forged = browser.get("/authorize?" + urllib.parse.urlencode({"code": query["code"], "state": "forged"}))
    refused(forged, 400, "expired or was already used")
    missing = browser.get("/authorize?" + urllib.parse.urlencode({"code": query["code"]}))
    refused(missing, 400, "lacks its state")


def test_callback_in_another_browser_is_refused(signed_in_web):
    # Login CSRF: an attacker's callback URL opened in the victim's browser.
    portal, _ = signed_in_web()
    attacker = portal.browser()
    callback = portal.sign_in_at_provider(attacker, "ben")
    victim = portal.browser()
    refused(victim.get(portal.callback_target(callback)), 400, "another browser")


def test_user_outside_allowed_groups_is_refused(signed_in_web):
    portal, _ = signed_in_web(ALLOWED_GROUPS="Klasse-7A, teachers")
    _, _, answer = portal.sign_in("ben")
    refused(answer, 403, "not in a group that may use iservdesk")
    browser, _, allowed = portal.sign_in("anna.schmidt")
    assert allowed.status == 302
    admin, _, admitted = portal.sign_in("admin")
    assert admitted.status == 302


def test_unreachable_provider_gives_502(web):
    portal = web(OAUTH_ISSUER="http://127.0.0.1:%d/iserv" % free_port())
    answer = portal.browser().get("/login")
    assert answer.status == 502
    assert "cannot be reached" in answer.text


def test_provider_without_discovery_gives_502(signed_in_web):
    portal, _ = signed_in_web(misbehave="no-discovery")
    assert portal.browser().get("/login").status == 502


def test_slow_token_endpoint_times_out_with_502(signed_in_web):
    portal, provider = signed_in_web(OAUTH_TIMEOUT="2")
    browser = portal.browser()
    callback = portal.sign_in_at_provider(browser, "ben")
    provider.misbehave("slow")
    refused(browser.get(portal.callback_target(callback)), 502, "cannot be reached")


def test_rotated_signing_key_is_fetched_again(signed_in_web):
    portal, provider = signed_in_web()
    _, _, first = portal.sign_in("ben")
    assert first.status == 302
    provider.rotate_key(keep_old=False)
    _, _, second = portal.sign_in("ben")
    assert second.status == 302, second


def test_losing_admin_group_removes_admin_rights_from_every_session(signed_in_web, idp, tmp_path):
    portal, provider = signed_in_web()
    old_browser, _, _ = portal.sign_in("admin")
    assert whoami(old_browser).json()["is_admin"] is True

    # IServ: the account leaves the admins group and loses ROLE_ADMIN-like roles.
    with open(os.path.join(ROOT, "tests", "data", "users.json")) as stream:
        accounts = json.load(stream)
    for account in accounts["users"]:
        if account["username"] == "admin":
            account["groups"] = {}
            account["roles"] = []
    changed = tmp_path / "users-changed.json"
    changed.write_text(json.dumps(accounts))
    port = int(provider.base.rsplit(":", 1)[1])
    provider.stop()
    idp(clients=[(CLIENT_ID, CLIENT_SECRET, "client_secret_basic", portal.config.public_url + "/authorize")],
        port=port, users=str(changed))

    new_browser, _, answer = portal.sign_in("admin")
    assert answer.status == 302, answer  # also: a new signing key was fetched
    assert whoami(new_browser).json()["is_admin"] is False
    assert whoami(old_browser).json()["is_admin"] is False


def test_logout_needs_csrf_with_cookie_and_continues_to_end_session(signed_in_web):
    portal, provider = signed_in_web()
    browser, _, _ = portal.sign_in("anna.schmidt")
    session_id = browser.session_id()
    csrf = whoami(browser).json()["csrf_token"]

    without = browser.post("/logout", csrf=False)
    assert without.status == 403
    assert whoami(browser).status == 200

    wrong = browser.post("/logout", form={"csrf_token": "0" * 64}, csrf=False)
    assert wrong.status == 403

    answer = browser.post("/logout", form={"csrf_token": csrf}, csrf=False)
    assert answer.status == 303
    location = answer.location
    assert location.startswith(provider.base + "/iserv/auth/logout?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert query["post_logout_redirect_uri"] == portal.config.public_url + "/"
    assert query["id_token_hint"].count(".") == 2
    assert 'iservdesk_session=""; HttpOnly; Max-Age=0' in answer.header("Set-Cookie")
    back = browser.at_provider.get(location, allow_redirects=False, timeout=30)
    assert back.status_code == 302 and back.headers["Location"].startswith(portal.config.public_url + "/")
    assert "iservdesk_session" not in browser.cookies
    gone = portal.browser().get("/session?session_id=" + urllib.parse.quote(session_id))
    assert gone.status == 401


def test_logout_with_a_bearer_session_needs_no_csrf(signed_in_web):
    portal, _ = signed_in_web()
    browser, _, _ = portal.sign_in("ben")
    session_id = browser.session_id()
    answer = portal.browser().post("/logout", headers={"Authorization": "Bearer " + session_id})
    assert answer.status == 200
    assert answer.json()["status"] == "signed_out"
    assert whoami(browser).status == 401


def test_start_page_offers_sign_in_then_greets_and_signs_out(signed_in_web):
    portal, _ = signed_in_web()
    anonymous = portal.browser().get("/")
    assert anonymous.status == 200
    assert 'href="/login"' in anonymous.text
    browser, _, _ = portal.sign_in("max.muster")
    page = browser.get("/")
    assert '<strong id="user-name">Max Mustermann</strong>' in page.text
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)
    answer = browser.post("/logout", form={"csrf_token": token}, csrf=False)
    assert answer.status == 303
    assert whoami(browser).status == 401


@pytest.mark.parametrize("issuer_form", ["issuer", "host", "discovery-url"])
def test_discovery_naming_another_issuer_refuses_sign_in(signed_in_web, issuer_form):
    # Mix-up defence: whatever form OAUTH_ISSUER has, a document naming another provider
    # (here https://other-idp.example/iserv) is refused before anyone is sent anywhere.
    portal, provider = signed_in_web(misbehave="other-issuer", issuer_form=issuer_form)
    configured = {"issuer": provider.issuer, "host": provider.base,
                  "discovery-url": provider.issuer + "/.well-known/openid-configuration"}[issuer_form]
    answer = portal.browser().get("/login")
    assert answer.status == 502, answer
    assert answer.location is None
    assert "is not the one this portal is set up for" in answer.text
    warnings = [line for line in portal.log().splitlines() if "names issuer" in line]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("WARNING iservdesk.oidc:")
    assert "'https://other-idp.example/iserv'" in warnings[0]
    assert "OAUTH_ISSUER %r" % configured in warnings[0]
    assert session_count() == 0

    # Nothing wrong is remembered: once the provider names the right issuer, sign-in works.
    provider.misbehave("none")
    browser, _, signed = portal.sign_in("ben")
    assert signed.status == 302, signed
    assert whoami(browser).json()["username"] == "ben"


def test_group_and_role_display_names_grant_nothing(signed_in_web):
    # nora's groups are *named* admins, Klasse-7A and teachers, her roles ROLE_ADMIN and
    # ROLE_TEACHER, but none has that account name (act) or id (tests/data/users.json).
    restricted, _ = signed_in_web(ALLOWED_GROUPS="Klasse-7A, teachers, ROLE_TEACHER")
    refused(restricted.sign_in("nora", "nora-pw")[2], 403, "not in a group that may use iservdesk")

    portal, _ = signed_in_web(ROLE_ADMIN="admins, ROLE_ADMIN", ROLE_TEACHER="teachers, ROLE_TEACHER")
    browser, _, answer = portal.sign_in("nora", "nora-pw")
    assert answer.status == 302, answer
    body = whoami(browser).json()
    assert (body["groups"], body["roles"]) == (["schuelerrat"], [])
    assert (body["is_admin"], body["is_teacher"]) == (False, False)


def test_signing_in_ends_the_browsers_previous_session(signed_in_web):
    portal, _ = signed_in_web(ALLOWED_GROUPS="klasse-7a")
    browser, _, _ = portal.sign_in("anna.schmidt")
    anna = browser.session_id()

    # The next person at this computer signs in to IServ as someone else and comes back
    # (sign_in() meets the provider with a fresh provider session each time).
    _, _, answer = portal.sign_in("max.muster", browser=browser)
    assert answer.status == 302, answer
    assert whoami(browser).json()["username"] == "max.muster"
    gone = portal.browser().get("/session", headers={"X-Session-ID": anna})
    assert gone.status == 401
    assert session_count() == 1
    assert "anna.schmidt signed out: a new sign-in in the same browser" in portal.log()

    # A sign-in that is then refused ends the previous session too: the browser is not
    # left signed in as the person before.
    max_muster = browser.session_id()
    _, _, refused_answer = portal.sign_in("ben", browser=browser)
    assert refused_answer.status == 403
    assert portal.browser().get("/session", headers={"X-Session-ID": max_muster}).status == 401
    assert whoami(browser).status == 401
    assert session_count() == 0


# -- cross-site sign-out --

def test_logout_refuses_cross_site_requests(web):
    portal = web()
    browser = portal.signed_in("anna.schmidt")
    own = portal.config.public_url

    def logout(headers, token=browser.csrf):
        return browser.post("/logout", form={"csrf_token": token}, headers=headers, csrf=False)

    for headers in ({"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"},  # a sibling host of the school's site
                    {"Sec-Fetch-Site": "cross-site", "Origin": own},  # Fetch Metadata decides
                    {"Origin": "http://evil.example"},  # older browsers: Origin, then Referer
                    {"Origin": "null"},
                    {"Referer": "http://127.0.0.1:1/page.html"},  # another port, another origin
                    {"Origin": "http://evil.example", "Referer": own + "/"}):
        answer = logout(headers)
        assert answer.status == 403, headers
        assert "only from iservdesk itself" in answer.text, headers
        assert whoami(browser).status == 200, headers
    assert "refused a cross-site sign-out" in portal.log()

    # The portal's own pages pass this check and still need the CSRF token.
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                    {"Origin": own}, {"Referer": own + "/"}, {}):
        answer = logout(headers, token="0" * 64)
        assert answer.status == 403, headers
        assert "CSRF" in answer.text, headers
    answer = logout({"Sec-Fetch-Site": "same-origin", "Origin": own})
    assert answer.status == 303
    assert whoami(browser).status == 401


def test_logout_by_scripts_without_the_cookie_ignores_fetch_metadata(web):
    portal = web()
    browser = portal.signed_in("ben")
    answer = portal.browser().post("/logout", headers={
        "X-Session-ID": browser.session_id(), "Sec-Fetch-Site": "cross-site", "Origin": "http://elsewhere.example"})
    assert answer.status == 200, answer
    assert answer.json()["status"] == "signed_out"
    assert whoami(browser).status == 401


def test_https_portal_signs_in_with_host_prefixed_cookies_only(signed_in_web):
    # PUBLIC_URL is https; TLS ends in front of the portal (nginx), so the app sees plain
    # requests; the cookies are carried by hand.
    portal, _ = signed_in_web(PUBLIC_URL="https://127.0.0.1:8443")
    public = portal.config.public_url

    def start():
        login = portal.browser().get("/login")
        assert login.status == 302, login
        cookie = login.header("Set-Cookie")
        assert cookie.startswith("__Host-iservdesk_login=")
        assert "Secure" in cookie and "Path=/" in cookie and "domain" not in cookie.lower()
        at_provider = requests.Session()
        form = at_provider.get(login.location, allow_redirects=False, timeout=30)
        callback = submit(at_provider, form, "ben", "ben-pw")
        assert callback.startswith(public + "/authorize?")
        return cookie.split(";")[0].split("=", 1)[1], portal.callback_target(callback)

    # A login cookie without the prefix (any host of the site could have set it) is not ours.
    browser_secret, callback = start()
    shadowed = portal.browser().get(callback, headers={"Cookie": "iservdesk_login=" + browser_secret})
    assert shadowed.status == 400 and "another browser" in shadowed.text

    browser_secret, callback = start()
    answer = portal.browser().get(callback, headers={"Cookie": "__Host-iservdesk_login=" + browser_secret})
    assert answer.status == 302, answer
    cookies = answer.header_list("Set-Cookie")
    session = [cookie for cookie in cookies if cookie.startswith("__Host-iservdesk_session=")]
    assert len(session) == 1, cookies
    assert all(part in session[0] for part in ("HttpOnly", "Path=/", "SameSite=Lax", "Secure"))
    assert "domain" not in session[0].lower()
    assert any(cookie.startswith('__Host-iservdesk_login=""') and "Max-Age=0" in cookie for cookie in cookies)
    assert not any(cookie.startswith("iservdesk_") for cookie in cookies)
    # Only the prefixed cookie is a session: an unprefixed one (a sibling host may set it
    # for the whole domain) counts for nothing, on the API and under /desktop/.
    session_id = session[0].split(";")[0].split("=", 1)[1]
    own = portal.browser().get("/session", headers={"Cookie": "__Host-iservdesk_session=" + session_id})
    assert own.status == 200 and own.json()["username"] == "ben"
    for path in ("/session", "/desktop/ben-tiny/"):
        shadow = portal.browser().get(path, headers={"Cookie": "iservdesk_session=" + session_id})
        assert shadow.status in (401, 302), path
        assert shadow.status == 401 or "/login?next=" in shadow.location, path
