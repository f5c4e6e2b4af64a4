"""The in-process ring: the WSGI app that make_app() returns, called directly in the
test's own process (as Radicale's and Datasette's tests do), with a clock the test moves.

The parts are real all the same: the portal is wired as `iservdesk serve` wires it
(cli.open_desktops, then make_app) on a SQLite file, with the Desktops manager on the
real Docker engine (made, never started: nothing here starts a container or a
background job); people sign in through the development identity provider, or get a
session from iservdesk.sessions against the real database. What needs sockets,
WebSockets, containers or a browser stays with the `iservdesk serve` and Chromium tests.

A test module uses it with `pytest_plugins = ("wsgi",)` and the fixtures `web` (a portal
without an identity provider) and `signed_in_web` (one wired to a fresh dev-idp).
"""

import datetime
import http.cookies
import io
import json
import logging
import os
import urllib.parse

import pytest
import requests

from conftest import CLIENT_ID, CLIENT_SECRET, ROOT, issuer_setting
from flows import PASSWORDS, submit
from iservdesk import cli, config as configmodule, db, log as logmodule, oidc, sessions
from iservdesk.web import make_app

PUBLIC_URL = "http://127.0.0.1:8080"  # nothing listens there: requests go to the app directly
USERS_FILE = os.path.join(ROOT, "tests", "data", "users.json")


class Clock:
    """The portal's "now", moved only by the test: clock() answers, advance() moves it."""

    def __init__(self, now=None):
        # Real time to begin with: the provider's ID tokens are checked against it.
        self.now = now or datetime.datetime.now(datetime.timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, delta=None, **kwargs):
        """Move on by `delta` (a timedelta) or by timedelta(**kwargs); returns the new now."""
        self.now += delta if delta is not None else datetime.timedelta(**kwargs)
        return self.now


class Response:
    """What the app answered: status (an int), headers (a list of pairs) and body (bytes)."""

    def __init__(self, status_line, headers, body):
        self.status_line = status_line
        self.status = int(status_line.split(" ", 1)[0])
        self.headers = headers
        self.body = body

    def header(self, name, default=None):
        """The first header of that name (any case), or `default`."""
        return next((value for key, value in self.headers if key.lower() == name.lower()), default)

    def header_list(self, name):
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def location(self):
        return self.header("Location")

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %r>" % (self.status_line, self.body[:200])


def environ_for(method, target, headers, body):
    """A WSGI environ as gevent's server and server.Handler build it: PATH_INFO
    percent-decoded (as latin-1, per PEP 3333), the path as sent in iservdesk.raw_path."""
    raw_path, _, query = target.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8080",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "iservdesk.raw_path": raw_path,
    }
    if body and "Transfer-Encoding" not in headers:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ["HTTP_" + key] = value
    return environ


def call(app, method, target, headers=None, body=b""):
    """Call the WSGI `app` once; returns its Response (the body read whole, then closed)."""
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started.update(status=status, headers=list(response_headers))
        return lambda data: None  # the write() of old apps: Bottle never uses it

    result = app(environ_for(method, target, dict(headers or {}), body), start_response)
    try:
        content = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return Response(started["status"], started["headers"], content)


class Browser:
    """A browser of the portal: keeps the cookies the app sets and sends them back."""

    def __init__(self, app, cookies=None):
        self.app = app
        self.cookies = dict(cookies or {})
        self.csrf = None  # the page's CSRF token, once fetched (signed_in / sign_in)
        self.at_provider = None  # its requests.Session at the identity provider, once it went there

    def request(self, method, target, headers=None, body=b"", form=None, json_body=None, csrf=True):
        """One request; `form` (a dict) is sent urlencoded, `json_body` as JSON. Non-GET
        requests carry the CSRF token the browser fetched, unless `csrf` is False."""
        headers = dict(headers or {})
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            headers.setdefault("X-CSRF-Token", self.csrf)
        if self.cookies and "Cookie" not in headers:
            headers["Cookie"] = "; ".join("%s=%s" % pair for pair in self.cookies.items())
        response = call(self.app, method, target, headers, body)
        for header in response.header_list("Set-Cookie"):
            cookie = http.cookies.SimpleCookie(header)
            for name, morsel in cookie.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, target, **kwargs):
        return self.request("GET", target, **kwargs)

    def post(self, target, **kwargs):
        return self.request("POST", target, **kwargs)

    def delete(self, target, **kwargs):
        return self.request("DELETE", target, **kwargs)

    def session_id(self):
        return self.cookies.get(sessions.COOKIE) or self.cookies[sessions.HOST_PREFIX + sessions.COOKIE]


def accounts():
    """The dev-idp's accounts (tests/data/users.json) by username."""
    with open(USERS_FILE, encoding="utf-8") as stream:
        return {account["username"]: account for account in json.load(stream)["users"]}


class Web:
    """A portal in this process: the app, its settings, database, Desktops manager and clock;
    `log()` is what it logged (as `iservdesk serve` formats it)."""

    def __init__(self, config, database, desktops, clock, provider, app, log_stream):
        self.config, self.database, self.desktops = config, database, desktops
        self.clock, self.provider, self.app = clock, provider, app
        self.log_stream = log_stream

    def log(self):
        return self.log_stream.getvalue()

    def browser(self):
        return Browser(self.app)

    def person(self, username):
        """The User row of a dev-idp account, as a sign-in would have made it."""
        account = accounts()[username]
        user = db.User.get_or_none(db.User.uuid == account["uuid"])
        if user is None:
            user = db.User.create(uuid=account["uuid"], username=username, display_name=account["name"],
                                  email=account["email"], groups=oidc.normalise_groups(account["groups"]),
                                  roles=oidc.normalise_roles(account["roles"]), created_at=self.clock())
        return user

    def signed_in(self, username):
        """A Browser with a fresh session of `username` (made by sessions.create at the
        clock's now, as /authorize makes it) and the page's CSRF token."""
        policy = sessions.Policy.from_config(self.config)
        session_id = sessions.create(self.person(username), policy, self.clock())
        browser = Browser(self.app, {sessions.cookie_name(self.config.public_url.startswith("https://")):
                                     session_id})
        browser.csrf = sessions.csrf_token(self.config.secret_key, session_id)
        return browser

    def desktop(self, username, slug, status, **fields):
        """A desktop row of `username` in `status`, as the Desktops manager leaves one (a
        stopped desktop keeps its container; a running one also has its port)."""
        now = self.clock()
        values = {"container_id": "c0ffee" * 10 + "beef", "secret": "not-a-real-secret",
                  "created_at": now, "started_at": now, "last_access_at": now}
        if status == "running":
            values["host_port"] = 1  # nothing answers there; pages here never reach it
        values.update(fields)
        return db.Desktop.create(user=self.person(username), desktop_type=slug,
                                 name="%s-%s" % (username, slug), status=status, **values)

    def events(self, action):
        """(actor, target) of each audit log entry of `action`."""
        return [(event.actor, event.target) for event in db.Event.select().where(db.Event.action == action)]

    # -- signing in through the identity provider, as a browser does --

    def sign_in_at_provider(self, browser, username, password=None, next_path=None, action="login"):
        """/login in `browser`, then the provider's form over HTTP, filled in and sent
        (`action` "deny" cancels); returns the provider's redirect back to /authorize,
        not yet followed. The browser's session at the provider is fresh each time."""
        target = "/login" + ("?next=" + urllib.parse.quote(next_path, safe="") if next_path else "")
        login = browser.get(target)
        assert login.status == 302, login
        browser.at_provider = requests.Session()
        form = browser.at_provider.get(login.location, allow_redirects=False, timeout=30)
        assert form.status_code == 200, form.text
        password = PASSWORDS.get(username) if password is None else password
        return submit(browser.at_provider, form, username, password, action=action)

    def callback_target(self, callback):
        """The provider's redirect back to /authorize as a request target of the app."""
        assert callback.startswith(self.config.public_url + "/authorize?"), callback
        return callback[len(self.config.public_url):]

    def sign_in(self, username, password=None, next_path=None, browser=None):
        """The whole flow; returns (browser, callback URL, the app's answer to the callback)."""
        browser = browser or self.browser()
        callback = self.sign_in_at_provider(browser, username, password, next_path)
        answer = browser.get(self.callback_target(callback))
        if answer.status == 302:
            session = browser.get("/session")
            browser.csrf = session.json()["csrf_token"] if session.status == 200 else None
        return browser, callback, answer


@pytest.fixture
def portal_log():
    """The portal's log lines as `iservdesk serve` writes them (iservdesk.log.setup), in a
    string; the test run's own logging is given back afterwards."""
    root = logging.getLogger()
    quiet = [logging.getLogger(name) for name in logmodule.QUIET_LIBRARIES]
    handlers, levels = root.handlers[:], [logger.level for logger in [root] + quiet]
    stream = io.StringIO()
    logmodule.setup("INFO", stream)
    yield stream
    root.handlers[:] = handlers
    for logger, level in zip([root] + quiet, levels):
        logger.setLevel(level)


@pytest.fixture
def web(config_file, docker_client, portal_log):
    """Factory: web(clock=None, provider=None, **settings) -> a Web wired like `iservdesk
    serve`, with its own Clock (shared by the routes and the Desktops manager)."""
    opened = []

    def make(clock=None, provider=None, **settings):
        clock = clock or Clock()
        settings.setdefault("PUBLIC_URL", PUBLIC_URL)
        config = configmodule.load(config_file("web-%d.env" % len(opened), **settings))
        database, desktops = cli.open_desktops(config, clock)
        opened.append(database)
        provider = provider or oidc.Provider(config)
        app = make_app(config, database, desktops, provider=provider, clock=clock)
        return Web(config, database, desktops, clock, provider, app, portal_log)

    yield make
    for database in opened:
        database.close()


@pytest.fixture
def signed_in_web(web, idp):
    """Factory: a Web wired to a fresh development identity provider -> (web, idp); the
    same options as conftest's signed_in_portal."""
    def start(method="client_secret_basic", prefixed_scopes=False, issuer_path="/iserv",
              misbehave="none", issuer_form="issuer", users=None, clock=None, **settings):
        public_url = settings.setdefault("PUBLIC_URL", PUBLIC_URL)
        provider = idp(clients=[(CLIENT_ID, CLIENT_SECRET, method, public_url + "/authorize")],
                       prefixed_scopes=prefixed_scopes, issuer_path=issuer_path, misbehave=misbehave,
                       **({"users": users} if users else {}))
        settings.setdefault("OAUTH_ISSUER", issuer_setting(provider, issuer_form))
        return web(clock=clock, OAUTH_CLIENT_ID=CLIENT_ID, OAUTH_CLIENT_SECRET=CLIENT_SECRET, **settings), provider
    return start
