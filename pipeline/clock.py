"""Event-time clocks of stage 1, pure: what time it is on a partition, live and in replay.

No Faust, no Kafka: the ingest agent feeds records and wall-clock ticks in, with
each input's lag, and sweeps deadlines up to :meth:`Clocks.value`.

Semantics (``docs/clocks.md`` has the table for every situation)
    A partition's clock is the lowest, over its *active* input topics, of the
    greatest event time seen on each — Kafka Streams' stream time merged over the
    inputs of a task, Flink's watermark with idleness:

    * An input topic is **idle** on the partition when it is caught up (nothing
      left to read: end offset reached) and has delivered nothing for
      ``idle_seconds``.  An idle input stops holding the clock back; a topic that
      never delivered anything never did.
    * While inputs are busy (a replay, a catch-up after downtime) they are never
      idle, and event time rules exactly as without idleness: replays stay exact.
    * When **every** input of the partition is idle, time still passes: the clock
      is the newest event time seen plus the wall time since the last record
      arrived, never past the wall clock.  Live, where an event's time is about
      its arrival time, that is "now"; after a replay of 2017 it moves on from the
      last 2017 event one second per second.
    * The arrival times are persisted with the partition: after a restart or a
      rebalance the time that passed in between counts (live, the clock is "now"
      again at once, not behind by the downtime).
    * The clock never goes back once it moved through idleness, through an
      ``advance_to`` tick or through a wall tick (``PIPELINE_CLOCK=wall``): those
      values are kept as a floor and persisted with the partition.
    * ``idle_seconds <= 0`` switches idleness off (strict event time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

NEG_INF = float("-inf")


@dataclass
class PartitionClock:
    """One partition's clock; see the module docstring for the semantics."""

    max_time: dict[str, float] = field(default_factory=dict)  # input topic -> greatest event time seen
    last_seen: dict[str, float] = field(default_factory=dict)  # input topic -> wall time of its last record
    floor: float | None = None  # never below: advance_to / wall ticks / idle advances (persisted)

    def observe(self, topic: str, event_time: float, wall: float) -> None:
        """A record of ``topic`` with ``event_time`` was processed at wall time ``wall``."""
        if event_time > self.max_time.get(topic, NEG_INF):
            self.max_time[topic] = event_time
        self.last_seen[topic] = max(wall, self.last_seen.get(topic, NEG_INF))

    def force(self, t: float) -> None:
        self.floor = t if self.floor is None else max(self.floor, t)

    def idle_topics(self, wall: float, caught_up: Mapping[str, bool], idle_seconds: float) -> set[str]:
        """The seen topics that stopped holding the clock: caught up and quiet for ``idle_seconds``.

        ``caught_up``: topic -> no records left to read on this partition (a topic
        missing from it counts as not caught up: unknown lag holds the clock).
        """
        if idle_seconds <= 0:
            return set()
        return {t for t in self.max_time
                if caught_up.get(t, False) and wall - self.last_seen.get(t, NEG_INF) >= idle_seconds}

    def value(self, wall: float | None = None, caught_up: Mapping[str, bool] | None = None,
              idle_seconds: float = 0.0) -> float | None:
        """The clock now.  Without ``wall`` / ``caught_up`` (or idleness off): strict event time.

        When every seen input is idle the clock moves on with wall time, and the
        value is kept as the floor (it never goes back when an input wakes up).
        """
        if not self.max_time:
            return self.floor
        if wall is not None:
            for t in self.max_time:  # restored without an arrival time (older snapshot): quiet from now on
                self.last_seen.setdefault(t, wall)
        idle = self.idle_topics(wall, caught_up or {}, idle_seconds) if wall is not None else set()
        active = [t for t in self.max_time if t not in idle]
        if active:
            natural = min(self.max_time[t] for t in active)
        else:
            assert wall is not None  # every topic idle implies a wall time was given
            newest = max(self.max_time.values())
            arrived = max(self.last_seen.values())
            natural = max(newest, min(wall, newest + (wall - arrived)))
            self.force(natural)
        return natural if self.floor is None else max(natural, self.floor)

    def snapshot(self) -> dict[str, Any]:
        """Plain data to persist (in the table's per-partition metadata key)."""
        return {"max": dict(self.max_time), "forced": self.floor, "seen": dict(self.last_seen)}

    def restore(self, doc: Mapping[str, Any] | None) -> None:
        """Merge a :meth:`snapshot` back (after a restart or a rebalance).

        The wall times of the last records come back too: time that passed while
        no worker owned the partition counts when every input is idle.
        """
        if not doc:
            return
        for topic, t in (doc.get("max") or {}).items():
            if float(t) > self.max_time.get(topic, NEG_INF):
                self.max_time[topic] = float(t)
        for topic, w in (doc.get("seen") or {}).items():
            if w is not None and float(w) > self.last_seen.get(topic, NEG_INF):
                self.last_seen[topic] = float(w)
        if doc.get("forced") is not None:
            self.force(float(doc["forced"]))


@dataclass
class Clocks:
    """The clocks of the partitions a worker owns (stage 1)."""

    idle_seconds: float = 0.0
    parts: dict[int, PartitionClock] = field(default_factory=dict)

    def of(self, partition: int) -> PartitionClock:
        clock = self.parts.get(partition)
        if clock is None:
            clock = self.parts[partition] = PartitionClock()
        return clock

    def observe(self, partition: int, topic: str, event_time: float, wall: float) -> None:
        self.of(partition).observe(topic, event_time, wall)

    def force(self, partition: int, t: float) -> None:
        self.of(partition).force(t)

    def value(self, partition: int, wall: float | None = None,
              caught_up: Mapping[str, bool] | None = None) -> float | None:
        clock = self.parts.get(partition)
        if clock is None:
            return None
        return clock.value(wall, caught_up, self.idle_seconds)

    def topics(self, partition: int) -> list[str]:
        """The input topics seen on ``partition`` (those whose lag decides idleness)."""
        clock = self.parts.get(partition)
        return [] if clock is None else list(clock.max_time)

    def drop(self, partition: int) -> None:
        self.parts.pop(partition, None)

    def snapshot(self, partition: int) -> dict[str, Any]:
        clock = self.parts.get(partition)
        return {"max": {}, "forced": None} if clock is None else clock.snapshot()

    def restore(self, partition: int, doc: Mapping[str, Any] | None) -> None:
        if doc:
            self.of(partition).restore(doc)
