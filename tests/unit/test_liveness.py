"""pipeline.liveness: the /health verdict from (partition, committed, end, now) observations."""

from __future__ import annotations

import pytest

from pipeline.liveness import DEFAULT_STUCK_SECONDS, Liveness, stuck_seconds_from_env

P0 = ("events.orders", 0)
P1 = ("events.orders", 1)


def feed(lv: Liveness, committed: int, end: int, start: float, stop: float, part=P0, step: float = 1.0,
         slack: int = 0) -> None:
    t = start
    while t <= stop:
        lv.observe(part, committed, end, t, slack=slack)
        lv.sampled(t)
        t += step


def test_default_threshold_and_env():
    assert DEFAULT_STUCK_SECONDS == 20.0
    assert stuck_seconds_from_env({}) == 20.0
    assert stuck_seconds_from_env({"PIPELINE_STUCK_SECONDS": "7.5"}) == 7.5
    with pytest.raises(ValueError):
        stuck_seconds_from_env({"PIPELINE_STUCK_SECONDS": "0"})
    with pytest.raises(ValueError):
        Liveness(0)


def test_backlog_without_commit_progress_is_stuck_after_the_threshold():
    lv = Liveness(20)
    feed(lv, 100, 5000, 0, 19)
    v = lv.verdict(19.5)
    assert v.ok and v.partitions[0].backlog == 4900 and v.partitions[0].stalled_seconds == 19.5
    feed(lv, 100, 5000, 20, 20)
    v = lv.verdict(20)
    assert not v.ok and v.status == "stuck"
    assert v.partitions[0].stuck and "events.orders[0]: 4900 records behind" in v.reasons[0]
    assert v.as_dict()["partitions"][0]["committed_moved_seconds_ago"] == 20.0


def test_moving_commits_keep_a_busy_partition_ok():
    lv = Liveness(20)
    for t in range(0, 120):
        lv.observe(P0, 100 + t * 10, 100_000, float(t))  # far behind, but the committed offset moves
    v = lv.verdict(119.5)
    assert v.ok and v.partitions[0].committed_moved_seconds_ago == pytest.approx(0.5)


def test_idle_partition_is_ok_and_new_backlog_starts_the_clock():
    lv = Liveness(20)
    feed(lv, 500, 500, 0, 3600, step=10)  # caught up for an hour: committed not moving is fine
    assert lv.verdict(3600).ok
    lv.observe(P0, 500, 510, 3601)  # records arrive: the stall clock starts now, not an hour ago
    assert lv.verdict(3610).ok
    assert not lv.verdict(3621).ok


def test_slack_forgives_an_unacknowledged_last_record():
    lv = Liveness(5)
    feed(lv, 41, 42, 0, 100, slack=1)
    assert lv.verdict(100).ok
    feed(lv, 41, 43, 101, 110, slack=1)
    assert not lv.verdict(110).ok


def test_settling_is_not_counted_and_restarts_the_clock():
    lv = Liveness(20)
    feed(lv, 0, 1000, 0, 15)
    lv.settling(True, 15)
    feed(lv, 0, 1000, 16, 30)
    v = lv.verdict(30)
    assert v.ok and v.settling_seconds == 15
    lv.settling(False, 31)
    feed(lv, 0, 1000, 31, 50)
    assert lv.verdict(50).ok  # 19 s after the rebalance ended
    assert not lv.verdict(51).ok


def test_a_rebalance_longer_than_the_threshold_is_stuck():
    lv = Liveness(20)
    lv.settling(True, 0)
    assert lv.verdict(19).ok
    v = lv.verdict(20)
    assert not v.ok and "rebalancing" in v.reasons[0]
    lv.settling(True, 25)  # still settling: counted from the start
    assert not lv.verdict(25).ok
    lv.settling(False, 26)
    assert lv.verdict(26).ok


def test_dead_agent_is_stuck_after_a_short_grace_outside_settling():
    lv = Liveness(20, agent_grace_seconds=5)
    lv.agents({"ingest": True, "aggregate": False}, 0)
    assert lv.verdict(4).ok
    v = lv.verdict(5)
    assert not v.ok and v.dead_agents == ("aggregate",)
    lv.agents({"ingest": True, "aggregate": True}, 6)  # restarted by the supervisor
    assert lv.verdict(6).ok
    lv.settling(True, 10)
    lv.agents({"ingest": False, "aggregate": True}, 10)  # actors restart on a rebalance
    assert lv.verdict(14).ok and lv.verdict(16).ok
    lv.settling(False, 16)
    assert lv.verdict(20).ok
    assert lv.verdict(21).dead_agents == ("ingest",)


def test_unassigned_partitions_are_forgotten_and_start_afresh():
    lv = Liveness(20)
    feed(lv, 0, 10, 0, 30, part=P1)
    assert not lv.verdict(30).ok
    lv.assigned([P0])
    assert lv.verdict(30).ok and lv.verdict(30).partitions == ()
    lv.observe(P1, 0, 10, 31)  # assigned again
    lv.sampled(45)
    assert lv.verdict(50).ok and not lv.verdict(51).ok


def test_unknown_offsets_decide_nothing():
    lv = Liveness(20)
    feed(lv, None, 100, 0, 100)  # type: ignore[arg-type]
    v = lv.verdict(100)
    assert v.ok and v.partitions[0].backlog is None


def test_a_sampler_that_stops_is_stuck():
    lv = Liveness(20)
    feed(lv, 5, 5, 0, 10)
    assert lv.verdict(29).ok
    assert "not sampled" in lv.verdict(30).reasons[0]


def test_verdict_as_dict_is_json_ready():
    import json

    lv = Liveness(20)
    feed(lv, 1, 3, 0, 25)
    doc = lv.verdict(25).as_dict()
    assert json.loads(json.dumps(doc))["status"] == "stuck"
    assert set(doc["partitions"][0]) == {"topic", "partition", "committed", "end", "backlog",
                                         "committed_moved_seconds_ago", "stalled_seconds", "stuck", "held_for_order"}


def test_a_commit_waiting_on_a_record_held_for_event_time_order_is_not_stuck():
    """During a backlog the reorder buffer may hold a topic's record (its event time is ahead of the
    other topics') for longer than the threshold: reported held_for_order, not stuck; once the record
    is released and the commit still does not move, the ordinary rule applies again."""
    lv = Liveness(20)
    for t in range(0, 60):
        lv.observe(P0, 1, 4800, float(t), held=True)
        lv.sampled(float(t))
    v = lv.verdict(59.5)
    assert v.ok and v.partitions[0].held_for_order and v.partitions[0].stalled_seconds > 20
    assert v.as_dict()["partitions"][0]["held_for_order"] is True
    lv.observe(P0, 1, 4800, 60.0, held=False)
    lv.sampled(60.0)
    v = lv.verdict(60.0)
    assert not v.ok and "events.orders[0]: 4799 records behind" in v.reasons[0]


def test_one_partition_behind_while_the_worker_commits_elsewhere_gets_three_times_the_limit():
    """Ticks waiting behind thousands of fetched records of a backlog: a worker behind, not stuck."""
    lv = Liveness(20)
    for t in range(0, 70):
        lv.observe(P0, 8, 18, float(t))                 # the waiting partition
        lv.observe(P1, 100 + 50 * t, 100_000, float(t))  # the worker commits here
        lv.sampled(float(t))
        if t == 25:
            assert lv.verdict(25.0).ok
    v = lv.verdict(69.0)
    assert not v.ok and "events.orders[0]: 10 records behind" in v.reasons[0]  # 60 s: stuck after all
    assert len(v.reasons) == 1
