"""The start queue's rules (iservdesk/desktops/queue.py), on its own: slots, a fair order,
places, and handing a slot on. Starts through the queue with real desktops are in
test_start_queue.py."""

import datetime

import gevent

from iservdesk.desktops.queue import StartQueue

T0 = datetime.datetime(2026, 12, 7, 7, 59, tzinfo=datetime.timezone.utc)


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def test_starts_take_free_slots_then_wait_in_line():
    told = []
    queue = StartQueue(2, told.append)
    assert queue.enter("a-code", 1, at(0)) and queue.enter("b-code", 2, at(1))
    assert not queue.enter("c-code", 3, at(2))
    assert (queue.position("c-code"), queue.position("a-code")) == (1, None)
    assert told == [["c-code"]]
    # A start that holds a slot already keeps it; one that waits keeps its place.
    assert queue.enter("a-code", 1, at(5)) and not queue.enter("c-code", 3, at(9))
    assert queue.names() == ["c-code"]


def test_a_persons_second_start_does_not_overtake_anothers_first():
    queue = StartQueue(1)
    queue.enter("running", 9, at(0))
    queue.enter("anna-code", 1, at(1))
    queue.enter("anna-browser", 1, at(2))
    queue.enter("anna-desktop", 1, at(3))
    queue.enter("ben-code", 2, at(4))
    queue.enter("max-code", 3, at(5))
    queue.enter("ben-browser", 2, at(6))
    assert queue.names() == ["anna-code", "ben-code", "max-code", "anna-browser", "ben-browser", "anna-desktop"]
    assert queue.position("max-code") == 3

    # A start that holds a slot is its person's first: their next waits behind others' firsts.
    queue = StartQueue(1)
    queue.enter("anna-code", 1, at(0))
    queue.enter("anna-browser", 1, at(1))
    queue.enter("ben-code", 2, at(2))
    assert queue.names() == ["ben-code", "anna-browser"]


def test_a_slot_goes_to_the_next_in_line_and_places_move_up():
    told = []
    queue = StartQueue(1, told.append)
    queue.enter("first", 1, at(0))
    for number, name in enumerate(["second", "third", "fourth"], 2):
        queue.enter(name, number, at(number))
    told.clear()
    queue.leave("first")
    assert set(queue.holding) == {"second"} and queue.names() == ["third", "fourth"]
    assert (queue.position("third"), queue.position("fourth")) == (1, 2)
    assert told == [["third", "fourth"]]
    # Cancelling a waiting start moves those behind it up, and takes no slot.
    queue.leave("third")
    assert set(queue.holding) == {"second"} and queue.position("fourth") == 1
    queue.leave("nobody")  # unknown: nothing changes, nobody is told
    assert told[-1] == ["fourth"] and len(told) == 2


def test_waiting_blocks_until_the_slot_is_given_and_never_more_run_than_allowed():
    queue = StartQueue(2)
    running, most, order = set(), [0], []

    def start(name, person, since):
        if not queue.enter(name, person, since):
            queue.wait(name)
        running.add(name)
        most[0] = max(most[0], len(running))
        order.append(name)
        gevent.sleep(0.01)
        running.discard(name)
        queue.leave(name)

    jobs = [gevent.spawn(start, "desktop-%02d" % number, number % 4, at(number)) for number in range(12)]
    gevent.joinall(jobs, timeout=10, raise_error=True)
    assert all(job.dead for job in jobs)
    assert most[0] == 2 and len(order) == 12 and queue.holding == {} and queue.waiting == {}
    # Waiting starts were served in the fair order: rounds by person, then by arrival.
    waiting_order = order[2:]
    assert waiting_order[:2] == ["desktop-02", "desktop-03"]  # persons 2 and 3's first
