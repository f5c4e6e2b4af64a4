"""Bottle plugins that wrap every route."""

import functools


class DatabasePlugin:
    """One database connection per request, opened lazily and closed when the route returns.

    Routes that stream for a long time (the proxy) close it themselves before pumping.
    """

    name = "iservdesk-db"
    api = 2

    def __init__(self, db):
        self.db = db

    def apply(self, callback, route):
        db = self.db

        @functools.wraps(callback)
        def wrapper(*args, **kwargs):
            try:
                return callback(*args, **kwargs)
            finally:
                if not db.is_closed():
                    db.close()

        return wrapper
