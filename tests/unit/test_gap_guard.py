"""GapGuard (pipeline.agents.common): re-read a dropped range once; never wait for offsets that cannot come."""

from __future__ import annotations

import asyncio

from pipeline.agents.common import GapGuard
from pipeline.metrics import Metrics


class FakeConsumer:
    def __init__(self):
        self.seeks = []

    async def seek(self, tp, offset):
        self.seeks.append((tp.topic, tp.partition, offset))


class FakeApp:
    def __init__(self):
        self.consumer = FakeConsumer()


def run(guard, offsets, topic="t", partition=0):
    async def go():
        return [o for o in offsets if await guard.admit(topic, partition, o)]

    return asyncio.run(go())


def new_guard(start=None):
    app = FakeApp()
    g = GapGuard(app, Metrics())
    if start is not None:
        g.start("t", 0, start)
    return g, app


def test_contiguous_records_pass_without_seeking():
    g, app = new_guard(start=5)
    assert run(g, [5, 6, 7, 8]) == [5, 6, 7, 8]
    assert app.consumer.seeks == []


def test_dropped_range_is_re_read_once():
    # Faust dropped 7..9 and handed over 10; records 11, 12 were already queued before the seek
    g, app = new_guard(start=5)
    admitted = run(g, [5, 6, 10, 11, 12, 7, 8, 9, 10, 11, 12, 13])
    assert admitted == [5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert app.consumer.seeks == [("t", 0, 7)]


def test_offsets_that_do_not_exist_are_accepted_after_one_seek():
    # committed offset 0 but retention deleted everything below 1000 (or a transaction marker at 7)
    g, app = new_guard(start=0)
    admitted = run(g, [1000, 1001, 1000, 1001, 1002])
    assert admitted == [1000, 1001, 1002]
    assert app.consumer.seeks == [("t", 0, 0)]


def test_marker_gap_does_not_stall_the_partition():
    g, app = new_guard(start=7)  # offset 7 is a transaction marker: delivery starts at 8
    admitted = run(g, [8, 9, 8, 9, 10, 11])
    assert admitted == [8, 9, 10, 11]
    assert len(app.consumer.seeks) == 1


def test_redelivered_records_are_not_processed_twice():
    g, app = new_guard(start=3)
    assert run(g, [3, 4, 5, 3, 4, 5, 6]) == [3, 4, 5, 6]
    assert app.consumer.seeks == []


def test_unknown_start_takes_the_first_record():
    g, app = new_guard()
    assert run(g, [42, 43]) == [42, 43]
    assert app.consumer.seeks == []


def test_forget_resets_a_partition():
    g, app = new_guard(start=0)
    run(g, [0, 1])
    g.forget("t", 0)
    g.start("t", 0, 50)
    assert run(g, [50, 51]) == [50, 51]


def test_seek_undone_by_the_fetch_loop_is_repeated():
    # seek to 7 after 10; Faust's fetch loop hands over 11, 12 and moves its read offset to 12,
    # so the re-fetched 7..11 are dropped and 12 comes again: the guard must seek again
    g, app = new_guard(start=5)
    admitted = run(g, [5, 6, 10, 11, 12, 12, 13, 7, 8, 9, 10, 11, 12, 13])
    assert admitted == [5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert app.consumer.seeks == [("t", 0, 7), ("t", 0, 7)]


def test_seek_that_never_takes_effect_is_repeated_after_a_while():
    now = [0.0]
    app = FakeApp()
    g = GapGuard(app, Metrics(), reseek_seconds=2.0, clock=lambda: now[0])
    g.start("t", 0, 5)
    assert run(g, [5, 9]) == [5]
    now[0] = 1.0
    assert run(g, [10]) == []
    assert len(app.consumer.seeks) == 1
    now[0] = 3.5
    assert run(g, [11]) == []
    assert app.consumer.seeks == [("t", 0, 6), ("t", 0, 6)]
    assert run(g, [6, 7]) == [6, 7]


def test_a_seek_undone_while_the_input_is_idle_is_repeated_by_the_timer():
    now = [0.0]
    app = FakeApp()
    g = GapGuard(app, Metrics(), reseek_seconds=2.0, clock=lambda: now[0])
    g.start("t", 0, 5)
    assert run(g, [5, 9]) == [5]  # seek to 6; Faust drops the re-fetch and nothing else arrives
    asyncio.run(g.retry_stalled())
    assert len(app.consumer.seeks) == 1  # too early
    now[0] = 2.5
    asyncio.run(g.retry_stalled())
    assert app.consumer.seeks == [("t", 0, 6), ("t", 0, 6)]
    assert run(g, [6, 7, 8, 9]) == [6, 7, 8, 9]
    now[0] = 10.0
    asyncio.run(g.retry_stalled())
    assert len(app.consumer.seeks) == 2  # nothing pending any more
