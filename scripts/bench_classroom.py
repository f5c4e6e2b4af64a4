#!/usr/bin/python3
"""make bench: a class page with N running demo desktops, refreshed every 5 s.

A portal and the development identity provider on 127.0.0.1, with a users file of one
teacher (ROLE_TEACHER, groups teachers and klasse-bench) and N students in klasse-bench.
Each student signs in and starts a "demo" desktop through the API; once all run, a plain
HTTP client does what the class page's JavaScript (web/static/class.js) does every 5 s:
GET /api/class/klasse-bench and then every thumbnail (6 at a time, like a browser's
connections per host). Measured:

- the portal's CPU seconds per refresh cycle and its share of one core over the run
  (utime + stime of the portal process from /proc/<pid>/stat; goal <= 5 %),
- bytes per thumbnail (median) and the cycle's wall time,
- baseline, interleaved in the same run 2.5 s after each portal cycle: the same
  screenshots taken straight from the desktops (https GET /api/get_screenshot on each
  container's published port with its VNC_PW, read with `docker inspect`: on the
  operator's machine, for a benchmark only; the portal never hands secrets out), and the
  portal's CPU in that window (what it spends with no class page asking),
- the time from a screen change to the changed thumbnail, p50/p95: an xlogo with a new
  colour appears on one student's screen (`docker exec ... xlogo`), and the portal's
  thumbnail (and, as baseline, a direct screenshot) is polled every 0.25 s until its
  bytes differ. The portal keeps a thumbnail 4 s (THUMBNAIL_FRESH), so up to ~4 s plus a
  screenshot is expected; changes come at random moments against that cache.

- watching: the first frame after a click, p50/p95 over --watches tries in headless
  Chromium: the teacher clicks "Watch" on the class page, a tab opens with the portal's
  view-only viewer, until its canvas shows the desktop (more than two colours); baseline:
  the owner clicks "Open" on the dashboard and their own client (through the portal, in
  the owner's tab's frame) shows the same desktop, measured the same way.

Prints a table and writes it to bench-results/classroom.txt. Every container, volume and
network of the run has a CONTAINER_PREFIX unique to the run and is removed at the end,
also on failure.
"""

import argparse
import concurrent.futures
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import requests
import urllib3

from bench import machine_facts, write_report
from devtools import ROOT, Client, demo_image_tag, free_port, stop_process, wait_for, write_config

GROUP = "klasse-bench"
TEACHER = "lehrkraft"
THUMBNAIL = (320, 180)  # what web/classroom.py asks the desktops for
PARALLEL = 6  # a browser's connections per host
REFRESH = 5.0  # seconds, as class.js
GOAL_SHARE = 0.05  # of one core
COLOURS = ["red", "blue", "green", "yellow", "magenta", "cyan", "orange", "purple", "white", "brown",
           "pink", "navy"]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of process `pid`, in seconds (clock ticks / SC_CLK_TCK)."""
    with open("/proc/%d/stat" % pid) as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def write_users(path, students):
    def person(username, name, groups, role):
        return {"uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, "iservdesk-bench/" + username)),
                "username": username, "password": username + "-pw", "name": name,
                "email": username + "@bench.example", "groups": groups,
                "roles": [{"id": role, "displayName": role}]}
    users = [person(TEACHER, "Lehr Kraft", {"3": {"act": "teachers", "name": "Lehrer"},
                                            "90": {"act": GROUP, "name": "Klasse Bench"}}, "ROLE_TEACHER")]
    users += [person("schueler%02d" % number, "Schueler %02d" % number,
                     {"90": {"act": GROUP, "name": "Klasse Bench"}}, "ROLE_STUDENT")
              for number in range(1, students + 1)]
    with open(path, "w") as stream:
        json.dump({"users": users}, stream)
    return [user["username"] for user in users[1:]]


class Run:
    """The identity provider, the portal and what they made; stop() removes all of it."""

    def __init__(self, folder, students, **settings):
        self.folder = folder
        self.prefix = "iservdesk-bc%d-%s" % (os.getpid() % 100000, uuid.uuid4().hex[:6])
        self.processes = []
        self.log = os.path.join(folder, "portal.log")
        users_file = os.path.join(folder, "users.json")
        self.students = write_users(users_file, students)
        portal_port, idp_port = free_port(), free_port()
        self.url = "http://127.0.0.1:%d" % portal_port
        self.processes.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "scripts", "dev-idp.py"), "--port", str(idp_port),
             "--users", users_file, "--issuer-path", "/iserv",
             "--client", "bench:bench-secret:client_secret_basic:%s/authorize" % self.url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        settings = {"CLASS_GROUPS": "klasse-*", "MAX_DESKTOPS": str(students + 5), "DESKTOP_READY_TIMEOUT": "300",
                    "LOG_LEVEL": "WARNING", **settings}
        config = write_config(os.path.join(folder, "bench.env"), LISTEN="127.0.0.1:%d" % portal_port,
                              PUBLIC_URL=self.url, OAUTH_CLIENT_ID="bench", OAUTH_CLIENT_SECRET="bench-secret",
                              CONTAINER_PREFIX=self.prefix, OAUTH_ISSUER="http://127.0.0.1:%d/iserv" % idp_port,
                              **settings)
        with open(self.log, "w") as log:
            self.portal = subprocess.Popen([sys.executable, "-m", "iservdesk", "--config", config, "serve"],
                                           cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(self.portal)
        wait_for(lambda: requests.get(self.url + "/healthz", timeout=2).status_code == 200, 30, "the portal")
        wait_for(lambda: requests.get("http://127.0.0.1:%d/iserv/.well-known/openid-configuration" % idp_port,
                                      timeout=2).status_code == 200, 30, "the identity provider")

    def stop(self):
        for process in reversed(self.processes):
            stop_process(process, 20)
        prefix = self.prefix
        names = subprocess.run(["docker", "ps", "-aq", "--filter", "name=^/" + prefix],
                               capture_output=True, text=True).stdout.split()
        if names:
            subprocess.run(["docker", "rm", "-f", "-v"] + names, stdout=subprocess.DEVNULL)
        volumes = [name for name in subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True,
                                                   text=True).stdout.split() if name.startswith(prefix)]
        if volumes:
            subprocess.run(["docker", "volume", "rm"] + volumes, stdout=subprocess.DEVNULL)
        networks = [name for name in subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"],
                                                    capture_output=True, text=True).stdout.split()
                    if name.startswith(prefix)]
        if networks:
            subprocess.run(["docker", "network", "rm"] + networks, stdout=subprocess.DEVNULL)

    def log_tail(self, lines=30):
        try:
            with open(self.log) as stream:
                return "".join(stream.readlines()[-lines:])
        except OSError:
            return ""


def desktops_of(teacher):
    """{desktop name: status} of the class as the class page sees it."""
    body = teacher.get("/api/class/" + GROUP, timeout=30).json()
    return {desktop["name"]: desktop["status"] for member in body["members"] for desktop in member["desktops"]}


def direct_targets(prefix, names):
    """{desktop name: (host port, VNC_PW)} from `docker inspect` of the containers
    (<prefix>-<desktop name>; benchmark only)."""
    data = json.loads(subprocess.run(["docker", "inspect"] + ["%s-%s" % (prefix, name) for name in names],
                                     check=True, capture_output=True, text=True).stdout)
    targets = {}
    for container in data:
        env = dict(item.split("=", 1) for item in container["Config"]["Env"] if "=" in item)
        port = int(container["NetworkSettings"]["Ports"]["6901/tcp"][0]["HostPort"])
        targets[container["Name"].lstrip("/")[len(prefix) + 1:]] = (port, env["VNC_PW"])
    return targets


def direct_screenshot(target):
    """A screenshot straight from the desktop, a new TLS connection each time (as the portal)."""
    port, secret = target
    answer = requests.get("https://127.0.0.1:%d/api/get_screenshot" % port,
                          params={"width": THUMBNAIL[0], "height": THUMBNAIL[1]},
                          auth=("kasm_user", secret), verify=False, timeout=30,
                          headers={"Connection": "close"})
    answer.raise_for_status()
    return answer.content


class Page:
    """The class page's refreshes, with a session per connection like a browser's."""

    def __init__(self, teacher):
        self.teacher = teacher
        self.local = threading.local()

    def session(self):
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.trust_env = False
            self.local.session.cookies.update(self.teacher.browser.cookies)
        return self.local.session

    def thumbnail(self, name):
        answer = self.session().get("%s/api/class/%s/thumbnail/%s" % (self.teacher.url, GROUP, name),
                                    params={"t": int(time.time() * 1000)}, timeout=30)
        if answer.status_code != 200 or not answer.content.startswith(b"\xff\xd8"):
            raise AssertionError("thumbnail %s: %d %r" % (name, answer.status_code, answer.content[:200]))
        return answer.content


def cycle(pool, pid, fetch, items):
    """One refresh: `fetch` for each of `items`, PARALLEL at a time. Returns (wall s,
    portal CPU s, [bytes per answer])."""
    cpu, started = cpu_seconds(pid), time.monotonic()
    sizes = [len(body) for body in pool.map(fetch, items)]
    return time.monotonic() - started, cpu_seconds(pid) - cpu, sizes


def change_latencies(page, targets, container, name, changes, deadline):
    """[(portal s, direct s)] from a screen change to the changed picture, `changes` times."""
    target = targets[name]
    results, previous = [], None
    try:
        for index in range(changes):
            if time.monotonic() > deadline:
                break
            # A settled start: the portal's picture shows the screen as it is now.
            reference = wait_for(lambda: (lambda picture: picture if picture == direct_screenshot(target)
                                          else None)(page.thumbnail(name)), 15, "a settled thumbnail", 0.25)
            time.sleep(random.uniform(0, 4))  # at any moment of the portal's 4 s cache
            colour = COLOURS[index % len(COLOURS)]
            started = time.monotonic()
            pid = subprocess.run(
                ["docker", "exec", container, "sh", "-c",
                 "DISPLAY=:1 xlogo -geometry 300x300+900+400 -bg %s </dev/null >/dev/null 2>&1 & echo $!"
                 % colour], check=True, capture_output=True, text=True, timeout=30).stdout.strip()
            portal = direct = None
            while (portal is None or direct is None) and time.monotonic() - started < 20:
                tick = time.monotonic()
                if portal is None and page.thumbnail(name) != reference:
                    portal = time.monotonic() - started
                if direct is None and direct_screenshot(target) != reference:
                    direct = time.monotonic() - started
                time.sleep(max(0.0, 0.25 - (time.monotonic() - tick)))
            if portal is None or direct is None:
                raise AssertionError("the thumbnail did not change within 20 s of change %d" % (index + 1))
            results.append((portal, direct))
            # The new window covers the old one exactly: killing the old one changes nothing.
            if previous:
                subprocess.run(["docker", "exec", container, "kill", previous], capture_output=True, timeout=30)
            previous = pid
    finally:
        subprocess.run(["docker", "exec", container, "sh", "-c", "kill $(pidof xlogo) 2>/dev/null"],
                       capture_output=True, timeout=30)
    return results


# True once the page's desktop picture is drawn: a canvas of at least 64x64 pixels whose
# samples have three colours or more (the portal's viewer draws in the top document, the
# owner's client in the frame of the owner's tab).
FIRST_FRAME_JS = """
const frame = document.getElementById('desktop-frame');
const doc = frame && frame.contentDocument ? frame.contentDocument : document;
const canvas = doc ? doc.querySelector('canvas') : null;
if (!canvas || canvas.width < 64 || canvas.height < 64) return false;
try {
    const w = canvas.width, h = canvas.height, colours = new Set();
    const data = canvas.getContext('2d').getImageData(0, 0, w, h).data;
    for (let y = 0; y < h; y += Math.ceil(h / 20))
        for (let x = 0; x < w; x += Math.ceil(w / 20)) {
            const i = (y * w + x) * 4;
            colours.add(data[i + 3] === 0 ? 0 : (data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
        }
    return colours.size >= 3;
} catch (error) { return false; }
"""


def signed_in_browser(url, client):
    """A headless Chromium carrying `client`'s session cookie (as if they had signed in)."""
    from devtools import start_browser
    driver = start_browser(language="de")
    driver.get(url + "/healthz")
    driver.add_cookie({"name": "iservdesk_session", "value": client.session_id, "path": "/"})
    return driver


def first_frames(driver, page, link_selector, tries):
    """Seconds from a click on the link (`link_selector` on `page`, opening a new tab) to
    the first drawn frame in that tab, `tries` times; the tab is closed after each."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    driver.get(page)
    home = driver.current_window_handle
    times = []
    for _ in range(tries):
        link = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, link_selector), 30, link_selector)[0]
        started = time.monotonic()
        try:
            link.click()
        except StaleElementReferenceException:  # the page redrew it in between: again
            continue
        wait_for(lambda: len(driver.window_handles) == 2, 10, "the new tab")
        driver.switch_to.window([handle for handle in driver.window_handles if handle != home][0])
        wait_for(lambda: driver.execute_script(FIRST_FRAME_JS), 30, "the first frame", interval=0.02)
        times.append(time.monotonic() - started)
        driver.close()
        driver.switch_to.window(home)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the class page refreshes")
    parser.add_argument("--changes", type=int, default=10, help="screen changes for the latency")
    parser.add_argument("--watches", type=int, default=20, help="clicks on Watch (and on Open) for the first frame")
    parser.add_argument("--start-timeout", type=float, default=0,
                        help="how long all desktops may take to run (default 120 s + 10 s per student)")
    args = parser.parse_args()
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # the desktops' own certificates
    start_timeout = args.start_timeout or 120 + 10 * args.students
    lines = ["classroom: a class page of %d running demo desktops (%s), refreshed every %g s for %g s"
             % (args.students, demo_image_tag(), REFRESH, args.seconds), machine_facts()]
    with tempfile.TemporaryDirectory() as folder:
        run = None
        try:
            run = Run(folder, args.students)
            started = time.monotonic()
            students = []
            for username in run.students:
                student = Client(run.url, username, password=username + "-pw")
                students.append(student)
                answer = student.post("/api/container/start", params={"desktop_type": "demo"})
                if answer.status_code not in (200, 202):
                    raise AssertionError("%s: start answered %d %s" % (username, answer.status_code, answer.text))
            teacher = Client(run.url, TEACHER, password=TEACHER + "-pw")

            def all_running():
                statuses = desktops_of(teacher)
                failed = [name for name, status in statuses.items() if status in ("failed", "error")]
                if failed:
                    raise AssertionError("desktops failed: %s" % failed)
                return len(statuses) == args.students and all(s == "running" for s in statuses.values())
            wait_for(all_running, start_timeout, "all %d desktops to run" % args.students, interval=1)
            start_seconds = time.monotonic() - started
            names = sorted(desktops_of(teacher))
            targets = direct_targets(run.prefix, names)
            page = Page(teacher)
            class_page = lambda _: teacher.get("/api/class/" + GROUP, timeout=30).content  # noqa: E731

            def portal_cycle(pool):
                wall, cpu, sizes = cycle(pool, run.portal.pid, lambda item: item[0](item[1]),
                                         [(class_page, None)] + [(page.thumbnail, name) for name in names])
                return wall, cpu, sizes[1:]

            with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
                # Warm-up: every desktop's screenshot path works, pictures are equal.
                portal_cycle(pool)
                for _ in range(2):  # the first screenshots are slower (the desktop's first xwd)
                    list(pool.map(lambda name: direct_screenshot(targets[name]), names))
                time.sleep(REFRESH)  # the warm-up's pictures are out of the portal's cache
                portal_runs, direct_runs = [], []
                begin, cpu_begin = time.monotonic(), cpu_seconds(run.portal.pid)
                count = max(1, int(args.seconds // REFRESH))
                for index in range(count):
                    due = begin + index * REFRESH
                    time.sleep(max(0.0, due - time.monotonic()))
                    portal_runs.append(portal_cycle(pool))
                    time.sleep(max(0.0, due + REFRESH / 2 - time.monotonic()))
                    direct_runs.append(cycle(pool, run.portal.pid,
                                             lambda name: direct_screenshot(targets[name]), names))
                time.sleep(max(0.0, begin + count * REFRESH - time.monotonic()))
                span, cpu_span = time.monotonic() - begin, cpu_seconds(run.portal.pid) - cpu_begin
            latencies = change_latencies(page, targets, "%s-%s" % (run.prefix, names[0]), names[0], args.changes,
                                         time.monotonic() + 300)
            watched = opened = []
            if args.watches:
                owner = students[run.students.index(names[0].rsplit("-", 1)[0])]
                drivers = []
                try:
                    drivers.append(signed_in_browser(run.url, teacher))
                    watched = first_frames(drivers[-1], "%s/class/%s" % (run.url, GROUP),
                                           "#member-%s a.watch" % owner.username, args.watches)
                    drivers.append(signed_in_browser(run.url, owner))
                    opened = first_frames(drivers[-1], run.url + "/", "#desktop-demo a.open", args.watches)
                finally:
                    for driver in drivers:
                        driver.quit()
        except BaseException:
            if run is not None:
                print("bench_classroom: failed; the portal's log ends:\n" + run.log_tail(), file=sys.stderr)
            raise
        finally:
            if run is not None:
                run.stop()

    share = cpu_span / span
    portal_sizes = [size for _, _, sizes in portal_runs for size in sizes]
    direct_sizes = [size for _, _, sizes in direct_runs for size in sizes]
    med = statistics.median
    lines += ["all %d desktops running %.0f s after the first start; %d refresh cycles (class JSON + %d "
              "thumbnails, %d at a time)" % (args.students, start_seconds, len(portal_runs), len(names), PARALLEL),
              "",
              "%-44s %12s %12s" % ("per refresh cycle (medians)", "portal", "direct"),
              "%-44s %12.3f %12.3f" % ("wall s", med(w for w, _, _ in portal_runs), med(w for w, _, _ in direct_runs)),
              "%-44s %12.3f %12.3f" % ("portal CPU s (direct: background, no page)",
                                       med(c for _, c, _ in portal_runs), med(c for _, c, _ in direct_runs)),
              "%-44s %12.1f" % ("portal CPU ms per thumbnail", 1000 * med(c for _, c, _ in portal_runs) / len(names)),
              "%-44s %12.0f %12.0f" % ("bytes per thumbnail (median)", med(portal_sizes), med(direct_sizes)),
              "%-44s %12d %12d" % ("bytes per cycle (median)", med(sum(s) for _, _, s in portal_runs),
                                   med(sum(s) for _, _, s in direct_runs)),
              "portal CPU over the run: %.2f s in %.1f s = %.1f %% of one core (goal <= %.0f %%: %s)"
              % (cpu_span, span, 100 * share, 100 * GOAL_SHARE, "met" if share <= GOAL_SHARE else "MISSED"),
              ""]
    if latencies:
        portal_times, direct_times = [p for p, _ in latencies], [d for _, d in latencies]
        lines += ["screen change -> changed picture, %d changes (xlogo on %s's screen, polled every 0.25 s):"
                  % (len(latencies), names[0]),
                  "%-44s %12s %12s" % ("", "portal", "direct"),
                  "%-44s %12.2f %12.2f" % ("p50 s", percentile(portal_times, 0.5), percentile(direct_times, 0.5)),
                  "%-44s %12.2f %12.2f" % ("p95 s", percentile(portal_times, 0.95), percentile(direct_times, 0.95)),
                  "(the portal keeps a thumbnail 4 s, so up to ~4 s plus a screenshot is by design)"]
    if watched and opened:
        lines += ["", "click -> first frame drawn in Chromium, %d tries each (%s's desktop):" % (len(watched), names[0]),
                  "%-44s %12s %12s %8s" % ("", "Watch", "Open", "ratio"),
                  "%-44s %12.2f %12.2f %8.2f" % ("p50 s", percentile(watched, 0.5), percentile(opened, 0.5),
                                                 percentile(watched, 0.5) / percentile(opened, 0.5)),
                  "%-44s %12.2f %12.2f %8.2f" % ("p95 s", percentile(watched, 0.95), percentile(opened, 0.95),
                                                 percentile(watched, 0.95) / percentile(opened, 0.95)),
                  "(Watch: the teacher's view-only viewer from the class page; Open: the owner's own client "
                  "from the dashboard, both through the portal)"]
    lines.append("load average %.2f at the end" % os.getloadavg()[0])
    write_report("classroom.txt", lines)


if __name__ == "__main__":
    main()
