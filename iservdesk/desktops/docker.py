"""The Docker engine behind the Engine contract (engine.py); with swarm.py, which builds on
it, the only modules importing `docker`.

Docker errors and an unreachable engine (which the SDK surfaces as a requests
ConnectionError, not a docker error) become DesktopError subclasses here, with the
engine's own words in their detail (for the log) and never in what a browser sees; 404
and 409 on stop/remove count as done, because the container is already gone or going.

Each desktop publishes its port 6901 on 127.0.0.1 only, on a host port from the PortPool
(ports.py) that create() reserves and retries by itself. Desktops run on their own bridge
network with inter-container communication off (ICC_OPTION): Docker's default bridge
lets every container reach every other one, so one student's desktop could talk to
another's port 6901 directly. A container made before that network existed is moved
onto it when it is started again.
"""

import contextlib
import io
import logging
import tarfile
import threading

import docker
import docker.errors
import docker.utils
import gevent
import requests.exceptions

from .. import proxy
from ..errors import (DesktopError, DesktopUnreachable, EngineRefused, EngineUnreachable, NetworkUnsafe,
                      NoFreePort, PortTaken, PullFailed)
from .engine import HOME, Container, ContainerExists, Engine, FileStat, HomeFiles, Volume
from .ports import PortPool

log = logging.getLogger(__name__)

# A fixed API version: with version=None the SDK asks the engine at construction, which
# fails while the engine is down. 1.41 is docker.io 20.10 (bookworm); trixie's 26.1 accepts it.
API_VERSION = "1.41"
UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
ICC_OPTION = "com.docker.network.bridge.enable_icc"
READ_CHUNK = 256 * 1024  # bytes per read of a home's tar stream
# os.FileMode bits of what is neither file, folder nor link: device, fifo, socket, char
# device, irregular (the archive API's stat speaks Go).
GO_OTHER_KINDS = 1 << 26 | 1 << 25 | 1 << 24 | 1 << 21 | 1 << 19
PORT_ATTEMPTS = 5  # a port can be taken between our check and Docker's bind


class _PortTaken(Exception):
    """The reserved host port turned out to be in use: create() takes another."""


def _reason(error):
    """A one-line reason without the SDK's nested exception repr soup."""
    if isinstance(error, docker.errors.APIError) and error.explanation:
        text = str(error.explanation)
    else:
        text = str(error) or type(error).__name__
    text = text.splitlines()[0]
    if "No such file or directory" in text or "FileNotFoundError" in text:
        return "socket not found"
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text[:300]


class DockerEngine(Engine):
    """Desktops on one Docker engine. Cheap to create; each call is a request to the engine."""

    def __init__(self, url, timeout=10, port_range=(), network=None, network_labels=None):
        """`network`: the desktops' bridge network (made when missing, with
        `network_labels`); None keeps Docker's default bridge (only for engines that run
        no desktops, e.g. in `iservdesk check`)."""
        self.url = url
        self.client = docker.DockerClient(base_url=url, version=API_VERSION, timeout=timeout)
        self.ports = PortPool(port_range, self.held_ports)
        self.network = network
        self.network_labels = network_labels or {}
        # Docker does not refuse a second network of the same name when two creates race
        # (CheckDuplicate is best effort), and two networks of one name make every later
        # use of the name ambiguous: creates in this process take turns. (A gevent lock
        # once the portal has monkey-patched threading.)
        self.network_lock = threading.Lock()

    @contextlib.contextmanager
    def _translated(self, what, gone_is_fine=False):
        """Docker's and the SDK's errors as ours. With `gone_is_fine`, a 404 is swallowed."""
        try:
            yield
        except docker.errors.NotFound:
            if not gone_is_fine:
                raise EngineRefused(detail="Docker refused to %s: not found" % what) from None
        except UNREACHABLE as error:
            raise EngineUnreachable(detail="The Docker engine at %s does not answer: %s"
                                    % (self.url, _reason(error))) from None
        except docker.errors.DockerException as error:
            text = _reason(error)
            if isinstance(error, docker.errors.APIError) and error.status_code == 409 and what == "create":
                raise ContainerExists(text) from None
            if "port is already allocated" in text or "address already in use" in text:
                raise _PortTaken(text) from None
            raise EngineRefused(detail="Docker refused to %s: %s" % (what, text)) from None

    def _ask(self, what, function, *args, **kwargs):
        with self._translated(what):
            return function(*args, **kwargs)

    def ping(self):
        return self._ask("answer", self.client.version)["Version"]

    def close(self):
        self.client.close()

    @staticmethod
    def _container(attrs):
        """Container from `docker inspect` output or a list entry."""
        state = attrs.get("State")
        status = state.get("Status") if isinstance(state, dict) else attrs.get("State", "")
        config = attrs.get("Config") or {}
        labels = config.get("Labels") if config else None
        if labels is None:
            labels = attrs.get("Labels") or {}
        host_port = None
        bindings = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
        for binding_list in bindings.values():
            for binding in binding_list or []:
                if binding.get("HostPort"):
                    host_port = int(binding["HostPort"])
        if host_port is None:
            for port in attrs.get("Ports") or []:  # list entries carry Ports instead
                if port.get("PublicPort"):
                    host_port = int(port["PublicPort"])
        name = attrs.get("Name") or (attrs.get("Names") or [""])[0]
        environment = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
        return Container(id=attrs["Id"], name=name.lstrip("/"), state=status or "unknown",
                         labels=dict(labels), host_port=host_port, environment=environment)

    def list(self, labels):
        filters = {"label": ["%s=%s" % item for item in labels.items()]}
        entries = self._ask("list containers", self.client.api.containers, all=True, filters=filters)
        return [self._container(entry) for entry in entries]

    def held_ports(self):
        """Host ports that any container on the engine publishes or will publish when started."""
        ports = set()
        for entry in self._ask("list containers", self.client.api.containers, all=True):
            for port in entry.get("Ports") or []:
                if port.get("PublicPort"):
                    ports.add(int(port["PublicPort"]))
            if entry.get("State") != "running":
                # Stopped containers keep their bindings only in their configuration.
                container = self.inspect(entry["Id"])
                if container and container.host_port:
                    ports.add(container.host_port)
        return ports

    def inspect(self, container_id):
        with self._translated("inspect", gone_is_fine=True):
            return self._container(self.client.api.inspect_container(container_id))
        return None

    def has_image(self, image):
        with self._translated("inspect the image", gone_is_fine=True):
            self.client.api.inspect_image(image)
            return True
        return False

    def pull(self, image, progress):
        repository, tag = _split_image(image)
        # Per layer, a fraction done: downloading is 90 % of a layer's work, extracting 10 %.
        # Layers are announced before their sizes are known, so each layer weighs the same
        # and the percentage never goes backwards when a new layer's size shows up.
        layers = {}
        announced = False  # every layer is announced before the first one downloads
        try:
            stream = self.client.api.pull(repository, tag=tag, stream=True, decode=True)
            for event in stream:
                if "error" in event or "errorDetail" in event:
                    reason = event.get("error") or (event.get("errorDetail") or {}).get("message")
                    raise PullFailed(detail="pulling %s failed: %s" % (image, str(reason)[:300]))
                layer, status = event.get("id"), event.get("status", "")
                if not layer or status.startswith("Pulling from"):
                    continue
                detail = event.get("progressDetail") or {}
                fraction = {"Pulling fs layer": 0.0, "Waiting": 0.0, "Verifying Checksum": 0.9,
                            "Download complete": 0.9, "Pull complete": 1.0, "Already exists": 1.0}.get(status)
                if detail.get("total") and status in ("Downloading", "Extracting"):
                    share = detail.get("current", 0) / detail["total"]
                    fraction = 0.9 * share if status == "Downloading" else 0.9 + 0.1 * share
                if fraction is None:
                    continue
                layers[layer] = max(fraction, layers.get(layer, 0.0))
                announced = announced or status not in ("Pulling fs layer", "Waiting", "Already exists")
                if announced:
                    progress(int(100 * sum(layers.values()) / len(layers)))
        except UNREACHABLE as error:
            raise EngineUnreachable(detail="The Docker engine at %s does not answer: %s"
                                    % (self.url, _reason(error))) from None
        except docker.errors.DockerException as error:
            raise PullFailed(detail="pulling %s failed: %s" % (image, _reason(error))) from None
        if not self.has_image(image):
            raise PullFailed(detail="pulling %s ended without the image" % image)

    def reserve(self, memory="", node=""):
        return self.ports.reserve()  # the host's memory is MAX_DESKTOPS's business here

    def release(self, reservation):
        if reservation is not None:
            self.ports.release(reservation)

    def create(self, spec, reservation=None):
        self.ensure_network()
        port = reservation
        for attempt in range(PORT_ATTEMPTS):
            if port is None:
                port = self.ports.reserve()
            try:
                try:
                    container_id = self._create(spec, port)
                except _PortTaken:
                    log.warning("port %d was taken after all; trying another for %s", port, spec.name)
                    continue
                try:
                    return self.start(container_id)
                except (_PortTaken, PortTaken):
                    self.remove(container_id)
                    log.warning("port %d was taken after all; trying another for %s", port, spec.name)
                except DesktopError:
                    self.remove(container_id)
                    raise
            finally:
                if port != reservation:
                    self.ports.release(port)
                port = None
        raise NoFreePort(detail="no free port for %s after %d attempts" % (spec.name, PORT_ATTEMPTS))

    def _create(self, spec, port):
        api = self.client.api
        host_config = api.create_host_config(
            port_bindings={"%d/tcp" % spec.container_port: ("127.0.0.1", port)},
            shm_size=spec.shm_size, mem_limit=spec.memory or None,
            nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
            pids_limit=spec.pids or None, security_opt=["no-new-privileges"],
            binds={spec.home: {"bind": HOME, "mode": "rw"}},
            restart_policy={"Name": "no"}, init=False, network_mode=self.network)
        networking_config = None
        if self.network:
            networking_config = api.create_networking_config({self.network: api.create_endpoint_config()})
        created = self._ask("create", api.create_container, spec.image, name=spec.name,
                            environment=spec.environment, labels=spec.labels,
                            ports=[spec.container_port], host_config=host_config,
                            volumes=[HOME], networking_config=networking_config)
        return created["Id"]

    def start(self, container_id):
        """Start the container (moved onto the desktops' network first, if it was made before
        that network existed). Docker may report the port of a container stopped a moment
        ago as still taken: this retries for a few seconds. Returns its Container."""
        if self.network:
            self.ensure_network()
            moved = self._move_to_network(container_id)
            if moved:
                log.info("moved container %s onto the network %s", moved, self.network)
        for attempt in range(4):
            try:
                self._ask("start", self.client.api.start, container_id)
                break
            except _PortTaken as error:
                if attempt == 3:
                    raise PortTaken(detail="the port of container %s stays taken: %s"
                                    % (container_id[:12], error)) from None
                gevent.sleep(0.5 * (attempt + 1))
        container = self.inspect(container_id)
        if container is None:
            raise EngineRefused(detail="container %s vanished while starting" % container_id[:12])
        return container

    def stop(self, container_id, timeout=10):
        with self._translated("stop", gone_is_fine=True):
            self.client.api.stop(container_id, timeout=timeout)

    def remove(self, container_id):
        self._remove_container(container_id)

    def _remove_container(self, container_id):
        """Remove a container of this engine (a desktop's, or a helper's: on a Swarm, whose
        remove() is a service's, helpers are containers of the manager all the same)."""
        try:
            with self._translated("remove", gone_is_fine=True):
                self.client.api.remove_container(container_id, force=True)
        except EngineRefused as error:
            if "already in progress" not in error.detail:  # 409: removal already under way
                raise

    def events(self, labels):
        filters = {"type": ["container"], "label": ["%s=%s" % item for item in labels.items()]}
        stream = self._ask("stream events", self.client.api.events, decode=True, filters=filters)
        try:
            with self._translated("stream events"):
                for event in stream:
                    yield event.get("Action") or event.get("status"), event.get("id")
        except requests.exceptions.RequestException as error:
            raise EngineUnreachable(detail="the event stream broke: %s" % _reason(error)) from None
        finally:
            stream.close()

    # -- homes and files --

    @staticmethod
    def _volume(attrs):
        return Volume(name=attrs["Name"], labels=dict(attrs.get("Labels") or {}),
                      created_at=attrs.get("CreatedAt") or "")

    def home(self, name):
        with self._translated("inspect a volume", gone_is_fine=True):
            return self._volume(self.client.api.inspect_volume(name))
        return None

    def homes(self, prefix):
        # The engine's name filter matches anywhere in the name: keep the prefixed ones.
        answer = self._ask("list volumes", self.client.api.volumes, filters={"name": prefix})
        return sorted((self._volume(attrs) for attrs in (answer or {}).get("Volumes") or []
                       if attrs["Name"].startswith(prefix)), key=lambda volume: volume.name)

    def create_home(self, name, labels):
        # Docker answers a create of an existing local volume with that volume, unchanged.
        return self._volume(self._ask("create a volume", self.client.api.create_volume,
                                      name=name, labels=labels))

    @contextlib.contextmanager
    def open_home(self, name, image, labels, writable=False):
        api = self.client.api
        host_config = api.create_host_config(binds={name: {"bind": HOME, "mode": "rw" if writable else "ro"}},
                                             network_mode="none", security_opt=["no-new-privileges"])
        helper = self._ask("create a reader of a home", api.create_container, image, command=["true"],
                           host_config=host_config, volumes=[HOME], labels=labels,
                           network_disabled=True)["Id"]
        try:
            yield _DockerHomeFiles(self, helper)
        finally:
            self._remove_container(helper)

    def run_in_home(self, name, image, labels, argv, writable=False, timeout=120):
        api = self.client.api
        host_config = api.create_host_config(
            binds={name: {"bind": HOME, "mode": "rw" if writable else "ro"}}, network_mode="none",
            security_opt=["no-new-privileges"], cap_drop=["ALL"], read_only=True,
            cap_add=["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER"], mem_limit="256m", pids_limit=64)
        helper = self._ask("create a helper in a home", api.create_container, image, entrypoint=argv[:1],
                           command=argv[1:], user="0", working_dir=HOME, host_config=host_config,
                           volumes=[HOME], labels=labels, network_disabled=True)["Id"]
        try:
            self._ask("start a helper in a home", api.start, helper)
            try:
                code = api.wait(helper, timeout=timeout)["StatusCode"]
            except UNREACHABLE as error:
                if isinstance(error, requests.exceptions.ConnectionError) and "timed out" not in str(error).lower():
                    raise EngineUnreachable(detail=_reason(error)) from None
                raise EngineRefused(detail="%s took longer than %d s" % (argv[0], timeout)) from None
            output = self._ask("read a helper's output", api.logs, helper, stdout=True, stderr=False)
            if code != 0:
                errors = self._ask("read a helper's errors", api.logs, helper, stdout=False, stderr=True)
                raise EngineRefused(detail="%s exited with %s: %s" % (
                    argv[0], code, errors.decode("utf-8", "replace").strip()[:300]))
            return output
        finally:
            self._remove_container(helper)

    def container_home(self, container_id):
        with self._translated("read a container's home"):
            stream, _ = self.client.api.get_archive(container_id, HOME, chunk_size=READ_CHUNK)
        return stream

    def remove_home(self, name):
        with self._translated("remove a volume", gone_is_fine=True):
            self.client.api.remove_volume(name)

    def write_file(self, container_id, path, data, mode=0o644):
        folder, _, name = path.rstrip("/").rpartition("/")
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, 1000, 1000
            tar.addfile(info, io.BytesIO(data))
        if not self._ask("write a file", self.client.api.put_archive, container_id, folder or "/",
                         archive.getvalue()):
            raise EngineRefused(detail="Docker did not take the file %s" % path)

    def read_file(self, container_id, path):
        with self._translated("read a file", gone_is_fine=True):
            stream, _ = self.client.api.get_archive(container_id, path)
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream)), mode="r") as tar:
                member = tar.next()
                if member is None or not member.isfile():
                    return None
                return tar.extractfile(member).read()
        return None

    def screenshot(self, target, secret, width, height):
        try:
            return proxy.screenshot(target, secret, width, height)
        except proxy.UpstreamError as error:
            raise DesktopUnreachable(detail="the desktop at %s:%s: %s" % (*proxy.endpoint(target), error)) from None

    # -- the desktops' network --

    def _network_attrs(self, name):
        with self._translated("inspect a network", gone_is_fine=True):
            return self.client.api.inspect_network(name)
        return None

    def ensure_network(self):
        """Create the desktops' bridge network with inter-container traffic off, unless it
        exists. An existing network is accepted when it is a bridge with that option off,
        labelled ours or not: an operator may have made it with a subnet that does not clash
        with the school's LAN. One that lets containers talk is refused (NetworkUnsafe)."""
        if not self.network:
            return None
        name = self.network
        with self.network_lock:
            attrs = self._network_attrs(name)
            if attrs is None:
                try:
                    with self._translated("create a network"):
                        self.client.api.create_network(name, driver="bridge", options={ICC_OPTION: "false"},
                                                       labels=self.network_labels, check_duplicate=True)
                    log.info("created the desktops' network %s (bridge, no traffic between containers)",
                             name)
                except EngineRefused as error:
                    if "already exists" not in error.detail:  # another process created it meanwhile
                        raise
                attrs = self._network_attrs(name) or {}
        if attrs.get("Driver") != "bridge" or (attrs.get("Options") or {}).get(ICC_OPTION) != "false":
            log.error("the Docker network %s is not a bridge with %s=false, so desktops on it could "
                      "reach each other; no desktop starts on it. Remove it (`docker network rm %s`, "
                      "iservdesk makes it again) or make it yourself with `docker network create -o "
                      "%s=false %s`.", name, ICC_OPTION, name, ICC_OPTION, name)
            raise NetworkUnsafe(detail="network %s lets containers reach each other" % name)
        return attrs["Id"]

    def _move_to_network(self, container_id):
        """Join the stopped container to the desktops' network alone; its name when that
        changed anything, else None."""
        api = self.client.api
        attrs = self._ask("inspect", api.inspect_container, container_id)
        joined = set(((attrs.get("NetworkSettings") or {}).get("Networks") or {}))
        if (attrs.get("State") or {}).get("Running"):
            return None  # only a stopped container can be moved without cutting its viewers
        for other in sorted(joined - {self.network}):
            with self._translated("disconnect from a network", gone_is_fine=True):
                api.disconnect_container_from_network(container_id, other, force=True)
        if self.network not in joined:
            self._ask("connect to a network", api.connect_container_to_network, container_id, self.network)
        return attrs["Name"].lstrip("/") if joined != {self.network} else None


class _DockerHomeFiles(HomeFiles):
    """A home through the archive API of a container that is never started (open_home)."""

    def __init__(self, engine, helper):
        self.engine = engine
        self.helper = helper

    def _path(self, path):
        return HOME + ("/" + path if path else "")

    def stat(self, path):
        api = self.engine.client.api
        with self.engine._translated("look at a file in a home", gone_is_fine=True):
            # The SDK reads a path's stat only with its content (get_archive); HEAD is the stat.
            answer = api.head(api._url("/containers/{0}/archive", self.helper), params={"path": self._path(path)})
            api._raise_for_status(answer)
            found = docker.utils.decode_json_header(answer.headers["X-Docker-Container-Path-Stat"])
            mode = found.get("mode", 0)
            # Go's os.FileMode: the kind is in the high bits.
            kind = ("link" if mode & (1 << 27) else "folder" if mode & (1 << 31)
                    else "other" if mode & GO_OTHER_KINDS else "file")
            return FileStat(name=found.get("name", ""), kind=kind, size=int(found.get("size", 0)),
                            mtime=found.get("mtime", ""))
        return None

    def read(self, path):
        with self.engine._translated("read a home"):
            stream, _ = self.engine.client.api.get_archive(self.helper, self._path(path), chunk_size=READ_CHUNK)
        return stream

    def write(self, folder, chunks):
        # Sent chunked: an empty chunk would end the body there (HTTP/1.1 chunked encoding).
        chunks = (chunk for chunk in chunks if chunk)
        if not self.engine._ask("write into a home", self.engine.client.api.put_archive, self.helper,
                                self._path(folder), chunks):
            raise EngineRefused(detail="Docker did not take the files for %s" % (folder or "the home"))


def _split_image(image):
    """('registry:5000/repo', 'tag') from 'registry:5000/repo:tag'; tag defaults to latest."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, "latest"
    return name, tag
