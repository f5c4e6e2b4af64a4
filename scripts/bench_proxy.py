#!/usr/bin/python3
"""make bench: the desktop proxy (WebSocket and HTTP) against talking to the upstream directly.

A stand-in desktop (scripts/bench_upstream.py: TLS, WebSocket stream and echo, HTTP blob)
runs in a container of the demo image, its port 6901 published on 127.0.0.1 as the portal
publishes desktops (--process: a plain process instead). "direct" is this client talking
to that published port over TLS, the way a browser would talk to a container; "proxied"
is the same client talking plain HTTP to a real portal at /desktop/<name>/..., whose
running `tiny` desktop's database row points at the stand-in (as tests/test_proxy.py
does), so the bytes cross the portal's sign-in and owner checks and then proxy.relay() or
proxy.http_request(). A third path, "nginx", is nginx doing the portal's hop (plain HTTP in,
TLS to the stand-in, no sign-in): what a TLS-terminating proxy written in C reaches on the
same machine in the same run, so that the portal's ratio can be read against what the hop
itself costs. All paths cross docker-proxy, which carries published ports to
127.0.0.1. All use the same lean client: it parses frame headers off the socket in
1 MiB reads instead of decoding frames (websocket-client would be the bottleneck), and the
direct side does its TLS through memory BIOs, as fast as this client can. Measured in the
same run, interleaved:

  1. WebSocket throughput: a 256 MiB server-to-client stream in 64 KiB binary frames
     (direct, proxied, nginx); then the same stream received by headless Chromium's
     JavaScript WebSocket, directly and the way users get it: through the shipped nginx
     site (nginx/iservdesk.conf, TLS) and then the portal, whose PUBLIC_URL is nginx's
  2. round-trip latency: 2000 echoes of 32 bytes after a warm-up, p50 and p99 (same three)
  3. 300 concurrent WebSockets, each echoing 32 bytes every 100 ms for 10 s: errors,
     messages, and the portal's CPU time and memory (its CPU clock, /proc/<pid>/status);
     with --load-rounds N, N times through the portal, its memory after each round
  4. HTTP download throughput of a 256 MiB body (direct, proxied, nginx)

Prints a table and the ratios against the goals (throughput >= 0.9x direct, added latency
p50 < 0.3 ms and p99 < 2 ms, no errors), and writes them to bench-results/proxy.txt. The
processes' CPU seconds (from each process's CPU clock) are printed too: on a shared machine
they move far less than MB/s. Throughput is judged twice: on the wall clock, and with a
core per process (all rounds' bytes / the CPU seconds of the busiest process on the path).
The second is what a machine with more cores than busy processes gets, as a production
host does, where the browser is elsewhere; on a 2-core machine the proxied run's four busy
processes (client, portal, docker-proxy, stand-in) share two cores, the direct run's three.
Everything listens on 127.0.0.1 only; every phase is bounded in count and time.
Needs the Docker engine, the demo image (make demo-image), nginx and Chromium (make deps).
"""

import argparse
import base64
import hashlib
import os
import shutil
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

from bench import (DEMO_IMAGE, database_file, machine_facts, raise_open_files, start_processes,
                   stop_processes, write_report)
# The shipped nginx site is run as its tests run it (devtools.Site).
from devtools import (ROOT, BrowserUnavailable, Client, Site, free_port, self_signed, start_browser,
                      stop_process, wait_for)
from iservdesk.proxy import answers  # bench put the checkout on sys.path

MB = 1e6
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
USER, SLUG = "anna.schmidt", "tiny"
MESSAGE = 32  # bytes of an echoed message
TIMEOUT = 15  # seconds any single read or connect may take before it counts as an error

# Goals for the proxy against the direct baseline.
GOAL_RATIO = 0.9
GOAL_P50_MS = 0.3
GOAL_P99_MS = 2.0


class TLSClient:
    """A TLS client over memory BIOs, with the socket methods the benchmark uses.

    ssl.SSLSocket lets OpenSSL read the socket itself: two read() calls per TLS record of
    at most 16 KiB (the record's header, then its body), which would make this client the
    bottleneck of the direct stream and flatter the proxy. This reads up to 1 MiB per
    call and decrypts every record at hand, like a browser's TLS stack does.
    """

    def __init__(self, sock, context):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing)
        self.raw = bytearray(1 << 20)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def _flush(self):
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        size = self.sock.recv_into(self.raw)
        if not size:
            raise ConnectionError("TLS connection closed")
        self.incoming.write(memoryview(self.raw)[:size])

    def sendall(self, data):
        self.tls.write(data)
        self._flush()

    def recv_into(self, buffer):
        """At least one byte (0 at the end), and every further one decryptable right now."""
        view = memoryview(buffer)
        while True:
            try:
                filled = self.tls.read(len(view), view)
                break
            except ssl.SSLWantReadError:
                try:
                    self._fill()
                except ConnectionError:
                    return 0
            except ssl.SSLZeroReturnError:
                return 0
        while filled < len(view):
            try:
                size = self.tls.read(len(view) - filled, view[filled:])
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not size:
                break
            filled += size
        return filled

    def recv(self, size):
        buffer = bytearray(size)
        return bytes(buffer[:self.recv_into(buffer)])

    def close(self):
        self.sock.close()


class Target:
    """Where the client connects: the stand-in directly over TLS, or the portal in plain HTTP."""

    def __init__(self, label, port, tls, prefix="", headers=()):
        self.label, self.port, self.tls, self.prefix, self.headers = label, port, tls, prefix, list(headers)
        self.context = None
        if tls:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE

    def connect(self, timeout=TIMEOUT):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.context is not None:
            try:
                return TLSClient(sock, self.context)
            except (OSError, ssl.SSLError):
                sock.close()
                raise
        return sock

    def request(self, path, extra):
        lines = ["GET %s%s HTTP/1.1" % (self.prefix, path), "Host: 127.0.0.1:%d" % self.port]
        lines += ["%s: %s" % header for header in extra + self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_head(sock):
    """(status line, bytes read past the head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head (%r)" % data[:80])
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def open_ws(target, path, timeout=TIMEOUT):
    """A WebSocket to `path` after a checked handshake: (socket, bytes read past the 101)."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock = target.connect(timeout)
    try:
        sock.sendall(target.request(path, [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "binary")]))
        head, rest = read_head(sock)
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if not head.startswith("HTTP/1.1 101") or ("Sec-WebSocket-Accept: " + accept) not in head:
            raise ConnectionError("handshake refused: %s" % head.split("\r\n", 1)[0])
    except BaseException:
        sock.close()
        raise
    return sock, rest


def _header_length(header):
    length = header[1] & 0x7F
    return 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if header[1] & 0x80 else 0)


def receive_stream(sock, leftover):
    """Read frames until the close frame; returns the data payload bytes seen. Parses
    headers only and skips payloads (no per-frame objects), so the client stays cheap."""
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    header = bytearray()
    skip = payload = 0
    chunk, size = memoryview(leftover), len(leftover)
    while True:
        position = 0
        while position < size:
            if skip:
                taken = min(skip, size - position)
                skip -= taken
                position += taken
                payload += taken
                continue
            need = 2 if len(header) < 2 else _header_length(header)
            taken = min(need - len(header), size - position)
            header += chunk[position:position + taken]
            position += taken
            if len(header) >= 2 and len(header) == _header_length(header):
                opcode, length = header[0] & 0x0F, header[1] & 0x7F
                if length == 126:
                    length = int.from_bytes(header[2:4], "big")
                elif length == 127:
                    length = int.from_bytes(header[2:10], "big")
                header.clear()
                if opcode == 8:
                    return payload
                if opcode in (0, 1, 2):
                    skip = length
                else:
                    raise ConnectionError("unexpected opcode %d" % opcode)
        size = sock.recv_into(buffer)
        if not size:
            raise ConnectionError("closed without a close frame after %d bytes" % payload)
        chunk = view


def ws_throughput(target, total):
    """MB/s of a `total`-byte server-to-client stream, handshake excluded."""
    sock, leftover = open_ws(target, "/stream?bytes=%d&frame=65536" % total)
    try:
        started = time.perf_counter()
        received = receive_stream(sock, leftover)
        elapsed = time.perf_counter() - started
    finally:
        sock.close()
    if received != total:
        raise ConnectionError("%s stream: %d of %d bytes" % (target.label, received, total))
    return total / elapsed / MB


# Receives a stream as a page does: ArrayBuffer messages, counted, nothing else done.
BROWSER_STREAM = """
const [url, done] = arguments;
const socket = new WebSocket(url, ["binary"]);
socket.binaryType = "arraybuffer";
let received = 0, started = 0;
socket.onopen = () => { started = performance.now(); };
socket.onmessage = (event) => { received += event.data.byteLength; };
socket.onclose = () => done({received: received, ms: performance.now() - started});
socket.onerror = () => done({received: received, error: "WebSocket error"});
"""


def browser_throughput(driver, target, total):
    """MB/s of a `total`-byte stream received by the browser's JavaScript WebSocket, from
    the stand-in's entry page reached the same way (so the WebSocket is same-origin, as a
    desktop's own client is: any other page of a desktop is sandboxed and has no session),
    handshake excluded."""
    scheme = "https" if target.tls else "http"
    driver.get("%s://127.0.0.1:%d%s/?path=stream" % (scheme, target.port, target.prefix))
    if "stand-in desktop" not in driver.page_source:
        raise ConnectionError("%s: the stand-in's page did not load in the browser" % target.label)
    result = driver.execute_async_script(BROWSER_STREAM, "%s://127.0.0.1:%d%s/stream?bytes=%d&frame=65536" % (
        "wss" if target.tls else "ws", target.port, target.prefix, total))
    if result.get("received") != total or "error" in result:
        raise ConnectionError("%s stream into the browser: %r" % (target.label, result))
    return total / (result["ms"] / 1000) / MB


def http_throughput(target, total):
    """MB/s of a `total`-byte HTTP body, response head excluded."""
    sock = target.connect()
    try:
        sock.sendall(target.request("/blob?bytes=%d" % total, [("Connection", "close")]))
        head, rest = read_head(sock)
        if not head.startswith("HTTP/1.1 200"):
            raise ConnectionError("%s blob: %s" % (target.label, head.split("\r\n", 1)[0]))
        started = time.perf_counter()
        received, buffer = len(rest), bytearray(1 << 20)
        while received < total:
            size = sock.recv_into(buffer)
            if not size:
                break
            received += size
        elapsed = time.perf_counter() - started
    finally:
        sock.close()
    if received != total:
        raise ConnectionError("%s blob: %d of %d bytes" % (target.label, received, total))
    return total / elapsed / MB


class Echo:
    """One WebSocket to /echo: round_trip() sends a masked 32-byte binary frame and reads
    the unmasked answer (34 bytes on the wire)."""

    def __init__(self, target, timeout=TIMEOUT):
        self.sock, leftover = open_ws(target, "/echo", timeout)
        if leftover:
            raise ConnectionError("unexpected bytes after the handshake")
        self.payload = os.urandom(MESSAGE)
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(self.payload))
        self.frame = bytes((0x82, 0x80 | MESSAGE)) + mask + masked
        self.answer = bytes((0x82, MESSAGE)) + self.payload

    def round_trip(self):
        """Seconds for one echo; raises ConnectionError on a wrong or missing answer."""
        started = time.perf_counter()
        self.sock.sendall(self.frame)
        data = b""
        while len(data) < len(self.answer):
            chunk = self.sock.recv(64)
            if not chunk:
                raise ConnectionError("closed mid-echo")
            data += chunk
        elapsed = time.perf_counter() - started
        if data != self.answer:
            raise ConnectionError("wrong echo")
        return elapsed

    def close(self):
        try:
            self.sock.sendall(bytes((0x88, 0x82)) + b"\0\0\0\0" + (1000).to_bytes(2, "big"))
        except OSError:
            pass
        self.sock.close()


def client_cpu():
    return time.process_time()


def measured(function, target, total, watches):
    """(MB/s, {"client": CPU s, name: CPU s of each watched process}) of one transfer."""
    before = {name: watch.cpu() for name, watch in watches.items()}
    before["client"] = client_cpu()
    speed = function(target, total)
    used = {name: watch.cpu() - before[name] for name, watch in watches.items()}
    used["client"] = client_cpu() - before["client"]
    return speed, used


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def latencies(targets, count, warmup, block=250):
    """{label: [seconds]}: `count` echoes per target after `warmup`, alternating blocks of
    `block` so that drift on the machine hits every target alike."""
    echoes = {target.label: Echo(target) for target in targets}
    times = {target.label: [] for target in targets}
    try:
        for echo in echoes.values():
            for _ in range(warmup):
                echo.round_trip()
        while any(len(values) < count for values in times.values()):
            for label, echo in echoes.items():
                for _ in range(min(block, count - len(times[label]))):
                    times[label].append(echo.round_trip())
    finally:
        for echo in echoes.values():
            echo.close()
    return times


class Watch:
    """CPU time and memory of a process, from /proc."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid):
        self.pid = pid
        self.clock = ((~pid) << 3) | 2  # Linux's CPU clock of another process, in ns
        self.samples = []
        self.stopping = threading.Event()
        self.thread = None

    def cpu(self):
        """CPU seconds used so far: from the process's CPU clock, or where the kernel does
        not offer that, utime + stime (in clock ticks, 10 ms each)."""
        try:
            return time.clock_gettime(self.clock)
        except OSError:
            pass
        with open("/proc/%d/stat" % self.pid) as stream:
            fields = stream.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.TICK

    def rss(self):
        """VmRSS in MiB."""
        with open("/proc/%d/status" % self.pid) as stream:
            for line in stream:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def start(self, interval=0.05):
        def sample():
            while not self.stopping.wait(interval):
                self.samples.append(self.rss())
        self.samples = [self.rss()]
        self.stopping.clear()
        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join()
        return max(self.samples)


def concurrent(target, streams, seconds, interval, watch=None):
    """`streams` WebSockets at once, each echoing every `interval` seconds for `seconds`.

    Connects with at most 32 handshakes in flight, starts all echoing together, then
    closes them all. Returns counts, round-trip times and, with `watch`, the process's
    CPU seconds per part and its memory."""
    results = {"errors": 0, "messages": 0, "times": [], "first_errors": []}
    lock = threading.Lock()
    gate = threading.Semaphore(32)
    ready = threading.Barrier(streams + 1, timeout=120)
    finished = threading.Barrier(streams + 1, timeout=seconds + 120)
    rounds = int(round(seconds / interval))

    def error(text):
        with lock:
            results["errors"] += 1
            if len(results["first_errors"]) < 5:
                results["first_errors"].append(text)

    def run(index):
        echo, times = None, []
        try:
            with gate:
                echo = Echo(target)
        except Exception as failure:
            error("connect: %s: %s" % (type(failure).__name__, failure))
        ready.wait()
        if echo is not None:
            begin = time.monotonic() + interval * index / streams  # spread the sends evenly
            try:
                for number in range(rounds):
                    pause = begin + number * interval - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                    times.append(echo.round_trip())
            except Exception as failure:
                error("echo: %s: %s" % (type(failure).__name__, failure))
        with lock:
            results["messages"] += len(times)
            results["times"] += times
        finished.wait()
        if echo is not None:
            echo.close()

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(streams)]
    cpu = [watch.cpu()] if watch else []
    if watch:
        results["rss_before"] = watch.rss()
        watch.start()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    ready.wait()
    results["connect_seconds"] = time.monotonic() - started
    cpu.append(watch.cpu() if watch else 0)
    echo_started = time.monotonic()
    finished.wait()
    results["echo_seconds"] = time.monotonic() - echo_started
    cpu.append(watch.cpu() if watch else 0)
    for thread in threads:
        thread.join(30)
    if watch:
        time.sleep(1)  # let the portal notice the closes and free what it held
        cpu.append(watch.cpu())
        results["rss_peak"] = watch.stop()
        results["rss_after"] = watch.rss()
        results["cpu_connect"] = cpu[1] - cpu[0]
        results["cpu_echo"] = cpu[2] - cpu[1]
        results["cpu_total"] = cpu[3] - cpu[0]
    return results


class StandIn:
    """The stand-in desktop (scripts/bench_upstream.py): in the demo image, in a container
    whose port 6901 is published on 127.0.0.1 as the portal publishes desktops, or with
    in_container=False a plain process. `port` is where clients reach it; `watches` are
    the processes to charge: the stand-in, and docker-proxy, which carries the bytes
    between 127.0.0.1 and the container."""

    def __init__(self, folder, in_container=True):
        cert, key = self_signed(folder)
        script = os.path.join(ROOT, "scripts", "bench_upstream.py")
        self.process = self.container = None
        self.watches = {}
        if not in_container:
            self.process = subprocess.Popen([sys.executable, script, "--cert", cert, "--key", key],
                                            stdout=subprocess.PIPE, text=True)
            line = self.process.stdout.readline()
            if not line.startswith("port "):
                self.stop()
                raise RuntimeError("the bench upstream did not start")
            self.port = int(line.split()[1])
            self.watches["upstream"] = Watch(self.process.pid)
            return
        os.chmod(folder, 0o755)  # the image's user reads the key through the mount
        for path in (cert, key):
            os.chmod(path, 0o644)
        self.port = free_port()
        self.container = subprocess.run(
            ["docker", "run", "-d", "--rm", "--name", "iservdesk-bench-upstream-%d" % self.port,
             "-p", "127.0.0.1:%d:6901" % self.port, "-v", "%s:/bench/upstream.py:ro" % script,
             "-v", "%s:/bench/tls:ro" % folder, "--entrypoint", "python3", DEMO_IMAGE, "/bench/upstream.py",
             "--cert", "/bench/tls/cert.pem", "--key", "/bench/tls/key.pem", "--host", "0.0.0.0",
             "--port", "6901"], check=True, capture_output=True, text=True).stdout.strip()
        try:
            wait_for(lambda: answers(self.port, timeout=1), 60, "the stand-in container", interval=0.05)
            pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", self.container], check=True,
                                     capture_output=True, text=True).stdout)
            self.watches["upstream"] = Watch(pid)
            proxy = docker_proxy(self.port)
            if proxy:
                self.watches["docker-proxy"] = Watch(proxy)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.process is not None:
            stop_process(self.process, 10)
        if self.container:
            subprocess.run(["docker", "rm", "-f", self.container], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)


class NginxHop:
    """nginx in the portal's place, for reference: plain HTTP on 127.0.0.1:`port`, every
    request and WebSocket passed to the stand-in over TLS 1.3 (as the portal does), bodies
    and WebSocket bytes streamed. One process (master_process off) so that its CPU clock
    is all of nginx. Buffers of 1 MiB: the fastest here of 16 KiB (0.67x direct),
    64 KiB (0.79x), 256 KiB and 1 MiB (0.83-0.87x)."""

    CONFIG = """daemon off;
master_process off;
worker_processes 1;
pid %(folder)s/nginx.pid;
error_log stderr error;
events { worker_connections 2048; }
http {
  access_log off;
  client_body_temp_path %(folder)s/body;
  proxy_temp_path %(folder)s/proxy;
  fastcgi_temp_path %(folder)s/fastcgi;
  uwsgi_temp_path %(folder)s/uwsgi;
  scgi_temp_path %(folder)s/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; "" close; }
  server {
    listen 127.0.0.1:%(port)d;
    location / {
      proxy_pass https://127.0.0.1:%(upstream)d;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_verify off;
      proxy_buffering off;
      proxy_buffer_size 1m;
      proxy_buffers 4 1m;
      proxy_read_timeout 60s;
    }
  }
}
"""

    def __init__(self, folder, upstream_port):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.access(binary, os.X_OK):
            raise SystemExit("bench_proxy: nginx is missing; install it with `make deps` (Debian's nginx-light)")
        self.port = free_port()
        config = os.path.join(folder, "nginx.conf")
        with open(config, "w") as stream:
            stream.write(self.CONFIG % {"folder": folder, "port": self.port, "upstream": upstream_port})
        self.process = subprocess.Popen([binary, "-p", folder, "-e", "stderr", "-c", config])
        try:
            wait_for(lambda: listening(self.port), 10, "nginx", interval=0.05)
        except BaseException:
            self.stop()
            raise
        self.watch = Watch(self.process.pid)

    def stop(self):
        stop_process(self.process, 10)


def listening(port):
    """True when something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def docker_proxy(port):
    """The pid of the docker-proxy serving 127.0.0.1:`port`, or None (userland-proxy off)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as stream:
                arguments = stream.read().split(b"\0")
        except OSError:
            continue
        if arguments and arguments[0].endswith(b"docker-proxy") and b"-host-port" in arguments:
            if arguments[arguments.index(b"-host-port") + 1] == str(port).encode():
                return int(entry)
    return None


def proxied_desktop(url, folder, upstream_port, session=None):
    """Sign in at `url` (with the requests `session`, e.g. one that trusts nginx's
    certificate), start a real `tiny` desktop, point its row at the stand-in; returns the
    signed-in Client and the desktop's name."""
    client = Client(url, USER, session=session)
    client.post("/api/container/start", params={"desktop_type": SLUG})
    wait_for(lambda: client.get("/api/container/status", params={"desktop_type": SLUG}).json()["status"]
             == "running", 120, "the tiny desktop")
    name = "%s-%s" % (USER, SLUG)
    database = sqlite3.connect(database_file(folder), isolation_level=None, timeout=30)
    try:
        database.execute("UPDATE desktops SET host_port = ? WHERE name = ?", (upstream_port, name))
    finally:
        database.close()
    return client, name


def row(text, direct, others, number="%10.0f"):
    """A table line: `direct`, then (value, ratio or note) for each other path; None is blank."""
    cells = [number % direct if direct is not None else "%10s" % ""]
    for value, ratio in others:
        cells.append((number % value if value is not None else "%10s" % "") + " %8s" % ratio)
    return ("   %-31s %s" % (text, " ".join(cells))).rstrip()


def transfer_lines(title, runs, total, watched):
    """Report lines for one kind of transfer: {label: [(MB/s, {process: CPU s})]}, "direct"
    first, rounds in the order run; a column per path, each but direct with its ratio to
    direct. Returns (lines, {label: (best/best ratio, median of the rounds' ratios, ratio
    with a core per process)} for each path but direct)."""
    others = list(runs)[1:]
    best = {label: max(speed for speed, _ in values) for label, values in runs.items()}
    median = {label: statistics.median(speed for speed, _ in values) for label, values in runs.items()}
    ratios = {label: [run[0] / direct[0] for direct, run in zip(runs["direct"], runs[label])] for label in others}
    # Each stage of a pipeline on a core of its own moves the bytes as fast as its busiest
    # process allows. The wall clock is that only when there are more cores than busy
    # processes: on 2 cores the proxied run has four (client, portal, docker-proxy,
    # stand-in), the direct one three, and in production the browser is on another machine.
    own_core = {}
    for label, values in runs.items():
        busiest = max(sum(used[process] for _, used in values) for process in values[0][1])
        own_core[label] = len(values) * total / MB / busiest
    lines = [title,
             row("MB/s, best round", best["direct"],
                 [(best[label], "%.2fx" % (best[label] / best["direct"])) for label in others]),
             row("MB/s, median", median["direct"],
                 [(median[label], "%.2fx" % statistics.median(ratios[label])) for label in others])
             + "  (ratios: the median of the rounds' ratios)"]
    lines += ["   %-31s %s" % ("ratio in each round, " + label, " ".join("%.2f" % ratio for ratio in ratios[label]))
              for label in others]
    for process in ["client"] + watched:  # CPU time hardly depends on what else runs
        cost = {label: statistics.median(used[process] for _, used in values) for label, values in runs.items()}
        if any(cost.values()):
            lines.append(row("CPU s of the %s, median" % process, cost["direct"],
                             [(cost[label], "") for label in others], "%10.2f"))
    portal = statistics.median(used["portal"] for _, used in runs["proxied"])
    if portal > 0:
        lines.append(row("portal's ceiling on 1 core, MB/s", None, [(total / MB / portal, "")]))
    lines.append(row("MB/s with a core per process", own_core["direct"],
                     [(own_core[label], "%.2fx" % (own_core[label] / own_core["direct"])) for label in others])
                 + "  (all rounds' bytes / the busiest process's CPU s)")
    return lines, {label: (best[label] / best["direct"], statistics.median(ratios[label]),
                           own_core[label] / own_core["direct"]) for label in others}


def goal(met):
    return "met" if met else "MISSED"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="throughput rounds per side")
    parser.add_argument("--stream-mib", type=int, default=256)
    parser.add_argument("--echoes", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--load-rounds", type=int, default=1,
                        help="run the concurrent WebSockets through the portal this often, printing its "
                             "memory after each: whether memory settles or grows (a leak)")
    parser.add_argument("--browser-rounds", type=int, default=5,
                        help="rounds of the stream into headless Chromium per path")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--process", action="store_true",
                        help="run the stand-in desktop as a plain process instead of in a container")
    args = parser.parse_args()
    total = args.stream_mib << 20
    # 300 WebSockets are 300 sockets here, 600 in the portal (browser side and upstream
    # side) and 300 in the stand-in; a common default soft limit is 1024. Raised before
    # the portal and the stand-in are started, so that they inherit it.
    files = raise_open_files(4 * args.streams + 1024)
    threading.stack_size(512 * 1024)  # a thread per concurrent WebSocket
    lines = ["proxy: direct to a stand-in desktop over TLS vs through the portal (/desktop/<name>/, plain "
             "HTTP to the portal, TLS from it)",
             machine_facts() + ", open files %d" % files]
    with tempfile.TemporaryDirectory() as folder:
        standin = StandIn(folder, in_container=not args.process)
        upstream_port = standin.port
        processes, hop, site = [], None, None
        try:
            hop = NginxHop(folder, upstream_port)
            # The portal behind the shipped nginx site (TLS), as in production, so its
            # PUBLIC_URL is nginx's address; the lean client talks to the portal itself.
            portal_port = free_port()
            os.mkdir(os.path.join(folder, "site"))
            site = Site(os.path.join(folder, "site"), upstream="127.0.0.1:%d" % portal_port)
            _, processes = start_processes(folder, portal_port, site.url)
            portal = processes[-1]
            site.start()
            session = requests.Session()
            session.verify = site.cert
            session.trust_env = False  # else $REQUESTS_CA_BUNDLE would override `verify`
            client, name = proxied_desktop(site.url, folder, upstream_port, session)
            direct = Target("direct", upstream_port, tls=True)
            proxied = Target("proxied", portal_port, tls=False, prefix="/desktop/%s" % name,
                             headers=[("Origin", site.url), ("Cookie", "__Host-iservdesk_session=" + client.session_id)])
            # What a user's browser talks to: nginx's TLS, then the portal.
            behind = Target("behind nginx", site.https_port, tls=True, prefix="/desktop/%s" % name)
            nginx = Target("nginx", hop.port, tls=False)
            paths = (direct, proxied, nginx)
            watches = dict(standin.watches, portal=Watch(portal.pid), nginx=hop.watch)
            kinds = [("websocket", ws_throughput)] + ([] if args.skip_http else [("http", http_throughput)])
            runs = {kind: {target.label: [] for target in paths} for kind, _ in kinds}
            for _ in range(args.rounds):  # interleaved, so drift hits all alike
                for kind, function in kinds:
                    for target in paths:
                        runs[kind][target.label].append(measured(function, target, total, watches))
            try:
                browser = start_browser(ignore_certificate_errors=True)  # the self-signed certificates
            except BrowserUnavailable as error:
                raise SystemExit("bench_proxy: %s" % error) from None
            try:
                browser.set_script_timeout(TIMEOUT * 8)
                # The session as a cookie of the portal's origin, so the page's WebSocket carries it.
                browser.get(site.url + "/healthz")
                browser.add_cookie({"name": "__Host-iservdesk_session", "value": client.session_id, "path": "/",
                                    "secure": True})
                in_browser = {target.label: [] for target in (direct, behind)}
                for _ in range(args.browser_rounds):
                    for target in (direct, behind):
                        in_browser[target.label].append(browser_throughput(browser, target, total))
            finally:
                browser.quit()
            times = latencies(paths, args.echoes, args.warmup)
            load_direct = concurrent(direct, args.streams, args.seconds, args.interval)
            load_proxied = concurrent(proxied, args.streams, args.seconds, args.interval, watches["portal"])
            repeats = [concurrent(proxied, args.streams, args.seconds, args.interval, watches["portal"])
                       for _ in range(args.load_rounds - 1)]
        finally:
            for server in (hop, site):
                if server is not None:
                    server.stop()
            standin.stop()
            stop_processes(processes)

    lines += ["", "%-34s %10s %10s %8s %10s %8s" % ("", "direct", "proxied", "ratio", "nginx", "ratio")]
    section, websocket = transfer_lines("1. WebSocket stream, %d MiB in 64 KiB frames, %d rounds"
                                        % (args.stream_mib, args.rounds), runs["websocket"], total, list(watches))
    ws_best, ws_median, ws_own_core = websocket["proxied"]
    lines += section
    browser_ratios = [run / direct for run, direct in zip(in_browser["behind nginx"], in_browser["direct"])]
    browser_ratio = statistics.median(browser_ratios)
    lines += ["1b. the same stream into headless Chromium (a page's WebSocket, ArrayBuffer messages), %d rounds:"
              % args.browser_rounds,
              "    direct, and as users get it: through the shipped nginx site (TLS) and the portal",
              row("MB/s, median", statistics.median(in_browser["direct"]),
                  [(statistics.median(in_browser["behind nginx"]), "%.2fx" % browser_ratio)])
              + "  (ratio: the median of the rounds' ratios)",
              "   %-31s %s" % ("ratio in each round", " ".join("%.2f" % ratio for ratio in browser_ratios))]
    added = {}
    lines.append("2. echo of %d bytes, %d round trips after %d warm-up (ratio columns: ms added)"
                 % (MESSAGE, args.echoes, args.warmup))
    for fraction, text in ((0.5, "p50"), (0.99, "p99")):
        ms = {label: percentile(values, fraction) * 1000 for label, values in times.items()}
        added[text] = ms["proxied"] - ms["direct"]
        lines.append(row(text + " ms", ms["direct"], [(ms[label], "%+.3f" % (ms[label] - ms["direct"]))
                                                     for label in ("proxied", "nginx")], "%10.3f"))
    added50, added99 = added["p50"], added["p99"]
    rounds = int(round(args.seconds / args.interval))
    lines += ["3. %d WebSockets at once, each echoing every %g ms for %g s"
              % (args.streams, args.interval * 1000, args.seconds, ),
              "   %-31s %10d %10d" % ("errors", load_direct["errors"], load_proxied["errors"]),
              "   %-31s %10d %10d   of %d" % ("messages echoed", load_direct["messages"], load_proxied["messages"],
                                              args.streams * rounds),
              "   %-31s %10.2f %10.2f" % ("s to connect all", load_direct["connect_seconds"],
                                          load_proxied["connect_seconds"])]
    for fraction, text in ((0.5, "p50"), (0.99, "p99")):
        values = [percentile(load["times"], fraction) * 1000 if load["times"] else float("nan")
                  for load in (load_direct, load_proxied)]
        lines.append("   %-31s %10.3f %10.3f" % ("echo %s ms under this load" % text, *values))
    lines += ["   portal CPU: %.2f s connecting, %.2f s in %.1f s of echoing (%.0f%% of a core), %.2f s in all"
              % (load_proxied["cpu_connect"], load_proxied["cpu_echo"], load_proxied["echo_seconds"],
                 100 * load_proxied["cpu_echo"] / load_proxied["echo_seconds"], load_proxied["cpu_total"]),
              "   portal RSS: %.1f MiB before, %.1f MiB peak, %.1f MiB after closing (%+.0f KiB per WebSocket "
              "at peak)" % (load_proxied["rss_before"], load_proxied["rss_peak"], load_proxied["rss_after"],
                            (load_proxied["rss_peak"] - load_proxied["rss_before"]) * 1024 / args.streams)]
    if repeats:
        lines.append("   portal RSS after each further round, MiB: %s (errors: %d)" % (
            " ".join("%.1f" % load["rss_after"] for load in repeats), sum(load["errors"] for load in repeats)))
    for load, label in [(load_direct, "direct"), (load_proxied, "proxied")] + [(load, "proxied") for load in repeats]:
        for text in load["first_errors"]:
            lines.append("   error (%s): %s" % (label, text))
    if not args.skip_http:
        section, _ = transfer_lines("4. HTTP download, %d MiB body, %d rounds" % (args.stream_mib, args.rounds),
                                    runs["http"], total, list(watches))
        lines += section
    errors = load_direct["errors"] + load_proxied["errors"] + sum(load["errors"] for load in repeats)
    lines += ["", "load average %.2f at the end (other work on the machine skews MB/s and p99 more than CPU "
              "seconds)" % os.getloadavg()[0],
              "goals: WebSocket throughput >= %.1fx direct: on the wall clock of these %d cores %s (best rounds "
              "%.2fx, median ratio %.2fx);" % (GOAL_RATIO, os.cpu_count(), goal(ws_median >= GOAL_RATIO), ws_best,
                                               ws_median),
              "       with a core per process %s (%.2fx)" % (goal(ws_own_core >= GOAL_RATIO), ws_own_core),
              "       added latency p50 < %.1f ms: %s (%+.3f ms), p99 < %.0f ms: %s (%+.3f ms)" % (
                  GOAL_P50_MS, goal(added50 < GOAL_P50_MS), added50, GOAL_P99_MS, goal(added99 < GOAL_P99_MS),
                  added99),
              "       no errors with %d WebSockets: %s (%d)" % (args.streams, goal(errors == 0), errors),
              "as users get it, into Chromium through nginx's TLS and the portal: %.2fx direct (median ratio)"
              % browser_ratio,
              "for reference, nginx on the same hop: WebSocket median ratio %.2fx (best rounds %.2fx), with a core "
              "per process %.2fx;" % (websocket["nginx"][1], websocket["nginx"][0], websocket["nginx"][2]),
              "       CPU s per stream: portal %.2f, nginx %.2f" % tuple(
                  statistics.median(used[label] for _, used in runs["websocket"][target])
                  for label, target in (("portal", "proxied"), ("nginx", "nginx")))]
    write_report("proxy.txt", lines)


if __name__ == "__main__":
    main()
