"""Real-browser test helpers: waiting on pages, reading noVNC's state, screenshots, and
signing in through the provider's form as a person would. The browser itself is started
by scripts/devtools.py's start_browser() (the `chromium` fixture in conftest.py does that):

    driver = start_browser(ignore_certificate_errors=True)
    try:
        state = load(driver, url, lambda d: canvas_not_blank(novnc_state(d)), 30,
                     "noVNC to show the desktop", describe=novnc_state)
        wait_until(driver, "document.documentElement.classList.contains('noVNC_connected')",
                   10, "noVNC to stay connected")
        save_screenshot(driver, "connected")
    finally:
        driver.quit()  # also removes the browser's temporary profile

load() is driver.get() plus wait_until() that loads again when Docker's network churn
made Chromium abort the page's requests (ERR_NETWORK_CHANGED); see its docstring.
browser_log() is used only if selenium offers get_log (bookworm's 4.8.3 and trixie's
4.24.4 differ there).
"""

import datetime
import os
import time

from devtools import PASSWORDS, ROOT
from flows import wait_status

# One folder per test run: the timestamp is taken once, when pytest imports this module.
_RUN_STAMP = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def screenshot_dir():
    """This test run's screenshot folder (created): $ISERVDESK_SCREENSHOTS if set, else
    test-screenshots/<YYYYmmdd-HHMMSS> under the repository root, the same for a whole
    pytest session."""
    folder = os.environ.get("ISERVDESK_SCREENSHOTS") or os.path.join(
        ROOT, "test-screenshots", _RUN_STAMP)
    os.makedirs(folder, exist_ok=True)
    return folder


def save_screenshot(driver, name):
    """Write the viewport as <screenshot_dir()>/<name>.png and return the path."""
    path = os.path.join(screenshot_dir(), name + ".png")
    if not driver.save_screenshot(path):
        raise AssertionError("could not write the screenshot %s" % path)
    return path


def browser_log(driver):
    """Every browser console entry of this driver so far, as text lines ("LEVEL message").
    chromedriver hands each entry out once, so they are kept on the driver. [] when the
    driver cannot give them (no goog:loggingPrefs, or a selenium without get_log)."""
    kept = driver.__dict__.setdefault("console_log", [])
    get_log = getattr(driver, "get_log", None)
    if get_log is not None:
        try:
            entries = get_log("browser")
        except Exception:  # log type not supported by this driver/selenium: skip the log
            entries = []
        kept.extend("%s %s" % (entry.get("level", "?"), entry.get("message", entry))
                    for entry in entries)
    return list(kept)


def wait_until(driver, condition, timeout, what, interval=0.1, describe=None):
    """Poll `condition` until it gives a truthy value, and return that value.

    `condition` is a JavaScript expression (a string, evaluated in the page as
    `return (<expression>);`) or a callable taking the driver. It is polled every
    `interval` seconds until `timeout` seconds have passed; then an AssertionError names
    `what`, the last result or error, the current URL and the browser console log.
    Exceptions while polling (page still loading, element missing) count as "not yet";
    an AssertionError from a callable ends the wait at once. `describe(driver)`, if
    given, adds the page's state to the timeout message (e.g. describe=novnc_state).
    """
    deadline = time.monotonic() + timeout
    last = last_error = None
    while True:
        try:
            if callable(condition):
                last = condition(driver)
            else:
                last = driver.execute_script("return (%s);" % condition)
            if last:
                return last
        except AssertionError:
            raise
        except Exception as error:
            last_error = error
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    try:
        url = driver.current_url
    except Exception as error:
        url = "(unknown: %s)" % error
    state = ""
    if describe is not None:
        try:
            state = "\n  page state: %r" % (describe(driver),)
        except Exception as error:
            state = "\n  page state: (unknown: %s)" % _short(error)
    log = browser_log(driver)
    raise AssertionError(
        "timed out after %.1fs waiting for %s\n  last result: %r\n  last error: %s\n  URL: %s%s\n"
        "  browser console (%d entries):\n%s"
        % (timeout, what, last, _short(last_error), url, state, len(log),
           "\n".join("    " + line for line in log[-60:]) or "    (empty)"))


NETWORK_CHANGED = "ERR_NETWORK_CHANGED"


# The text of Chromium's error page (chrome-error://chromewebdata/) after a failed
# navigation, e.g. "... A network change was detected. ERR_NETWORK_CHANGED"; else null.
ERROR_PAGE_JS = ("return location.protocol === 'chrome-error:' ? "
                 "(document.body ? document.body.innerText : '') : null;")


class NetworkChanged(AssertionError):
    """Chromium aborted the page's requests with ERR_NETWORK_CHANGED."""


def load(driver, url, ready, timeout, what, attempts=5, describe=None):
    """driver.get(url), then wait_until(driver, ready, ...) and return its value.

    Chromium on Linux aborts every request in flight with net::ERR_NETWORK_CHANGED (even
    to 127.0.0.1) when a network interface or address comes or goes on the host, and
    Docker adds and removes one for each container it starts or stops, e.g. for another
    test running at the same time. A page that lost a script that way never becomes
    ready, so when the console, driver.get or Chromium's error page reports
    ERR_NETWORK_CHANGED the page is loaded again, at most `attempts` times in all, within
    one deadline of `timeout` seconds. Nothing else is retried: `ready` has to become
    true on a normally loaded page, and any other error page fails at once. An
    established WebSocket is not affected. Each reload is counted in
    driver.network_changed_reloads.
    """
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout
    driver.__dict__.setdefault("network_changed_reloads", 0)
    for attempt in range(1, attempts + 1):
        seen = len(browser_log(driver))
        try:
            driver.get(url)
        except WebDriverException as error:
            if NETWORK_CHANGED not in str(error) or attempt == attempts:
                raise
            driver.network_changed_reloads += 1
            continue

        def condition(driver):
            if any(NETWORK_CHANGED in line for line in browser_log(driver)[seen:]):
                raise NetworkChanged("the page's requests failed with %s" % NETWORK_CHANGED)
            error_page = driver.execute_script(ERROR_PAGE_JS)
            if error_page is not None:  # Chromium's own page for a failed navigation
                if NETWORK_CHANGED in error_page:
                    raise NetworkChanged("the page failed with %s" % NETWORK_CHANGED)
                raise AssertionError("%s: loading %s failed: %s"
                                     % (what, url, " ".join(error_page.split())))
            return ready(driver) if callable(ready) else driver.execute_script(
                "return (%s);" % ready)

        try:
            return wait_until(driver, condition, max(0.0, deadline - time.monotonic()), what,
                              describe=describe)
        except NetworkChanged:
            if attempt == attempts:
                raise AssertionError("%s: the page was loaded %d times and each time Chromium "
                                     "aborted requests with %s (Docker's network churn)"
                                     % (what, attempts, NETWORK_CHANGED)) from None
            driver.network_changed_reloads += 1


def _short(error):
    if error is None:
        return "none"
    text = getattr(error, "msg", None) or str(error)
    return "%s: %s" % (type(error).__name__, text.strip().splitlines()[0] if text.strip() else "")


# Reads the state of noVNC 1.3's app (vnc.html, app/ui.js) without touching it:
# - ui.js's updateVisualState('connected') puts the class noVNC_connected on <html> once
#   the RFB handshake is done (the RFB object's "connect" event) and removes it on every
#   other state (connecting, disconnecting, reconnecting, disconnected); that class is
#   the reliable "live connection" signal;
# - #noVNC_status holds the last status message (e.g. "Connected (encrypted) to ...", or
#   "Failed to connect to server"; translated by the page's language) and has the class
#   noVNC_open while shown (normal messages hide after 1.5 s, errors stay) and
#   noVNC_status_error/_warn/_normal for the kind;
# - the RFB object draws into a <canvas> inside #noVNC_container. It is same-origin, so
#   getImageData works; a grid of up to ~40000 pixels is sampled.
NOVNC_STATE_JS = r"""
// The owner's tab frames the client under the portal's bar (web/desktop.py): look inside.
const frame = document.getElementById('desktop-frame');
const document_ = frame && frame.contentDocument ? frame.contentDocument : document;
const root = document_.documentElement;
const status = document_.getElementById('noVNC_status');
const state = {
    url: document_.location.href,
    top_url: location.href,
    framed: !!frame,
    title: document_.title,
    connected: root.classList.contains('noVNC_connected'),
    connecting: root.classList.contains('noVNC_connecting'),
    reconnecting: root.classList.contains('noVNC_reconnecting'),
    disconnecting: root.classList.contains('noVNC_disconnecting'),
    status_text: status ? status.textContent : null,
    status_shown: status ? status.classList.contains('noVNC_open') : false,
    status_kind: !status ? null
        : status.classList.contains('noVNC_status_error') ? 'error'
        : status.classList.contains('noVNC_status_warn') ? 'warn'
        : status.classList.contains('noVNC_status_normal') ? 'normal' : null,
    credentials_asked: !!document_.querySelector('#noVNC_credentials_dlg.noVNC_open'),
    canvas: null,
};
const container = document_.getElementById('noVNC_container');
const canvas = (container && container.querySelector('canvas')) || document_.querySelector('canvas');
if (canvas) {
    const info = {width: canvas.width, height: canvas.height,
                  client_width: canvas.clientWidth, client_height: canvas.clientHeight,
                  sampled: 0, distinct_colours: 0, non_black: 0, error: null};
    state.canvas = info;
    try {
        const context = canvas.width && canvas.height ? canvas.getContext('2d') : null;
        if (context) {
            const w = canvas.width, h = canvas.height;
            const data = context.getImageData(0, 0, w, h).data;
            const step = Math.max(1, Math.ceil(Math.sqrt(w * h / 40000)));
            const colours = new Set();
            for (let y = 0; y < h; y += step) {
                for (let x = 0; x < w; x += step) {
                    const i = (y * w + x) * 4;
                    // A transparent pixel was never drawn: count it as black.
                    const rgb = data[i + 3] === 0 ? 0
                        : (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
                    colours.add(rgb);
                    if (rgb !== 0) info.non_black++;
                    info.sampled++;
                }
            }
            info.distinct_colours = colours.size;
        }
    } catch (e) {
        info.error = String(e);
    }
}
return state;
"""


def novnc_state(driver):
    """The noVNC page's state as a dict: connected (the noVNC_connected class on <html>),
    connecting/reconnecting/disconnecting, status_text/status_shown/status_kind of
    #noVNC_status, credentials_asked, title, url, and canvas (None before the RFB object
    made one) with width, height, client_width, client_height, sampled, distinct_colours,
    non_black and error (why the pixels could not be read, else None)."""
    return driver.execute_script(NOVNC_STATE_JS)


# A canvas counts as not blank when it is at least MIN_CANVAS_SIDE pixels each way and
# its sampled pixels have at least MIN_DISTINCT_COLOURS colours, at least
# MIN_NON_BLACK_FRACTION of them not black (nor transparent). noVNC's canvas before the
# first framebuffer update is one colour (transparent/black); a real desktop has a
# background, window borders, title bars, text: many colours and a good share of
# non-black pixels (the demo desktop, a black root window with a white xterm on it, gives
# 30-50 colours and about 50 % non-black samples at 1280x800).
MIN_CANVAS_SIDE = 64
MIN_DISTINCT_COLOURS = 3
MIN_NON_BLACK_FRACTION = 0.01


def canvas_not_blank(state):
    """True when novnc_state()'s canvas shows a picture (thresholds above)."""
    canvas = (state or {}).get("canvas")
    if not canvas or canvas.get("error") or not canvas.get("sampled"):
        return False
    return (canvas["width"] >= MIN_CANVAS_SIDE and canvas["height"] >= MIN_CANVAS_SIDE
            and canvas["distinct_colours"] >= MIN_DISTINCT_COLOURS
            and canvas["non_black"] >= MIN_NON_BLACK_FRACTION * canvas["sampled"])


# -- signed in through the browser --

def browser_sign_in(driver, portal_url, username):
    """Sign in through the provider's form, as a person would."""
    from selenium.webdriver.common.by import By
    driver.get(portal_url + "/login")
    wait_until(driver, lambda d: d.find_elements(By.ID, "username"), 20, "the login form")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[username])
    driver.find_element(By.CSS_SELECTOR, 'button[value="login"]').click()
    wait_until(driver, lambda d: d.current_url.startswith(portal_url + "/")
               and "/login" not in d.current_url, 20, "the way back to the portal")


class BrowserClient:
    """API calls made with the browser's own session (cookie + CSRF token), via requests."""

    def __init__(self, driver, portal_url):
        import requests
        self.url = portal_url
        self.session = requests.Session()
        self.session.cookies.set("iservdesk_session", driver.get_cookie("iservdesk_session")["value"])
        session = self.session.get(portal_url + "/session", timeout=30).json()
        self.csrf, self.username = session["csrf_token"], session["username"]

    def get(self, path, **kwargs):
        return self.session.get(self.url + path, timeout=30, **kwargs)

    def post(self, path, **kwargs):
        return self.session.post(self.url + path, headers={"X-CSRF-Token": self.csrf}, timeout=30, **kwargs)


def running_in_browser(driver, portal_url, username, slug):
    """Sign `username` in in `driver`, start their `slug` desktop with the browser's session
    and wait until it runs; returns that session's BrowserClient."""
    browser_sign_in(driver, portal_url, username)
    api = BrowserClient(driver, portal_url)
    api.post("/api/container/start", params={"desktop_type": slug})
    wait_status(api, slug, "running")
    return api


def connected_and_drawn(driver):
    """novnc_state() once noVNC is connected and its canvas shows a picture, else None."""
    state = novnc_state(driver)
    return state if state["connected"] and canvas_not_blank(state) else None
