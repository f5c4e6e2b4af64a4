"""Desktops on a Docker Swarm (DOCKER_BACKEND=swarm) behind the Engine contract.

The portal runs on a manager node and talks to the Swarm through that node's engine. Each
desktop is a service with one replica; its "container id" is the service id. Stop scales
it to 0 and start back to 1, so a stopped desktop keeps its spec, its labels, its secrets
and its placement. The catalog's memory is the task's limit and its reservation, which
the Swarm accounts per node; reserve() refuses a start at once (NoRoom, 429) when no
node that may take the desktop has that much unreserved.

Homes are volumes on the node that first ran the desktop (Docker's local driver), so a
new desktop is placed by place() (the ready, active node with the most memory
unreserved) and pinned there from its first task on by a placement constraint: left to
the Swarm, a task of a node that went down would be started again elsewhere, on an empty
home. The lifecycle records the node (db.HomeNode) and every later desktop with the home
is pinned there too (DesktopSpec.node). The manager cannot open a
volume on another node, so the file browser, hand-outs and home sizes are not offered
then (HomesElsewhere, with why). With HOME_VOLUME_DRIVER (shared storage, e.g. the local
driver with NFS options) every node and the manager mount the same home: desktops go
wherever the Swarm places them, and the portal opens homes through the manager's engine
as on one host. See README "Docker Swarm".

Each desktop publishes port 6901 in host mode on its node, on a port of HOST_PORT_RANGE
that no other service of the Swarm holds; the proxy connects to the node's address.
Every node must drop connections to that range from anywhere but the portal (a
DOCKER-USER rule) and give the desktops' network no traffic between containers (a
config-only network with ICC off that the Swarm network is made from): the node setup in
the README does both; `iservdesk check` looks at what the manager can see.
"""

import dataclasses
import hashlib
import logging
import re
import time

import docker.utils
import gevent

from ..errors import DesktopError, EngineRefused, HomesElsewhere, NodeUnavailable, NoRoom, StartFailed
from .docker import DockerEngine, _split_image
from . import DESKTOP, LABEL
from .engine import HOME, Container, ContainerExists

log = logging.getLogger(__name__)

# Task states before the container runs, and after it ran (Docker's swarm API words).
STARTING = {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
SCHEDULE_WAIT = 4.0  # seconds the scheduler gets to find a node before a start is refused
NO_NODE = ("no suitable node", "insufficient resources")
STOP_GRACE = 10  # seconds a desktop's processes get to end on stop
# What every node of a Swarm listens on itself (TCP): managers 2377, gossip 7946. The
# default HOST_PORT_RANGE (7000-8000) holds 7946: a desktop published there fails to start.
SWARM_PORTS = (2377, 7946)


NAME = LABEL + "name"  # a service's label: the container name it stands for


def service_name(name):
    """A Swarm service name for the container name `name`: services must be DNS labels
    (letters, digits, "-", at most 63), account names may hold "." and "_". Where that
    changes the name, a short hash of it keeps "a.b" and "a-b" apart."""
    plain = re.sub(r"[^A-Za-z0-9-]", "-", name)
    if plain == name and len(name) <= 63:
        return name
    return "%s-%s" % (plain[:54].rstrip("-"), hashlib.sha256(name.encode()).hexdigest()[:8])


@dataclasses.dataclass(frozen=True)
class Node:
    """A Swarm node, for placement and the admin panel."""

    id: str
    hostname: str
    address: str
    state: str  # ready, down, unknown, disconnected
    availability: str  # active, pause, drain
    manager: bool
    memory: int  # bytes the node has
    reserved: int  # bytes reserved by tasks that run or are to run there
    desktops: tuple  # the desktops (label de.iservdesk.desktop) with a task there

    @property
    def usable(self):
        return self.state == "ready" and self.availability == "active"

    @property
    def free(self):
        return max(0, self.memory - self.reserved)


def _bytes(size):
    return docker.utils.parse_bytes(size) if size else 0


class SwarmEngine(DockerEngine):
    """Desktops as Swarm services, through a manager's engine."""

    def __init__(self, url, timeout=10, port_range=(), network=None, network_labels=None,
                 home_driver="", home_options=None, helper_image=""):
        """`network`: the desktops' Swarm network, made from the config-only network
        `<network>-config` that every node has (README: node setup). `home_driver` and
        `home_options` (HOME_VOLUME_*): homes on shared storage, reached the same from every
        node and from the manager; `helper_image` runs the helpers that make and remove
        their folders there."""
        super().__init__(url, timeout=timeout, port_range=port_range, network=network,
                         network_labels=network_labels)
        self.home_driver = home_driver
        self.home_options = dict(home_options or {})
        self.helper_image = helper_image
        # reservation -> (node id, memory bytes) of starts whose service is not made yet: the
        # Swarm counts a service's reservation from its task on.
        self.pending = {}

    @property
    def shared(self):
        """Homes on shared storage: any node may run any desktop, the portal opens homes itself."""
        return bool(self.home_driver)

    @property
    def homes_reachable(self):
        return self.shared

    @property
    def pins_homes(self):
        return not self.shared

    # -- what the Swarm has --

    def nodes(self, labels=None, usage=True):
        """[Node] of the Swarm, by hostname; with `labels`, `desktops` names the services
        carrying them that have a task meant to run on the node. Without `usage`, reserved
        and desktops stay empty and the Swarm's tasks are not listed."""
        nodes = self._ask("list the Swarm's nodes", self.client.api.nodes)
        tasks = self._ask("list tasks", self.client.api.tasks, filters={"desired-state": "running"}) if usage else []
        services = {}
        if labels is not None and usage:
            services = {service["ID"]: (service["Spec"].get("Labels") or {}).get(DESKTOP, service["Spec"]["Name"])
                        for service in self._services(labels)}
        reserved, desktops = {}, {}
        for task in tasks:
            node = task.get("NodeID")
            if not node or task["Status"]["State"] in ("complete", "failed", "shutdown", "rejected", "orphaned"):
                continue
            memory = (((task.get("Spec") or {}).get("Resources") or {}).get("Reservations") or {}).get("MemoryBytes")
            reserved[node] = reserved.get(node, 0) + (memory or 0)
            if task.get("ServiceID") in services:
                desktops.setdefault(node, []).append(services[task["ServiceID"]])
        found = []
        for attrs in nodes:
            description = attrs.get("Description") or {}
            status = attrs.get("Status") or {}
            address = status.get("Addr") or ""
            if address in ("", "0.0.0.0"):  # a manager may say so; its advertised address is right
                address = ((attrs.get("ManagerStatus") or {}).get("Addr") or "").rpartition(":")[0]
            found.append(Node(
                id=attrs["ID"], hostname=description.get("Hostname", ""), address=address,
                state=status.get("State", "unknown"), availability=(attrs.get("Spec") or {}).get(
                    "Availability", "active"), manager="ManagerStatus" in attrs,
                memory=int((description.get("Resources") or {}).get("MemoryBytes") or 0),
                reserved=reserved.get(attrs["ID"], 0), desktops=tuple(sorted(desktops.get(attrs["ID"], ())))))
        return sorted(found, key=lambda node: node.hostname)

    def _services(self, labels=None):
        filters = {"label": ["%s=%s" % item for item in labels.items()]} if labels else None
        return self._ask("list services", self.client.api.services, filters=filters)

    def _container(self, service, tasks, nodes):
        """A Container from a service, its tasks and the nodes ({id: Node})."""
        spec = service["Spec"]
        template = spec.get("TaskTemplate") or {}
        container_spec = template.get("ContainerSpec") or {}
        replicas = ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1)
        state = ""
        port = next((int(item["PublishedPort"]) for item in (spec.get("EndpointSpec") or {}).get("Ports") or []
                     if item.get("PublishedPort")), None)
        tasks = sorted(tasks, key=lambda task: (task.get("Version") or {}).get("Index", 0))
        # The newest task that is meant to run says where and how the desktop is. When its
        # node stops answering, the Swarm wants it shut down (no restart: a new task could
        # only wait for that node, the home's) but cannot tell it: it may run on, unseen.
        current = [task for task in tasks if task.get("DesiredState") == "running"]
        task = current[-1] if current else None
        newest = tasks[-1] if tasks else None
        away = nodes.get(newest.get("NodeID")) if newest else None
        if replicas and away is not None and away.state != "ready" \
                and newest["Status"]["State"] in STARTING | {"running"}:
            task, state = newest, "lost"
        node = nodes.get(task.get("NodeID")) if task else None
        if replicas == 0 or task is None:
            state = "exited" if replicas == 0 else "created"
        elif state != "lost":
            task_state = task["Status"]["State"]
            if node is not None and node.state != "ready":
                state = "lost"
            elif task_state == "running":
                state = "running"
            elif task_state in STARTING:
                state = "created"
            else:
                state = "exited"
        environment = dict(item.split("=", 1) for item in container_spec.get("Env") or [] if "=" in item)
        return Container(id=service["ID"], name=(spec.get("Labels") or {}).get(NAME, spec["Name"]), state=state,
                         labels=dict(spec.get("Labels") or {}), host_port=port, environment=environment,
                         address=node.address if node else "", node=node.id if node else "",
                         node_name=node.hostname if node else "")

    def _nodes_by_id(self):
        """Where each node is and whether it answers: what a Container needs of it."""
        return {node.id: node for node in self.nodes(usage=False)}

    def list(self, labels):
        services = self._services(labels)
        if not services:
            return []
        tasks = self._ask("list tasks", self.client.api.tasks)
        by_service = {}
        for task in tasks:
            by_service.setdefault(task.get("ServiceID"), []).append(task)
        nodes = self._nodes_by_id()
        return [self._container(service, by_service.get(service["ID"], []), nodes) for service in services]

    def inspect(self, container_id):
        with self._translated("inspect a service", gone_is_fine=True):
            service = self.client.api.inspect_service(container_id)
            tasks = self.client.api.tasks(filters={"service": service["ID"]})
            return self._container(service, tasks, self._nodes_by_id())
        return None

    def held_ports(self):
        ports = set(SWARM_PORTS)
        for service in self._services():
            for item in (service["Spec"].get("EndpointSpec") or {}).get("Ports") or []:
                if item.get("PublishedPort"):
                    ports.add(int(item["PublishedPort"]))
        return ports

    # -- capacity --

    def place(self, memory="", node=""):
        """The node for a desktop that reserves `memory` (on `node` only, if given): the ready
        and active one with the most memory unreserved, counting the starts of this process
        whose service is not made yet. Raises NodeUnavailable when `node` is not ready and
        active, NoRoom when no candidate has `memory` left."""
        needed = _bytes(memory)
        nodes = self.nodes()
        if node:
            home = next((found for found in nodes if found.id == node), None)
            if home is None or not home.usable:
                log.warning("the node %s that holds a home is %s", home.hostname if home else node,
                            "%s and %s" % (home.state, home.availability) if home else "gone")
                raise NodeUnavailable(detail="the home's node %s is not ready and active" % node)
        candidates = [found for found in nodes if found.usable and (not node or found.id == node)]
        waiting = {}
        for chosen, amount in self.pending.values():
            waiting[chosen] = waiting.get(chosen, 0) + amount
        best = max(candidates, key=lambda found: found.free - waiting.get(found.id, 0), default=None)
        if best is None or best.free - waiting.get(best.id, 0) < needed:
            log.warning("no node of the Swarm can take %s more (%s)", memory or "a desktop", ", ".join(
                "%s: %d MiB unreserved" % (found.hostname, found.free >> 20) for found in candidates)
                or "no node is ready and active")
            raise NoRoom(detail="no node can reserve %s" % (memory or "a desktop"))
        return best.id, needed

    def reserve(self, memory="", node=""):
        port = self.ports.reserve()
        try:
            node, needed = self.place(memory, node)
        except BaseException:
            self.ports.release(port)
            raise
        reservation = (port, needed, node)
        self.pending[reservation] = (node, needed)
        return reservation

    def check_room(self, memory="", node=""):
        self.place(memory, node)

    def release(self, reservation):
        if reservation is not None:
            self.pending.pop(reservation, None)
            self.ports.release(reservation[0])

    # -- lifecycle --

    def create(self, spec, reservation=None):
        self.ensure_network()
        held = reservation or self.reserve(spec.memory, spec.node)
        try:
            port, memory, node = held
            node = spec.node or node
            container_spec = {
                "Image": self._reference(spec.image), "Labels": spec.labels,
                "Env": ["%s=%s" % item for item in spec.environment.items()],
                "Mounts": [{"Type": "volume", "Source": spec.home, "Target": HOME,
                            "VolumeOptions": {"Labels": spec.labels, **self._driver(spec.home)}},
                           {"Type": "tmpfs", "Target": "/dev/shm",
                            "TmpfsOptions": {"SizeBytes": _bytes(spec.shm_size)}}],
                "StopGracePeriod": STOP_GRACE * 10 ** 9,
            }
            resources = {"Limits": {}, "Reservations": {}}
            if memory:
                resources["Limits"]["MemoryBytes"] = resources["Reservations"]["MemoryBytes"] = memory
            if spec.cpus:
                resources["Limits"]["NanoCPUs"] = int(spec.cpus * 1e9)
            if spec.pids:
                resources["Limits"]["Pids"] = spec.pids
            template = {"ContainerSpec": container_spec, "Resources": resources,
                        "RestartPolicy": {"Condition": "none"},
                        # Pinned from the start: the home is made on that node, and stays there.
                        # Shared homes: the Swarm places it (by reservations, spread).
                        "Placement": {"Constraints": [] if self.shared else ["node.id==%s" % node]},
                        "Networks": [{"Target": self.network}] if self.network else []}
            endpoint = {"Mode": "dnsrr", "Ports": [{"Protocol": "tcp", "TargetPort": spec.container_port,
                                                    "PublishedPort": port, "PublishMode": "host"}]}
            try:
                created = self._ask("create", self.client.api.create_service, template,
                                    name=service_name(spec.name), labels={**spec.labels, NAME: spec.name},
                                    mode={"Replicated": {"Replicas": 1}},
                                    endpoint_spec=endpoint)
            except EngineRefused as error:
                if "name conflicts" in error.detail or "already exists" in error.detail:
                    raise ContainerExists(spec.name) from None
                raise
            service_id = created["ID"]
            self.pending.pop(held, None)
        finally:
            if reservation is None:
                self.release(held)
        try:
            return self._scheduled(service_id, spec.name)
        except DesktopError:
            self.remove(service_id)
            raise

    def _reference(self, image):
        """The image as the nodes should run it: by digest (repo@sha256:..., as `docker
        service create` pins it), so every node runs the same image and none asks the
        registry for a tag at each start; an image without a registry digest (built or
        loaded here) by its id, which `docker save | docker load` keeps. Unchanged when the
        manager does not have the image."""
        with self._translated("inspect the image", gone_is_fine=True):
            attrs = self.client.api.inspect_image(image)
            repository = _split_image(image.partition("@")[0])[0]
            digests = attrs.get("RepoDigests") or []
            return next((digest for digest in digests if digest.partition("@")[0] == repository),
                        digests[0] if digests else attrs["Id"])
        return image

    def _scheduled(self, service_id, name):
        """Wait until the Swarm has put the service's task on a node; its Container.
        Raises NoRoom when no node can take it, StartFailed when the node refused it."""
        deadline = time.monotonic() + SCHEDULE_WAIT
        while True:
            tasks = self._ask("list tasks", self.client.api.tasks, filters={"service": service_id})
            running = [task for task in tasks if task.get("DesiredState") == "running"]
            task = max(running, key=lambda task: (task.get("Version") or {}).get("Index", 0), default=None)
            if task is not None:
                status = task["Status"]
                error = status.get("Err") or ""
                if task.get("NodeID") and status["State"] not in ("new", "allocated", "pending"):
                    if status["State"] in ("failed", "rejected"):
                        raise StartFailed(detail="the Swarm could not run %s: %s" % (name, error[:300]))
                    break
                if any(words in error for words in NO_NODE) and time.monotonic() > deadline:
                    log.warning("no node can take %s: %s", name, error)
                    raise NoRoom(detail="no node can take %s: %s" % (name, error[:300]))
            if time.monotonic() > deadline + SCHEDULE_WAIT:
                break  # scheduled but slow: the lifecycle waits for readiness
            gevent.sleep(0.2)
        container = self.inspect(service_id)
        if container is None:
            raise EngineRefused(detail="service %s vanished while starting" % name)
        return container

    def _scale(self, service_id, replicas):
        with self._translated("scale a service", gone_is_fine=True):
            service = self.client.api.inspect_service(service_id)
            spec = service["Spec"]
            placement = spec["TaskTemplate"].setdefault("Placement", {})
            if not placement.get("Constraints") and not self.shared:
                # Made without a pin (a new home): from now on it runs where its home is.
                tasks = self.client.api.tasks(filters={"service": service_id})
                newest = max(tasks, key=lambda task: (task.get("Version") or {}).get("Index", 0), default=None)
                if newest is not None and newest.get("NodeID"):
                    placement["Constraints"] = ["node.id==%s" % newest["NodeID"]]
            if replicas:
                # With RestartPolicy none the orchestrator makes no task for a slot whose
                # task ended (scaled to 0 before): a forced update does.
                spec["TaskTemplate"]["ForceUpdate"] = spec["TaskTemplate"].get("ForceUpdate", 0) + 1
            self.client.api.update_service(service_id, service["Version"]["Index"],
                                           task_template=spec["TaskTemplate"], name=spec["Name"],
                                           labels=spec.get("Labels"), mode={"Replicated": {"Replicas": replicas}},
                                           endpoint_spec=spec.get("EndpointSpec"))
            return True
        return False

    def start(self, container_id):
        if not self._scale(container_id, 1):
            raise EngineRefused(detail="service %s is gone" % container_id[:12])
        return self._scheduled(container_id, container_id[:12])

    def stop(self, container_id, timeout=STOP_GRACE):
        if not self._scale(container_id, 0):
            return
        # Docker's stop returns once the container has ended; so does this.
        deadline = time.monotonic() + timeout + 5
        while time.monotonic() < deadline:
            tasks = self._ask("list tasks", self.client.api.tasks, filters={"service": container_id})
            if not any(task["Status"]["State"] in STARTING | {"running"} for task in tasks):
                return
            gevent.sleep(0.2)
        log.warning("service %s still has a task running %d s after it was scaled to 0", container_id[:12],
                    timeout + 5)

    def remove(self, container_id):
        # Stopped first: the tasks of a removed service vanish from the manager's view at
        # once while their containers still end, holding the host port a new desktop may get.
        self.stop(container_id)
        self._remove_service(container_id)

    def _remove_service(self, service_id):
        with self._translated("remove", gone_is_fine=True):
            self.client.api.remove_service(service_id)

    def events(self, labels):
        # Task changes on other nodes are no events on the manager: services and nodes are.
        filters = {"type": ["service", "node"]}
        stream = self._ask("stream events", self.client.api.events, decode=True, filters=filters)
        try:
            with self._translated("stream events"):
                for event in stream:
                    yield event.get("Action") or "", (event.get("Actor") or {}).get("ID") or ""
        finally:
            stream.close()

    def ensure_network(self):
        """The desktops' Swarm network, made from `<network>-config` (config-only, on every
        node, with traffic between containers off) when missing."""
        if not self.network:
            return None
        with self.network_lock:
            attrs = self._network_attrs(self.network)
            if attrs is None:
                # Docker takes no other settings (labels neither) for a network made from a config.
                body = {"Name": self.network, "Driver": "bridge", "Scope": "swarm", "CheckDuplicate": True,
                        "ConfigFrom": {"Network": self.network + "-config"}}
                api = self.client.api
                try:
                    with self._translated("create a network"):
                        api._result(api._post_json(api._url("/networks/create"), data=body), True)
                    log.info("created the desktops' Swarm network %s from %s-config", self.network, self.network)
                except EngineRefused as error:
                    if "already exists" not in error.detail:
                        raise
                attrs = self._network_attrs(self.network) or {}
        if (attrs.get("ConfigFrom") or {}).get("Network") != self.network + "-config":
            raise EngineRefused(detail="the network %s is not made from %s-config (README: Docker Swarm)"
                                % (self.network, self.network))
        return attrs["Id"]

    # -- every node --

    def on_every_node(self, image, command, labels, timeout=120):
        """Run `command` (a shell line of ours, never a user's text) once on every ready node
        in a container of `image` (by tag: a node that lacks it pulls it) on the desktops'
        network, as a global job with `labels`; {hostname: (True, output) or (False, why)}.
        Nodes that are not ready are left out."""
        self.ensure_network()
        template = {"ContainerSpec": {"Image": image, "Command": ["sh", "-c", command], "Labels": labels,
                                      "Hostname": "{{.Node.Hostname}}"},
                    "RestartPolicy": {"Condition": "none"},
                    "Networks": [{"Target": self.network}] if self.network else []}
        created = self._ask("start a job on every node", self.client.api.create_service, template,
                            name="iservdesk-job-%s" % hashlib.sha256(str(time.time()).encode()).hexdigest()[:8],
                            labels=labels, mode={"GlobalJob": {}})
        service = created["ID"]
        try:
            nodes = {node.id: node.hostname for node in self.nodes() if node.state == "ready"}
            deadline = time.monotonic() + timeout
            results = {}
            while time.monotonic() < deadline:
                for task in self._ask("list tasks", self.client.api.tasks, filters={"service": service}):
                    status = task["Status"]
                    hostname = nodes.get(task.get("NodeID"))
                    if hostname is None or hostname in results:
                        continue
                    if status["State"] == "complete":
                        results[hostname] = (True, "")
                    elif status["State"] in ("failed", "rejected", "shutdown", "orphaned"):
                        results[hostname] = (False, status.get("Err") or status.get("Message") or status["State"])
                if len(results) == len(nodes):
                    break
                gevent.sleep(0.5)
            for hostname in set(nodes.values()) - set(results):
                results[hostname] = (False, "no answer within %d s" % timeout)
            logs = self._ask("read a job's output", self.client.api.service_logs, service, stdout=True,
                             details=False)
            for line in b"".join(logs).decode("utf-8", "replace").splitlines():
                hostname, _, text = line.partition(" ")
                if hostname in results and results[hostname][0]:
                    results[hostname] = (True, (results[hostname][1] + "\n" + text).strip())
            return results
        finally:
            self._remove_service(service)  # a job's tasks have ended: nothing to stop

    # -- homes: on the node that holds them, or on shared storage --

    def _options(self, name):
        return {option: value.replace("{name}", name) for option, value in self.home_options.items()}

    def _driver(self, name):
        """A home's VolumeOptions for its driver (shared storage), or {} (the node's local volume)."""
        return {"DriverConfig": {"Name": self.home_driver, "Options": self._options(name)}} if self.shared else {}

    def _root(self):
        """(volume name, driver options) of the folder that holds the homes' folders, when the
        options name a path .../{name} that must exist before its first mount; else None."""
        if not any("/{name}" in value for value in self.home_options.values()):
            return None
        return ("%s-homes" % (self.network or "iservdesk"),
                {option: value.replace("/{name}", "") for option, value in self.home_options.items()})

    def _in_root(self, argv, image=None):
        """Run a helper (install, rm) in the homes' folder; argv names paths under HOME."""
        root, options = self._root()
        self._ask("create a volume", self.client.api.create_volume, name=root, driver=self.home_driver,
                  driver_opts=options, labels=self.network_labels)
        DockerEngine.run_in_home(self, root, image or self.helper_image, self.network_labels, argv, writable=True)

    def home(self, name):
        """A home is made by its node at the first mount, with the labels its desktop gave:
        the manager knows it from the services that mount it. (Shared: the manager's volume.)"""
        if self.shared:
            return super().home(name)
        return self._mounted_homes(lambda source: source == name).get(name)

    def homes(self, prefix):
        if self.shared:
            return super().homes(prefix)
        found = self._mounted_homes(lambda source: source.startswith(prefix))
        return [found[name] for name in sorted(found)]

    def _mounted_homes(self, wanted):
        """{name: Volume} of the volumes that services mount, for names where wanted(name)."""
        found = {}
        for service in self._services():
            for mount in (service["Spec"].get("TaskTemplate", {}).get("ContainerSpec") or {}).get("Mounts") or []:
                if mount.get("Type") == "volume" and wanted(mount.get("Source") or ""):
                    found[mount["Source"]] = self._volume({
                        "Name": mount["Source"], "Labels": (mount.get("VolumeOptions") or {}).get("Labels"),
                        "CreatedAt": service.get("CreatedAt")})
        return found

    def create_home(self, name, labels):
        if not self.shared:
            return self._volume({"Name": name, "Labels": labels})  # made by its node at the first mount
        existing = super().home(name)
        if existing is not None:
            return existing
        if self._root():
            self._in_root(["install", "-d", "-o", "1000", "-g", "1000", "%s/%s" % (HOME, name)])
        return self._volume(self._ask("create a volume", self.client.api.create_volume, name=name,
                                      driver=self.home_driver, driver_opts=self._options(name), labels=labels))

    def _elsewhere(self, what):
        raise HomesElsewhere(detail="%s: on a Swarm the homes are on the nodes, out of the portal's reach"
                             % what)

    def open_home(self, name, image, labels, writable=False):
        if self.shared:
            return super().open_home(name, image, labels, writable)
        self._elsewhere("the files of home %s" % name)

    def run_in_home(self, name, image, labels, argv, writable=False, timeout=120):
        if self.shared:
            return super().run_in_home(name, image, labels, argv, writable, timeout)
        self._elsewhere("%s in home %s" % (argv[0], name))

    def remove_home(self, name):
        if not self.shared:
            self._elsewhere("removing home %s" % name)
        super().remove_home(name)  # the manager's volume; the nodes' hold no data of their own
        if self._root():
            self._in_root(["rm", "-rf", "--", "%s/%s" % (HOME, name)])

    def container_home(self, container_id):
        self._elsewhere("the files of desktop %s" % container_id[:12])

    def write_file(self, container_id, path, data, mode=0o644):
        self._elsewhere("writing %s" % path)

    def read_file(self, container_id, path):
        self._elsewhere("reading %s" % path)
