"""Sign-in over real HTTP: a real `iservdesk serve` and the development identity provider.

A requests.Session plays the browser: it follows the portal to the provider's login
form, posts the credentials, and brings the code back to /authorize. Only what needs the
real process is here (what it writes to its log); the rules of signing in, sessions and
signing out are tested in-process in test_web_auth.py.
"""

import urllib.parse

import pytest
import requests

from conftest import CLIENT_SECRET
from flows import sign_in

from iservdesk import sessions
from iservdesk.web import auth


def whoami(browser, url):
    return browser.get(url + "/session", timeout=30)


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


def test_cookies_under_https_are_host_prefixed():
    session = auth.cookie_header(sessions.cookie_name(True), "v", max_age=60, secure=True)
    assert session == "__Host-iservdesk_session=v; HttpOnly; Max-Age=60; Path=/; SameSite=Lax; Secure"
    login = auth.cookie_header(sessions.cookie_name(True, auth.LOGIN_COOKIE), "", max_age=0, secure=True)
    assert login.startswith('__Host-iservdesk_login=""; ') and "Secure" in login and "Domain" not in login
    assert auth.cookie_header(sessions.cookie_name(False), "v", max_age=60, secure=False) == \
        "iservdesk_session=v; HttpOnly; Max-Age=60; Path=/; SameSite=Lax"
    with pytest.raises(ValueError):
        auth.cookie_header("__Host-iservdesk_session", "v", max_age=60, secure=False)

