"""Work the portal repeats in the background (due preparations, deadlines to collect)."""

import logging

import gevent

log = logging.getLogger(__name__)


def every(seconds, work, database, what):
    """Spawn a greenlet that runs `work()` every `seconds` with a database connection of its
    own; an error is logged (as "`what` failed") and the next round tries again. Returns
    the greenlet (kill it to stop)."""
    def loop():
        while True:
            gevent.sleep(seconds)
            try:
                with database.connection_context():
                    work()
            except Exception:
                log.exception("%s failed", what)
    return gevent.spawn(loop)
