"""The contract between iservdesk and what runs its desktops (an Engine), and the data that
crosses it. The Docker engine (docker.py) is the first backend; a second one (Docker
Swarm) is a module beside it, not edits all over the lifecycle.

An engine runs one container per desktop from a DesktopSpec: it fetches the image, picks
what it needs to publish the container's port (ports, placement), creates and starts it,
and says at which address the proxy reaches it. It lists and inspects only containers that
carry the labels it is given, keeps the users' homes, reads and writes files in them, and
reports changes as events. Every method may raise DesktopError or a subclass (503: the
engine is unreachable or refuses); none retries by itself unless it says so.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Container:
    """A container as the engine reports it."""

    id: str
    name: str
    state: str  # Docker's words: created, running, paused, restarting, exited, dead
    labels: dict
    host_port: int  # where the proxy reaches port 6901 (at `address`), or None
    environment: dict
    address: str = "127.0.0.1"  # the host the proxy connects to: a Swarm node's, or loopback
    node: str = ""  # the Swarm node it runs on (its id), "" on a single engine
    node_name: str = ""  # that node's host name

    @property
    def running(self):
        return self.state == "running"

    @property
    def lost(self):
        """Its node is down: it may be running there, but nobody can reach it."""
        return self.state == "lost"


@dataclasses.dataclass(frozen=True)
class DesktopSpec:
    """What a desktop's container is made from."""

    name: str  # the container's name
    image: str
    container_port: int
    environment: dict  # VNC_PW and VNC_VIEW_ONLY_PW included: secrets, never logged
    labels: dict
    home: str  # the home volume, mounted at /home/kasm-user
    shm_size: str
    memory: str
    cpus: float
    pids: int
    node: str = ""  # run on this Swarm node only (where the home is); "" for anywhere


@dataclasses.dataclass(frozen=True)
class Volume:
    name: str
    labels: dict
    created_at: str  # as the engine says it (RFC 3339), or ""


class Engine:
    """What the lifecycle, the reconciler and cleanup need from a backend."""

    # False where the portal cannot open the homes (on a Swarm they are on the nodes):
    # files in and out, hand-outs and home sizes are then not offered.
    homes_reachable = True
    # True where a home lives on one node and every desktop with it must run there (a Swarm
    # without shared storage): the lifecycle records the node (db.HomeNode).
    pins_homes = False

    def ping(self):
        """The engine's version string; raises EngineUnreachable."""
        raise NotImplementedError

    def close(self):
        """Let go of the connections to the engine (at the end of a process)."""
        raise NotImplementedError

    def list(self, labels):
        """[Container] of every container, in any state, carrying all `labels`."""
        raise NotImplementedError

    def inspect(self, container_id):
        """The Container, or None when it does not exist."""
        raise NotImplementedError

    def has_image(self, image):
        raise NotImplementedError

    def pull(self, image, progress):
        """Fetch `image`, calling progress(percent) (0-100, never falling) as it arrives;
        blocks cooperatively until done. Raises PullFailed."""
        raise NotImplementedError

    def reserve(self, memory=0):
        """Hold what one more container needs (a host port; on a Swarm also `memory` bytes on
        a node that has them), so that a full host answers the click on Start at once;
        returns a reservation for create() and release(). Raises NoFreePort, or NoRoom (429)
        when no node can take `memory` more."""
        raise NotImplementedError

    def check_room(self, memory="", node=""):
        """Raise what reserve() would (NoRoom, NodeUnavailable) for a stopped container about to
        be started again; nothing to check on one host."""

    def release(self, reservation):
        """Give back a reservation (None is fine); idempotent."""
        raise NotImplementedError

    def create(self, spec, reservation=None):
        """Create and start a container from a DesktopSpec, using `reservation` first;
        returns its Container.

        Raises ContainerExists (a container of that name exists: the caller decides
        whether it may adopt it), NoFreePort, DesktopError. A container created but not
        started is removed again, so a failed start leaves nothing behind.
        """
        raise NotImplementedError

    def start(self, container_id):
        """Start a stopped container again; returns its Container (its address may have
        changed). Raises DesktopError."""
        raise NotImplementedError

    def stop(self, container_id, timeout=10):
        """Stop; a missing container counts as stopped. Idempotent."""
        raise NotImplementedError

    def remove(self, container_id):
        """Remove (the home stays); missing or already-being-removed counts as done. Idempotent."""
        raise NotImplementedError

    def events(self, labels):
        """Yield (action, container id) for events of containers carrying `labels`; blocks,
        ends or raises DesktopError when the engine goes away."""
        raise NotImplementedError

    def home(self, name):
        """The home Volume called `name`, or None."""
        raise NotImplementedError

    def homes(self, prefix):
        """[Volume] of every home whose name starts with `prefix`, by name."""
        raise NotImplementedError

    def create_home(self, name, labels):
        """Create the home `name` with `labels`; an existing one is returned unchanged."""
        raise NotImplementedError

    def remove_home(self, name):
        """Delete the home `name` and every file in it (no container may use it any more);
        a missing one is fine."""
        raise NotImplementedError

    def open_home(self, name, image, labels, writable=False):
        """A context manager giving a HomeFiles for the home `name`, through a container of
        `image` (with `labels`: one left behind by a crash is a stray for cleanup) that is
        created for it and never started, with only that volume mounted (read-only unless
        `writable`): the same for running, stopped and removed desktops. Whatever a link in
        the home points to, it resolves inside that throw-away container, never on the host
        or in another home."""
        raise NotImplementedError

    def run_in_home(self, name, image, labels, argv, writable=False, timeout=120):
        """Run `argv` (no shell unless argv asks for one; never put a user's text into a
        script, pass it as an argument) in a container of `image` with only the home `name`
        mounted at HOME, no network, as root with only the capabilities to read, write and
        own files there; return its standard output (bytes). Raises EngineRefused when it
        exits non-zero (its standard error in the detail) or takes longer than `timeout`."""
        raise NotImplementedError

    def container_home(self, container_id):
        """The /home/kasm-user of a container (running or stopped; made by anyone: the old
        product kept its users' files inside its containers) as a tar stream whose entries
        start with "kasm-user/"."""
        raise NotImplementedError

    def screenshot(self, target, secret, width, height):
        """A JPEG of the desktop's screen scaled to fit width x height, fetched with the
        owner's `secret` where the proxy reaches the desktop (the row's target: a port on
        loopback or (address, port)). Raises DesktopUnreachable."""
        raise NotImplementedError

    def write_file(self, container_id, path, data, mode=0o644):
        """Write `data` (bytes) to the absolute `path` in the container's file system, as
        the desktop's user (uid 1000). Works on stopped containers too."""
        raise NotImplementedError

    def read_file(self, container_id, path):
        """The bytes of the file at the absolute `path` in the container, or None when there
        is no such file. Works on stopped containers too."""
        raise NotImplementedError


HOME = "/home/kasm-user"  # where every desktop image has its user's home


@dataclasses.dataclass(frozen=True)
class FileStat:
    """One entry of a home, as lstat sees it (a link is a link, never what it points to)."""

    name: str
    kind: str  # "file", "folder", "link" or "other" (device, fifo, socket)
    size: int
    mtime: str  # as the engine says it (RFC 3339)


class HomeFiles:
    """The files of one home while Engine.open_home() holds it. Paths are relative to the
    home ("" is the home itself), "/"-separated, already checked by the caller (files.py)."""

    def stat(self, path):
        """The FileStat of `path`, or None when there is none. Links inside `path` before
        its last part are followed by the engine: check each part (files.py does)."""
        raise NotImplementedError

    def read(self, path):
        """`path` as a tar stream (an iterator of bytes); its entries start with the last
        part of `path` ("kasm-user" for the home itself). Links come as links, never followed."""
        raise NotImplementedError

    def write(self, folder, chunks):
        """Unpack the tar stream `chunks` (an iterator of bytes, read as it is sent) into the
        existing `folder`, owners and modes as the entries say."""
        raise NotImplementedError


class ContainerExists(Exception):
    """create(): a container of the spec's name exists already (another start won the race,
    or it was made outside this process). Not an HTTP error: the caller resolves it."""

    def __init__(self, name):
        super().__init__(name)
        self.name = name
