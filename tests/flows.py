"""What a browser does to sign in, done with requests against the real portal and the
development identity provider; and a small API client for signed-in users."""

import re

import requests

HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')

PASSWORDS = {"anna.schmidt": "anna-pw", "ben": "ben-pw", "max.muster": "max-pw",
             "mueller": "mueller-pw", "admin": "admin-pw", "gast": "gast-pw"}


def start_sign_in(portal_url, session=None, next_path=None):
    """Follow /login to the provider's form; returns (browser, form page response)."""
    browser = session or requests.Session()
    response = browser.get(portal_url + "/login", params={"next": next_path} if next_path else None,
                           allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text
    form = browser.get(response.headers["Location"], allow_redirects=False, timeout=30)
    assert form.status_code == 200, form.text
    return browser, form


def submit(browser, form, username, password, action="login"):
    """Post the provider's form; returns the provider's redirect (to /authorize)."""
    fields = {name: value.replace("&amp;", "&").replace("&quot;", '"')
              for name, value in HIDDEN_INPUT.findall(form.text)}
    fields.update(username=username, password=password, action=action)
    answer = browser.post(form.url.split("?")[0], data=fields, allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def sign_in(portal_url, username, password, next_path=None, session=None):
    """The whole flow; returns (browser, callback URL, the portal's answer to the callback)."""
    browser, form = start_sign_in(portal_url, session=session, next_path=next_path)
    callback = submit(browser, form, username, password)
    assert callback.startswith(portal_url + "/authorize?")
    return browser, callback, browser.get(callback, allow_redirects=False, timeout=60)


class Client:
    """A signed-in browser session that calls the API with its cookie and CSRF token."""

    def __init__(self, portal_url, username, session=None):
        self.url = portal_url
        self.username = username
        self.browser, _, answer = sign_in(portal_url, username, PASSWORDS[username], session=session)
        assert answer.status_code == 302, answer.text
        self.csrf = self.browser.get(portal_url + "/session", timeout=30).json()["csrf_token"]

    @property
    def session_id(self):
        # __Host- under an https PUBLIC_URL (tests behind nginx), plain under http.
        cookies = self.browser.cookies
        return cookies.get("iservdesk_session") or cookies["__Host-iservdesk_session"]

    def request(self, method, path, **kwargs):
        headers = kwargs.pop("headers", {})
        if method != "GET":
            headers.setdefault("X-CSRF-Token", self.csrf)
        kwargs.setdefault("timeout", 60)
        return self.browser.request(method, self.url + path, headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)


def wait_status(client, desktop_type, wanted, timeout=60):
    """Wait until the client's desktop of `desktop_type` has status `wanted`; its JSON."""
    from conftest import wait_for

    def reached():
        body = client.get("/api/container/status", params={"desktop_type": desktop_type}).json()
        if body["status"] == "error" and wanted != "error":
            raise AssertionError("desktop failed: %s" % body["message"])
        return body if body["status"] == wanted else None
    return wait_for(reached, timeout, "%s of %s to be %s" % (client.username, desktop_type, wanted), 0.1)
