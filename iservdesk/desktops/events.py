"""An in-process publish/subscribe bus for desktop status changes (feeds /api/events).

Subscribers get a bounded queue; a subscriber too slow to keep up loses its oldest
events rather than holding up the publisher (the client refetches on reconnect).
"""

import collections

import gevent.event
import gevent.queue

QUEUE_SIZE = 200


class Subscription:
    def __init__(self, bus, wants):
        self.bus = bus
        self.wants = wants  # event -> bool
        self.queue = collections.deque(maxlen=QUEUE_SIZE)
        self.ready = gevent.event.Event()

    def get(self, timeout):
        """The next event, or None after `timeout` seconds of silence."""
        if not self.queue:
            self.ready.clear()
            self.ready.wait(timeout)
        return self.queue.popleft() if self.queue else None

    def close(self):
        self.bus.subscribers.discard(self)


class Bus:
    def __init__(self):
        self.subscribers = set()
        self.listeners = []

    def listen(self, callback):
        """Call `callback(event)` for every event, in the publisher's greenlet (and inside
        its database transaction, if it has one): it must be quick."""
        self.listeners.append(callback)

    def subscribe(self, wants):
        """A Subscription receiving the events for which wants(event) is true."""
        subscription = Subscription(self, wants)
        self.subscribers.add(subscription)
        return subscription

    def publish(self, event):
        for callback in self.listeners:
            callback(event)
        for subscription in list(self.subscribers):
            if subscription.wants(event):
                subscription.queue.append(event)
                subscription.ready.set()
