"""Issue 15 scope 5: event-time order across a partition's input topics (pure reorder buffer, no broker)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest.order import ReorderBuffer

DAY = 86_400.0
WEEK = 7 * DAY
T0 = 1_700_000_000.0  # event times
W0 = 1_800_000_000.0  # wall clock


@dataclass(frozen=True)
class Ev:
    topic: str
    offset: int
    time: float | None


def add(buf: ReorderBuffer[Ev], ev: Ev, wall: float = W0, partition: int = 0) -> bool:
    return buf.add(partition, ev.topic, ev.offset, ev.time, ev, wall)


NOTHING: dict[str, bool] = {}


# -- live: nothing pending ---------------------------------------------------------------------
def test_live_releases_everything_at_once_in_event_time_order_across_topics() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=5, max_records=100)
    evs = [Ev("orders", 0, T0 + 3), Ev("feedback", 0, T0 + 1), Ev("orders", 1, T0 + 4), Ev("feedback", 1, T0 + 2)]
    for ev in evs:
        add(buf, ev)
    out = buf.release(0, W0, {"orders": False, "feedback": False})
    assert [e.time for e in out] == [T0 + 1, T0 + 2, T0 + 3, T0 + 4]
    assert buf.held(0) == 0 and buf.next_deadline(0) is None
    # a topic missing from ``pending`` counts as nothing pending
    add(buf, Ev("orders", 2, T0 + 6))
    add(buf, Ev("complaints", 0, T0 + 5))
    assert [e.time for e in buf.release(0, W0, NOTHING)] == [T0 + 5, T0 + 6]
    assert buf.stats.released_after_wait == 0 and buf.stats.released_wait_expired == 0
    assert buf.stats.released_over_bound == 0


def test_live_record_released_in_the_same_call_it_was_added() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer()
    for i in range(3):
        ev = Ev("orders", i, T0 + i)
        add(buf, ev)
        assert buf.release(0, W0 + i, {"orders": False, "feedback": False}) == [ev]


def test_ties_break_by_topic_then_offset() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer()
    evs = [Ev("orders", 0, T0), Ev("feedback", 7, T0), Ev("orders", 1, T0), Ev("complaints", 3, T0)]
    for ev in evs:
        add(buf, ev)
    out = buf.release(0, W0, NOTHING)
    assert [(e.topic, e.offset) for e in out] == [("complaints", 3), ("feedback", 7), ("orders", 0), ("orders", 1)]


# -- backlog: a topic with records pending and nothing buffered holds the others back ----------
def test_weekly_orders_and_late_review_review_waits_for_every_earlier_order() -> None:
    """A customer ordered weekly for eight weeks, then left a 1-star review; in the backlog the
    review (``feedback``) arrives after only 5 orders: it is released after all 8."""
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=5, max_records=100)
    orders = [Ev("orders", i, T0 + i * WEEK) for i in range(8)]
    review = Ev("feedback", 0, T0 + 7 * WEEK + DAY)
    out: list[Ev] = []
    # feedback fetched first: its review is buffered while orders still has a backlog
    add(buf, review, W0)
    assert buf.release(0, W0, {"orders": True, "feedback": False}) == []
    assert buf.held(0) == 1 and buf.next_deadline(0) == W0 + 5
    # five orders arrive in one fetch; orders still pending (3 more in Kafka)
    for o in orders[:5]:
        add(buf, o, W0 + 0.5)
    out += buf.release(0, W0 + 0.5, {"orders": True, "feedback": False})
    assert out == orders[:5]  # orders' queue emptied while pending: the review still waits
    assert buf.held(0) == 1
    for o in orders[5:]:
        add(buf, o, W0 + 1.0)
    out += buf.release(0, W0 + 1.0, {"orders": False, "feedback": False})
    assert out == orders + [review]
    assert buf.stats.released_after_wait == 1  # the review
    assert buf.stats.released_wait_expired == 0 and buf.stats.released_over_bound == 0


def test_backlog_on_b_holds_a_until_b_delivers_then_interleaves() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=5, max_records=100)
    a = [Ev("a", i, T0 + 10 * i) for i in range(5)]  # 0 10 20 30 40
    b = [Ev("b", i, T0 + 10 * i + 5) for i in range(5)]  # 5 15 25 35 45
    for ev in a:
        add(buf, ev, W0)
    assert buf.release(0, W0, {"a": False, "b": True}) == []
    assert buf.release(0, W0 + 4.9, {"a": False, "b": True}) == []  # still within the wait
    for ev in b[:2]:
        add(buf, ev, W0 + 4.9)
    out = buf.release(0, W0 + 4.9, {"a": False, "b": True})
    # a0 b5 a10 b15, then b's queue is empty while b still has records pending: a20.. wait
    assert [e.time - T0 for e in out] == [0, 5, 10, 15]
    for ev in b[2:]:
        add(buf, ev, W0 + 6)
    out += buf.release(0, W0 + 6, {"a": False, "b": False})
    assert [e.time - T0 for e in out] == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]


def test_a_topic_caught_up_never_holds_back() -> None:
    """Only a topic with records pending can hold others back; a quiet, caught-up topic cannot."""
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60)
    add(buf, Ev("orders", 0, T0 + 100))
    assert buf.release(0, W0, {"orders": False, "feedback": False, "complaints": False}) == [Ev("orders", 0, T0 + 100)]


def test_a_pending_topic_with_records_buffered_does_not_block_but_competes() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60)
    add(buf, Ev("a", 0, T0 + 1))
    add(buf, Ev("a", 1, T0 + 3))
    add(buf, Ev("b", 0, T0 + 2))
    # both pending but both buffered: released while both queues have a head
    out = buf.release(0, W0, {"a": True, "b": True})
    assert [e.time - T0 for e in out] == [1, 2]  # then b is empty and pending: a3 waits
    assert buf.held(0) == 1 and buf.next_deadline(0) == W0 + 60


# -- the wait expires ------------------------------------------------------------------------
def test_wait_expiring_releases_and_counts_out_of_order_risk() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=5, max_records=100)
    add(buf, Ev("a", 0, T0 + 10), W0)
    add(buf, Ev("a", 1, T0 + 20), W0 + 1)
    pending = {"a": False, "b": True}
    assert buf.release(0, W0 + 1, pending) == []  # the wait on b starts now (first hold-back)
    assert buf.next_deadline(0) == W0 + 6
    assert buf.oldest_wait(0, W0 + 3) == 3.0
    assert buf.release(0, W0 + 5.99, pending) == []
    out = buf.release(0, W0 + 6, pending)
    assert [e.offset for e in out] == [0, 1]
    assert buf.stats.released_wait_expired == 2 and buf.stats.released_after_wait == 2
    assert buf.next_deadline(0) is None and buf.oldest_wait(0, W0 + 7) == 0.0
    # b still pending and still empty: its wait stays expired, a's new records flow
    add(buf, Ev("a", 2, T0 + 30), W0 + 7)
    assert [e.offset for e in buf.release(0, W0 + 7, pending)] == [2]
    # b delivers: its wait resets; when it empties again with records pending, a new wait starts
    add(buf, Ev("b", 0, T0 + 25), W0 + 8)
    add(buf, Ev("a", 3, T0 + 40), W0 + 8)
    out = buf.release(0, W0 + 8, pending)
    assert [(e.topic, e.offset) for e in out] == [("b", 0)]
    assert buf.next_deadline(0) == W0 + 13
    assert buf.release(0, W0 + 12, pending) == []
    assert [e.offset for e in buf.release(0, W0 + 13, pending)] == [3]


def test_wait_is_measured_from_the_first_hold_back_not_from_the_first_pending() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=5)
    pending = {"a": False, "b": True}
    add(buf, Ev("a", 0, T0), W0)
    assert buf.release(0, W0, pending) == []
    assert buf.release(0, W0 + 5, pending) == [Ev("a", 0, T0)]
    assert buf.release(0, W0 + 20, pending) == []  # nothing held: no wait runs
    assert buf.next_deadline(0) is None


def test_several_blockers_release_only_when_every_wait_expired() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=5)
    add(buf, Ev("a", 0, T0), W0)
    assert buf.release(0, W0, {"b": True}) == []  # wait on b from W0
    assert buf.release(0, W0 + 3, {"b": True, "c": True}) == []  # wait on c from W0+3
    assert buf.next_deadline(0) == W0 + 8
    assert buf.release(0, W0 + 5, {"b": True, "c": True}) == []  # b expired, c not
    assert buf.release(0, W0 + 8, {"b": True, "c": True}) == [Ev("a", 0, T0)]


def test_a_numeric_pending_is_that_blockers_own_shorter_wait() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60)
    add(buf, Ev("a", 0, T0), W0)
    assert buf.release(0, W0, {"b": 5.0}) == []
    assert buf.next_deadline(0) == W0 + 5
    assert buf.release(0, W0 + 5, {"b": 5.0}) == [Ev("a", 0, T0)]
    add(buf, Ev("a", 1, T0 + 1), W0 + 6)
    assert buf.release(0, W0 + 6, {"b": 600.0}) == []  # capped at max_wait_seconds
    assert buf.next_deadline(0) == W0 + 60  # b has been a blocker since W0
    assert buf.release(0, W0 + 7, {"b": 0.0}) == [Ev("a", 1, T0 + 1)]  # 0: not a blocker


def test_zero_wait_merges_what_is_buffered_without_holding() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=0)
    add(buf, Ev("a", 0, T0 + 2))
    add(buf, Ev("b", 0, T0 + 1))
    out = buf.release(0, W0, {"a": True, "b": True, "c": True})
    assert [e.topic for e in out] == ["b", "a"]


# -- bounded memory ------------------------------------------------------------------------
def test_bound_releases_lowest_heads_early_regardless_of_waits() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60, max_records=3)
    pending = {"a": False, "c": False, "b": True}
    add(buf, Ev("a", 0, T0 + 4))
    add(buf, Ev("c", 0, T0 + 1))
    add(buf, Ev("a", 1, T0 + 5))
    assert buf.release(0, W0, pending) == []
    assert buf.held(0) == 3
    add(buf, Ev("c", 1, T0 + 2))
    add(buf, Ev("a", 2, T0 + 6))
    out = buf.release(0, W0 + 1, pending)
    assert [e.time - T0 for e in out] == [1, 2]
    assert buf.held(0) == 3
    assert buf.stats.released_over_bound == 2 and buf.stats.released_wait_expired == 0
    assert buf.stats.released_after_wait == 1  # c0 had been held by the first call


def test_bound_is_per_partition() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60, max_records=2)
    pending = {"b": True}
    for p in (0, 1):
        for i in range(2):
            add(buf, Ev("a", i, T0 + i), partition=p)
    assert buf.release(0, W0, pending) == [] and buf.release(1, W0, pending) == []
    add(buf, Ev("a", 2, T0 + 2), partition=1)
    assert buf.release(0, W0, pending) == []
    assert buf.release(1, W0, pending) == [Ev("a", 0, T0)]
    assert (buf.held(0), buf.held(1)) == (2, 2)


# -- invalid times -------------------------------------------------------------------------
def test_invalid_time_released_at_once_and_never_blocks() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60)
    pending = {"a": False, "b": True}
    add(buf, Ev("a", 0, T0 + 5))
    assert buf.release(0, W0, pending) == []
    bad_b = Ev("b", 0, None)
    bad_a = Ev("a", 1, float("nan"))
    add(buf, bad_b)
    add(buf, bad_a)
    assert buf.held(0) == 3
    # an invalid item of a topic with nothing held goes out first, whatever is pending; one of a topic
    # with held records stays behind them (a topic's offsets are acknowledged in order);
    # b delivered only an invalid record, so it is still a blocker (queue empty, pending)
    assert buf.release(0, W0 + 1, pending) == [bad_b]
    assert buf.held(0) == 2 and buf.next_deadline(0) == W0 + 60
    assert buf.stats.invalid == 2
    # a topic whose only records are invalid and that has nothing pending holds nothing back
    add(buf, Ev("c", 0, None))
    assert buf.release(0, W0 + 2, {"a": False, "b": False, "c": False}) == [Ev("c", 0, None), Ev("a", 0, T0 + 5),
                                                                             bad_a]


def test_an_invalid_record_never_overtakes_held_records_of_its_topic() -> None:
    """Offsets of one topic are acknowledged in order: Faust can commit past a one-offset hole."""
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60)
    add(buf, Ev("a", 7, T0 + 5))
    add(buf, Ev("a", 8, None))
    add(buf, Ev("b", 0, T0 + 9))
    out = buf.release(0, W0, {"c": True})  # c pending: everything waits
    assert out == []
    out = buf.release(0, W0 + 61, {"c": True})  # wait expired
    assert [(e.topic, e.offset) for e in out] == [("a", 7), ("a", 8), ("b", 0)]


# -- per-topic offset order ----------------------------------------------------------------
def test_offset_order_kept_when_event_times_go_backwards_within_a_topic() -> None:
    """The queue's head decides: a1 (time 1) waits behind a0 (time 9); b5 (time 5) overtakes a1."""
    buf: ReorderBuffer[Ev] = ReorderBuffer()
    add(buf, Ev("a", 0, T0 + 9))
    add(buf, Ev("a", 1, T0 + 1))
    add(buf, Ev("b", 0, T0 + 5))
    add(buf, Ev("b", 1, T0 + 10))
    out = buf.release(0, W0, NOTHING)
    assert [(e.topic, e.offset) for e in out] == [("b", 0), ("a", 0), ("a", 1), ("b", 1)]


def test_lower_offset_inserted_in_order_and_duplicate_refused() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer()
    assert add(buf, Ev("a", 5, T0 + 5))
    assert add(buf, Ev("a", 3, T0 + 3))  # re-read after a seek
    assert not add(buf, Ev("a", 5, T0 + 5))  # already held
    assert buf.stats.duplicates == 1 and buf.held(0) == 2
    assert [e.offset for e in buf.release(0, W0, {})] == [3, 5]


# -- rebalance -----------------------------------------------------------------------------
def test_drop_returns_the_held_items_and_forgets_the_partition() -> None:
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60)
    pending = {"c": True}
    held = [Ev("b", 0, T0 + 1), Ev("a", 0, T0 + 3), Ev("a", 1, T0 + 2)]
    for ev in held:
        add(buf, ev, partition=3)
    add(buf, Ev("a", 0, T0), partition=4)
    assert buf.release(3, W0, pending) == [] and buf.release(4, W0, pending) == []
    bad = Ev("b", 1, None)
    add(buf, bad, partition=3)
    assert buf.drop(3) == [Ev("a", 0, T0 + 3), Ev("a", 1, T0 + 2), Ev("b", 0, T0 + 1), bad]
    assert buf.held(3) == 0 and buf.next_deadline(3) is None and buf.release(3, W0, pending) == []
    assert buf.drop(3) == [] and buf.stats.dropped == 4
    assert buf.partitions() == [4] and buf.held(4) == 1  # the other partition is untouched


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        ReorderBuffer(max_wait_seconds=-1)
    with pytest.raises(ValueError):
        ReorderBuffer(max_wait_seconds=float("inf"))
    with pytest.raises(ValueError):
        ReorderBuffer(max_records=0)


# -- property: any delivery interleaving ---------------------------------------------------
TOPICS = ("complaints", "feedback", "orders")


@st.composite
def deliveries(draw: st.DrawFn, monotone: bool) -> tuple[dict[str, list[float | None]], list[str]]:
    """Per-topic event times (in offset order) and an interleaving of deliveries (topic names)."""
    per_topic: dict[str, list[float | None]] = {}
    for topic in TOPICS:
        if monotone:
            steps = draw(st.lists(st.integers(0, 3), max_size=12))
            t, times = 0.0, []
            for s in steps:
                t += s
                times.append(t)
            per_topic[topic] = list(times)
        else:
            per_topic[topic] = draw(st.lists(st.one_of(st.none(), st.integers(0, 20).map(float)), max_size=12))
    order = [t for t in TOPICS for _ in per_topic[t]]
    order = draw(st.permutations(order))
    return per_topic, order


def _run(buf: ReorderBuffer[Ev], per_topic: dict[str, list[float | None]], order: list[str],
         pending_of, wall_of) -> tuple[list[Ev], list[Ev]]:
    """Deliver in ``order`` (releasing after each add), then release with nothing pending."""
    next_offset = dict.fromkeys(TOPICS, 0)
    inputs: list[Ev] = []
    out: list[Ev] = []
    for step, topic in enumerate(order):
        ev = Ev(topic, next_offset[topic], per_topic[topic][next_offset[topic]])
        next_offset[topic] += 1
        inputs.append(ev)
        assert add(buf, ev, wall_of(step))
        out += buf.release(0, wall_of(step), pending_of(next_offset, step))
    out += buf.release(0, wall_of(len(order)), {t: False for t in TOPICS})
    assert buf.held(0) == 0
    return inputs, out


@settings(max_examples=300, deadline=None)
@given(data=deliveries(monotone=False), pend=st.lists(st.booleans(), min_size=3, max_size=3),
       waits=st.lists(st.floats(0, 3), max_size=40), max_records=st.integers(1, 6),
       max_wait=st.sampled_from([0.0, 2.0, 5.0]))
def test_any_interleaving_is_a_permutation_keeping_each_topics_offset_order(
        data: tuple[dict[str, list[float | None]], list[str]], pend: list[bool], waits: list[float],
        max_records: int, max_wait: float) -> None:
    per_topic, order = data
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=max_wait, max_records=max_records)
    walls = [W0]
    for w in waits:
        walls.append(walls[-1] + w)

    def wall_of(step: int) -> float:
        return walls[min(step, len(walls) - 1)]

    def pending_of(next_offset: dict[str, int], step: int) -> dict[str, bool]:
        # arbitrary (even untruthful) pending flags: order is best-effort, the invariants are not
        return {t: pend[(i + step) % 3] for i, t in enumerate(TOPICS)}

    inputs, out = _run(buf, per_topic, order, pending_of, wall_of)
    assert sorted(out, key=lambda e: (e.topic, e.offset)) == sorted(inputs, key=lambda e: (e.topic, e.offset))
    for topic in TOPICS:
        offsets = [e.offset for e in out if e.topic == topic and e.time is not None]
        assert offsets == sorted(offsets)
    assert buf.stats.released == len(inputs) == buf.stats.added


@settings(max_examples=300, deadline=None)
@given(data=deliveries(monotone=True), max_wait=st.sampled_from([1.0, 5.0]))
def test_truthful_pending_monotone_topics_and_no_expired_wait_give_event_time_order(
        data: tuple[dict[str, list[float | None]], list[str]], max_wait: float) -> None:
    per_topic, order = data
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=max_wait, max_records=10_000)

    def pending_of(next_offset: dict[str, int], step: int) -> dict[str, bool]:
        return {t: next_offset[t] < len(per_topic[t]) for t in TOPICS}

    inputs, out = _run(buf, per_topic, order, pending_of, lambda step: W0)  # the wall never moves
    assert sorted(out, key=lambda e: (e.topic, e.offset)) == sorted(inputs, key=lambda e: (e.topic, e.offset))
    assert out == sorted(out, key=lambda e: (e.time, e.topic, e.offset))
    assert buf.stats.released_wait_expired == 0 and buf.stats.released_over_bound == 0


def test_event_time_of_reads_plain_and_rekeyed_records_and_never_raises():
    from pipeline.ingest.order import event_time_of

    assert event_time_of("o", b'{"occurred_at": "2026-03-01T10:00:00Z"}') == 1772359200.0
    wrapped = b'{"kind": "order", "source": {"topic": "o"}, "event": {"occurred_at": "2026-03-01T10:00:00+01:00"}}'
    assert event_time_of("r", wrapped) == 1772355600.0
    for bad in (None, b"", b"not json", b"[]", b'{"occurred_at": 5}', b'{"occurred_at": "yesterday"}',
                b'{"occurred_at": "2026-03-01T10:00:00"}'):
        assert event_time_of("o", bad) is None


def test_lowest_held_offset_per_topic():
    from pipeline.ingest.order import ReorderBuffer

    b: ReorderBuffer[str] = ReorderBuffer(max_wait_seconds=5)
    assert b.lowest_held(0, "orders") is None
    b.add(0, "orders", 7, 100.0, "a", wall=0.0)
    b.add(0, "orders", 8, 101.0, "b", wall=0.0)
    assert b.lowest_held(0, "orders") == 7 and b.lowest_held(0, "feedback") is None
    assert b.release(0, 0.0, {}) == ["a", "b"]
    assert b.lowest_held(0, "orders") is None


def test_equal_event_times_go_in_the_producers_order():
    """Olist: an order placed, cancelled and reviewed in the same minute; the producer wrote the order
    first, and an order ranks before feedback at the same instant, so it is applied first although
    'events.feedback' sorts before 'events.orders'."""
    from pipeline.ingest.order import ReorderBuffer

    b: ReorderBuffer[str] = ReorderBuffer(max_wait_seconds=5)
    b.add(0, "events.feedback", 3, 1000.0, "review", wall=0.0, tiebreak=(2, 50.001))
    b.add(0, "events.orders", 9, 1000.0, "placed", wall=0.0, tiebreak=(1, 50.001))  # same millisecond
    b.add(0, "events.orders", 10, 1000.0, "cancelled", wall=0.0, tiebreak=(1, 50.002))
    assert b.release(0, 0.0, {}) == ["placed", "cancelled", "review"]


# -- tolerance: bounded out-of-orderness for live traffic ----------------------------------------
def test_tolerance_lets_a_head_close_to_the_blockers_latest_record_go() -> None:
    """Live: every topic has records in transit.  A head at most ``tolerance`` past the pending
    topic's latest delivered record goes at once; a head further ahead still waits."""
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60, max_records=100, tolerance_seconds=2)
    add(buf, Ev("b", 0, T0 + 10))
    for i, dt in enumerate((9, 11, 12, 13)):
        add(buf, Ev("a", i, T0 + dt))
    out = buf.release(0, W0, {"a": True, "b": True})
    # a9 b10 a11 a12 (b is empty and pending; 11 and 12 are within 2 s of b's latest, 10); a13 waits
    assert [(e.topic, e.time - T0) for e in out] == [("a", 9), ("b", 10), ("a", 11), ("a", 12)]
    assert buf.held(0) == 1 and buf.next_deadline(0) == W0 + 60
    assert buf.stats.released_within_tolerance == 2
    assert buf.stats.released_wait_expired == 0 and buf.stats.released_over_bound == 0
    add(buf, Ev("b", 1, T0 + 14), W0 + 0.1)
    assert [e.time - T0 for e in buf.release(0, W0 + 0.1, {"a": True, "b": True})] == [13, 14]


def test_tolerance_zero_keeps_the_exact_rule_and_a_topic_never_seen_always_blocks() -> None:
    exact: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60, tolerance_seconds=0)
    add(exact, Ev("b", 0, T0 + 10))
    add(exact, Ev("a", 0, T0 + 10.5))
    assert [e.topic for e in exact.release(0, W0, {"a": False, "b": True})] == ["b"]  # a waits for b
    assert exact.held(0) == 1
    tolerant: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60, tolerance_seconds=5)
    add(tolerant, Ev("a", 0, T0))
    assert tolerant.release(0, W0, {"a": False, "b": True}) == []  # nothing of b delivered yet: no bound known
    with pytest.raises(ValueError):
        ReorderBuffer(tolerance_seconds=-1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 50)), min_size=1, max_size=40),
       st.integers(0, 5))
def test_tolerance_bounds_the_disorder(records: list[tuple[str, int]], tol: int) -> None:
    """Each topic's times non-decreasing, delivered in arbitrary interleaving with every topic
    pending until its last record: no released record is more than ``tol`` seconds later than a
    record of another topic released after it."""
    per_topic: dict[str, list[int]] = {}
    for topic, t in records:
        per_topic.setdefault(topic, []).append(t)
    for ts in per_topic.values():
        ts.sort()
    buf: ReorderBuffer[Ev] = ReorderBuffer(max_wait_seconds=60, max_records=1000, tolerance_seconds=tol)
    offsets = {t: 0 for t in per_topic}
    out: list[Ev] = []
    for topic, _ in records:  # the arrival interleaving
        i = offsets[topic]
        add(buf, Ev(topic, i, T0 + per_topic[topic][i]))
        offsets[topic] = i + 1
        pending = {t: offsets[t] < len(ts) for t, ts in per_topic.items()}
        out += buf.release(0, W0, pending)
    out += buf.release(0, W0, {})
    assert len(out) == len(records)
    for i, e in enumerate(out):
        for later in out[i + 1:]:
            assert e.time - later.time <= tol  # type: ignore[operator]
