#!/usr/bin/python3
"""make bench: the start of a lesson: a storm of starts through the start queue, and
prepared desktops against cold starts.

Storm: N students (default 30) click "Start" within the same second (one thread each,
POST /api/container/start), through a portal with START_CONCURRENCY=auto; measured: the
time until the last desktop answers (the class page's view), the CPU load average during
the storm and every failure. Baseline in the same run: the same N containers of the same
image and environment started by a plain script straight through the Docker API
(create + start, then waiting for port 6901 to answer, as the portal does) with a fixed
number at a time, for each of --concurrency (the best is the baseline; goal: the portal
within 1.2x of it). Both for two kinds of desktop: the demo image's full X desktop, and a
slower one that spends --boot-cpu seconds of CPU at start (DEMO_BOOT_CPU_SECONDS), as
Kasm images do.

Prepared: in headless Chromium, the student's click on "Öffnen" of a prepared (running)
desktop until its first frame is drawn, --tries times, against a cold start: a click on
"Starten" until the first frame (the "Öffnen" link is clicked as
soon as it appears); p50 and p95 of each (goal: prepared p50 <= 1 s). Cold means no
container: the desktop was removed before (its home stays), so the start creates one.

Prints a table and writes bench-results/lesson.txt. Every container, volume and network
of the run carries a prefix unique to the run and is removed at the end.
"""

import argparse
import concurrent.futures
import os
import sys
import tempfile
import threading
import time
import uuid

import docker

from bench import machine_facts, write_report
from bench_classroom import (FIRST_FRAME_JS, GROUP, TEACHER, Run, cpu_seconds, desktops_of, percentile,
                             signed_in_browser)
from devtools import CATALOG, DOCKER_URL, ROOT, SLOW_DESKTOP, Client, demo_image_tag, wait_for

sys.path.insert(0, ROOT)

from iservdesk.proxy import answers  # noqa: E402



class LoadSampler:
    """The 1-minute load average, sampled every second while running."""

    def __init__(self):
        self.samples, self.stopping = [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stopping.wait(1):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()


def portal_storm(run, students, slug, timeout):
    """All students start `slug` at once; (seconds until the last runs, failures, peak load,
    the portal's CPU seconds per start)."""
    clients = [Client(run.url, name, password=name + "-pw") for name in students]
    teacher = Client(run.url, TEACHER, password=TEACHER + "-pw")
    gate, failures = threading.Barrier(len(clients)), []

    def click(client):
        gate.wait()
        answer = client.post("/api/container/start", params={"desktop_type": slug})
        if answer.status_code not in (200, 202):
            failures.append("%s: %d %s" % (client.username, answer.status_code, answer.text[:100]))

    with LoadSampler() as load, concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
        started, cpu = time.monotonic(), cpu_seconds(run.portal.pid)
        list(pool.map(click, clients))

        def all_running():
            statuses = {name: status for name, status in desktops_of(teacher).items() if name.endswith("-" + slug)}
            failures.extend("%s: %s" % item for item in statuses.items() if item[1] == "error")
            if failures:
                raise AssertionError("failed during the storm: %s" % failures)
            return len(statuses) == len(clients) and all(status == "running" for status in statuses.values())
        wait_for(all_running, timeout, "all %s desktops to run" % slug, interval=0.25)
        seconds, cpu = time.monotonic() - started, cpu_seconds(run.portal.pid) - cpu
    for client in clients:  # the next storm starts from stopped desktops' neighbours: remove these
        client.post("/api/container/remove", params={"desktop_type": slug})
    return seconds, failures, max(load.samples or [os.getloadavg()[0]]), cpu / len(clients)


def docker_storm(client, image, kind, count, concurrency, prefix, timeout):
    """`count` containers straight through the Docker API, `concurrency` at a time, each
    until port 6901 answers, with the catalog type's environment and limits (`kind`);
    (seconds, peak load). Removed afterwards."""
    environment, limits = kind
    made = []

    def one(number):
        container = client.containers.create(
            image, name="%s-bare-%d" % (prefix, number), detach=True,
            environment={**environment, "VNC_PW": uuid.uuid4().hex, "VNC_VIEW_ONLY_PW": uuid.uuid4().hex},
            ports={"6901/tcp": ("127.0.0.1", None)}, shm_size="512m", security_opt=["no-new-privileges"],
            labels={"de.iservdesk.bench": prefix}, **limits)
        made.append(container)
        container.start()
        container.reload()
        port = int(container.ports["6901/tcp"][0]["HostPort"])
        deadline = time.monotonic() + timeout
        while not answers(port):
            if time.monotonic() > deadline:
                raise AssertionError("bare container %d did not answer within %d s" % (number, timeout))
            time.sleep(0.05)

    try:
        with LoadSampler() as load, concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            started = time.monotonic()
            list(pool.map(one, range(count)))
            seconds = time.monotonic() - started
    finally:
        for container in made:
            try:
                container.remove(force=True, v=True)
            except docker.errors.APIError:
                pass
    return seconds, max(load.samples or [os.getloadavg()[0]])


RELOADS = [0]  # tabs loaded again after ERR_NETWORK_CHANGED


def click_to_frame(driver, home, selector, then=None):
    """Seconds from a click on `selector` on the overview (`home`) to the first frame in the
    tab it opens; `then`: a second link to click when it appears (cold start: Open)."""
    from selenium.webdriver.common.by import By
    driver.switch_to.window(home)
    link = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, selector), 60, selector)[0]
    started = time.monotonic()
    link.click()
    if then:
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, then), 120, then, interval=0.02)[0].click()
    wait_for(lambda: len(driver.window_handles) == 2, 10, "the new tab")
    driver.switch_to.window([handle for handle in driver.window_handles if handle != home][0])

    def drawn():
        # Chromium aborts every request in flight when the host's network changes (Docker
        # adds an interface for each container it starts: a cold start's own): reload then,
        # as the tests do (tests/browser.py load()); counted, and reported.
        if any("ERR_NETWORK_CHANGED" in entry.get("message", "") for entry in driver.get_log("browser")):
            RELOADS[0] += 1
            driver.refresh()
            return False
        return driver.execute_script(FIRST_FRAME_JS)
    try:
        wait_for(drawn, 60, "the first frame", interval=0.02)
    except AssertionError:
        driver.save_screenshot(os.path.join(tempfile.gettempdir(), "bench-lesson-no-frame.png"))
        print("bench_lesson: no frame at %s; the browser said:\n%s" % (driver.current_url, "\n".join(
            str(entry) for entry in driver.get_log("browser")[-20:])), file=sys.stderr)
        raise
    seconds = time.monotonic() - started
    driver.close()
    driver.switch_to.window(home)
    return seconds


def prepared_against_cold(run, tries):
    """([prepared s], [cold s]): the student's click to the first frame, each `tries` times."""
    student = Client(run.url, run.students[0], password=run.students[0] + "-pw")
    teacher = Client(run.url, TEACHER, password=TEACHER + "-pw")
    driver = signed_in_browser(run.url, student)
    prepared, cold = [], []
    try:
        driver.get(run.url + "/")
        home = driver.current_window_handle
        for _ in range(tries):
            # The teacher prepares the class; the student's desktop runs when the lesson begins.
            answer = teacher.post("/api/class/%s/prepare" % GROUP, params={"desktop_type": "demo"})
            assert answer.status_code == 200, answer.text
            wait_for(lambda: desktops_of(teacher).get(run.students[0] + "-demo") == "running", 120,
                     "the prepared desktop")
            time.sleep(3)  # the lesson begins a little later: Docker's new interface has settled
            driver.refresh()
            prepared.append(click_to_frame(driver, home, "#desktop-demo a.open"))
            # Cold: no container at all (removed; the home stays), as after a weekend's cleanup.
            student.post("/api/container/remove", params={"desktop_type": "demo"})
            driver.refresh()
            cold.append(click_to_frame(driver, home, "#desktop-demo button[data-action=start]", "#desktop-demo a.open"))
            student.post("/api/container/remove", params={"desktop_type": "demo"})
    finally:
        driver.quit()
    return prepared, cold


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--boot-cpu", type=float, default=3.0, help="CPU seconds the slow desktop spends at start")
    parser.add_argument("--concurrency", default="2,4,8", help="the plain script's starts at a time, to find the best")
    parser.add_argument("--tries", type=int, default=20, help="clicks for prepared and cold starts each")
    parser.add_argument("--no-storm", action="store_true", help="only prepared against cold starts")
    args = parser.parse_args()
    image = demo_image_tag()
    concurrencies = [int(item) for item in args.concurrency.split(",")]
    timeout = 120 + 20 * args.students
    lines = ["lesson: %d students start at once; prepared against cold starts (%s)" % (args.students, image),
             machine_facts()]
    # The catalog's types as the plain script makes them: environment and limits.
    kinds = (("demo", "full X desktop", ({}, {"mem_limit": "1g", "nano_cpus": 10 ** 9, "pids_limit": 512})),
             ("slow", "%g CPU s at start" % args.boot_cpu,
              ({"DEMO_MODE": "tiny", "DEMO_BOOT_CPU_SECONDS": str(args.boot_cpu)}, {"mem_limit": "1g"})))
    storms, prepared, cold = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "desktops.toml"), "w") as stream:
            stream.write(CATALOG.format(image=image) + SLOW_DESKTOP.format(image=image, seconds=args.boot_cpu))
        run = None
        engine = docker.DockerClient(base_url=DOCKER_URL, timeout=300)
        try:
            run = Run(folder, args.students)
            for slug, label, kind in () if args.no_storm else kinds:
                seconds, failures, load, cpu = portal_storm(run, run.students, slug, timeout)
                bare = {n: docker_storm(engine, image, kind, args.students, n, run.prefix, timeout)
                        for n in concurrencies}
                storms.append((slug, label, seconds, failures, load, bare, cpu))
            if args.tries:
                prepared, cold = prepared_against_cold(run, args.tries)
        except BaseException:
            if run is not None:
                print("bench_lesson: failed; the portal's log ends:\n" + run.log_tail(), file=sys.stderr)
            raise
        finally:
            if run is not None:
                run.stop()
            for container in engine.containers.list(all=True, filters={"label": "de.iservdesk.bench"}):
                container.remove(force=True, v=True)
            engine.close()

    lines += ["", "storm: %d starts in the same second; until the last desktop answers (START_CONCURRENCY=auto: "
              "%d here)" % (args.students, 2 * (os.cpu_count() or 1)),
              "%-28s %10s %10s %12s %8s %s" % ("desktop", "portal s", "best bare", "(at a time)", "ratio",
                                               "load peak portal / bare; failures")]
    for slug, label, seconds, failures, load, bare, cpu in storms:
        best = min(bare, key=lambda n: bare[n][0])
        lines.append("%-28s %10.1f %10.1f %12d %8.2f %.1f / %.1f; %s" % (
            "%s (%s)" % (slug, label), seconds, bare[best][0], best, seconds / bare[best][0], load, bare[best][1],
            "none" if not failures else "; ".join(failures)))
        lines.append("%-28s %s" % ("", "bare at a time: " + ", ".join("%d: %.1f s" % (n, bare[n][0])
                                                                         for n in sorted(bare))))
        lines.append("%-28s portal CPU per start (the class JSON polled every 0.25 s included): %.0f ms"
                     % ("", 1000 * cpu))
    lines.append("goal: the portal within 1.2x of the best bare script")
    if prepared and cold:
        lines += ["", "click -> first frame drawn in Chromium, %d tries each:" % len(prepared),
                  "%-28s %10s %10s" % ("", "prepared", "cold start"),
                  "%-28s %10.2f %10.2f" % ("p50 s", percentile(prepared, 0.5), percentile(cold, 0.5)),
                  "%-28s %10.2f %10.2f" % ("p95 s", percentile(prepared, 0.95), percentile(cold, 0.95)),
                  "goal: prepared p50 <= 1 s (%s)" % ("met" if percentile(prepared, 0.5) <= 1 else "MISSED"),
                  "tabs loaded again after Chromium's ERR_NETWORK_CHANGED (the container's new interface "
                  "on this same host; a school's browsers are elsewhere): %d" % RELOADS[0]]
    lines.append("load average %.2f at the end" % os.getloadavg()[0])
    write_report("lesson.txt", lines)


if __name__ == "__main__":
    main()
