"""Delivery checks without a broker: gap verdicts, the restart budget, fail-stop at the agent edge."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.agents import common, failstop, faust_fixes
from pipeline.delivery import GapCheck, RestartBudget, Verdict, format_history, gap_is_real, parse_history
from pipeline.metrics import Metrics


# --- GapCheck ---------------------------------------------------------------------------------------------

def test_contiguous_records_are_processed():
    g = GapCheck()
    g.start("t", 0, 5)
    assert [g.check("t", 0, o) for o in (5, 6, 7)] == [Verdict.PROCESS] * 3
    assert g.expected[("t", 0)] == 8


def test_a_partition_never_started_is_trusted_from_its_first_record():
    g = GapCheck()
    assert g.check("t", 1, 40) is Verdict.PROCESS
    assert g.check("t", 1, 41) is Verdict.PROCESS


def test_a_record_past_a_missing_range_is_a_gap_and_does_not_move_the_expectation():
    g = GapCheck()
    g.start("t", 0, 10)
    assert g.check("t", 0, 10) is Verdict.PROCESS
    assert g.check("t", 0, 15) is Verdict.GAP
    assert g.missing("t", 0, 15) == (11, 15)
    assert g.check("t", 0, 16) is Verdict.GAP  # still waiting for 11
    assert g.check("t", 0, 11) is Verdict.PROCESS


def test_records_below_the_expectation_are_skipped():
    g = GapCheck()
    g.start("t", 0, 10)
    assert g.check("t", 0, 9) is Verdict.SKIP
    assert g.expected[("t", 0)] == 10


def test_an_accepted_gap_continues_after_the_record():
    g = GapCheck()
    g.start("t", 0, 3)
    assert g.check("t", 0, 7) is Verdict.GAP
    g.accept_gap("t", 0, 7)
    assert g.check("t", 0, 8) is Verdict.PROCESS


def test_start_does_not_override_a_running_expectation_and_forget_resets():
    g = GapCheck()
    g.start("t", 0, 3)
    g.check("t", 0, 3)
    g.start("t", 0, 0)
    assert g.expected[("t", 0)] == 4
    g.forget("t", 0)
    g.start("t", 0, 0)
    assert g.expected[("t", 0)] == 0


def test_partitions_and_topics_are_independent():
    g = GapCheck()
    g.start("a", 0, 0)
    g.start("b", 0, 100)
    assert g.check("a", 0, 0) is Verdict.PROCESS
    assert g.check("b", 0, 0) is Verdict.SKIP
    assert g.check("a", 1, 55) is Verdict.PROCESS


@pytest.mark.parametrize("first_existing,end,real", [
    (None, 10, False),  # nothing there at all (retention removed everything)
    (10, 10, False),  # the first record that exists is the one delivered: compaction / markers
    (12, 10, False),
    (4, 10, True),  # a record inside the range exists: it was dropped on the way to the agent
    (9, 10, True),
])
def test_gap_is_real_only_when_a_record_inside_the_range_exists(first_existing, end, real):
    assert gap_is_real(first_existing, end) is real


# --- RestartBudget ----------------------------------------------------------------------------------------

def test_restart_budget_allows_a_few_restarts_in_a_window_then_refuses():
    b = RestartBudget(limit=3, window_seconds=60)
    history: list[float] = []
    for t in (0.0, 1.0, 2.0):
        ok, history = b.allow(history, t)
        assert ok
    ok, history = b.allow(history, 3.0)
    assert not ok and len(history) == 3
    ok, history = b.allow(history, 61.5)  # the first two fell out of the window
    assert ok and history == [2.0, 61.5]


def test_restart_history_round_trips_through_the_environment_and_ignores_garbage():
    assert parse_history(format_history([1.5, 2.25])) == [1.5, 2.25]
    assert parse_history("x,3,,") == [3.0]
    assert parse_history(None) == []


# --- the agent edge: fail-stop ----------------------------------------------------------------------------

class Exit(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


@pytest.fixture
def no_exit(monkeypatch):
    """os._exit / os.execve replaced: raise instead, and record what would have happened."""
    calls: list[tuple] = []

    def fake_exit(code):
        calls.append(("exit", code))
        raise Exit(code)

    def fake_exec(path, argv, env):
        calls.append(("exec", argv, env.get(failstop.RESTART_HISTORY_ENV)))
        raise Exit("exec")

    monkeypatch.setattr(failstop.os, "_exit", fake_exit)
    monkeypatch.setattr(failstop.os, "execve", fake_exec)
    return calls


class Msg:
    def __init__(self, offset):
        self.offset, self.acked = offset, False


class Ev:
    def __init__(self, offset):
        self.message = Msg(offset)


class Stream:
    """take_events as Faust's: yields batches and acknowledges each in a ``finally``."""

    def __init__(self, batches):
        self.batches, self.acked = batches, []

    async def take_events(self, size, within):
        for batch in self.batches:
            try:
                yield batch
            finally:
                for e in batch:
                    if not e.message.acked:  # Message.ack skips what is already marked acked
                        e.message.acked = True
                        self.acked.append(e.message.offset)


def test_an_exception_in_a_batch_stops_the_worker_before_the_batch_is_acknowledged(no_exit):
    stream = Stream([[Ev(0), Ev(1)], [Ev(2), Ev(3)]])

    async def body(events):
        if events[0].message.offset == 2:
            raise KeyError("boom")

    with pytest.raises(Exit):
        asyncio.run(common.run_batches(stream, 10, 0.1, "ingest", body, common.InputGuard(None, Metrics(), "ingest")))
    assert no_exit == [("exit", failstop.EXIT_FATAL)]
    assert stream.acked == [0, 1]  # the failed batch (2, 3) is never acknowledged


def test_a_cancelled_batch_is_held_back():
    stream = Stream([[Ev(0)], [Ev(1), Ev(2)]])

    async def body(events):
        if events[0].message.offset == 1:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(common.run_batches(stream, 10, 0.1, "ingest", body, common.InputGuard(None, Metrics(), "ingest")))
    assert stream.acked == [0]


class Fut:
    def __init__(self, exc=None):
        self.exc = exc

    def __await__(self):
        if False:
            yield
        if self.exc:
            raise self.exc
        return "metadata"


class Producer:
    def __init__(self, fail_topic=None, refuse_topic=None):
        self.fail_topic, self.refuse_topic, self.sent, self.flushed = fail_topic, refuse_topic, [], 0

    async def send(self, topic, key, value, partition, timestamp, headers):
        if topic == self.refuse_topic:
            raise ValueError("record too large")
        self.sent.append(topic)
        return asyncio.ensure_future(self._result(topic))

    async def _result(self, topic):
        if topic == self.fail_topic:
            raise RuntimeError("RecordTooLargeError")
        return "metadata"

    async def flush(self):
        self.flushed += 1


class App:
    def __init__(self, producer):
        self.producer = producer

    async def maybe_start_producer(self):
        return self.producer


def test_confirm_returns_when_every_send_succeeded(no_exit):
    async def go():
        s = common.Sender(App(Producer()), Metrics(), {}, "ingest")
        await s.send("out", b"k", b"v")
        await s.send("out", b"k", b"v")
        await s.confirm()
        return s

    s = asyncio.run(go())
    assert no_exit == [] and s.app.producer.flushed == 1


def test_send_all_sends_in_order_and_counts_each_topic_and_kind(no_exit):
    from types import SimpleNamespace as Send

    sends = [Send(topic=t, key=b"k", value=b"v", partition=None, kind=k)
             for t, k in [("a", "order"), ("b", None), ("a", "order"), ("a", "feedback")] * 100]
    metrics = Metrics()

    async def go():
        s = common.Sender(App(Producer()), metrics, {}, "ingest")
        await s.send_all(sends)
        await s.confirm()
        return s

    s = asyncio.run(go())
    assert s.app.producer.sent == [x.topic for x in sends] and s.sent() == []
    produced = {(labels["topic"], labels["kind"]): sample for labels, sample in
                ((m.labels, m.value) for metric in metrics.produced.collect() for m in metric.samples
                 if m.name.endswith("_total"))}
    assert produced == {("a", "order"): 200, ("b", "internal"): 100, ("a", "feedback"): 100}


def test_send_all_of_a_worker_paused_midway_sends_nothing_more(no_exit, monkeypatch):
    """A worker paused (SIGSTOP) in the middle of a list and resumed past its freeze limit restarts
    before the next record: the rest is the new owner's to write (else: a duplicate)."""
    from types import SimpleNamespace as Send

    monkeypatch.setattr(failstop, "FREEZE", failstop.FreezeWatch(limit=5.0))
    failstop.FREEZE.tick(0.0)
    clock = {"now": 1.0}
    monkeypatch.setattr(failstop.time, "monotonic", lambda: clock["now"])
    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)

    class Pausing(Producer):
        async def send(self, *args):
            fut = await super().send(*args)
            clock["now"] = 30.0  # paused right after its first record
            return fut

    producer = Pausing()
    app = App(producer)
    app.should_stop = False
    sends = [Send(topic=t, key=b"k", value=b"v", partition=None, kind=None) for t in ("first", "second", "third")]

    async def go():
        await common.Sender(app, Metrics(), {}, "ingest").send_all(sends)

    with pytest.raises(Exit):
        asyncio.run(go())
    assert no_exit and no_exit[-1][0] == "exec" and producer.sent == ["first"]


@pytest.mark.parametrize("producer", [Producer(fail_topic="bad"), Producer(refuse_topic="bad")],
                         ids=["failed-after-send", "refused-at-send"])
def test_a_failed_send_stops_the_worker(no_exit, producer):
    counters: dict[str, int] = {}

    async def go():
        s = common.Sender(App(producer), Metrics(), counters, "ingest")
        await s.send("good", b"k", b"v")
        await s.send("bad", b"k", b"v")
        await s.confirm()

    with pytest.raises(Exit):
        asyncio.run(go())
    assert no_exit == [("exit", failstop.EXIT_FATAL)] and counters["send_failed"] == 1


def test_an_absent_range_is_accepted_and_an_existing_one_held_back_until_it_comes(no_exit, monkeypatch):
    now = [0.0]
    reads = []
    guard = common.InputGuard(settings=None, metrics=Metrics(), stage="ingest", wait_seconds=20,
                              clock=lambda: now[0])
    guard.start("t", 0, 10)
    first = {"value": 20}

    def side_read(s, topic, p, offset):
        reads.append(offset)
        return first["value"]

    monkeypatch.setattr(common, "first_offset_from", side_read)

    def admit(offset, event=None):
        return asyncio.run(guard.admit("t", 0, offset, event))

    assert admit(20) is True  # 10..19 do not exist (compacted): accepted
    assert admit(21) is True
    first["value"] = 22
    stale = [Ev(o) for o in (25, 26, 27)]
    # records from before a rebalance arrive ahead of the re-fetched range: held back, not acknowledged
    assert [admit(e.message.offset, e) for e in stale] == [False, False, False]
    assert all(e.message.acked for e in stale)  # marked so Faust's take_events does not acknowledge them
    assert reads == [10, 22]  # one side read per missing range, not one per held-back record
    assert admit(22) is True and admit(23) is True  # the re-fetched range came: processing continues
    assert no_exit == []


def test_a_range_that_never_comes_restarts_the_worker_from_its_commits(no_exit, monkeypatch):
    now = [0.0]
    guard = common.InputGuard(settings=None, metrics=Metrics(), stage="aggregate", wait_seconds=20,
                              clock=lambda: now[0])
    guard.start("t", 0, 5)
    monkeypatch.setattr(common, "first_offset_from", lambda s, topic, p, offset: 5)
    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)
    assert asyncio.run(guard.admit("t", 0, 9, Ev(9))) is False
    now[0] = 19.0
    asyncio.run(guard.restart_if_overdue())
    assert no_exit == []
    now[0] = 21.0
    with pytest.raises(Exit):
        asyncio.run(guard.restart_if_overdue())  # the timer: the input is idle, nothing else would notice
    assert no_exit[0][0] == "exec" and no_exit[0][2]


class FakeConsumer:
    def __init__(self):
        self.seeks, self.gaps, self.targets = 0, [], []
        self.assigned = None  # None: every partition

    def assignment(self):
        from faust.types import TP

        if self.assigned is None:
            raise RuntimeError("not started")  # unknown: nothing is filtered
        return {TP(t, p) for t, p in self.assigned}

    async def seek_wait(self, targets):
        self.seeks += 1
        self.targets.append({(tp.topic, tp.partition): offset for tp, offset in targets.items()})

    def resume_partitions(self, tps):
        self.resumed = set(tps)

    async def add_verified_gap(self, tp, first, last):
        self.gaps.append((tp.topic, tp.partition, first, last))


def test_a_missing_range_first_rewinds_the_consumer_then_restarts(no_exit, monkeypatch):
    now = [0.0]
    consumer = FakeConsumer()
    guard = common.InputGuard(settings=None, metrics=Metrics(), stage="ingest", wait_seconds=20,
                              clock=lambda: now[0], consumer=lambda: consumer, rewind_seconds=3)
    guard.start("t", 0, 5)
    monkeypatch.setattr(common, "first_offset_from", lambda s, topic, p, offset: 5)
    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)
    assert asyncio.run(guard.admit("t", 0, 9, Ev(9))) is False
    now[0] = 2.0
    asyncio.run(guard.restart_if_overdue())
    assert consumer.seeks == 0
    now[0] = 4.0
    asyncio.run(guard.restart_if_overdue())
    asyncio.run(guard.restart_if_overdue())
    assert consumer.seeks == 1 and no_exit == []  # at most one rewind per rewind_seconds
    assert consumer.targets == [{("t", 0): 5}] and consumer.resumed == {("t", 0)}  # that partition, from 5
    now[0] = 21.0
    with pytest.raises(Exit):
        asyncio.run(guard.restart_if_overdue())


def test_an_absent_range_is_registered_with_the_consumer_so_commits_pass_over_it(no_exit, monkeypatch):
    consumer = FakeConsumer()
    guard = common.InputGuard(settings=None, metrics=Metrics(), stage="ingest", consumer=lambda: consumer)
    guard.start("t", 2, 10)
    monkeypatch.setattr(common, "first_offset_from", lambda s, topic, p, offset: 14)
    assert asyncio.run(guard.admit("t", 2, 14, Ev(14))) is True
    assert consumer.gaps == [("t", 2, 10, 13)]


def test_an_idle_agent_with_records_past_its_expectation_rewinds_then_restarts(no_exit, monkeypatch):
    """A hole at a partition's end: nothing later arrives to reveal it, so the timer must."""
    now = [0.0]
    consumer = FakeConsumer()
    guard = common.InputGuard(settings=None, metrics=Metrics(), stage="ingest", wait_seconds=20,
                              clock=lambda: now[0], consumer=lambda: consumer, rewind_seconds=3)
    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)
    guard.start("t", 0, 10)
    assert asyncio.run(guard.admit("t", 0, 10)) is True  # expects 11 next
    guard.note_batch(True)
    now[0] = 10.0
    asyncio.run(guard.watch_tail({("t", 0): (15, 10)}))
    assert consumer.seeks == 0  # busy in a batch (e.g. a long read-back): not a stall
    guard.note_batch(False)
    now[0] = 12.0
    asyncio.run(guard.watch_tail({("t", 0): (11, 10)}))
    assert consumer.seeks == 0  # caught up
    now[0] = 16.0
    asyncio.run(guard.watch_tail({("t", 0): (15, 10)}))
    assert consumer.seeks == 0  # seen once: may have been produced just now
    now[0] = 18.0
    asyncio.run(guard.watch_tail({("t", 0): (15, 10)}))
    assert consumer.seeks == 0  # not yet rewind_seconds
    now[0] = 19.0
    asyncio.run(guard.watch_tail({("t", 0): (15, 10)}))
    assert consumer.seeks == 1 and consumer.targets[-1] == {("t", 0): 11}  # idle, 4 never delivered: re-read
    now[0] = 20.0
    asyncio.run(guard.watch_tail({("t", 0): (15, 10)}))
    assert consumer.seeks == 1
    now[0] = 23.5
    asyncio.run(guard.watch_tail({("t", 0): (15, 10)}))
    assert consumer.seeks == 2  # repeated: Faust's fetch loop can undo a seek
    assert asyncio.run(guard.admit("t", 0, 11)) is True  # the range came: the watch stands down
    now[0] = 40.0
    asyncio.run(guard.watch_tail({("t", 0): (12, 10)}))
    assert no_exit == []


def test_a_record_produced_just_before_the_check_is_not_a_stall(no_exit, monkeypatch):
    """The end moved on between two checks while the agent was idle: new records on their way, not a
    hole; only a next expected offset that stays put below the end for rewind_seconds is a stall."""
    now = [0.0]
    consumer = FakeConsumer()
    guard = common.InputGuard(settings=None, metrics=Metrics(), stage="aggregate", wait_seconds=20,
                              clock=lambda: now[0], consumer=lambda: consumer, rewind_seconds=3)
    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)
    guard.start("p", 0, 10)
    assert asyncio.run(guard.admit("p", 0, 10)) is True
    now[0] = 4.0
    asyncio.run(guard.watch_tail({("p", 0): (12, 10)}))  # a clock control just written
    now[0] = 5.0
    assert asyncio.run(guard.admit("p", 0, 11)) is True  # ... and delivered
    now[0] = 9.0
    asyncio.run(guard.watch_tail({("p", 0): (13, 10)}))  # the next one: a new suspicion, not a stall
    assert consumer.seeks == 0 and not guard._waiting
    now[0] = 10.0
    asyncio.run(guard.watch_tail({("p", 0): (12, 10)}))  # caught up: the suspicion is dropped
    assert guard._suspect == {}
    assert consumer.seeks == 0 and no_exit == []


def test_an_unfetched_ticks_partition_is_rewound_and_its_delivery_ends_the_wait(no_exit, monkeypatch):
    """Stage 1's ticks are tail-watched without a gap check: the committed offset stands in for the
    next expected one, one tick may wait for its commit (slack), a partition Faust never fetches is
    re-read (resumed, sought to its committed offset), and a tick delivered ends the wait — no
    restart while ticks flow again (the SIGSTOP test's stall: ticks assigned, never fetched)."""
    now = [0.0]
    consumer = FakeConsumer()
    guard = common.InputGuard(settings=None, metrics=Metrics(), stage="ingest", wait_seconds=20,
                              clock=lambda: now[0], consumer=lambda: consumer, rewind_seconds=3)
    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)
    slack = {"ticks": 1}
    for t in (10.0, 14.0, 18.0):  # the last tick waits for its commit, no new tick (a frozen leader)
        now[0] = t
        asyncio.run(guard.watch_tail({("ticks", 0): (11, 10)}, slack))
    assert consumer.seeks == 0 and not guard._waiting
    now[0] = 20.0
    asyncio.run(guard.watch_tail({("ticks", 0): (40, 10)}, slack))  # ticks pile up, none committed
    now[0] = 23.5
    asyncio.run(guard.watch_tail({("ticks", 0): (42, 10)}, slack))
    assert consumer.seeks == 1 and consumer.targets[-1] == {("ticks", 0): 10}  # from the committed offset
    assert consumer.resumed == {("ticks", 0)}
    guard.delivered("ticks", 0, 10)  # fetched again
    assert not guard._waiting
    now[0] = 50.0  # past wait_seconds: the wait was over, no restart
    asyncio.run(guard.restart_if_overdue())
    assert no_exit == []
    guard.delivered("ticks", 1, 3)  # a partition not waited on: nothing to do
    assert not guard._waiting


def test_faust_fixes_install_once_and_ignore_unverified_gaps():
    import faust.transport.consumer as fc

    from pipeline.agents import faust_fixes

    faust_fixes.apply()
    first = fc.Consumer._add_gap
    faust_fixes.apply()
    assert fc.Consumer._add_gap is first and hasattr(fc.Consumer, "add_verified_gap")
    assert asyncio.run(fc.Consumer._add_gap(object(), None, 1, 5)) is None  # a fetch-loop jump commits nothing


@pytest.mark.parametrize("acked, committed, expected, left", [
    ([10, 11, 12], 10, 13, []),
    ([11, 12], 10, None, [11, 12]),          # offset 10 held back: Faust 0.15.3 committed 13 here
    ([12, 13], 10, None, [12, 13]),
    ([1, 2], 0, None, [1, 2]),               # Faust skipped the check when committed was 0
    ([0, 1, 3], 0, 2, [3]),
    ([5, 6, 8], None, 7, [8]),               # nothing committed yet: the first run counts
    ([], 4, None, []),
])
def test_a_commit_never_passes_an_unacknowledged_offset(acked, committed, expected, left):
    from pipeline.agents.faust_fixes import next_commit

    assert next_commit(acked, committed) == expected
    assert acked == left


def test_faust_consumer_new_offset_waits_for_a_held_record_and_honours_verified_gaps():
    from collections import defaultdict

    import faust.transport.consumer as fc
    from intervaltree import IntervalTree

    from pipeline.agents import faust_fixes

    faust_fixes.apply()

    class Fake:
        _new_offset = fc.Consumer._new_offset

    tp = ("events.orders", 0)
    consumer = Fake()
    consumer._acked = defaultdict(list, {tp: [11, 12]})
    consumer._acked_index = defaultdict(set, {tp: {11, 12}})
    consumer._gap = defaultdict(IntervalTree)
    consumer._committed_offset = defaultdict(lambda: None, {tp: 10})
    assert consumer._new_offset(tp) is None           # 10 is held back (reordering): no commit over it
    consumer._acked[tp].append(10)
    consumer._acked_index[tp].add(10)
    assert consumer._new_offset(tp) == 13 and consumer._acked_index[tp] == set()
    consumer._committed_offset[tp] = 13
    consumer._acked[tp][:] = [16, 17]
    consumer._gap[tp].addi(13, 16)                    # 13..15 verified absent (compaction)
    assert consumer._new_offset(tp) == 18 and not consumer._gap[tp]


def test_the_restart_budget_turns_a_loop_into_an_exit(no_exit, monkeypatch):
    import time

    now = time.time()
    monkeypatch.setenv(failstop.RESTART_HISTORY_ENV, format_history([now - 3, now - 2, now - 1]))
    with pytest.raises(Exit):
        failstop.restart_from_committed("input_gap", stage="ingest", topic="t", partition=0, offset=1,
                                        budget=RestartBudget(limit=3, window_seconds=60))
    assert no_exit == [("exit", failstop.EXIT_RESTART_LOOP)]


def test_a_send_that_hit_the_metadata_race_is_retried_and_a_real_type_error_is_not():
    from pipeline.agents.faust_fixes import retry_metadata_race

    calls = {"n": 0}
    known = {"value": False}

    async def flaky_send():
        calls["n"] += 1
        if calls["n"] < 3:
            raise TypeError("'NoneType' object is not iterable")
        return "queued"

    assert asyncio.run(retry_metadata_race(flaky_send, lambda: known["value"], backoff=0)) == "queued"
    assert calls["n"] == 3
    calls["n"] = 0  # the metadata already came back when the error is seen (broker fail-over)
    assert asyncio.run(retry_metadata_race(flaky_send, lambda: True, backoff=0)) == "queued"

    async def buggy_send():
        raise TypeError("a bug, metadata is fine")

    known["value"] = True
    with pytest.raises(TypeError):
        asyncio.run(retry_metadata_race(buggy_send, lambda: known["value"], backoff=0))

    async def always_missing():
        raise TypeError("'NoneType' object is not iterable")

    with pytest.raises(TypeError):
        asyncio.run(retry_metadata_race(always_missing, lambda: False, attempts=3, backoff=0))


def test_a_table_write_to_a_topic_missing_from_the_producer_metadata_gets_its_partition_elsewhere():
    """The SIGSTOP flake's stage-2 crash (``agent_crashed``, TypeError at producer.py:422): a table
    write picks its changelog partition eagerly (``key_partition``), outside the retried ``send``,
    and the producer's metadata had narrowed to the topics it sent to."""
    from types import MethodType, SimpleNamespace

    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner
    from faust.transport.drivers.aiokafka import Producer
    from faust.types import TP

    known: dict[str, set[int]] = {}
    in_consumer: dict[str, set[int]] = {"c-changelog": {0, 1, 2}}
    aio = SimpleNamespace(_partitioner=DefaultPartitioner(),
                          _metadata=SimpleNamespace(partitions_for_topic=known.get,
                                                    available_partitions_for_topic=known.get))
    aio._partition = MethodType(AIOKafkaProducer._partition, aio)
    cluster = SimpleNamespace(partitions_for_topic=in_consumer.get)
    consumer = SimpleNamespace(_ensure_consumer=lambda: SimpleNamespace(_client=SimpleNamespace(cluster=cluster)))
    faust_producer = SimpleNamespace(_ensure_producer=lambda: aio,
                                     app=SimpleNamespace(consumer=SimpleNamespace(_thread=consumer)))
    with pytest.raises(TypeError, match="'NoneType' object is not iterable"):  # aiokafka's eager look-up
        aio._partition("c-changelog", None, None, None, b"key", None)
    faust_fixes.apply()
    faust_fixes.KNOWN_PARTITIONS.clear()
    expected = {k: DefaultPartitioner()(k, [0, 1, 2], [0, 1, 2]) for k in (b"key", b"other", b"x")}
    for k, p in expected.items():  # from the consumer's metadata
        assert Producer.key_partition(faust_producer, "c-changelog", k) == TP("c-changelog", p)
    known["p-changelog"] = {0, 1, 2}  # known to the producer: Faust's eager partition, as before
    assert Producer.key_partition(faust_producer, "p-changelog", b"key") == TP("p-changelog", expected[b"key"])
    del known["p-changelog"]  # then narrowed out of its metadata: the partitions it knew
    assert Producer.key_partition(faust_producer, "p-changelog", b"x") == TP("p-changelog", expected[b"x"])
    with pytest.raises(TypeError):  # known nowhere: fails as before
        Producer.key_partition(faust_producer, "gone", b"key")
    faust_fixes.KNOWN_PARTITIONS.clear()


def test_the_fail_stop_line_names_the_code_locations_the_error_came_through():
    def inner():
        raise TypeError("data never shown")

    def outer():
        inner()

    try:
        outer()
    except TypeError as exc:
        trace = common.raised_through(exc)
        assert common.raised_at(exc) == trace.split(">")[-1] and trace.startswith("test_delivery.py:")
        assert len(trace.split(">")) == 3 and "data" not in trace
        assert len(common.raised_through(exc, frames=2).split(">")) == 2


def test_a_seek_makes_records_fetched_before_it_stale_on_that_partition_only():
    """Faust fix 0: tokens live on aiokafka's own partition states and change on every seek or reset."""
    from aiokafka.consumer.subscription_state import SubscriptionState
    from aiokafka.structs import TopicPartition

    from pipeline.agents import faust_fixes

    faust_fixes.apply()

    async def scenario():
        subs = SubscriptionState()
        subs.subscribe(topics={"t"})
        a, b = TopicPartition("t", 0), TopicPartition("t", 1)
        subs.assign_from_subscribed({a, b})

        class Aio:
            _subscription = subs

        aio = Aio()
        for tp in (a, b):
            subs.subscription.assignment.state_value(tp).reset_to(10)
        fetched = {tp: faust_fixes.partition_token(aio, tp) for tp in (a, b)}
        assert None not in fetched.values() and fetched[a] != fetched[b]
        assert not faust_fixes.is_stale(fetched[a], faust_fixes.partition_token(aio, a))
        subs.subscription.assignment.state_value(a).consumed_to(15)  # records handed over: not a seek
        assert not faust_fixes.is_stale(fetched[a], faust_fixes.partition_token(aio, a))
        subs.subscription.assignment.state_value(a).seek(12)  # perform_seek on the consumer thread
        assert faust_fixes.is_stale(fetched[a], faust_fixes.partition_token(aio, a))
        assert not faust_fixes.is_stale(fetched[b], faust_fixes.partition_token(aio, b))  # untouched
        subs.assign_from_subscribed({b})  # a revoked; b re-assigned gets a new state
        assert faust_fixes.partition_token(aio, a) is None
        assert faust_fixes.is_stale(fetched[a], None) and faust_fixes.is_stale(fetched[b], faust_fixes.partition_token(aio, b))
        assert not faust_fixes.is_stale(None, 5)  # unknown at fetch time: not judged

    asyncio.run(scenario())


def test_the_freeze_watch_sees_a_stand_still_whichever_runs_first():
    from pipeline.delivery import FreezeWatch

    w = FreezeWatch(limit=5.0)
    assert w.frozen(100.0) is None  # not started
    for t in (100.0, 101.0, 102.0, 106.9):
        w.tick(t)
    assert w.frozen(107.5) is None  # ticks up to 4.9 s apart, and 0.6 s since the last
    assert w.frozen(125.0) == pytest.approx(18.1)  # asked before the late tick ran
    w.tick(125.0)
    assert w.frozen(125.1) == pytest.approx(18.1)  # the tick saw it: sticky
    w.stop()
    assert w.frozen(500.0) is None  # shutting down: the thread stopped ticking


def test_a_frozen_worker_restarts_before_writing(no_exit, monkeypatch):
    from pipeline.agents import failstop

    class App:
        should_stop = False

    monkeypatch.setattr(failstop, "FREEZE", failstop.FreezeWatch(limit=5.0))
    failstop.FREEZE.tick(0.0)
    monkeypatch.setattr(failstop.time, "monotonic", lambda: 30.0)
    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)
    with pytest.raises(Exit):
        failstop.check_not_frozen(App(), "ingest")
    assert no_exit and no_exit[-1][0] == "exec"
    App.should_stop = True
    failstop.check_not_frozen(App(), "ingest")  # shutdown: no restart


def test_an_agent_starved_by_a_full_buffer_is_not_a_stall(no_exit, monkeypatch):
    """One fetch loop feeds both agents: while it waits on ingest's full buffer, aggregate sees nothing."""
    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)
    now, starved = [0.0], [True]
    consumer = FakeConsumer()
    aggregate = common.InputGuard(settings=None, metrics=Metrics(), stage="aggregate", clock=lambda: now[0],
                                  consumer=lambda: consumer, rewind_seconds=3, wait_seconds=20,
                                  starved=lambda: starved[0])
    aggregate.start("p", 0, 10)
    now[0] = 30.0
    asyncio.run(aggregate.watch_tail({("p", 0): (50, 10)}))
    assert consumer.seeks == 0 and not aggregate._waiting
    starved[0] = False
    now[0] = 34.0
    asyncio.run(aggregate.watch_tail({("p", 0): (50, 10)}))
    assert consumer.seeks == 0  # first seen
    now[0] = 37.0
    asyncio.run(aggregate.watch_tail({("p", 0): (50, 10)}))
    assert consumer.seeks == 1 and consumer.targets == [{("p", 0): 10}]
    starved[0] = True  # the loop blocks again: the wait starts over instead of running out
    now[0] = 53.0
    asyncio.run(aggregate.restart_if_overdue())
    starved[0] = False
    now[0] = 72.0
    asyncio.run(aggregate.restart_if_overdue())
    assert no_exit == []
    now[0] = 74.0
    with pytest.raises(Exit):
        asyncio.run(aggregate.restart_if_overdue())


def test_a_wait_paused_by_a_busy_worker_still_ends_in_a_restart(no_exit, monkeypatch):
    """Starvation pauses a wait at most STARVED_WAIT_FACTOR x wait_seconds from when it began."""
    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)
    now = [0.0]
    consumer = FakeConsumer()
    guard = common.InputGuard(settings=None, metrics=Metrics(), stage="ingest", clock=lambda: now[0],
                              consumer=lambda: consumer, rewind_seconds=3, wait_seconds=20,
                              starved=lambda: True)
    guard.start("t", 0, 5)
    monkeypatch.setattr(common, "first_offset_from", lambda s, topic, p, offset: 5)
    assert asyncio.run(guard.admit("t", 0, 9, Ev(9))) is False
    for t in range(2, 100, 2):
        now[0] = float(t)
        asyncio.run(guard.restart_if_overdue())
    assert no_exit == []
    now[0] = 100.5  # past 5 x 20 s: the wait is no longer renewed ...
    asyncio.run(guard.restart_if_overdue())
    now[0] = 121.0  # ... and runs out 20 s later
    with pytest.raises(Exit):
        asyncio.run(guard.restart_if_overdue())


def test_a_busy_stage_does_not_hide_another_stages_stall(no_exit):
    """Idleness is per agent: stage 1 in a long batch, stage 2 idle with records it never received."""
    now = [0.0]
    consumer = FakeConsumer()
    make = lambda stage: common.InputGuard(settings=None, metrics=Metrics(), stage=stage, clock=lambda: now[0],  # noqa: E731
                                           consumer=lambda: consumer, rewind_seconds=3)
    ingest, aggregate = make("ingest"), make("aggregate")
    aggregate.start("p", 0, 10)
    ingest.note_batch(True)
    now[0] = 4.0
    asyncio.run(aggregate.watch_tail({("p", 0): (50, 10)}))
    now[0] = 7.0
    asyncio.run(aggregate.watch_tail({("p", 0): (50, 10)}))
    assert consumer.targets == [{("p", 0): 10}]


def test_a_revoked_partition_is_forgotten_and_never_sought(no_exit, monkeypatch):
    """aiokafka raises IllegalStateError for a seek on a partition not assigned (seen in CI: the
    surviving worker of the SIGSTOP test exited on it)."""
    from aiokafka.errors import IllegalStateError

    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)
    now = [0.0]
    consumer = FakeConsumer()
    consumer.assigned = {("p", 0), ("p", 1)}
    guard = common.InputGuard(settings=None, metrics=Metrics(), stage="aggregate", clock=lambda: now[0],
                              consumer=lambda: consumer, rewind_seconds=3, wait_seconds=20)
    guard.start("p", 0, 10)
    now[0] = 3.5
    ends = {("p", 0): (50, 10), ("p", 1): (9, 5), ("p", 2): (70, 60)}  # p2 revoked while the ends were asked
    asyncio.run(guard.watch_tail(ends))
    now[0] = 6.5
    asyncio.run(guard.watch_tail(ends))
    assert consumer.targets == [{("p", 0): 10, ("p", 1): 5}] and set(guard._waiting) == {("p", 0), ("p", 1)}
    consumer.assigned = {("p", 1)}  # p0 revoked (its on_revoked not run yet)
    now[0] = 10.0
    asyncio.run(guard.restart_if_overdue())
    assert consumer.targets[-1] == {("p", 1): 5} and set(guard._waiting) == {("p", 1)}

    async def revoked_meanwhile(targets):
        consumer.assigned = set()
        raise IllegalStateError("No current assignment for partition")

    consumer.seek_wait = revoked_meanwhile
    now[0] = 14.0
    asyncio.run(guard.restart_if_overdue())  # no crash: the next owner reads it from its commit
    assert guard._waiting == {}
    now[0] = 62.0
    asyncio.run(guard.restart_if_overdue())
    assert no_exit == []


def test_a_seek_during_a_hand_over_clears_the_read_offset_it_would_undo():
    """Faust's fetch loop sets a partition's read offset to each record it hands over; a seek while it
    waited (a full agent buffer) must not be undone by that, nor records fetched before it delivered."""
    from pipeline.agents.faust_fixes import fresh_records

    token = {"a": 1, "b": 7}
    read_offset: dict[str, int] = {}
    batch = [("a", 40), ("b", 3), ("a", 41), ("b", 4)]

    async def records():
        for item in batch:
            yield item

    async def scenario():  # Faust's _drain_messages
        out = []
        async for tp, offset in fresh_records(records(), lambda: {"a": 1, "b": 7}, token.get, read_offset):
            out.append((tp, offset))
            if (tp, offset) == ("a", 40):  # the re-read seeks a to 12 while record 40 waits in put()
                token["a"] = 2
                read_offset["a"] = 12
            read_offset[tp] = offset  # after the hand-over
        return out

    assert asyncio.run(scenario()) == [("a", 40), ("b", 3), ("b", 4)]  # a's later records fetched again
    assert "a" not in read_offset and read_offset["b"] == 4  # re-fetched 12.. of a are not dropped


class ChangelogTable(dict):
    """A table whose assignments send a changelog record the way Faust's do (``send_changelog``
    returns a future the broker resolves later), registered as ``faust_fixes`` fix 5 does."""

    def __init__(self, fail=False):
        super().__init__()
        self.fail, self.futures = fail, []

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        faust_fixes.CHANGELOG_SENT.append(fut)

    def resolve_later(self):
        async def later():
            await asyncio.sleep(0.05)
            for fut in self.futures:
                if self.fail:
                    fut.set_exception(RuntimeError("NotEnoughReplicasError"))
                else:
                    fut.set_result("metadata")
        return asyncio.ensure_future(later())


def test_store_returns_only_when_the_changelog_records_are_acknowledged(no_exit):
    async def go():
        s = common.Sender(App(Producer()), Metrics(), {}, "ingest")
        table = ChangelogTable()
        await s.store(table, {})  # nothing written: nothing to wait for
        task = None

        async def write():
            nonlocal task
            table["a"] = 1  # a write of another batch still in flight is waited for too
            task = table.resolve_later()
        await write()
        await s.store(table, {"b": 2})
        return table, task

    table, task = asyncio.run(go())
    assert no_exit == [] and dict(table) == {"a": 1, "b": 2}
    assert all(f.done() and f.result() == "metadata" for f in table.futures)
    assert faust_fixes.CHANGELOG_SENT == []


def test_a_failed_changelog_write_stops_the_worker(no_exit):
    counters: dict[str, int] = {}

    async def go():
        s = common.Sender(App(Producer()), Metrics(), counters, "ingest")
        table = ChangelogTable(fail=True)
        table["a"] = 1
        table.resolve_later()
        await s.store(table, {"b": 2})

    with pytest.raises(Exit):
        asyncio.run(go())
    faust_fixes.CHANGELOG_SENT.clear()
    assert no_exit == [("exit", failstop.EXIT_FATAL)] and counters["send_failed"] == 1


def test_a_concurrent_confirm_does_not_let_the_other_caller_return_early(no_exit):
    """The tick timer and the agent share one sender: the agent's confirm must still wait for its
    own sends when the timer's confirm took the list first."""
    order = []

    class Slow(Producer):
        async def _result(self, topic):
            await asyncio.sleep(0.05)
            order.append(("acked", topic))
            return "metadata"

    async def go():
        s = common.Sender(App(Slow()), Metrics(), {}, "ingest")
        await s.send("agent-output", b"k", b"v")
        timer = asyncio.ensure_future(s.confirm())
        await asyncio.sleep(0)  # the timer's confirm has started waiting
        await s.confirm()
        order.append(("agent returned", ""))
        await timer

    asyncio.run(go())
    assert order == [("acked", "agent-output"), ("agent returned", "")]


def test_faust_table_writes_register_their_changelog_futures():
    """Fix 5 is installed on Faust's ``Collection.send_changelog``."""
    from faust.tables.base import Collection

    faust_fixes.apply()
    assert Collection.send_changelog.__name__ == "send_changelog"
    assert Collection.send_changelog.__module__ == faust_fixes.__name__


def test_a_recovery_that_hears_nothing_is_stalled_after_the_limit():
    from pipeline.delivery import recovery_stalled

    assert recovery_stalled(100.0, None, [], 45) is None  # not recovering
    assert recovery_stalled(140.0, 100.0, [], 45) is None  # 40 s without a record: not yet
    assert recovery_stalled(146.0, 100.0, [], 45) == pytest.approx(46.0)  # nothing since the start
    assert recovery_stalled(146.0, 100.0, [120.0, 130.0], 45) is None  # records came 16 s ago
    assert recovery_stalled(176.0, 100.0, [120.0, 130.0], 45) == pytest.approx(46.0)
    assert recovery_stalled(10_000.0, 100.0, [], 0) is None  # 0: never


def test_a_stalled_table_recovery_restarts_the_worker_from_its_commits(no_exit, monkeypatch):
    """Faust starts timers only after the first recovery, and only warns while one hears nothing:
    the watch reads the recovery's own state (faust-streaming 0.15.3 attribute names)."""
    from faust.tables.recovery import Recovery

    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)
    for name in ("in_recovery", "_recovery_started_at", "_active_events_received_at"):
        assert name in Recovery.__annotations__  # the attributes read exist in this Faust version

    class Rec:
        in_recovery, _recovery_started_at, _active_events_received_at = True, 100.0, {"tp0": 110.0}

    class App:
        should_stop = False

        class tables:
            recovery = Rec()

    failstop.check_recovery(App(), 45, clock=lambda: 150.0)
    assert no_exit == []
    with pytest.raises(Exit):
        failstop.check_recovery(App(), 45, clock=lambda: 160.0)
    assert no_exit[-1][0] == "exec"
    Rec.in_recovery = False
    failstop.check_recovery(App(), 45, clock=lambda: 1000.0)  # recovered: nothing to watch
    assert len(no_exit) == 1
    assert failstop.start_recovery_watch(App(), 0) is None


def test_a_consumer_that_answers_nothing_for_a_minute_restarts_the_worker(no_exit, monkeypatch):
    """CI after a KRaft node's SIGKILL: the end-offset queries of the tail watch timed out every 10 s
    for 8 minutes while the process lived on; a minute of it restarts the worker from its commits."""
    monkeypatch.delenv(failstop.RESTART_HISTORY_ENV, raising=False)
    now = [0.0]
    guard = common.InputGuard(settings=None, metrics=Metrics(), stage="ingest", clock=lambda: now[0])
    for t in (0.0, 12.0, 24.0, 36.0, 48.0):
        now[0] = t
        guard.note_ends(False)
    now[0] = 50.0
    guard.note_ends(True)  # answered: the count starts over
    for t in (52.0, 64.0, 100.0):
        now[0] = t
        guard.note_ends(False)
    now[0] = 105.0
    guard.note_ends(None)  # a rebalance: not asked, starts over too
    for t in (110.0, 140.0):
        now[0] = t
        guard.note_ends(False)
    assert no_exit == []
    now[0] = 170.0
    with pytest.raises(Exit):
        guard.note_ends(False)
    assert no_exit[-1][0] == "exec"


def test_waiting_for_the_group_asks_again_after_a_retriable_kafka_error(monkeypatch):
    """CI's broker-restart test failed in the test's own wait: the restarted broker's coordinator
    answered CoordinatorLoadInProgress once; that is a reason to ask again, not to fail."""
    import types

    import kafka.errors

    from pipeline import runtime

    answers = [kafka.errors.CoordinatorLoadInProgressError(), 3, 0]

    def lag(*args, **kwargs):
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    monkeypatch.setattr(runtime, "group_lag", lag)
    monkeypatch.setattr(runtime, "dead_worker", lambda: None)
    settings = types.SimpleNamespace(partials_topic="partials")
    assert runtime.wait_for_group(settings, "g", ["t"], timeout=5, poll=0.01) == 0 and answers == []
    answers[:] = [ValueError("not retriable")]
    with pytest.raises(ValueError):
        runtime.wait_for_group(settings, "g", ["t"], timeout=5, poll=0.01)


def test_a_group_wait_timeout_says_what_each_running_worker_reports(monkeypatch, tmp_path):
    """A timed-out wait names the lag and carries each running worker's health and reorder / lag
    metrics (or why they could not be read), so a failed test says which wait it met."""
    import types

    from pipeline import runtime
    from pipeline.kafka_local import free_port

    w = runtime.WorkerProcess(types.SimpleNamespace(), free_port(), tmp_path / "w.log")
    w.meant_to_run = True
    monkeypatch.setattr(runtime, "_STARTED", {w})
    monkeypatch.setattr(runtime, "group_lag", lambda *a, **k: 7)
    monkeypatch.setattr(runtime, "dead_worker", lambda: None)
    settings = types.SimpleNamespace(partials_topic="partials")
    with pytest.raises(TimeoutError) as err:
        runtime.wait_for_group(settings, "g", ["t"], timeout=0.05, poll=0.01)
    text = str(err.value)
    assert "still 7 records behind" in text
    assert f"worker on port {w.web_port}" in text and "health unreachable" in text and "metrics unavailable" in text
