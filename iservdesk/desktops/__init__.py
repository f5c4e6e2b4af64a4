"""Desktops: the catalog of desktop types, the Spawner that runs containers, and the
manager that joins them to users, the database and live events.

docker.py is the only module that imports the docker SDK; everything else talks to the
engine through the Spawner contract below and sees only iservdesk's own errors.

What the engine holds for iservdesk: containers, the users' home volumes, and one bridge
network for the desktops (named after CONTAINER_PREFIX) on which they cannot reach each
other. Only containers and volumes labelled as this installation's are changed.
"""

import dataclasses

from ..errors import DesktopError


class NameTaken(DesktopError):
    """A container with that name exists already (another start won the race)."""
    code = "name_taken"


class PortTaken(DesktopError):
    """The chosen host port turned out to be in use; pick another and retry."""
    code = "port_taken"


@dataclasses.dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    state: str  # Docker's: created, running, paused, restarting, exited, dead
    labels: dict
    host_port: int  # or None
    environment: dict


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    host_port: int
    container_port: int
    environment: dict
    labels: dict
    volume: str
    shm_size: str
    memory: str
    cpus: float
    pids: int
    network: str = None  # the desktops' network (ensure_network); None: Docker's default bridge


@dataclasses.dataclass(frozen=True)
class VolumeInfo:
    name: str
    labels: dict
    created_at: str  # as the engine says it (RFC 3339), or ""


class Spawner:
    """What the manager needs from a container engine. Every method may raise DesktopError
    (503: engine unreachable or refusing); none retries by itself."""

    def ping(self):
        """The engine's version string."""
        raise NotImplementedError

    def list(self, labels):
        """[ContainerInfo] of every container, in any state, carrying all `labels`."""
        raise NotImplementedError

    def held_ports(self):
        """Host ports held by any container on the engine, ours or not, running or not."""
        raise NotImplementedError

    def poll(self, container_id):
        """ContainerInfo, or None when the container does not exist."""
        raise NotImplementedError

    def has_image(self, image):
        raise NotImplementedError

    def pull(self, image, progress):
        """Fetch `image`, calling progress(percent or None); blocks until done."""
        raise NotImplementedError

    def volume(self, name):
        """VolumeInfo of the named volume, or None when it does not exist."""
        raise NotImplementedError

    def volumes(self, prefix):
        """[VolumeInfo] of every volume whose name starts with `prefix`."""
        raise NotImplementedError

    def create_volume(self, name, labels):
        """Create the named volume with `labels` and return its VolumeInfo; an existing one
        is returned as it is (labels cannot change after creation: compare them)."""
        raise NotImplementedError

    def ensure_network(self, name, labels):
        """Make sure the bridge network `name` exists with inter-container traffic off,
        creating it (with `labels`) when missing; returns its id. Idempotent; raises
        DesktopError when a network of that name exists but lets containers reach each other."""
        raise NotImplementedError

    def move_to_network(self, container_id, network):
        """Connect a stopped container to `network` and disconnect it from every other one
        (containers made before the desktops had a network of their own sit on Docker's
        default bridge). Returns True when something changed, False when it was there."""
        raise NotImplementedError

    def create(self, spec):
        """Create and start a container from a ContainerSpec (on spec.network, which must
        exist); return its id. Raises NameTaken or PortTaken for the races the caller resolves."""
        raise NotImplementedError

    def start(self, container_id):
        raise NotImplementedError

    def stop(self, container_id, timeout=10):
        """Stop; a missing container counts as stopped. Idempotent."""
        raise NotImplementedError

    def remove(self, container_id):
        """Remove (volumes stay); missing or already-being-removed counts as done. Idempotent."""
        raise NotImplementedError

    def events(self, labels, since=None):
        """Yield (action, container id) for events of containers carrying `labels`; blocks."""
        raise NotImplementedError
