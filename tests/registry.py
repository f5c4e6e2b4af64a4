"""A throwaway Docker registry for tests: Debian's `docker-registry` (distribution v2) on 127.0.0.1.

Tests that need "the image is missing locally and gets pulled, with progress" push an image
here and pull it back through the real engine. Docker allows plain HTTP to registries on
127.0.0.0/8 without any daemon setting, so nothing on the machine has to be reconfigured.

    registry = LocalRegistry()
    try:
        reference = registry.push(client, "iservdesk/demo-desktop:0.1.0")
        ...
    finally:
        registry.remove_local_tags(client)
        registry.stop()

Caveat: pulling an image whose layers are already on the engine downloads nothing and
reports no progress (only "Pulling from", "Digest", "Status"). Use `push_fresh` when a
test needs real layer downloads.
"""

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid

import requests

from devtools import free_port, stop_process

BINARY = "/usr/bin/docker-registry"
INSTALL_HINT = "apt-get install docker-registry (as root; `make deps` does it)"

CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  # A fixed secret only silences the "No HTTP secret provided" warning; there is no auth.
  secret: iservdesk-test-registry
health:
  storagedriver:
    enabled: false
"""


class RegistryError(RuntimeError):
    """The registry could not be started, or a push to it failed."""


def split_reference(image):
    """'[host[:port]/]path[:tag]' -> ('path', 'tag'); the source registry host is dropped."""
    if "@" in image:
        raise ValueError("digest references are not supported: %s" % image)
    name, tag = image, "latest"
    if ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    first, _, rest = name.partition("/")
    # Same rule as docker: a first component with '.' or ':' (or 'localhost') is a host.
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest
    return name, tag


class LocalRegistry:
    """A `docker-registry serve` subprocess on a free port of 127.0.0.1, storing into a temp dir."""

    def __init__(self, binary=BINARY, timeout=30):
        if not os.access(binary, os.X_OK):
            raise RegistryError("%s is missing: %s" % (binary, INSTALL_HINT))
        self.binary = binary
        self.directory = tempfile.mkdtemp(prefix="iservdesk-registry-")
        self.log_path = os.path.join(self.directory, "registry.log")
        self.process = None
        try:
            # The port is free when picked but could be taken before the registry binds it.
            for attempt in range(3):
                if self._start(free_port(), timeout):
                    return
            raise RegistryError("docker-registry could not bind a port:\n" + self.log_tail())
        except BaseException:
            self.stop()
            raise

    def _start(self, port, timeout):
        self.port = port
        self.host = "127.0.0.1:%d" % port
        self.url = "http://" + self.host
        config = os.path.join(self.directory, "config.yml")
        with open(config, "w") as stream:
            stream.write(CONFIG.format(root=os.path.join(self.directory, "data"), port=port))
        # It logs to stderr only (stdout stays empty); both go to the file for failure reports.
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([self.binary, "serve", config], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "address already in use" in self.log_tail():
                    return False
                raise RegistryError("docker-registry exited with %s:\n%s"
                                    % (self.process.returncode, self.log_tail()))
            try:
                if requests.get(self.url + "/v2/", timeout=2).status_code == 200:
                    return True
            except requests.RequestException as error:  # not listening yet
                last_error = error
            time.sleep(0.05)  # poll interval, not a wait for readiness
        raise RegistryError("docker-registry did not answer 200 on %s/v2/ within %ss (last error: %r):\n%s"
                            % (self.url, timeout, last_error, self.log_tail()))

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as stream:
                return "".join(stream.readlines()[-lines:]) or "(registry log is empty)"
        except OSError as error:
            return "(no registry log: %s)" % error

    def reference(self, image):
        """Where `image` (a local name) lives in this registry."""
        return "%s/%s:%s" % ((self.host,) + split_reference(image))

    def _push(self, client, repository, tag):
        # The engine reports failures as lines in the stream, not as an HTTP error status.
        for line in client.images.push(repository, tag=tag, stream=True, decode=True):
            if "error" in line or "errorDetail" in line:
                message = line.get("error") or line["errorDetail"].get("message")
                hint = ""
                if "HTTP response to HTTPS client" in str(message):
                    hint = (" (the engine does not treat %s as insecure; docker allows 127.0.0.0/8 "
                            "by default unless daemon.json sets insecure-registries)" % self.host)
                raise RegistryError("pushing %s:%s failed: %s%s\nregistry log:\n%s"
                                    % (repository, tag, message, hint, self.log_tail()))

    def push(self, client, image):
        """Push the local `image` here and return the registry reference. Afterwards only the
        registry-named tag is removed: the reference is absent locally, the original stays."""
        reference = self.reference(image)
        repository, tag = reference.rsplit(":", 1)
        client.images.get(image).tag(repository, tag)
        try:
            self._push(client, repository, tag)
        finally:
            # Untag only: the image keeps its other names, so this never deletes it.
            client.images.remove(reference)
        return reference

    def push_fresh(self, client, base, size=8 * 1024 * 1024):
        """Push an image built FROM `base` plus one layer of `size` random bytes, then delete it
        locally. Pulling the returned reference must download that layer, with progress; the
        base layers are found locally ("Already exists"). It still runs like `base`."""
        name = "%s/iservdesk-test/fresh:%s" % (self.host, uuid.uuid4().hex[:12])
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            def add(path, data):
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
            add("Dockerfile", ("FROM %s\nCOPY fresh.bin /var/lib/iservdesk-test/fresh.bin\n" % base).encode())
            # Random bytes do not compress, so the pushed blob (and the download) is `size` long.
            add("fresh.bin", os.urandom(size))
        context.seek(0)
        image, _ = client.images.build(fileobj=context, custom_context=True, tag=name, rm=True,
                                       forcerm=True, pull=False)
        repository, tag = name.rsplit(":", 1)
        try:
            self._push(client, repository, tag)
        finally:
            # Its only tag: removing it deletes the image and its fresh layer from the engine.
            client.images.remove(image.id, force=True)
        return name

    def remove_local_tags(self, client):
        """Remove every local tag that names this registry (pulled or pushed by a test)."""
        prefix = self.host + "/"
        for image in client.images.list():
            for tag in image.tags:
                if tag.startswith(prefix):
                    try:
                        # force: a test's container may still use it until its own teardown.
                        client.images.remove(tag, force=True)
                    except Exception as error:  # already gone with an earlier tag of it
                        if getattr(error, "status_code", None) != 404:
                            raise

    def stop(self):
        if self.process is not None:
            stop_process(self.process, 10)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()
