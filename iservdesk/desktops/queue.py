"""The start queue: at most START_CONCURRENCY desktops are being created and booted at once.

At 8:00 thirty students click "Start" within a minute; thirty boots at once on one host
thrash it and every desktop is late. A start that finds every slot taken waits here, in a
fair order: each person's first start comes before anyone's second, and within a round
the earlier start goes first, so one student's second desktop type never overtakes
another's first. A start's round is fixed when it begins to wait: how many starts of the
same person were under way then (booting or waiting). A slot is held from the start's
admission until its desktop answers (or the start fails), and then handed to the next in
that order.

The queue lives in the portal's process; the waiting starts are also rows in status
queued (desktops/lifecycle.py resumes them in their order after a restart).
"""

import dataclasses
import datetime

import gevent.event


@dataclasses.dataclass(eq=False)
class Waiting:
    name: str  # the desktop's name
    person: int  # the owner's user id
    since: datetime.datetime
    round: int  # the person's starts under way when this one began to wait (0: their first)
    admitted: gevent.event.Event = dataclasses.field(default_factory=gevent.event.Event)


class StartQueue:
    """Slots for starts. `changed(names)` is called with the desktops whose place in the
    queue changed (to tell their owners); it runs in the caller's greenlet."""

    def __init__(self, concurrency, changed=lambda names: None):
        self.concurrency = concurrency
        self.changed = changed
        self.holding = {}  # name -> person, of the desktops that hold a slot
        self.waiting = {}  # name -> Waiting

    def enter(self, name, person, since):
        """Take a slot at once (True) when one is free and nobody waits; else wait in line
        (False; wait() blocks until the slot is given)."""
        if name in self.holding:
            return True
        if len(self.holding) < self.concurrency and not self.waiting:
            self.holding[name] = person
            return True
        if name not in self.waiting:
            under_way = (sum(1 for owner in self.holding.values() if owner == person)
                         + sum(1 for entry in self.waiting.values() if entry.person == person))
            self.waiting[name] = Waiting(name, person, since, under_way)
            self.changed(self.names())
        return False

    def wait(self, name):
        """Block until `name` holds a slot (at once when it does)."""
        entry = self.waiting.get(name)
        if entry is not None:
            entry.admitted.wait()

    def leave(self, name):
        """`name` no longer needs a slot (its desktop answers, its start failed or was
        cancelled): give free slots to the next in line."""
        before = self.names()
        self.holding.pop(name, None)
        self.waiting.pop(name, None)
        while len(self.holding) < self.concurrency and self.waiting:
            first = self.order()[0]
            del self.waiting[first.name]
            self.holding[first.name] = first.person
            first.admitted.set()
        if before != self.names():
            # Those still waiting moved up; one given a slot says so itself (status starting).
            self.changed([name for name in before if name in self.waiting])

    def order(self):
        """The waiting starts, next first: by round, then by when each began waiting."""
        return sorted(self.waiting.values(), key=lambda entry: (entry.round, entry.since, entry.name))

    def names(self):
        return [entry.name for entry in self.order()]

    def position(self, name):
        """1 for the next to start, 2 for the one after, ...; None when not waiting."""
        if name not in self.waiting:
            return None
        return self.names().index(name) + 1
