"""The start queue's rules (iservdesk/desktops/queue.py), on its own: slots, a fair order,
places, and handing a slot on. Starts through the queue with real desktops are in
test_start_queue.py."""

import datetime

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


def test_slots_are_handed_on_in_order_and_never_more_are_held_than_allowed():
    # Without greenlets (the hub of this test process also carries other tests' leftovers):
    # starts finish one by one, and each finish hands its slot to the next in line.
    queue = StartQueue(2)
    names = ["desktop-%02d" % number for number in range(12)]
    admitted_at_once = [queue.enter(name, number % 4, at(number)) for number, name in enumerate(names)]
    assert admitted_at_once == [True, True] + [False] * 10
    waiting = {name: queue.waiting[name] for name in names[2:]}
    finished = []
    while queue.holding:
        assert len(queue.holding) <= 2
        name = min(queue.holding)
        queue.leave(name)
        finished.append(name)
        for entry_name, entry in waiting.items():  # given a slot: its wait() returns
            assert entry.admitted.is_set() == (entry_name in queue.holding or entry_name in finished), entry_name
    # Four people, each clicking in turn: each round is one start of each, in arrival order.
    assert finished == names and queue.waiting == {}
