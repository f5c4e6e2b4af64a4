"""Fixtures for real parts: the Docker engine, SQLite files, `iservdesk serve` subprocesses.

Missing infrastructure fails the fixture with instructions; nothing is skipped. Every
container a test run creates carries the label de.iservdesk.test-run=<run id> and a name
starting with iservdesk-test-, and is removed at the end; a failing test prints the logs
of its containers and of its portal.
"""

import os
import subprocess
import sys
import uuid

import pytest

# scripts/devtools.py: the helpers tests share with the benchmarks.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import devtools  # noqa: E402
from devtools import DOCKER_URL, ROOT, free_port, stop_process, wait_for  # noqa: E402

sys.path.insert(0, ROOT)

from iservdesk import db as dbmodule  # noqa: E402

RUN_ID = uuid.uuid4().hex[:8]
TEST_LABEL = "de.iservdesk.test-run"
NAME_PREFIX = "iservdesk-test-"
# Portals started by tests name their containers and volumes with this prefix.
CONTAINER_PREFIX = NAME_PREFIX + RUN_ID
SECRET_KEY = devtools.SECRET_KEY
DEMO_IMAGE = devtools.demo_image_tag()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Remember each phase's outcome on the item so fixtures can dump logs on failure.
    outcome = yield
    report = outcome.get_result()
    setattr(item, "report_" + report.when, report)


def failed(request):
    report = getattr(request.node, "report_call", None)
    return report is None or report.failed


@pytest.fixture(scope="session")
def docker_client():
    """The real Docker engine, through the SDK (tests may inspect it directly)."""
    import docker
    client = docker.DockerClient(base_url=DOCKER_URL, version="1.41", timeout=60)
    try:
        client.ping()
    except Exception as error:
        pytest.fail("No Docker engine answers at %s (%s). Install and start it: "
                    "`make deps && scripts/ensure-docker` (as root), or run `make test`."
                    % (DOCKER_URL, error), pytrace=False)
    yield client
    for container in client.containers.list(all=True, filters={"label": TEST_LABEL + "=" + RUN_ID}):
        container.remove(force=True, v=True)
    for container in client.containers.list(all=True, filters={"name": CONTAINER_PREFIX}):
        container.remove(force=True)
    for volume in client.volumes.list(filters={"name": CONTAINER_PREFIX}):
        volume.remove(force=True)
    remove_networks(client, CONTAINER_PREFIX)
    client.close()


@pytest.fixture(scope="session")
def demo_image(docker_client):
    """The demo desktop image's tag; it must have been built (make demo-image)."""
    import docker.errors
    try:
        docker_client.images.get(DEMO_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail("The image %s is missing. Build it with `make demo-image` "
                    "(or run `make test`, which builds it)." % DEMO_IMAGE, pytrace=False)
    return DEMO_IMAGE


@pytest.fixture
def containers(docker_client, request):
    """Create test containers: `containers.run(image, **create_kwargs)` returns a started one."""
    created = []

    class Factory:
        labels = {TEST_LABEL: RUN_ID}

        def run(self, image, name=None, labels=None, **kwargs):
            name = name or "%s%s-%s" % (NAME_PREFIX, RUN_ID, uuid.uuid4().hex[:6])
            container = docker_client.containers.create(
                image, name=name, labels={**self.labels, **(labels or {})}, **kwargs)
            created.append(container)
            container.start()
            container.reload()
            return container

    yield Factory()
    for container in created:
        if failed(request):
            try:
                logs = container.logs().decode(errors="replace")
            except Exception as error:  # already gone: say so instead of the logs
                logs = "(no logs: %s)" % error
            print("\n----- logs of container %s -----\n%s" % (container.name, logs))
        try:
            container.remove(force=True, v=True)
        except Exception:  # 404/409: already removed or being removed
            pass


@pytest.fixture
def database(tmp_path):
    """A migrated SQLite database in a temporary folder, bound to the models."""
    db = dbmodule.open_database(str(tmp_path / "iservdesk.db"))
    dbmodule.migrate(db)
    yield db
    db.close()


def write_config(path, **overrides):
    """devtools.write_config() with this run's CONTAINER_PREFIX unless `overrides` name one:
    an env file with a complete development configuration plus `overrides`, and beside it a
    desktop catalog of the demo image (types demo, tiny, strict, teachers-only)."""
    return devtools.write_config(path, **{"CONTAINER_PREFIX": CONTAINER_PREFIX, **overrides})


@pytest.fixture
def config_file(tmp_path):
    """Factory: config_file(**overrides) -> path of a complete env file."""
    def make(name="iservdesk.env", **overrides):
        return write_config(tmp_path / name, **overrides)
    return make


def iservdesk_command(*args):
    return [sys.executable, "-m", "iservdesk"] + list(args)


class Portal:
    """A running `iservdesk serve` subprocess."""

    def __init__(self, process, url, log_path, prefix):
        self.process = process
        self.url = url
        self.log_path = log_path
        self.prefix = prefix  # CONTAINER_PREFIX: container and volume names start with it

    def log(self):
        with open(self.log_path, errors="replace") as stream:
            return stream.read()

    def restart(self):
        """Start the same portal again (after stop()), appending to its log; waits for it."""
        import requests
        with open(self.log_path, "ab") as log_stream:
            self.process = subprocess.Popen(self.process.args, cwd=ROOT, stdout=log_stream,
                                            stderr=subprocess.STDOUT)
        wait_for(lambda: requests.get(self.url + "/healthz", timeout=5).status_code == 200, 30,
                 "the restarted portal")

    def stop(self, timeout=20):
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit status."""
        stop_process(self.process, timeout)
        return self.process.returncode


@pytest.fixture
def portal(tmp_path, request):
    """Factory: portal(**settings) starts `iservdesk serve` on a free port and waits for it."""
    import requests
    started = []

    def start(env=None, wait_healthy=True, **overrides):
        overrides.setdefault("LISTEN", "127.0.0.1:%d" % free_port())
        port = int(overrides["LISTEN"].rsplit(":", 1)[1])
        overrides.setdefault("PUBLIC_URL", "http://127.0.0.1:%d" % port)
        overrides.setdefault("CONTAINER_PREFIX", "%s-%d" % (CONTAINER_PREFIX, port))
        path = write_config(tmp_path / ("portal-%d.env" % port), **overrides)
        log_path = str(tmp_path / ("portal-%d.log" % port))
        with open(log_path, "wb") as log_stream:
            process = subprocess.Popen(
                iservdesk_command("--config", path, "serve"), cwd=ROOT,
                stdout=log_stream, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        instance = Portal(process, "http://127.0.0.1:%d" % port, log_path, overrides["CONTAINER_PREFIX"])
        started.append(instance)

        def listening():
            if process.poll() is not None:
                raise AssertionError("portal exited with %s:\n%s" % (process.returncode, instance.log()))
            return requests.get(instance.url + "/healthz", timeout=5).status_code in (
                (200,) if wait_healthy else (200, 503))
        wait_for(listening, 30, "the portal at %s" % instance.url)
        return instance

    yield start
    for instance in started:
        instance.stop()
        remove_desktops(instance.prefix, dump_logs=failed(request))
        if failed(request):
            print("\n----- portal log %s -----\n%s" % (instance.url, instance.log()))


def remove_desktops(prefix, dump_logs):
    """Remove the containers and home volumes a portal made (names start with `prefix`)."""
    import docker
    client = docker.DockerClient(base_url=DOCKER_URL, version="1.41", timeout=60)
    try:
        for container in client.containers.list(all=True, filters={"name": prefix + "-"}):
            if dump_logs:
                print("\n----- logs of container %s -----\n%s"
                      % (container.name, container.logs(tail=50).decode(errors="replace")))
            container.remove(force=True)
        for volume in client.volumes.list(filters={"name": prefix + "-home-"}):
            volume.remove(force=True)
        # At once, not only at the end of the session: Docker's default address pools hold
        # about 30 bridge networks, and every portal that starts a desktop makes one.
        remove_networks(client, prefix + "-")
    finally:
        client.close()


def container_of(docker_client, portal, name):
    """The container of `portal`'s desktop `name` (e.g. anna.schmidt-tiny), or None."""
    found = docker_client.containers.list(all=True, filters={"name": "^/%s-%s$" % (portal.prefix, name)})
    return found[0] if found else None


def remove_networks(client, prefix):
    """Remove the Docker networks whose names start with `prefix` (the desktops' networks
    that portals of this run made); one still in use stays."""
    import docker.errors
    for network in client.networks.list(filters={"name": prefix}):
        if network.name.startswith(prefix):
            try:
                network.remove()
            except docker.errors.APIError:  # 404: gone already; 403: a container still uses it
                pass


class IdentityProvider:
    """A running scripts/dev-idp.py."""

    def __init__(self, process, base, issuer, log_path):
        self.process, self.base, self.issuer, self.log_path = process, base, issuer, log_path

    def misbehave(self, mode):
        import requests
        requests.post(self.base + "/_dev/misbehave", json={"mode": mode}, timeout=10).raise_for_status()

    def rotate_key(self, keep_old=True):
        import requests
        requests.post(self.base + "/_dev/rotate-key", json={"keep_old": keep_old}, timeout=10).raise_for_status()

    def log(self):
        with open(self.log_path, errors="replace") as stream:
            return stream.read()

    def stop(self):
        if not stop_process(self.process, 20):
            raise AssertionError("dev-idp did not stop within 20 s of SIGTERM:\n" + self.log())


@pytest.fixture
def idp(tmp_path, request):
    """Factory: idp(clients=[(id, secret, method, redirect_uri)], prefixed_scopes=False,
    issuer_path="/iserv", misbehave="none") starts the development identity provider."""
    started = []

    def start(clients=(), prefixed_scopes=False, issuer_path="/iserv", misbehave="none", port=None,
              users=os.path.join(ROOT, "tests", "data", "users.json")):
        port = port or free_port()
        command = [sys.executable, os.path.join(ROOT, "scripts", "dev-idp.py"), "--port", str(port),
                   "--users", users,
                   "--issuer-path", issuer_path, "--misbehave", misbehave, "--slow-seconds", "20"]
        for client in clients:
            command += ["--client", ":".join(client)]
        if prefixed_scopes:
            command.append("--prefixed-scopes")
        log_path = str(tmp_path / ("idp-%d.log" % port))
        with open(log_path, "wb") as log_stream:
            process = subprocess.Popen(command, stdout=log_stream, stderr=subprocess.STDOUT)
        base = "http://127.0.0.1:%d" % port
        instance = IdentityProvider(process, base, base + issuer_path, log_path)
        started.append(instance)

        def up():
            if process.poll() is not None:
                raise AssertionError("dev-idp exited with %s:\n%s" % (process.returncode, instance.log()))
            return "listening on" in instance.log()
        wait_for(up, 30, "the development identity provider")
        return instance

    yield start
    for instance in started:
        instance.stop()
        if failed(request):
            print("\n----- dev-idp log %s -----\n%s" % (instance.base, instance.log()))


@pytest.fixture
def registry(docker_client, demo_image, request):
    """A fresh local registry (Debian's docker-registry) for one test; afterwards its
    pulled tags are removed and it is stopped."""
    from registry import LocalRegistry, RegistryError
    try:
        instance = LocalRegistry()
    except RegistryError as error:
        pytest.fail(str(error), pytrace=False)
    yield instance
    try:
        instance.remove_local_tags(docker_client)
    finally:
        if failed(request):
            print("\n----- registry log %s -----\n%s" % (instance.url, instance.log_tail(100)))
        instance.stop()


CLIENT_ID, CLIENT_SECRET = "iservdesk-test", "test-client-secret"


def issuer_setting(provider, form):
    """OAUTH_ISSUER for a provider, in one of the forms schools write it."""
    return {"issuer": provider.issuer, "host": provider.base,
            "discovery-url": provider.issuer + "/.well-known/openid-configuration"}[form]


@pytest.fixture
def signed_in_portal(portal, idp):
    """Factory: a portal wired to a fresh development identity provider -> (portal, idp)."""
    def start(method="client_secret_basic", prefixed_scopes=False, issuer_path="/iserv",
              misbehave="none", issuer_form="issuer", users=None, **settings):
        port = free_port()
        provider = idp(clients=[(CLIENT_ID, CLIENT_SECRET, method, "http://127.0.0.1:%d/authorize" % port)],
                       prefixed_scopes=prefixed_scopes, issuer_path=issuer_path, misbehave=misbehave,
                       **({"users": users} if users else {}))
        settings.setdefault("OAUTH_ISSUER", issuer_setting(provider, issuer_form))
        instance = portal(LISTEN="127.0.0.1:%d" % port, PUBLIC_URL="http://127.0.0.1:%d" % port,
                          OAUTH_CLIENT_ID=CLIENT_ID, OAUTH_CLIENT_SECRET=CLIENT_SECRET, **settings)
        return instance, provider
    return start


@pytest.fixture
def running(signed_in_portal, docker_client, demo_image, tmp_path):
    """Factory: running(slug="tiny", user="anna.schmidt", **settings) -> (portal, client, row)
    with `user` signed in and their desktop of type `slug` running."""
    from flows import Client, wait_status
    from proxying import row_of

    def start(slug="tiny", user="anna.schmidt", **settings):
        portal, _ = signed_in_portal(**settings)
        client = Client(portal.url, user)
        client.post("/api/container/start", params={"desktop_type": slug})
        wait_status(client, slug, "running")
        return portal, client, row_of(tmp_path, "%s-%s" % (user, slug))
    return start


@pytest.fixture
def chromium(request):
    """Factory: chromium(language="de", **options) -> a headless Chromium WebDriver (quit
    afterwards; a failing test leaves a screenshot of each page it had open)."""
    import browser
    drivers = []

    def start(language="de", **options):
        try:
            driver = devtools.start_browser(language=language, **options)
        except devtools.BrowserUnavailable as error:
            pytest.fail(str(error), pytrace=False)
        drivers.append(driver)
        return driver

    yield start
    for number, driver in enumerate(drivers):
        try:
            if failed(request):
                path = browser.save_screenshot(driver, "FAILED-%s-%d" % (request.node.name, number))
                print("\n----- screenshot %s; browser log -----\n%s"
                      % (path, "\n".join(browser.browser_log(driver)[-30:])))
        finally:
            driver.quit()
