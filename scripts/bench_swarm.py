#!/usr/bin/python3
"""make bench: desktops on a Docker Swarm (scripts/swarm-lab, three nodes on this machine),
a desktop on a worker against the same on the manager, measured in the same run.

  1. start-to-ready: SwarmEngine.create() of a `tiny` demo desktop pinned to the manager or
     to a worker, until its port answers TLS at the node's address; --rounds of each,
     interleaved (goal: worker <= 1.1x manager)
  2. throughput of the portal's TLS client (proxy.TLSPipe, what proxy.http_request() and the
     WebSocket relay use) from a stand-in desktop (scripts/bench_upstream.py in the demo
     image) on each node: GET /blob of --megabytes, --rounds interleaved (goal: worker >=
     0.9x manager), with this process's CPU seconds per GiB
  3. a placement storm: --storm desktops reserved and created at once (12 at a time, as the
     portal's start queue would let them), until every one answers: the time, and how many
     went to each node

Prints a table and writes bench-results/swarm.txt. Needs root and a machine without a lab
(it makes its own and removes it, also after a failure).
"""

import gevent.monkey

gevent.monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent.pool  # noqa: E402

from bench import machine_facts, write_report  # noqa: E402
from devtools import ROOT, demo_image_tag  # noqa: E402

sys.path.insert(0, ROOT)
from iservdesk import proxy  # noqa: E402
from iservdesk.desktops.engine import DesktopSpec  # noqa: E402
from iservdesk.desktops.swarm import SwarmEngine  # noqa: E402

LAB = os.path.join(ROOT, "scripts", "swarm-lab")
NETWORK = "isdbench-desktops"
PORTS = (7900, 8000)
MANAGER = "unix:///run/isdlab/1/docker.sock"
LABELS = {"de.iservdesk.bench": "swarm"}


def spec(node, image, name=None):
    name = name or "isdbench-%s" % uuid.uuid4().hex[:8]
    return DesktopSpec(name=name, image=image, container_port=6901,
                       environment={"VNC_PW": "pw", "VNC_VIEW_ONLY_PW": "view", "DEMO_MODE": "tiny"},
                       labels=LABELS, home=name + "-home", shm_size="64m", memory="256m", cpus=1, pids=128,
                       node=node)


def ready(container, deadline=120):
    limit = time.monotonic() + deadline
    while not proxy.answers((container.address, container.host_port), timeout=1):
        if time.monotonic() > limit:
            raise RuntimeError("%s did not answer" % container.name)
        gevent.sleep(0.02)


def start_to_ready(engine, image, nodes, rounds):
    times = {node.hostname: [] for node in nodes}
    for _ in range(rounds):
        for node in nodes:
            started = time.monotonic()
            container = engine.create(spec(node.id, image))
            ready(container)
            times[node.hostname].append(time.monotonic() - started)
            engine.remove(container.id)
    return times


def stand_in(engine, node, image, folder):
    """The bench upstream as a service on `node`; (address, port) once it answers."""
    script = os.path.join(ROOT, "scripts", "bench_upstream.py")
    port = engine.ports.reserve()
    template = {"ContainerSpec": {
        "Image": engine._reference(image), "Labels": LABELS,
        "Command": ["python3", "/bench/upstream.py", "--cert", "/bench/tls/cert.pem", "--key", "/bench/tls/key.pem",
                    "--host", "0.0.0.0", "--port", "6901"],
        "Mounts": [{"Type": "bind", "Source": script, "Target": "/bench/upstream.py", "ReadOnly": True},
                   {"Type": "bind", "Source": folder, "Target": "/bench/tls", "ReadOnly": True}]},
        "RestartPolicy": {"Condition": "none"}, "Placement": {"Constraints": ["node.id==%s" % node.id]},
        "Networks": [{"Target": NETWORK}]}
    endpoint = {"Mode": "dnsrr", "Ports": [{"Protocol": "tcp", "TargetPort": 6901, "PublishedPort": port,
                                            "PublishMode": "host"}]}
    created = engine.client.api.create_service(template, name="isdbench-upstream-%s" % node.hostname,
                                               labels=LABELS, endpoint_spec=endpoint)
    target = (node.address, port)
    limit = time.monotonic() + 60
    while not proxy.answers(target, timeout=1):
        if time.monotonic() > limit:
            raise RuntimeError("the stand-in on %s did not answer" % node.hostname)
        time.sleep(0.1)
    return created["ID"], target


def blob(target, size):
    """(seconds, CPU seconds of this process) of a GET /blob through proxy.TLSPipe."""
    cpu, started = time.process_time(), time.monotonic()
    pipe = proxy.TLSPipe.connect(target)
    pipe.sendall(b"GET /blob?bytes=%d HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % size)
    buffer = bytearray(1 << 20)
    got = 0
    while True:
        count = pipe.recv_into(buffer)
        if not count:
            break
        got += count
    pipe.close()
    if got < size:
        raise RuntimeError("got %d of %d bytes" % (got, size))
    return time.monotonic() - started, time.process_time() - cpu


def storm(engine, image, count):
    pool = gevent.pool.Pool(12)
    made = []
    started = time.monotonic()

    def one(index):
        reservation = engine.reserve("256m")
        try:
            container = engine.create(spec("", image, "isdbench-storm-%02d" % index), reservation)
        finally:
            engine.release(reservation)
        made.append(container)
        ready(container, 300)

    for index in range(count):
        pool.spawn(one, index)
    pool.join(raise_error=True)
    elapsed = time.monotonic() - started
    spread = {}
    for container in made:
        spread[container.node_name] = spread.get(container.node_name, 0) + 1
    return elapsed, spread, made


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--storm", type=int, default=60)
    args = parser.parse_args()
    image = demo_image_tag()
    if "no lab" not in subprocess.run([LAB, "status"], capture_output=True, text=True).stdout:
        sys.exit("bench_swarm: a swarm-lab is up already; `scripts/swarm-lab down` first")
    subprocess.run([LAB, "up", "--nodes", "3", "--image", image, "--network", NETWORK,
                    "--ports", "%d:%d" % (PORTS[0], PORTS[1] - 1)], check=True, stdout=subprocess.DEVNULL)
    lines = []
    try:
        engine = SwarmEngine(MANAGER, port_range=range(*PORTS), network=NETWORK)
        engine.ensure_network()
        nodes = engine.nodes()
        manager = next(node for node in nodes if node.manager)
        worker = next(node for node in nodes if not node.manager)
        reference = engine._reference(image)
        times = start_to_ready(engine, reference, [manager, worker], args.rounds)
        median = {name: statistics.median(values) for name, values in times.items()}
        ratio = median[worker.hostname] / median[manager.hostname]
        lines.append("start-to-ready, %d rounds: manager %s p50 %.2f s, worker %s p50 %.2f s: worker/manager "
                     "%.2fx (goal <= 1.1x) %s" % (args.rounds, manager.hostname, median[manager.hostname],
                                                  worker.hostname, median[worker.hostname], ratio,
                                                  "met" if ratio <= 1.1 else "MISSED"))
        with tempfile.TemporaryDirectory() as folder:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                            "/CN=bench", "-keyout", folder + "/key.pem", "-out", folder + "/cert.pem"],
                           check=True, capture_output=True)
            os.chmod(folder, 0o755)
            for name in ("key.pem", "cert.pem"):
                os.chmod(os.path.join(folder, name), 0o644)
            services, targets = [], {}
            try:
                for node in (manager, worker):
                    service, targets[node.hostname] = stand_in(engine, node, image, folder)
                    services.append(service)
                size = args.megabytes << 20
                results = {name: [] for name in targets}
                for _ in range(args.rounds):
                    for name, target in targets.items():
                        results[name].append(blob(target, size))
            finally:
                for service in services:
                    engine.remove(service)
        rate = {name: size * len(values) / sum(seconds for seconds, _ in values) / 1e6
                for name, values in results.items()}
        cpu = {name: sum(used for _, used in values) / (size * len(values) / 2 ** 30)
               for name, values in results.items()}
        ratio = rate[worker.hostname] / rate[manager.hostname]
        lines.append("TLS client throughput, %d x %d MiB: manager %.0f MB/s (%.2f CPU s/GiB), worker %.0f MB/s "
                     "(%.2f CPU s/GiB): worker/manager %.2fx (goal >= 0.9x) %s" % (
                         args.rounds, args.megabytes, rate[manager.hostname], cpu[manager.hostname],
                         rate[worker.hostname], cpu[worker.hostname], ratio, "met" if ratio >= 0.9 else "MISSED"))
        elapsed, spread, made = storm(engine, reference, args.storm)
        lines.append("placement storm: %d desktops all ready in %.1f s; per node: %s" % (
            args.storm, elapsed, ", ".join("%s %d" % item for item in sorted(spread.items()))))
        gevent.pool.Pool(12).map(lambda container: engine.remove(container.id), made)
    finally:
        subprocess.run([LAB, "down"], check=False)
    write_report("swarm.txt", [machine_facts(), ""] + lines)


if __name__ == "__main__":
    main()
