#!/usr/bin/python3
"""make bench: cold start of a desktop through the portal against a bare `docker run`.

Both are measured in the same run, interleaved, on the same image, to "ready" (port 6901
answers over TLS): through the portal that is POST /api/container/start until the status
says running; bare is `docker run -d` until the port answers. Prints medians, the ratio
and the difference, and writes them to bench-results/cold-start.txt. Needs the Docker
engine and the demo image (make demo-image); starts its own identity provider and portal.
The helpers for that are shared with scripts/bench_proxy.py, which `make bench` runs next;
what the tests use too (ports, waits, sign-in, configuration) is in scripts/devtools.py.
"""

import argparse
import importlib.metadata
import os
import platform
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

import requests

from devtools import ROOT, Client, demo_image_tag, free_port, stop_process, wait_for, write_config

sys.path.insert(0, ROOT)

from iservdesk.proxy import answers  # noqa: E402

DEMO_IMAGE = demo_image_tag()


def start_processes(folder, portal_port=None, public_url=None):
    """Start the development identity provider and a portal (config and database in
    `folder`) on `portal_port` (default: a free one), whose PUBLIC_URL is `public_url`
    (default: the portal itself; e.g. nginx's address in front of it); returns (portal
    URL, [identity provider, portal]) once both answer."""
    portal_port, idp_port = portal_port or free_port(), free_port()
    public_url = public_url or "http://127.0.0.1:%d" % portal_port
    idp = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "scripts", "dev-idp.py"), "--port", str(idp_port),
         "--users", os.path.join(ROOT, "tests", "data", "users.json"), "--issuer-path", "/iserv",
         "--client", "bench:bench-secret:client_secret_basic:%s/authorize" % public_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = write_config(os.path.join(folder, "bench.env"), LISTEN="127.0.0.1:%d" % portal_port,
                          PUBLIC_URL=public_url, OAUTH_CLIENT_ID="bench",
                          OAUTH_CLIENT_SECRET="bench-secret", CONTAINER_PREFIX="iservdesk-bench",
                          OAUTH_ISSUER="http://127.0.0.1:%d/iserv" % idp_port, LOG_LEVEL="WARNING")
    portal = subprocess.Popen([sys.executable, "-m", "iservdesk", "--config", config, "serve"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % portal_port
    try:
        wait_for(lambda: requests.get(url + "/healthz", timeout=2).status_code == 200, 30, "the portal")
        wait_for(lambda: requests.get("http://127.0.0.1:%d/iserv/.well-known/openid-configuration" % idp_port,
                                      timeout=2).status_code == 200, 30, "the identity provider")
    except BaseException:
        stop_processes([idp, portal])
        raise
    return url, [idp, portal]


def database_file(folder):
    """The portal's sqlite file for a portal started by start_processes(folder)."""
    return os.path.join(folder, "iservdesk.db")


def stop_processes(processes):
    """Stop what start_processes started and remove the containers, volumes and the desktops'
    network it made."""
    for process in processes:
        stop_process(process, 20)
    subprocess.run("docker ps -aq --filter name=iservdesk-bench | xargs -r docker rm -f", shell=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run("docker volume ls -q --filter name=iservdesk-bench | xargs -r docker volume rm",
                   shell=True, stdout=subprocess.DEVNULL)
    subprocess.run("docker network ls -q --filter name=iservdesk-bench | xargs -r docker network rm",
                   shell=True, stdout=subprocess.DEVNULL)


def raise_open_files(wanted):
    """Raise this process's soft limit of open files towards `wanted` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine_facts():
    """One line about the machine the numbers come from."""
    model = ""
    try:
        with open("/proc/cpuinfo") as stream:
            model = next((line.split(":", 1)[1].strip() for line in stream if line.startswith("model name")), "")
    except OSError:
        pass
    return "%d cores%s, Linux %s, Python %s, gevent %s, %s, load average %.2f at start" % (
        os.cpu_count(), " (%s)" % model if model else "", platform.release(), platform.python_version(),
        importlib.metadata.version("gevent"), ssl.OPENSSL_VERSION, os.getloadavg()[0])


def write_report(filename, lines):
    """Print `lines` and write them to bench-results/<filename>."""
    report = "\n".join(lines)
    print(report)
    os.makedirs(os.path.join(ROOT, "bench-results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench-results", filename), "w") as stream:
        stream.write(report + "\n")


def portal_cold_start(client, slug):
    started = time.monotonic()
    client.post("/api/container/start", params={"desktop_type": slug})
    wait_for(lambda: client.get("/api/container/status", params={"desktop_type": slug}).json()["status"]
             == "running", 120, "the desktop", interval=0.01)
    elapsed = time.monotonic() - started
    client.post("/api/container/remove", params={"desktop_type": slug})
    return elapsed


def bare_cold_start(mode):
    port = free_port()
    name = "iservdesk-bench-bare-%d" % port
    started = time.monotonic()
    subprocess.run(["docker", "run", "-d", "--name", name, "-e", "VNC_PW=bench-password", "-e", "DEMO_MODE=" + mode,
                    "--shm-size=512m", "-p", "127.0.0.1:%d:6901" % port, DEMO_IMAGE],
                   check=True, stdout=subprocess.DEVNULL)
    wait_for(lambda: answers(port, timeout=1), 120, "the bare container", interval=0.01)
    elapsed = time.monotonic() - started
    subprocess.run(["docker", "rm", "-f", name], check=True, stdout=subprocess.DEVNULL)
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url, processes = start_processes(folder)
        try:
            client = Client(url, "anna.schmidt")
            lines = ["cold start, API call to ready vs docker run to ready (%s, %d rounds, medians)"
                     % (DEMO_IMAGE, args.rounds),
                     "%-8s %10s %10s %8s %10s" % ("mode", "portal s", "bare s", "ratio", "diff ms")]
            for slug, mode in (("tiny", "tiny"), ("demo", "desktop")):
                portal_times, bare_times = [], []
                for _ in range(args.rounds):  # interleaved, so drift hits both alike
                    portal_times.append(portal_cold_start(client, slug))
                    bare_times.append(bare_cold_start(mode))
                portal, bare = statistics.median(portal_times), statistics.median(bare_times)
                lines.append("%-8s %10.3f %10.3f %7.2fx %10.0f" % (slug, portal, bare, portal / bare,
                                                                    (portal - bare) * 1000))
        finally:
            stop_processes(processes)
    write_report("cold-start.txt", lines)


if __name__ == "__main__":
    main()
