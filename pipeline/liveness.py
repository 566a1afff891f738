"""Is this worker making progress?  The verdict behind ``GET /health`` (pure: no Faust, no clock).

:class:`Liveness` is fed observations — per assigned input partition its
committed offset and end offset at a time ``now`` (monotonic seconds), whether
the app is settling (rebalancing, or table recovery not completed), whether
each agent has a live actor — and answers a :class:`Verdict`:

* a partition is **stuck** when it has a backlog (``end - committed`` above its
  ``slack``) and the committed offset has not moved for ``stuck_seconds``
  (counted from the later of: the last move of the committed offset, the moment
  the backlog appeared, the end of the last settling period).  Not counted while
  the app is settling;
* settling itself is stuck once it lasted ``stuck_seconds`` (a rebalance or a
  recovery that never ends);
* an agent without a live actor for ``agent_grace_seconds`` (outside settling;
  Faust's supervisor restarts a crashed actor within a moment) is **dead**;
* offsets not sampled for ``stuck_seconds`` (the sampler itself hangs) is stuck;
* while the worker commits on other partitions (any committed offset moved within
  ``stuck_seconds``), a partition counts as stuck only after ``BUSY_FACTOR`` × ``stuck_seconds``:
  during a backlog the records of one partition (the wall-clock ticks, say) can wait behind
  thousands of fetched records of the others for longer than the threshold — that is a worker
  behind, not a stuck one; a blocked agent stops every commit and is caught at ``stuck_seconds``;
* a partition whose committed offset is a record **held for event-time order** (the reorder
  buffer waits for other input topics of its partition during a backlog: pipeline/ingest/order.py)
  is reported ``held_for_order``, not stuck — its commit moves when the backlog of the other
  topics is read; a stuck agent still shows on its other partitions and in its actors.

``slack`` forgives records a partition can legitimately keep uncommitted
forever: the worker's own internal topics end with a record or transaction
marker that is never acknowledged (1 per partition).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_STUCK_SECONDS = 20.0
DEFAULT_AGENT_GRACE_SECONDS = 5.0
BUSY_FACTOR = 3.0  # a partition's stall limit while the worker commits elsewhere, × stuck_seconds

PartitionKey = tuple[str, int]


def stuck_seconds_from_env(env: Mapping[str, str] | None = None) -> float:
    """``PIPELINE_STUCK_SECONDS`` (default 20, must be > 0)."""
    env = {} if env is None else env  # the environment only when given (pipeline.stage_settings)
    raw = env.get("PIPELINE_STUCK_SECONDS") or ""
    value = float(raw) if raw.strip() else DEFAULT_STUCK_SECONDS
    if not value > 0:
        raise ValueError("PIPELINE_STUCK_SECONDS must be greater than 0")
    return value


@dataclass
class _Partition:
    committed: int | None
    end: int | None
    slack: int
    moved_at: float  # the committed offset last changed (or was first seen)
    backlog_since: float | None  # backlog without commit progress since
    held: bool = False  # the committed offset is a record held for event-time order


@dataclass(frozen=True)
class PartitionReport:
    topic: str
    partition: int
    committed: int | None
    end: int | None
    backlog: int | None  # end - committed (None if either is unknown)
    committed_moved_seconds_ago: float  # since the committed offset last moved (or was first seen)
    stalled_seconds: float  # backlog waiting without commit progress (0 without a backlog)
    stuck: bool
    held_for_order: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "committed": self.committed, "end": self.end,
                "backlog": self.backlog, "committed_moved_seconds_ago": round(self.committed_moved_seconds_ago, 1),
                "stalled_seconds": round(self.stalled_seconds, 1), "stuck": self.stuck,
                "held_for_order": self.held_for_order}


@dataclass(frozen=True)
class Verdict:
    status: str  # "ok" | "stuck"
    reasons: tuple[str, ...]
    partitions: tuple[PartitionReport, ...]
    dead_agents: tuple[str, ...]
    settling_seconds: float | None  # None when not settling

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": list(self.reasons),
                "settling_seconds": None if self.settling_seconds is None else round(self.settling_seconds, 1),
                "dead_agents": list(self.dead_agents), "partitions": [p.as_dict() for p in self.partitions]}


class Liveness:
    """Commit progress per partition, settling and agent state → :class:`Verdict` (see the module doc)."""

    def __init__(self, stuck_seconds: float = DEFAULT_STUCK_SECONDS,
                 agent_grace_seconds: float = DEFAULT_AGENT_GRACE_SECONDS) -> None:
        if not stuck_seconds > 0:
            raise ValueError("stuck_seconds must be greater than 0")
        self.stuck_seconds = stuck_seconds
        self.agent_grace_seconds = agent_grace_seconds
        self._parts: dict[PartitionKey, _Partition] = {}
        self._settling_since: float | None = None
        self._settled_at = float("-inf")
        self._agents: dict[str, bool] = {}
        self._dead_since: dict[str, float] = {}
        self._sampled_at: float | None = None
        self._progress_at = float("-inf")  # a committed offset last moved on any partition

    # -- observations ----------------------------------------------------------------------------
    def observe(self, partition: PartitionKey, committed: int | None, end: int | None, now: float,
                slack: int = 0, held: bool = False) -> None:
        """One sample of a partition: ``committed`` = next offset to process (Kafka's committed offset);
        ``held``: that offset is a record held for event-time order."""
        state = self._parts.get(partition)
        backlog = committed is not None and end is not None and end - committed > slack
        if state is None:
            self._parts[partition] = _Partition(committed, end, slack, now, now if backlog else None, held)
            return
        state.held = held
        if committed != state.committed:
            state.moved_at = now
            self._progress_at = max(self._progress_at, now)
            state.backlog_since = now if backlog else None
        elif not backlog:
            state.backlog_since = None
        elif state.backlog_since is None:
            state.backlog_since = now
        state.committed, state.end, state.slack = committed, end, slack

    def assigned(self, partitions: Iterable[PartitionKey]) -> None:
        """Forget partitions no longer assigned (a partition assigned again starts afresh)."""
        keep = set(partitions)
        for key in [k for k in self._parts if k not in keep]:
            del self._parts[key]

    def settling(self, settling: bool, now: float) -> None:
        """Whether the app is rebalancing or recovering its tables right now."""
        if settling and self._settling_since is None:
            self._settling_since = now
        elif not settling and self._settling_since is not None:
            self._settling_since = None
            self._settled_at = now

    def agents(self, alive: Mapping[str, bool], now: float) -> None:
        """Per agent name: whether it has a live (running, not crashed) actor."""
        self._agents = dict(alive)
        for name, ok in alive.items():
            if ok:
                self._dead_since.pop(name, None)
            else:
                self._dead_since.setdefault(name, now)
        for name in [n for n in self._dead_since if n not in alive]:
            del self._dead_since[name]

    def sampled(self, now: float) -> None:
        """A sampling round (offsets of every assigned partition) completed."""
        self._sampled_at = now

    # -- verdict ---------------------------------------------------------------------------------
    def verdict(self, now: float) -> Verdict:
        limit = self.stuck_seconds
        reasons: list[str] = []
        settling_for = None if self._settling_since is None else max(0.0, now - self._settling_since)
        if settling_for is not None and settling_for >= limit:
            reasons.append(f"rebalancing or table recovery for {settling_for:.0f}s (limit {limit:g}s)")
        if self._sampled_at is not None and now - self._sampled_at >= limit:
            reasons.append(f"offsets not sampled for {now - self._sampled_at:.0f}s")
        reports = []
        busy = now - self._progress_at < limit  # commits moved somewhere in the last stuck_seconds
        part_limit = limit * BUSY_FACTOR if busy else limit
        for (topic, partition), st in sorted(self._parts.items()):
            backlog = None if st.committed is None or st.end is None else max(0, st.end - st.committed)
            stalled = 0.0
            if st.backlog_since is not None:
                stalled = max(0.0, now - max(st.backlog_since, self._settled_at))
            stuck = settling_for is None and st.backlog_since is not None and stalled >= part_limit and not st.held
            if stuck:
                reasons.append(f"{topic}[{partition}]: {backlog} records behind, committed offset "
                               f"{st.committed} not moved for {stalled:.0f}s")
            reports.append(PartitionReport(topic, partition, st.committed, st.end, backlog,
                                           max(0.0, now - st.moved_at), stalled, stuck, st.held))
        dead = tuple(sorted(name for name, since in self._dead_since.items()
                            if settling_for is None
                            and now - max(since, self._settled_at) >= self.agent_grace_seconds))
        reasons.extend(f"agent {name} has no running actor" for name in dead)
        return Verdict("stuck" if reasons else "ok", tuple(reasons), tuple(reports), dead, settling_for)
