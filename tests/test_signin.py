"""Sign-in over real HTTP: a real `iservdesk serve` and the development identity provider.

A requests.Session plays the browser: it follows the portal to the provider's login
form, posts the credentials, and brings the code back to /authorize.
"""

import json
import os
import re
import sqlite3
import urllib.parse

import pytest
import requests

from conftest import CLIENT_ID, CLIENT_SECRET, ROOT, free_port
from flows import sign_in, start_sign_in, submit

from iservdesk import sessions
from iservdesk.web import auth

def session_count(portal_dir):
    con = sqlite3.connect(os.path.join(portal_dir, "iservdesk.db"))
    try:
        return con.execute("SELECT count(*) FROM sessions").fetchone()[0]
    finally:
        con.close()


def whoami(browser, url):
    return browser.get(url + "/session", timeout=30)


@pytest.fixture
def portal_dir(tmp_path):
    return str(tmp_path)


def test_sign_in_creates_a_session_reported_by_session(signed_in_portal, portal_dir):
    portal, provider = signed_in_portal()
    browser, callback, answer = sign_in(portal.url, "anna.schmidt", "anna-pw", next_path="/admin")
    assert answer.status_code == 302
    assert answer.headers["Location"] == portal.url + "/admin"
    cookie = [value for name, value in answer.raw.headers.items() if name == "Set-Cookie"
              and value.startswith("iservdesk_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # PUBLIC_URL is http here

    me = whoami(browser, portal.url)
    assert me.status_code == 200
    body = me.json()
    assert body["username"] == "anna.schmidt"
    assert body["display_name"] == "Anna Schmidt"
    assert body["groups"] == ["klasse-7a", "schueler"]
    assert body["roles"] == ["role_student"]
    assert (body["is_admin"], body["is_teacher"]) == (False, False)
    assert body["expires_at"] and len(body["csrf_token"]) == 64

    # Only a hash of the session id is stored.
    session_id = browser.cookies["iservdesk_session"]
    assert len(session_id) >= 43
    with open(os.path.join(portal_dir, "iservdesk.db"), "rb") as stream:
        assert session_id.encode() not in stream.read()
    assert session_count(portal_dir) == 1


def test_next_path_must_be_local(signed_in_portal):
    portal, _ = signed_in_portal()
    _, _, answer = sign_in(portal.url, "ben", "ben-pw", next_path="//evil.example/x")
    assert answer.headers["Location"] == portal.url + "/"


def test_authorization_request_uses_pkce_nonce_state_and_offered_scopes(signed_in_portal):
    portal, provider = signed_in_portal()
    redirect = requests.get(portal.url + "/login", allow_redirects=False, timeout=30).headers["Location"]
    assert redirect.startswith(provider.base + "/iserv/oauth/v2/auth?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
    assert query["scope"] == "openid profile email uuid groups roles"
    assert query["redirect_uri"] == portal.url + "/authorize"


def test_prefixed_scopes_and_client_secret_post(signed_in_portal):
    portal, provider = signed_in_portal(method="client_secret_post", prefixed_scopes=True)
    redirect = requests.get(portal.url + "/login", allow_redirects=False, timeout=30).headers["Location"]
    scope = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))["scope"]
    assert scope == "openid profile email uuid iserv:groups iserv:roles"
    browser, _, answer = sign_in(portal.url, "mueller", "mueller-pw")
    assert answer.status_code == 302
    body = whoami(browser, portal.url).json()
    assert (body["username"], body["is_teacher"], body["is_admin"]) == ("mueller", True, False)
    assert "teachers" in body["groups"]


@pytest.mark.parametrize("issuer_form", ["host", "discovery-url"])
def test_other_forms_of_oauth_issuer_find_discovery(signed_in_portal, issuer_form):
    # "host": only <host>/iserv/public/.well-known/... answers, as on some IServ installs.
    portal, provider = signed_in_portal(issuer_path="/idp", issuer_form=issuer_form)
    assert requests.get(provider.base + "/.well-known/openid-configuration", timeout=10).status_code == 404
    browser, _, answer = sign_in(portal.url, "ben", "ben-pw")
    assert answer.status_code == 302, answer.text
    assert whoami(browser, portal.url).json()["username"] == "ben"


def test_dotted_account_name_and_admin_roles(signed_in_portal):
    portal, _ = signed_in_portal()
    browser, _, answer = sign_in(portal.url, "max.muster", "max-pw")
    assert answer.status_code == 302
    assert whoami(browser, portal.url).json()["username"] == "max.muster"
    admin, _, _ = sign_in(portal.url, "admin", "admin-pw")
    assert whoami(admin, portal.url).json()["is_admin"] is True


def test_session_carriers_for_api_clients(signed_in_portal):
    portal, _ = signed_in_portal()
    browser, _, _ = sign_in(portal.url, "ben", "ben-pw")
    session_id = browser.cookies["iservdesk_session"]
    for kwargs in ({"headers": {"Authorization": "Bearer " + session_id}},
                   {"headers": {"X-Session-ID": session_id}},
                   {"params": {"session_id": session_id}}):
        response = requests.get(portal.url + "/session", timeout=30, **kwargs)
        assert response.status_code == 200, kwargs
        assert response.json()["username"] == "ben"
    anonymous = requests.get(portal.url + "/session", timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"error": "unauthenticated", "message": "Please sign in."}
    wrong = requests.get(portal.url + "/session", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401


def refused(answer, status, portal_dir, text):
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("text/html")
    assert text in answer.text
    assert "Traceback" not in answer.text
    assert "iservdesk_session" not in answer.headers.get("Set-Cookie", "")
    assert session_count(portal_dir) == 0


@pytest.mark.parametrize("mode", ["unknown-key", "wrong-iss", "wrong-aud", "expired", "wrong-nonce"])
def test_invalid_id_tokens_are_refused(signed_in_portal, portal_dir, mode):
    portal, provider = signed_in_portal(misbehave=mode)
    _, _, answer = sign_in(portal.url, "ben", "ben-pw")
    refused(answer, 401, portal_dir, "could not be verified")
    assert "ID token refused" in portal.log()


def test_user_who_denies_is_not_signed_in(signed_in_portal, portal_dir):
    portal, _ = signed_in_portal()
    browser, form = start_sign_in(portal.url)
    callback = submit(browser, form, "ben", "", action="deny")
    refused(browser.get(callback, allow_redirects=False, timeout=30), 403, portal_dir, "You cancelled")


def test_reused_state_is_refused(signed_in_portal, portal_dir):
    portal, _ = signed_in_portal()
    browser, callback, answer = sign_in(portal.url, "ben", "ben-pw")
    assert answer.status_code == 302
    browser.cookies.clear()
    browser.cookies.set("iservdesk_login", "whatever")
    again = browser.get(callback, allow_redirects=False, timeout=30)
    assert again.status_code == 400
    assert "expired or was already used" in again.text
    assert session_count(portal_dir) == 1


def test_unknown_or_missing_state_is_refused(signed_in_portal, portal_dir):
    portal, _ = signed_in_portal()
    browser, form = start_sign_in(portal.url)
    callback = submit(browser, form, "ben", "ben-pw")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    forged = browser.get(portal.url + "/authorize", params={"code": query["code"], "state": "forged"},
                         allow_redirects=False, timeout=30)
    refused(forged, 400, portal_dir, "expired or was already used")
    missing = browser.get(portal.url + "/authorize", params={"code": query["code"]},
                          allow_redirects=False, timeout=30)
    refused(missing, 400, portal_dir, "lacks its state")


def test_callback_in_another_browser_is_refused(signed_in_portal, portal_dir):
    # Login CSRF: an attacker's callback URL opened in the victim's browser.
    portal, _ = signed_in_portal()
    attacker, form = start_sign_in(portal.url)
    callback = submit(attacker, form, "ben", "ben-pw")
    victim = requests.Session()
    refused(victim.get(callback, allow_redirects=False, timeout=30), 400, portal_dir, "another browser")


def test_user_outside_allowed_groups_is_refused(signed_in_portal, portal_dir):
    portal, _ = signed_in_portal(ALLOWED_GROUPS="Klasse-7A, teachers")
    _, _, answer = sign_in(portal.url, "ben", "ben-pw")
    refused(answer, 403, portal_dir, "not in a group that may use iservdesk")
    browser, _, allowed = sign_in(portal.url, "anna.schmidt", "anna-pw")
    assert allowed.status_code == 302
    admin, _, admitted = sign_in(portal.url, "admin", "admin-pw")
    assert admitted.status_code == 302


def test_unreachable_provider_gives_502(portal, portal_dir):
    instance = portal(OAUTH_ISSUER="http://127.0.0.1:%d/iserv" % free_port())
    answer = requests.get(instance.url + "/login", allow_redirects=False, timeout=30)
    assert answer.status_code == 502
    assert "cannot be reached" in answer.text


def test_provider_without_discovery_gives_502(signed_in_portal):
    portal, _ = signed_in_portal(misbehave="no-discovery")
    answer = requests.get(portal.url + "/login", allow_redirects=False, timeout=30)
    assert answer.status_code == 502


def test_slow_token_endpoint_times_out_with_502(signed_in_portal, portal_dir):
    portal, provider = signed_in_portal(OAUTH_TIMEOUT="2")
    browser, form = start_sign_in(portal.url)
    callback = submit(browser, form, "ben", "ben-pw")
    provider.misbehave("slow")
    refused(browser.get(callback, allow_redirects=False, timeout=60), 502, portal_dir, "cannot be reached")


def test_rotated_signing_key_is_fetched_again(signed_in_portal):
    portal, provider = signed_in_portal()
    _, _, first = sign_in(portal.url, "ben", "ben-pw")
    assert first.status_code == 302
    provider.rotate_key(keep_old=False)
    _, _, second = sign_in(portal.url, "ben", "ben-pw")
    assert second.status_code == 302, second.text


def test_losing_admin_group_removes_admin_rights_from_every_session(signed_in_portal, idp, tmp_path):
    portal, provider = signed_in_portal()
    old_browser, _, _ = sign_in(portal.url, "admin", "admin-pw")
    assert whoami(old_browser, portal.url).json()["is_admin"] is True

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
    idp(clients=[(CLIENT_ID, CLIENT_SECRET, "client_secret_basic", portal.url + "/authorize")],
        port=port, users=str(changed))

    new_browser, _, answer = sign_in(portal.url, "admin", "admin-pw")
    assert answer.status_code == 302, answer.text  # also: a new signing key was fetched
    assert whoami(new_browser, portal.url).json()["is_admin"] is False
    assert whoami(old_browser, portal.url).json()["is_admin"] is False


def test_logout_needs_csrf_with_cookie_and_continues_to_end_session(signed_in_portal):
    portal, provider = signed_in_portal()
    browser, _, _ = sign_in(portal.url, "anna.schmidt", "anna-pw")
    session_id = browser.cookies["iservdesk_session"]
    csrf = whoami(browser, portal.url).json()["csrf_token"]

    without = browser.post(portal.url + "/logout", allow_redirects=False, timeout=30)
    assert without.status_code == 403
    assert whoami(browser, portal.url).status_code == 200

    wrong = browser.post(portal.url + "/logout", data={"csrf_token": "0" * 64}, allow_redirects=False,
                         timeout=30)
    assert wrong.status_code == 403

    answer = browser.post(portal.url + "/logout", data={"csrf_token": csrf}, allow_redirects=False,
                          timeout=30)
    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert location.startswith(provider.base + "/iserv/auth/logout?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert query["post_logout_redirect_uri"] == portal.url + "/"
    assert query["id_token_hint"].count(".") == 2
    assert 'iservdesk_session=""; HttpOnly; Max-Age=0' in answer.headers["Set-Cookie"]
    back = browser.get(location, allow_redirects=False, timeout=30)
    assert back.status_code == 302 and back.headers["Location"].startswith(portal.url + "/")
    assert "iservdesk_session" not in browser.cookies
    gone = requests.get(portal.url + "/session", params={"session_id": session_id}, timeout=30)
    assert gone.status_code == 401


def test_logout_with_a_bearer_session_needs_no_csrf(signed_in_portal):
    portal, _ = signed_in_portal()
    browser, _, _ = sign_in(portal.url, "ben", "ben-pw")
    session_id = browser.cookies["iservdesk_session"]
    answer = requests.post(portal.url + "/logout", headers={"Authorization": "Bearer " + session_id},
                           timeout=30)
    assert answer.status_code == 200
    assert answer.json()["status"] == "signed_out"
    assert whoami(browser, portal.url).status_code == 401


def test_logs_never_show_codes_states_tokens_or_session_ids(signed_in_portal):
    portal, provider = signed_in_portal(LOG_LEVEL="DEBUG")
    browser, callback, answer = sign_in(portal.url, "max.muster", "max-pw")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
    session_id = browser.cookies["iservdesk_session"]
    csrf = whoami(browser, portal.url).json()["csrf_token"]
    logout = browser.post(portal.url + "/logout", data={"csrf_token": csrf}, allow_redirects=False, timeout=30)
    hint = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(logout.headers["Location"]).query))["id_token_hint"]
    requests.get(portal.url + "/session", params={"session_id": session_id}, timeout=30)
    portal.stop()
    log = portal.log()
    assert "max.muster signed in" in log  # the log is there, and at DEBUG
    assert "iservdesk.access" in log
    for secret in (query["code"], query["state"], session_id, csrf, hint, CLIENT_SECRET,
                   hint.split(".")[1]):
        assert secret not in log


def test_start_page_offers_sign_in_then_greets_and_signs_out(signed_in_portal):
    portal, _ = signed_in_portal()
    anonymous = requests.get(portal.url + "/", timeout=30)
    assert anonymous.status_code == 200
    assert 'href="/login"' in anonymous.text
    browser, _, _ = sign_in(portal.url, "max.muster", "max-pw")
    page = browser.get(portal.url + "/", timeout=30)
    assert '<strong id="user-name">Max Mustermann</strong>' in page.text
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)
    answer = browser.post(portal.url + "/logout", data={"csrf_token": token}, allow_redirects=False, timeout=30)
    assert answer.status_code == 303
    assert whoami(browser, portal.url).status_code == 401


@pytest.mark.parametrize("issuer_form", ["issuer", "host", "discovery-url"])
def test_discovery_naming_another_issuer_refuses_sign_in(signed_in_portal, portal_dir, issuer_form):
    # Mix-up defence: whatever form OAUTH_ISSUER has, a document naming another provider
    # (here https://other-idp.example/iserv) is refused before anyone is sent anywhere.
    portal, provider = signed_in_portal(misbehave="other-issuer", issuer_form=issuer_form)
    configured = {"issuer": provider.issuer, "host": provider.base,
                  "discovery-url": provider.issuer + "/.well-known/openid-configuration"}[issuer_form]
    answer = requests.get(portal.url + "/login", allow_redirects=False, timeout=30)
    assert answer.status_code == 502, answer.text
    assert "Location" not in answer.headers
    assert "is not the one this portal is set up for" in answer.text
    warnings = [line for line in portal.log().splitlines() if "names issuer" in line]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("WARNING iservdesk.oidc:")
    assert "'https://other-idp.example/iserv'" in warnings[0]
    assert "OAUTH_ISSUER %r" % configured in warnings[0]
    assert session_count(portal_dir) == 0

    # Nothing wrong is remembered: once the provider names the right issuer, sign-in works.
    provider.misbehave("none")
    browser, _, signed = sign_in(portal.url, "ben", "ben-pw")
    assert signed.status_code == 302, signed.text
    assert whoami(browser, portal.url).json()["username"] == "ben"


def test_group_and_role_display_names_grant_nothing(signed_in_portal, portal_dir):
    # nora's groups are *named* admins, Klasse-7A and teachers, her roles ROLE_ADMIN and
    # ROLE_TEACHER, but none has that account name (act) or id (tests/data/users.json).
    restricted, _ = signed_in_portal(ALLOWED_GROUPS="Klasse-7A, teachers, ROLE_TEACHER")
    refused(sign_in(restricted.url, "nora", "nora-pw")[2], 403, portal_dir,
            "not in a group that may use iservdesk")

    portal, _ = signed_in_portal(ROLE_ADMIN="admins, ROLE_ADMIN", ROLE_TEACHER="teachers, ROLE_TEACHER")
    browser, _, answer = sign_in(portal.url, "nora", "nora-pw")
    assert answer.status_code == 302, answer.text
    body = whoami(browser, portal.url).json()
    assert (body["groups"], body["roles"]) == (["schuelerrat"], [])
    assert (body["is_admin"], body["is_teacher"]) == (False, False)


def test_signing_in_ends_the_browsers_previous_session(signed_in_portal, portal_dir):
    portal, _ = signed_in_portal(ALLOWED_GROUPS="klasse-7a")
    browser, _, _ = sign_in(portal.url, "anna.schmidt", "anna-pw")
    anna = browser.cookies["iservdesk_session"]

    # The next person at this computer signs in to IServ as someone else and comes back.
    browser.cookies.set("devidp_session", None)
    _, _, answer = sign_in(portal.url, "max.muster", "max-pw", session=browser)
    assert answer.status_code == 302, answer.text
    assert whoami(browser, portal.url).json()["username"] == "max.muster"
    gone = requests.get(portal.url + "/session", headers={"X-Session-ID": anna}, timeout=30)
    assert gone.status_code == 401
    assert session_count(portal_dir) == 1
    assert "anna.schmidt signed out: a new sign-in in the same browser" in portal.log()

    # A sign-in that is then refused ends the previous session too: the browser is not
    # left signed in as the person before.
    max_muster = browser.cookies["iservdesk_session"]
    browser.cookies.set("devidp_session", None)
    _, _, refused_answer = sign_in(portal.url, "ben", "ben-pw", session=browser)
    assert refused_answer.status_code == 403
    assert requests.get(portal.url + "/session", headers={"X-Session-ID": max_muster},
                        timeout=30).status_code == 401
    assert whoami(browser, portal.url).status_code == 401
    assert session_count(portal_dir) == 0


def test_logout_refuses_cross_site_requests(signed_in_portal):
    portal, _ = signed_in_portal()
    browser, _, _ = sign_in(portal.url, "anna.schmidt", "anna-pw")
    csrf = whoami(browser, portal.url).json()["csrf_token"]

    def logout(headers, token=csrf):
        return browser.post(portal.url + "/logout", data={"csrf_token": token}, headers=headers,
                            allow_redirects=False, timeout=30)

    for headers in ({"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"},  # a sibling host of the school's site
                    {"Sec-Fetch-Site": "cross-site", "Origin": portal.url},  # Fetch Metadata decides
                    {"Origin": "http://evil.example"},  # older browsers: Origin, then Referer
                    {"Origin": "null"},
                    {"Referer": "http://127.0.0.1:1/page.html"},  # another port, another origin
                    {"Origin": "http://evil.example", "Referer": portal.url + "/"}):
        answer = logout(headers)
        assert answer.status_code == 403, headers
        assert "only from iservdesk itself" in answer.text, headers
        assert whoami(browser, portal.url).status_code == 200, headers
    assert "refused a cross-site sign-out" in portal.log()

    # The portal's own pages pass this check and still need the CSRF token.
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                    {"Origin": portal.url}, {"Referer": portal.url + "/"}, {}):
        answer = logout(headers, token="0" * 64)
        assert answer.status_code == 403, headers
        assert "CSRF" in answer.text, headers
    answer = logout({"Sec-Fetch-Site": "same-origin", "Origin": portal.url})
    assert answer.status_code == 303
    assert whoami(browser, portal.url).status_code == 401


def test_logout_by_scripts_without_the_cookie_ignores_fetch_metadata(signed_in_portal):
    portal, _ = signed_in_portal()
    browser, _, _ = sign_in(portal.url, "ben", "ben-pw")
    session_id = browser.cookies["iservdesk_session"]
    answer = requests.post(portal.url + "/logout", timeout=30, headers={
        "X-Session-ID": session_id, "Sec-Fetch-Site": "cross-site", "Origin": "http://elsewhere.example"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "signed_out"
    assert whoami(browser, portal.url).status_code == 401


def test_cookies_under_https_are_host_prefixed():
    session = auth.cookie_header(sessions.cookie_name(True), "v", max_age=60, secure=True)
    assert session == "__Host-iservdesk_session=v; HttpOnly; Max-Age=60; Path=/; SameSite=Lax; Secure"
    login = auth.cookie_header(sessions.cookie_name(True, auth.LOGIN_COOKIE), "", max_age=0, secure=True)
    assert login.startswith('__Host-iservdesk_login=""; ') and "Secure" in login and "Domain" not in login
    assert auth.cookie_header(sessions.cookie_name(False), "v", max_age=60, secure=False) == \
        "iservdesk_session=v; HttpOnly; Max-Age=60; Path=/; SameSite=Lax"
    with pytest.raises(ValueError):
        auth.cookie_header("__Host-iservdesk_session", "v", max_age=60, secure=False)


def test_https_portal_signs_in_with_host_prefixed_cookies_only(portal, idp):
    # PUBLIC_URL is https; TLS ends in front of the portal, so the test talks plain HTTP to
    # it as nginx would, carrying the cookies by hand (requests keeps Secure ones for https).
    port = free_port()
    public = "https://127.0.0.1:%d" % port
    provider = idp(clients=[(CLIENT_ID, CLIENT_SECRET, "client_secret_basic", public + "/authorize")])
    instance = portal(LISTEN="127.0.0.1:%d" % port, PUBLIC_URL=public, OAUTH_ISSUER=provider.issuer,
                      OAUTH_CLIENT_ID=CLIENT_ID, OAUTH_CLIENT_SECRET=CLIENT_SECRET)

    def start():
        login = requests.get(instance.url + "/login", allow_redirects=False, timeout=30)
        assert login.status_code == 302, login.text
        cookie = login.headers["Set-Cookie"]
        assert cookie.startswith("__Host-iservdesk_login=")
        assert "Secure" in cookie and "Path=/" in cookie and "domain" not in cookie.lower()
        at_provider = requests.Session()
        form = at_provider.get(login.headers["Location"], allow_redirects=False, timeout=30)
        callback = submit(at_provider, form, "ben", "ben-pw")
        assert callback.startswith(public + "/authorize?")
        return cookie.split(";")[0].split("=", 1)[1], instance.url + callback[len(public):]

    # A login cookie without the prefix (any host of the site could have set it) is not ours.
    browser_secret, callback = start()
    shadowed = requests.get(callback, headers={"Cookie": "iservdesk_login=" + browser_secret},
                            allow_redirects=False, timeout=30)
    assert shadowed.status_code == 400 and "another browser" in shadowed.text

    browser_secret, callback = start()
    answer = requests.get(callback, headers={"Cookie": "__Host-iservdesk_login=" + browser_secret},
                          allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text
    cookies = answer.raw.headers.getlist("Set-Cookie")
    session = [cookie for cookie in cookies if cookie.startswith("__Host-iservdesk_session=")]
    assert len(session) == 1, cookies
    assert all(part in session[0] for part in ("HttpOnly", "Path=/", "SameSite=Lax", "Secure"))
    assert "domain" not in session[0].lower()
    assert any(cookie.startswith('__Host-iservdesk_login=""') and "Max-Age=0" in cookie for cookie in cookies)
    assert not any(cookie.startswith("iservdesk_") for cookie in cookies)
    # Only the prefixed cookie is a session: an unprefixed one (a sibling host may set it
    # for the whole domain) counts for nothing, on the API and under /desktop/.
    session_id = session[0].split(";")[0].split("=", 1)[1]
    own = requests.get(instance.url + "/session", headers={"Cookie": "__Host-iservdesk_session=" + session_id},
                       timeout=30)
    assert own.status_code == 200 and own.json()["username"] == "ben"
    for path in ("/session", "/desktop/ben-tiny/"):
        shadow = requests.get(instance.url + path, headers={"Cookie": "iservdesk_session=" + session_id},
                              allow_redirects=False, timeout=30)
        assert shadow.status_code in (401, 302), path
        assert shadow.status_code == 401 or "/login?next=" in shadow.headers["Location"], path
