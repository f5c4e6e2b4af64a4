"""The Docker engine, seen through the docker SDK: the only module importing `docker`.

DockerSpawner implements the Spawner contract (desktops/__init__.py). Docker errors and an
unreachable engine (which the SDK surfaces as a requests ConnectionError, not a docker
error) become DesktopError and its subclasses here; 404 and 409 on stop/remove count as
done, because the container is already gone or going.

Desktops are created on their own bridge network with inter-container communication off
(ICC_OPTION): Docker's default bridge lets every container reach every other one, so one
student's desktop could talk to another's port 6901 directly. Ports are published on
127.0.0.1 only, so the portal on the host reaches each desktop, and no desktop reaches
another through the host either.
"""

import logging
import threading

import docker
import docker.errors
import requests.exceptions

from ..errors import DesktopError
from . import ContainerInfo, NameTaken, PortTaken, Spawner, VolumeInfo

log = logging.getLogger(__name__)

# A fixed API version: with version=None the SDK asks the engine at construction, which
# fails while the engine is down. 1.41 is docker.io 20.10 (bookworm); trixie's 26.1 accepts it.
API_VERSION = "1.41"
UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
ICC_OPTION = "com.docker.network.bridge.enable_icc"


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


class DockerSpawner(Spawner):
    """Containers on one Docker engine. Cheap to create; each call is a request to the engine."""

    def __init__(self, url, timeout=10):
        self.url = url
        self.client = docker.DockerClient(base_url=url, version=API_VERSION, timeout=timeout)
        # Docker does not refuse a second network of the same name when two creates race
        # (CheckDuplicate is best effort), and two networks of one name make every later
        # use of the name ambiguous: creates in this process take turns. (A gevent lock
        # once the portal has monkey-patched threading.)
        self.network_lock = threading.Lock()

    def _call(self, what, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except UNREACHABLE as error:
            raise DesktopError("The Docker engine at %s does not answer: %s" % (self.url, _reason(error)),
                               code="docker_unreachable") from None
        except docker.errors.DockerException as error:
            if isinstance(error, docker.errors.APIError) and error.status_code == 409 and what == "create":
                raise NameTaken(_reason(error)) from None
            text = _reason(error)
            if "port is already allocated" in text or "address already in use" in text:
                raise PortTaken(text) from None
            raise DesktopError("Docker refused to %s: %s" % (what, text), code="docker_error") from None

    def ping(self):
        return self._call("answer", self.client.version)["Version"]

    def close(self):
        self.client.close()

    @staticmethod
    def _info(attrs):
        """ContainerInfo from `docker inspect` output or a list entry."""
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
        return ContainerInfo(id=attrs["Id"], name=name.lstrip("/"), state=status or "unknown",
                             labels=dict(labels), host_port=host_port, environment=environment)

    def list(self, labels):
        """Every container (any state) carrying all of `labels` (a dict)."""
        filters = {"label": ["%s=%s" % item for item in labels.items()]}
        entries = self._call("list containers", self.client.api.containers, all=True, filters=filters)
        return [self._info(entry) for entry in entries]

    def held_ports(self):
        """Host ports that any container on the engine publishes or will publish when started."""
        ports = set()
        for entry in self._call("list containers", self.client.api.containers, all=True):
            for port in entry.get("Ports") or []:
                if port.get("PublicPort"):
                    ports.add(int(port["PublicPort"]))
            if entry.get("State") != "running":
                # Stopped containers keep their bindings only in their configuration.
                info = self.poll(entry["Id"])
                if info and info.host_port:
                    ports.add(info.host_port)
        return ports

    def poll(self, container_id):
        try:
            return self._info(self.client.api.inspect_container(container_id))
        except docker.errors.NotFound:
            return None
        except UNREACHABLE + (docker.errors.DockerException,) as error:
            return self._call("inspect", _reraise, error)

    def has_image(self, image):
        try:
            self.client.api.inspect_image(image)
            return True
        except docker.errors.NotFound:
            return False
        except UNREACHABLE + (docker.errors.DockerException,) as error:
            return self._call("inspect the image", _reraise, error)

    def pull(self, image, progress):
        """Pull `image`, calling progress(percent or None) as layers arrive. Blocks (cooperatively)."""
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
                    raise DesktopError("Pulling %s failed: %s" % (image, str(reason)[:300]),
                                       code="pull_failed")
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
            self._call("pull", _reraise, error)
        except docker.errors.DockerException as error:
            raise DesktopError("Pulling %s failed: %s" % (image, _reason(error)), code="pull_failed") from None
        if not self.has_image(image):
            raise DesktopError("Pulling %s ended without the image." % image, code="pull_failed")

    def create(self, spec):
        """Create and start a container from a ContainerSpec; returns its id.

        Raises NameTaken (a container of that name exists), PortTaken (the host port is in
        use after all), DesktopError otherwise. A container created but not started is
        removed again, so a failed start leaves nothing behind.
        """
        api = self.client.api
        host_config = api.create_host_config(
            port_bindings={"%d/tcp" % spec.container_port: ("127.0.0.1", spec.host_port)},
            shm_size=spec.shm_size, mem_limit=spec.memory or None,
            nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
            pids_limit=spec.pids or None, security_opt=["no-new-privileges"],
            binds={spec.volume: {"bind": "/home/kasm-user", "mode": "rw"}},
            restart_policy={"Name": "no"}, init=False, network_mode=spec.network or None)
        networking_config = None
        if spec.network:
            networking_config = api.create_networking_config({spec.network: api.create_endpoint_config()})
        created = self._call("create", api.create_container, spec.image, name=spec.name,
                             environment=spec.environment, labels=spec.labels,
                             ports=[spec.container_port], host_config=host_config,
                             volumes=["/home/kasm-user"], networking_config=networking_config)
        container_id = created["Id"]
        try:
            self.start(container_id)
        except DesktopError:
            self.remove(container_id)
            raise
        return container_id

    @staticmethod
    def _volume_info(attrs):
        return VolumeInfo(name=attrs["Name"], labels=dict(attrs.get("Labels") or {}),
                          created_at=attrs.get("CreatedAt") or "")

    def volume(self, name):
        try:
            return self._volume_info(self.client.api.inspect_volume(name))
        except docker.errors.NotFound:
            return None
        except UNREACHABLE + (docker.errors.DockerException,) as error:
            return self._call("inspect a volume", _reraise, error)

    def volumes(self, prefix):
        # The engine's name filter matches anywhere in the name: keep the prefixed ones.
        answer = self._call("list volumes", self.client.api.volumes, filters={"name": prefix})
        return sorted((self._volume_info(attrs) for attrs in (answer or {}).get("Volumes") or []
                       if attrs["Name"].startswith(prefix)), key=lambda info: info.name)

    def create_volume(self, name, labels):
        """Create the named volume with `labels`; an existing one is returned unchanged (Docker
        answers a create of an existing local volume with that volume)."""
        return self._volume_info(self._call("create a volume", self.client.api.create_volume,
                                            name=name, labels=labels))

    def _network(self, name):
        try:
            return self.client.api.inspect_network(name)
        except docker.errors.NotFound:
            return None
        except UNREACHABLE + (docker.errors.DockerException,) as error:
            return self._call("inspect a network", _reraise, error)

    def ensure_network(self, name, labels):
        """Create the desktops' bridge network with inter-container traffic off, unless it
        exists. An existing network is accepted when it is a bridge with that option off,
        labelled ours or not: an operator may have made it with a subnet that does not clash
        with the school's LAN. One that lets containers talk is refused (DesktopError)."""
        with self.network_lock:
            attrs = self._network(name)
            if attrs is None:
                try:
                    self.client.api.create_network(name, driver="bridge", options={ICC_OPTION: "false"},
                                                   labels=labels, check_duplicate=True)
                    log.info("created the desktops' network %s (bridge, no traffic between containers)",
                             name)
                except docker.errors.APIError as error:
                    if error.status_code != 409:  # 409: another process created it meanwhile
                        self._call("create a network", _reraise, error)
                except UNREACHABLE + (docker.errors.DockerException,) as error:
                    self._call("create a network", _reraise, error)
                attrs = self._network(name) or {}
        if attrs.get("Driver") != "bridge" or (attrs.get("Options") or {}).get(ICC_OPTION) != "false":
            log.error("the Docker network %s is not a bridge with %s=false, so desktops on it could "
                      "reach each other; no desktop starts on it. Remove it (`docker network rm %s`, "
                      "iservdesk makes it again) or make it yourself with `docker network create -o "
                      "%s=false %s`.", name, ICC_OPTION, name, ICC_OPTION, name)
            raise DesktopError("The network for desktops is not set up safely. Please tell your IT admin.",
                               code="network_unsafe")
        return attrs["Id"]

    def move_to_network(self, container_id, network):
        """Join the stopped container to `network` alone; True when that changed anything."""
        api = self.client.api
        attrs = self._call("inspect", api.inspect_container, container_id)
        joined = set(((attrs.get("NetworkSettings") or {}).get("Networks") or {}))
        for other in sorted(joined - {network}):
            try:
                api.disconnect_container_from_network(container_id, other, force=True)
            except docker.errors.NotFound:
                pass  # 404: that network is gone already
            except UNREACHABLE + (docker.errors.DockerException,) as error:
                self._call("disconnect from a network", _reraise, error)
        if network not in joined:
            self._call("connect to a network", api.connect_container_to_network, container_id, network)
        return joined != {network}

    def start(self, container_id):
        self._call("start", self.client.api.start, container_id)

    def stop(self, container_id, timeout=10):
        try:
            self.client.api.stop(container_id, timeout=timeout)
        except docker.errors.NotFound:
            pass  # gone already: stopped enough
        except UNREACHABLE + (docker.errors.DockerException,) as error:
            self._call("stop", _reraise, error)

    def remove(self, container_id):
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass  # 404: already removed
        except docker.errors.APIError as error:
            if error.status_code != 409:  # 409: removal already in progress
                self._call("remove", _reraise, error)
        except UNREACHABLE + (docker.errors.DockerException,) as error:
            self._call("remove", _reraise, error)

    def events(self, labels, since=None):
        """Yield (action, container id) for container events carrying all `labels`.

        Blocks between events; ends (or raises DesktopError) when the engine goes away.
        """
        filters = {"type": ["container"], "label": ["%s=%s" % item for item in labels.items()]}
        stream = self._call("stream events", self.client.api.events, decode=True, filters=filters,
                            since=since)
        try:
            for event in stream:
                yield event.get("Action") or event.get("status"), event.get("id")
        except UNREACHABLE + (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            self._call("stream events", _reraise, error)
        finally:
            stream.close()


def _reraise(error):
    raise error


def _split_image(image):
    """('registry:5000/repo', 'tag') from 'registry:5000/repo:tag'; tag defaults to latest."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, "latest"
    return name, tag

