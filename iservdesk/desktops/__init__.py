"""Desktops: who has which container, in what state.

    catalog.py    the desktop types a school offers (desktops.toml)
    engine.py     the contract a backend fulfils: containers, homes, files, screenshots
    docker.py     the Docker engine behind that contract (the only module importing docker),
                  with ports.py, the host ports it hands out
    swarm.py      a Docker Swarm behind that contract (DOCKER_BACKEND=swarm): services on nodes
    lifecycle.py  what happens on Start, Stop and Remove (Desktops)
    homes.py      whose home volume a desktop mounts, and the names of new desktops
    reconcile.py  how the database is made to agree with the engine (one planner, one writer)
    events.py     the bus that carries status changes to /api/events
    queue.py      the start queue: how many desktops boot at once, who is next

What cleanup removes is iservdesk/cleanup.py's; who may open a desktop, web/desktop.py's.
This module declares what they share: the statuses of a desktop and the labels.
"""

import enum


class Status(enum.StrEnum):
    """A desktop's status, as its database row and the API say it."""

    NEW = "new"            # a row without a container yet (its first start is being claimed)
    QUEUED = "queued"      # its start waits for a slot (START_CONCURRENCY; desktops/queue.py)
    PULLING = "pulling"    # its start job fetches the image
    STARTING = "starting"  # its start job creates or starts the container and waits for it
    RUNNING = "running"    # the container runs and answers on its port
    STOPPED = "stopped"    # the container exists but does not run; a start resumes it
    ERROR = "error"        # the last start failed (the row's message says why); a start retries
    REMOVED = "removed"    # no container; the home volume stays, a start makes a new container
    LOST = "lost"          # on a Swarm: its node does not answer; it comes back with the node


# A start job works on the desktop or waits for its turn (in the portal's process: maybe
# not this one).
BUSY = frozenset({Status.QUEUED, Status.PULLING, Status.STARTING})
# Counted against MAX_DESKTOPS.
ACTIVE = BUSY | {Status.RUNNING}
# Not running, but with a container that waits to be resumed or removed.
HALTED = frozenset({Status.STOPPED, Status.ERROR})

LABEL = "de.iservdesk."
# Labels on every container and volume iservdesk makes, beside the installation's id.
OWNER, USER, TYPE, DESKTOP = (LABEL + "owner", LABEL + "user", LABEL + "type", LABEL + "desktop")
