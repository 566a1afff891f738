"""Stage-1 clocks (pipeline/clock.py): every situation of docs/clocks.md, without a broker."""

from __future__ import annotations

import pytest

from pipeline.clock import Clocks, PartitionClock

H = 3600.0
T0 = 1_700_000_000.0  # an event time; wall times below are chosen per test


def test_strict_event_time_is_the_lowest_over_the_inputs_of_their_newest_event():
    c = PartitionClock()
    assert c.value() is None
    c.observe("orders", T0 + 100, wall=1.0)
    c.observe("complaints", T0 + 40, wall=1.0)
    c.observe("orders", T0 + 50, wall=2.0)  # older than what orders already saw: no effect
    assert c.value() == T0 + 40
    # without wall time or lags (idleness off) nothing else counts
    assert c.value(wall=10_000.0, caught_up={"orders": True, "complaints": True}, idle_seconds=0) == T0 + 40


def test_a_quiet_caught_up_topic_stops_holding_the_clock_back():
    c = PartitionClock()
    c.observe("complaints", T0, wall=100.0)
    c.observe("orders", T0 + 60, wall=160.0)  # orders go on, complaints went quiet at wall 100
    up = {"orders": False, "complaints": True}
    assert c.value(wall=104.0, caught_up=up, idle_seconds=5) == T0  # quiet 4 s: still holds
    assert c.value(wall=161.0, caught_up=up, idle_seconds=5) == T0 + 60  # quiet 61 s: idle
    assert c.idle_topics(161.0, up, 5) == {"complaints"}


def test_a_quiet_topic_with_a_backlog_is_busy_not_idle():
    """Replay / catch-up: a topic with records left to read holds the clock, however long it was quiet."""
    c = PartitionClock()
    c.observe("complaints", T0, wall=100.0)
    c.observe("orders", T0 + 60, wall=160.0)
    assert c.value(wall=500.0, caught_up={"orders": True, "complaints": False}, idle_seconds=5) == T0
    assert c.value(wall=500.0, caught_up={"orders": True}, idle_seconds=5) == T0  # unknown lag: holds


def test_every_input_idle_the_clock_moves_on_with_wall_time_never_past_now():
    c = PartitionClock()
    # live: event time about arrival time
    c.observe("orders", 1000.0, wall=1000.5)
    c.observe("complaints", 990.0, wall=995.0)
    up = {"orders": True, "complaints": True}
    assert c.value(wall=1003.0, caught_up=up, idle_seconds=5) == 1000.0  # complaints idle, orders quiet 2.5 s
    assert c.value(wall=1010.0, caught_up=up, idle_seconds=5) == pytest.approx(1009.5)  # newest + since arrival
    assert c.value(wall=1040.0, caught_up=up, idle_seconds=5) == pytest.approx(1039.5)  # one second per second
    # events from the future (a producer's clock ahead) never push it past now through idleness
    d = PartitionClock()
    d.observe("orders", 5000.0, wall=1000.0)
    assert d.value(wall=1010.0, caught_up={"orders": True}, idle_seconds=5) == 5000.0  # its own event time


def test_end_of_a_replay_moves_on_from_the_last_event_not_to_now():
    c = PartitionClock()
    c.observe("orders", T0 - 400 * 24 * H, wall=T0)  # history, replayed at wall time T0
    assert c.value(wall=T0 + 10, caught_up={"orders": True}, idle_seconds=5) == T0 - 400 * 24 * H + 10


def test_the_clock_never_goes_back_when_an_idle_input_wakes_up():
    c = PartitionClock()
    c.observe("orders", 1000.0, wall=1000.0)
    c.observe("complaints", 1000.0, wall=1000.0)
    up = {"orders": True, "complaints": True}
    assert c.value(wall=1100.0, caught_up=up, idle_seconds=5) == 1100.0
    c.observe("complaints", 1050.0, wall=1101.0)  # a late complaint: complaints busy again
    assert c.value(wall=1101.5, caught_up={"orders": True, "complaints": False}, idle_seconds=5) == 1100.0


def test_forced_ticks_are_a_floor():
    c = PartitionClock()
    c.force(T0)
    assert c.value() == T0  # advance_to before any record
    c.observe("orders", T0 - 10, wall=1.0)
    assert c.value() == T0
    c.observe("orders", T0 + 10, wall=2.0)
    assert c.value() == T0 + 10


def test_snapshot_and_restore_carry_the_floor_and_the_arrival_times():
    """After a restart the downtime counts as time that passed (live: the clock is 'now' again)."""
    c = PartitionClock()
    c.observe("orders", 1000.0, wall=1000.0)
    assert c.value(wall=1020.0, caught_up={"orders": True}, idle_seconds=5) == 1020.0
    doc = c.snapshot()
    assert doc == {"max": {"orders": 1000.0}, "forced": 1020.0, "seen": {"orders": 1000.0}}
    d = PartitionClock()
    d.restore(doc)
    assert d.value() == 1020.0
    assert d.value(wall=1100.0, caught_up={"orders": True}, idle_seconds=5) == 1100.0  # 80 s later
    # an older snapshot without arrival times: quiet from the first look
    e = PartitionClock()
    e.restore({"max": {"orders": 1000.0}, "forced": None})
    assert e.value(wall=5000.0, caught_up={"orders": True}, idle_seconds=5) == 1000.0
    assert e.value(wall=5006.0, caught_up={"orders": True}, idle_seconds=5) == 1006.0


def test_clocks_per_partition():
    cs = Clocks(idle_seconds=5)
    assert cs.value(0) is None and cs.topics(0) == []
    cs.observe(0, "orders", 1000.0, wall=1000.0)
    cs.observe(1, "orders", 2000.0, wall=1000.0)
    assert cs.topics(0) == ["orders"]
    assert cs.value(0) == 1000.0 and cs.value(1) == 2000.0
    assert cs.value(0, 1010.0, {"orders": True}) == 1010.0
    cs.drop(0)
    assert cs.value(0) is None
    assert cs.snapshot(0) == {"max": {}, "forced": None}
    cs.restore(0, {"max": {"orders": 5.0}, "forced": 7.0})
    assert cs.value(0) == 7.0
