#!/usr/bin/python3
"""make bench: files in and out of homes, through the portal against `docker cp`.

Upload and download of one file of --size MiB (default 1024) into and out of a running
desktop's home: through the portal (PUT /api/upload/home, GET /api/files/download, the
bytes from and to this process over HTTP on 127.0.0.1) against `docker cp` of the same
file into and out of the same container in the same run (goal: the portal at >= 0.8x of
docker cp's rate). During each transfer the portal's resident memory is sampled every
50 ms (goal: flat, growth < 50 MiB) and its CPU seconds per GiB are counted.

Collecting: --students (default 30) members of a class each hand in --each MiB (default
10) in ~/Abgabe/Bench/; the teacher's "Einsammeln" (POST .../collect) against one
`docker cp` per student of the same folder out of their (stopped) container, one after
another (goal: the portal within 1x of that).

Prints a table and writes bench-results/files.txt. Every container, volume and network
of the run carries a prefix unique to the run and is removed at the end.
"""

import argparse
import concurrent.futures
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from bench import machine_facts, write_report
from bench_classroom import GROUP, TEACHER, Run, cpu_seconds
from devtools import Client, wait_for

MiB = 1024 * 1024


def busy_and_total():
    """(busy, all) jiffies of every CPU since boot (/proc/stat's first line)."""
    with open("/proc/stat") as stream:
        fields = [int(value) for value in stream.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def rss(pid):
    with open("/proc/%d/status" % pid) as stream:
        for line in stream:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Watch:
    """The portal's RSS (sampled every 50 ms) and CPU seconds while the block runs."""

    def __init__(self, pid):
        self.pid, self.samples, self.stopping = pid, [], threading.Event()

    def sample(self):
        while not self.stopping.wait(0.05):
            self.samples.append(rss(self.pid))

    def __enter__(self):
        self.before_rss, self.before_cpu = rss(self.pid), cpu_seconds(self.pid)
        self.before_machine = busy_and_total()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.started
        self.stopping.set()
        self.thread.join()
        self.cpu = cpu_seconds(self.pid) - self.before_cpu
        self.growth = max(self.samples + [rss(self.pid)]) - self.before_rss
        busy, total = busy_and_total()
        self.machine = (busy - self.before_machine[0]) / max(1, total - self.before_machine[1])


def timed(command, **kwargs):
    started = time.monotonic()
    subprocess.run(command, check=True, **kwargs)
    return time.monotonic() - started


def put_file(url, client, path, filename):
    """PUT the file as the raw body, sent in 1 MiB blocks (requests sends a file in 8 KiB
    writes, which on 2 cores measures the client more than the portal; a browser does not)."""
    address = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=3600, blocksize=MiB)
    cookie = "; ".join("%s=%s" % (key, value) for key, value in client.browser.cookies.items())
    with open(filename, "rb") as source:
        connection.request("PUT", path, body=source, headers={
            "Cookie": cookie, "X-CSRF-Token": client.csrf, "Content-Type": "application/octet-stream",
            "Content-Length": str(os.path.getsize(filename))})
        answer = connection.getresponse()
        text = answer.read().decode()
    connection.close()
    return answer.status, text


def container_of(run, name):
    return run.prefix + "-" + name


def transfer(run, size_mib, folder):
    student = Client(run.url, run.students[0], password=run.students[0] + "-pw")
    student.post("/api/container/start", params={"desktop_type": "tiny"}, timeout=60)
    wait_for(lambda: student.get("/api/container/status", params={"desktop_type": "tiny"}).json()["status"]
             == "running", 120, "the desktop")
    container = container_of(run, run.students[0] + "-tiny")
    path = os.path.join(folder, "big.bin")
    with open(path, "wb") as out:
        block = os.urandom(MiB)
        for _ in range(size_mib):
            out.write(block)
    size = size_mib * MiB
    rows = []
    # Upload: docker cp first (its copy is then replaced by the portal's).
    # Each transfer starts with no dirty pages waiting: a writer that comes after gigabytes
    # of unwritten data is slowed by the kernel's writeback, whichever it is.
    os.sync()
    with Watch(run.portal.pid) as baseline_up_watch:
        baseline_up = timed(["docker", "cp", path, container + ":/home/kasm-user/cp.bin"])
    os.sync()
    with Watch(run.portal.pid) as up:
        status, text = put_file(run.url, student, "/api/upload/home?desktop_type=tiny&name=big.bin", path)
        assert status == 200, text
    # Download: docker cp's tar to stdout, against the portal's stream, both into nothing.
    os.sync()
    with open(os.devnull, "wb") as nothing:
        with Watch(run.portal.pid) as baseline_down_watch:
            baseline_down = timed(["docker", "cp", container + ":/home/kasm-user/Uploads/big.bin", "-"],
                                  stdout=nothing)
    os.sync()
    with Watch(run.portal.pid) as down:
        got = 0
        with student.get("/api/files/download", params={"desktop_type": "tiny", "path": "Uploads/big.bin"},
                         stream=True, timeout=3600) as answer:
            assert answer.status_code == 200, answer.text
            for chunk in answer.iter_content(MiB):
                got += len(chunk)
        assert got == size, got
    for what, watch, baseline, base_watch in (("upload", up, baseline_up, baseline_up_watch),
                                              ("download", down, baseline_down, baseline_down_watch)):
        rate, base_rate = size / watch.seconds / MiB, size / baseline / MiB
        rows.append("%-9s %5d MiB: portal %6.1f MiB/s, docker cp %6.1f MiB/s -> %.2fx (goal >= 0.8x); portal RSS "
                    "growth %5.1f MiB (goal < 50), portal CPU %.2f s per GiB; all CPUs busy %.0f%% (docker cp: %.0f%%)"
                    % (what, size_mib, rate, base_rate, rate / base_rate, watch.growth / MiB,
                       watch.cpu / (size / 1024 ** 3), 100 * watch.machine, 100 * base_watch.machine))
    os.unlink(path)
    return rows


def collecting(run, students, each_mib):
    teacher = Client(run.url, TEACHER, password=TEACHER + "-pw")
    clients = [Client(run.url, name, password=name + "-pw") for name in run.students[:students]]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda client: client.post("/api/container/start", params={"desktop_type": "tiny"},
                                                 timeout=60), clients))

    def all_running():
        body = teacher.get("/api/class/" + GROUP, timeout=30).json()
        return sum(1 for member in body["members"] for desktop in member["desktops"]
                   if desktop["status"] == "running") >= students
    wait_for(all_running, 600, "%d desktops" % students, 1)
    assignment = teacher.post("/api/class/%s/assignments" % GROUP, json={"name": "Bench"}, timeout=120).json()
    data = os.urandom(each_mib * MiB)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda client: client.put(
            "/api/upload/home", params={"desktop_type": "tiny", "folder": "Abgabe/Bench", "name": "arbeit.bin"},
            data=data, timeout=300), clients))
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers if a.status_code != 200]
    teacher.post("/api/class/%s/stop-all" % GROUP, timeout=300)
    wait_for(lambda: not teacher.get("/api/class/" + GROUP, timeout=30).json()["members"][0]["desktops"][0][
        "status"] in ("running", "stopping"), 120, "the class to stop")
    with tempfile.TemporaryDirectory() as target:
        started = time.monotonic()
        for client in clients:
            subprocess.run(["docker", "cp", container_of(run, client.username + "-tiny") + ":/home/kasm-user/Abgabe/Bench",
                            os.path.join(target, client.username)], check=True)
        baseline = time.monotonic() - started
    before = cpu_seconds(run.portal.pid)
    started = time.monotonic()
    answer = teacher.post("/api/class/%s/assignments/%d/collect" % (GROUP, assignment["handout"]["id"]), timeout=600)
    portal = time.monotonic() - started
    cpu = cpu_seconds(run.portal.pid) - before
    assert answer.status_code == 200, answer.text
    handed_in = sum(1 for member in answer.json()["collection"]["members"] if member["files"])
    assert handed_in == students, handed_in
    return ["collect   %d homes x %d MiB: portal %.2f s, %d x docker cp %.2f s -> %.2fx (goal <= 1x); "
            "portal CPU %.2f s" % (students, each_mib, portal, students, baseline, portal / baseline, cpu)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB up and down (default 1024)")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--each", type=int, default=10, help="MiB each student hands in (default 10)")
    args = parser.parse_args()
    lines = ["files in and out of homes (%s)" % machine_facts()]
    with tempfile.TemporaryDirectory() as folder:
        run = Run(folder, args.students, UPLOAD_MAX_SIZE="%dm" % (args.size + 1),
                  HOME_QUOTA="%dm" % (3 * args.size + 100), START_CONCURRENCY="auto")
        try:
            lines += transfer(run, args.size, folder)
            lines += collecting(run, args.students, args.each)
        except Exception:
            print(run.log_tail(), file=sys.stderr)
            raise
        finally:
            run.stop()
    write_report("files.txt", lines)


if __name__ == "__main__":
    main()
