"""Development helpers shared by the tests (tests/) and the benchmarks (scripts/bench*.py):
neither imports the other, both import this. Nothing here is shipped; iservdesk never
imports it.

- ports, waits and processes: free_port(), wait_for(), stop_process()
- the demo desktop image's tag (demo_image_tag()) and the engine tests use (DOCKER_URL)
- self_signed(): a throwaway certificate for 127.0.0.1
- write_config(): a complete development configuration with a catalog of the demo image
- the development identity provider's sign-in, done with requests, and Client, a
  signed-in API client (the provider is scripts/dev-idp.py; its users tests/data/users.json)
- start_browser(): headless Debian Chromium, driven by Debian's chromedriver
- Site: the shipped nginx site (nginx/iservdesk.conf), rendered and run by real nginx

Test fixtures, with their pytest-specific failure reports, stay in tests/conftest.py;
test-only helpers in the other modules of tests/.
"""

import functools
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKER_URL = os.environ.get("ISERVDESK_TEST_DOCKER_URL", "unix:///var/run/docker.sock")


@functools.lru_cache(maxsize=None)
def demo_image_tag():
    """The demo desktop image to use: $ISERVDESK_TEST_IMAGE, else the tag that
    scripts/build-demo-desktop gives it. The tag names the recipe, so a changed recipe
    means a new image, never a stale one. Asked once, when first needed."""
    return os.environ.get("ISERVDESK_TEST_IMAGE") or subprocess.run(
        [os.path.join(ROOT, "scripts", "build-demo-desktop"), "--print-tag"], check=True,
        capture_output=True, text=True).stdout.strip()


# -- ports, waits, processes --

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` seconds
    pass (AssertionError naming `what` and the last error). An AssertionError from the
    predicate ends the wait at once: the predicate knows it will never succeed."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as error:  # the thing is not up yet; remember why
            last_error = error
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last error: %r)"
                         % (timeout, what, last_error))


def stop_process(process, timeout=20, stop_signal=signal.SIGTERM):
    """Stop the subprocess.Popen `process`: send `stop_signal`, wait up to `timeout`
    seconds, then SIGKILL it and wait. Nothing is sent to a process that has ended.
    Returns False when it had to be killed, else True (process.returncode has its status)."""
    if process.poll() is not None:
        return True
    process.send_signal(stop_signal)
    try:
        process.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False


# -- certificates --

def self_signed(folder):
    """(certificate, key) paths in `folder` of a new self-signed certificate for 127.0.0.1,
    valid for two days: for stand-in desktops (which are never verified, like the Kasm
    images' own) and for nginx (whose tests trust exactly this certificate)."""
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


# -- a development configuration --

CATALOG = """
[desktop.demo]
name.de = "Demo-Desktop"
name.en = "Demo desktop"
description.de = "Ein X-Desktop mit Terminal."
description.en = "An X desktop with a terminal."
icon = "desktop"
image = "{image}"
shm_size = "512m"
memory = "1g"
cpus = 1
pids = 512

[desktop.tiny]
name.de = "Klein"
name.en = "Tiny"
image = "{image}"
memory = "256m"
pids = 128
[desktop.tiny.environment]
DEMO_MODE = "tiny"

[desktop.strict]
name.de = "Streng"
name.en = "Strict"
image = "{image}"
[desktop.strict.environment]
DEMO_MODE = "strict"

[desktop.teachers-only]
name.de = "Nur Lehrkräfte"
name.en = "Teachers only"
image = "{image}"
allowed = ["Teachers"]
[desktop.teachers-only.environment]
DEMO_MODE = "tiny"
"""
# A desktop that spends CPU seconds at start, as a Kasm image's boot does (the start queue's
# tests and benchmark): CATALOG + SLOW_DESKTOP, formatted with image and seconds.
SLOW_DESKTOP = """
[desktop.slow]
name.de = "Langsam"
name.en = "Slow"
image = "{image}"
memory = "1g"
[desktop.slow.environment]
DEMO_MODE = "tiny"
DEMO_BOOT_CPU_SECONDS = "{seconds}"
"""
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"


def write_config(path, **settings):
    """Write an env file with a complete development configuration plus `settings` (a
    value of None leaves that setting out), and beside it a desktop catalog of the demo
    image (types demo, tiny, strict, teachers-only); returns the path. `settings` must
    name CONTAINER_PREFIX, so that nothing made here shares names with real desktops."""
    if "CONTAINER_PREFIX" not in settings:
        raise ValueError("write_config: CONTAINER_PREFIX is missing")
    folder = os.path.dirname(str(path))
    catalog = os.path.join(folder, "desktops.toml")
    if not os.path.exists(catalog):
        with open(catalog, "w") as stream:
            stream.write(CATALOG.format(image=demo_image_tag()))
    values = {
        "DESKTOPS_FILE": catalog,
        "DESKTOP_READY_TIMEOUT": "60",
        "PUBLIC_URL": "http://127.0.0.1:8080",
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URI": "sqlite:///" + os.path.join(folder, "iservdesk.db"),
        "OAUTH_CLIENT_ID": "iservdesk-test",
        "OAUTH_CLIENT_SECRET": "test-client-secret",
        "OAUTH_ISSUER": "http://127.0.0.1:9/iserv",  # nothing listens: who signs in sets it
        "DOCKER_URL": DOCKER_URL,
        "LOG_LEVEL": "INFO",
    }
    values.update(settings)
    with open(str(path), "w") as stream:
        for name, value in values.items():
            if value is not None:
                stream.write("%s=%s\n" % (name, value))
    return str(path)


# -- signing in at the development identity provider, as a browser does --

HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')

# The passwords of tests/data/users.json.
PASSWORDS = {"anna.schmidt": "anna-pw", "ben": "ben-pw", "max.muster": "max-pw",
             "mueller": "mueller-pw", "admin": "admin-pw", "gast": "gast-pw", "lehrer": "lehrer-pw"}


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
    """A signed-in browser session that calls the API with its cookie and CSRF token.
    `password` is needed for accounts other than those of PASSWORDS."""

    def __init__(self, portal_url, username, session=None, password=None):
        self.url = portal_url
        self.username = username
        self.browser, _, answer = sign_in(portal_url, username, password or PASSWORDS[username],
                                          session=session)
        assert answer.status_code == 302, answer.text
        self.csrf = self.browser.get(portal_url + "/session", timeout=30).json()["csrf_token"]

    @property
    def session_id(self):
        # __Host- under an https PUBLIC_URL (behind nginx), plain under http.
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

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)


# -- headless Chromium --
#
# Only Debian's packages are used (`apt-get install chromium chromium-driver
# python3-selenium`, which `make deps` does); nothing is downloaded at run time. Works with
# Debian bookworm's python3-selenium 4.8.3 and trixie's 4.24.4: only APIs present in both
# are used (webdriver.Chrome(service=, options=), Service(path), ChromeOptions with
# binary_location, add_argument, add_experimental_option and set_capability).
#
# Chromium is started so that it makes no connection to the outside: background services
# are switched off where a flag exists, and every host but LOCAL_HOSTS (127.0.0.1,
# localhost, ::1) fails to resolve without a DNS query being sent.

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSER_INSTALL_HINT = ("Install Debian's browser packages (as root): "
                        "`apt-get install chromium chromium-driver python3-selenium` "
                        "(`make deps` does this), and run the tests with /usr/bin/python3.")

# The only hosts the browser can reach: tests serve on 127.0.0.1 (or localhost, ::1).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# Every browser gets these, plus --user-data-dir, --window-size and --lang.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",                       # we run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",    # no variations, no safe-browsing list updates
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",            # /dev/shm in containers is small
    # Even with the flags above, Chromium 156 still looks up and tries update.googleapis.com,
    # accounts.google.com, clients2.google.com (network time), the default search engine
    # (start.duckduckgo.com) and more (seen in --log-net-log). These quieten some of them,
    # and the resolver rule makes every other host fail at once with ERR_NAME_NOT_RESOLVED,
    # without a DNS query (the rule applies to IP literals too, hence the exclusions).
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,"
    "AutofillServerCommunication,MediaRouter",
    "--host-resolver-rules=MAP * ~NOTFOUND , " + " , ".join("EXCLUDE " + host for host in LOCAL_HOSTS),
    "--no-proxy-server",                  # never hand a request to a proxy from the environment
)
PAGE_LOAD_TIMEOUT = 30  # seconds: driver.get() fails after this
SCRIPT_TIMEOUT = 30     # seconds: execute_async_script() fails after this


class BrowserUnavailable(RuntimeError):
    """Chromium, chromedriver or selenium is missing or does not start."""


def check_browser_installed():
    """Raise BrowserUnavailable (with the install command) unless Chromium, chromedriver
    and selenium are there."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the Python module selenium (python3-selenium)")
    if missing:
        raise BrowserUnavailable("Cannot start a browser: missing %s. %s"
                                 % (", ".join(missing), BROWSER_INSTALL_HINT))


def start_browser(language="de", window=(1280, 800), ignore_certificate_errors=False,
                  arguments=()):
    """A new headless Chromium (selenium WebDriver) with an empty temporary profile.

    `language` goes to --lang and to the intl.accept_languages pref (Accept-Language and
    navigator.languages). `window` is the size of the page's viewport in CSS pixels
    (window.innerWidth/innerHeight): headless=new keeps room for a browser UI it does not
    draw (1280x800 gives a 1280x657 viewport), so the window is grown to make up for it.
    With `ignore_certificate_errors` self-signed HTTPS and WSS are accepted (the
    desktops' per-start certificates). `arguments` are more Chromium flags. The browser
    console is recorded (goog:loggingPrefs). driver.quit() also removes the temporary
    profile. Raises BrowserUnavailable with the install command when a piece is missing
    or Chromium does not start.
    """
    check_browser_installed()
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="iservdesk-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--user-data-dir=" + profile)
    options.add_argument("--window-size=%d,%d" % tuple(window))
    options.add_argument("--lang=" + language)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if ignore_certificate_errors:
        # The flag covers every request of the browser (WebSockets too); the capability
        # tells chromedriver not to stop navigations at the interstitial.
        options.add_argument("--ignore-certificate-errors")
        options.set_capability("acceptInsecureCerts", True)
    for flag in arguments:
        options.add_argument(flag)

    try:
        driver = _chrome_class()(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as error:
        shutil.rmtree(profile, ignore_errors=True)
        raise BrowserUnavailable("Chromium did not start through chromedriver: %s\n%s"
                                 % (error.msg or error, BROWSER_INSTALL_HINT)) from error
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    driver.profile_dir = profile
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        driver.set_script_timeout(SCRIPT_TIMEOUT)
        driver.implicitly_wait(0)  # waits are explicit (tests/browser.py's wait_until)
        driver.get("about:blank")
        _fit_viewport(driver, *window)
    except BaseException:
        driver.quit()
        raise
    return driver


def _fit_viewport(driver, width, height):
    for _ in range(3):
        inner_width, inner_height, outer_width, outer_height = driver.execute_script(
            "return [innerWidth, innerHeight, outerWidth, outerHeight];")
        if (inner_width, inner_height) == (width, height):
            return
        driver.set_window_size(width + outer_width - inner_width,
                               height + outer_height - inner_height)
    raise BrowserUnavailable("Chromium's viewport is %dx%d, not the %dx%d asked for"
                             % (inner_width, inner_height, width, height))


_CHROME_CLASS = None


def _chrome_class():
    """webdriver.Chrome whose quit() also removes the temporary profile."""
    global _CHROME_CLASS
    if _CHROME_CLASS is None:
        from selenium import webdriver

        class Chrome(webdriver.Chrome):
            profile_dir = None

            def quit(self):
                try:
                    super().quit()
                finally:
                    if self.profile_dir:
                        shutil.rmtree(self.profile_dir, ignore_errors=True)
                        self.profile_dir = None

        _CHROME_CLASS = Chrome
    return _CHROME_CLASS


# -- the shipped nginx site --

SITE = os.path.join(ROOT, "nginx", "iservdesk.conf")
NGINX = "/usr/sbin/nginx"


class NginxUnavailable(RuntimeError):
    """nginx or openssl is missing, or this is not root (the site runs nginx as root)."""


def nginx_binary():
    """NGINX, or NginxUnavailable saying what to install or how to run."""
    if not os.path.exists(NGINX) or shutil.which("openssl") is None:
        raise NginxUnavailable("nginx and openssl are needed: `make deps` (apt-get install nginx openssl).")
    if os.geteuid() != 0:
        raise NginxUnavailable("nginx tests run nginx as root (as `make test` does): run them as root.")
    return NGINX


class Site:
    """nginx/iservdesk.conf rendered into `folder`, with a main nginx.conf that includes it.

    Rendering changes only what an admin edits (server name, certificate paths, the
    portal's address) plus what a test must (free ports on 127.0.0.1 instead of 80/443,
    the ACME webroot); each substitution must hit, so the shipped file cannot drift from
    its tests. nginx runs as root with `folder` as its prefix; the certificate is
    self_signed() for 127.0.0.1 (`cert`, which clients may trust).
    """

    def __init__(self, folder, upstream="127.0.0.1:8080", http_port=None, https_port=None, text=None,
                 host="desk.school.example",
                 certificate=("/etc/letsencrypt/live/desk.school.example/fullchain.pem",
                              "/etc/letsencrypt/live/desk.school.example/privkey.pem")):
        self.folder = folder
        self.http_port = http_port or free_port()
        self.https_port = https_port or free_port()
        self.cert, self.key = self_signed(folder)
        self.webroot = os.path.join(folder, "webroot")
        os.makedirs(os.path.join(self.webroot, ".well-known", "acme-challenge"))
        with open(SITE) as stream:
            text = text if text is not None else stream.read()
        for old, new, count in (
                (certificate[0], self.cert, 1),
                (certificate[1], self.key, 1),
                ("server_name %s;" % host, "server_name 127.0.0.1;", 2),
                ("server 127.0.0.1:8080;", "server %s;" % upstream, 1),
                ("root /var/www/letsencrypt;", "root %s;" % self.webroot, 1),
                ("    listen 80;\n", "    listen 127.0.0.1:%d;\n" % self.http_port, 1),
                ("    listen 443 ssl http2;\n", "    listen 127.0.0.1:%d ssl http2;\n" % self.https_port, 1),
                ("    listen [::]:80;\n", "", 1),  # the test machine may have no IPv6
                ("    listen [::]:443 ssl http2;\n", "", 1)):
            assert text.count(old) == count, \
                "nginx/iservdesk.conf no longer contains %r %d times" % (old, count)
            text = text.replace(old, new)
        self.site = os.path.join(folder, "site.conf")
        with open(self.site, "w") as stream:
            stream.write(text)
        self.conf = os.path.join(folder, "nginx.conf")
        self.error_log = os.path.join(folder, "error.log")
        with open(self.conf, "w") as stream:
            stream.write("user root;\npid %s/nginx.pid;\nerror_log %s info;\nevents {}\n"
                         "http {\n    access_log %s/access.log;\n    include /etc/nginx/mime.types;\n"
                         "    include %s;\n}\n" % (folder, self.error_log, folder, self.site))
        self.process = None

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.https_port

    def command(self, *args):
        return [nginx_binary(), "-p", self.folder, "-c", self.conf, "-e", self.error_log] + list(args)

    def test(self):
        """`nginx -t` of the rendered site: the CompletedProcess (text)."""
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=60)

    def start(self):
        """Run nginx in the foreground and wait until it accepts TLS connections."""
        self.process = subprocess.Popen(self.command("-g", "daemon off;"), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

        def listening():
            if self.process.poll() is not None:
                raise AssertionError("nginx exited with %s:\n%s" % (self.process.returncode, self.log()))
            with socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                return True
        wait_for(listening, 30, "nginx on port %d" % self.https_port)

    def stop(self):
        if self.process is not None:
            stop_process(self.process, stop_signal=signal.SIGQUIT)  # graceful: finish requests, then exit

    def log(self):
        try:
            with open(self.error_log, errors="replace") as stream:
                return stream.read()
        except FileNotFoundError:
            return "(no error log)"
