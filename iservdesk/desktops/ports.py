"""Host ports for desktops on one Docker engine: each container publishes its port 6901 on
127.0.0.1, on a port of HOST_PORT_RANGE that nothing else holds.

A port is free when no container on the engine publishes it (running or stopped: a
stopped container keeps its binding in its configuration), no start in this process has
reserved it, and nothing outside Docker listens on it. Reservations are held from the
choice until the container holds the port itself (or the start gave up).
"""

import contextlib
import logging
import socket

import gevent.lock

from ..errors import NoFreePort

log = logging.getLogger(__name__)


class PortPool:
    def __init__(self, port_range, held):
        """`port_range`: the ports to hand out; `held()`: the ports the engine's containers
        hold now (asked at every reservation, since other processes start containers too)."""
        self.port_range = port_range
        self.held = held
        self.lock = gevent.lock.RLock()
        self.reserved = set()

    @contextlib.contextmanager
    def reserved_port(self):
        """A free port, reserved for the body of the with statement. Raises NoFreePort."""
        port = self.reserve()
        try:
            yield port
        finally:
            self.release(port)

    def reserve(self):
        with self.lock:
            taken = self.held() | self.reserved
            for port in self.port_range:
                if port not in taken and bindable(port):
                    self.reserved.add(port)
                    return port
        log.error("no free host port in HOST_PORT_RANGE for a new desktop")
        raise NoFreePort()

    def release(self, port):
        with self.lock:
            self.reserved.discard(port)


def bindable(port):
    """False when something outside Docker listens on 127.0.0.1:port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
