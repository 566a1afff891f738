"""Delivery checks, pure: is a partition's input gap-free, and may a worker restart itself again?

No Faust, no Kafka: the agents (:mod:`pipeline.agents`) feed offsets in and act
on the verdicts (:mod:`pipeline.agents.failstop`).

Why a gap check at all
    Faust hands an agent a partition's records in offset order and commits only a
    contiguous run of acknowledged offsets.  Around back-to-back rebalances (a
    worker restarted right after a ``kill -9``) it can drop a range of prefetched
    records and hand over the records after it; the skipped range is then never
    processed.  Worse, Faust's fetch loop registers such a jump as a "gap" that
    becomes committable once a record past it is acknowledged, so a kill or a
    rebalance in that window loses the range for good.  The agent therefore checks
    every record against the next expected offset *before* anything of it is
    acknowledged, and when a record arrives past a missing range it asks Kafka
    whether the range exists (compaction, retention and transaction markers leave
    offsets that never come): if not, the gap is accepted; if it does, the worker
    stops and restarts from its committed offsets, which are still at or below the
    first missing record.  It never seeks Faust's consumer (whose fetcher runs on
    another thread).
"""

from __future__ import annotations

from collections.abc import Iterable

from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    PROCESS = "process"  # the next expected record (or the first seen on the partition)
    SKIP = "skip"  # below the next expected offset: delivered again, already processed in this run
    GAP = "gap"  # past the next expected offset: a range is missing


@dataclass
class GapCheck:
    """Next expected offset per (topic, partition); :meth:`check` judges each delivered record.

    The expectation starts at the group's committed offset when the partition is
    assigned (:meth:`start`) and moves by one with every accepted record.  A
    partition never started is trusted from its first record.
    """

    expected: dict[tuple[str, int], int] = field(default_factory=dict)

    def start(self, topic: str, partition: int, offset: int | None) -> None:
        """The first offset to expect on a newly assigned partition (its committed offset)."""
        if offset is not None and (topic, partition) not in self.expected:
            self.expected[(topic, partition)] = offset

    def forget(self, topic: str, partition: int) -> None:
        """The partition was revoked: its next owner (maybe this worker again) starts afresh."""
        self.expected.pop((topic, partition), None)

    def check(self, topic: str, partition: int, offset: int) -> Verdict:
        """The verdict for a delivered record; PROCESS moves the expectation past it, GAP does not."""
        want = self.expected.get((topic, partition))
        if want is None or offset == want:
            self.expected[(topic, partition)] = offset + 1
            return Verdict.PROCESS
        return Verdict.SKIP if offset < want else Verdict.GAP

    def missing(self, topic: str, partition: int, offset: int) -> tuple[int, int]:
        """The missing range ``[first, end)`` before ``offset`` (after a GAP verdict)."""
        return self.expected.get((topic, partition), offset), offset

    def accept_gap(self, topic: str, partition: int, offset: int) -> None:
        """Kafka confirmed the offsets before ``offset`` do not exist: take ``offset`` as the next record."""
        self.expected[(topic, partition)] = offset + 1


def gap_is_real(first_existing: int | None, end: int) -> bool:
    """Whether records exist in a missing range ``[first, end)``.

    ``first_existing`` is the offset of the first record Kafka returns when read
    from ``first`` (None: nothing there at all).  The range is real, and was
    dropped on the way to the agent, when that record lies before ``end``.
    """
    return first_existing is not None and first_existing < end


@dataclass(frozen=True)
class RestartBudget:
    """How often a worker may restart itself before handing the problem to its orchestrator.

    A self-restart (re-reading from the committed offsets after a dropped range)
    is cheap and exact, but a cause that survives restarts would loop forever.
    At most ``limit`` restarts within ``window_seconds``; the next one is refused
    and the worker exits non-zero instead (Kubernetes then backs off).
    """

    limit: int = 5
    window_seconds: float = 600.0

    def allow(self, history: list[float], now: float) -> tuple[bool, list[float]]:
        """(allowed, the history to hand to the restarted process)."""
        recent = [t for t in history if now - self.window_seconds < t <= now]
        if len(recent) >= self.limit:
            return False, recent
        return True, [*recent, now]


def parse_history(text: str | None) -> list[float]:
    """``"1700000000.5,1700000100.0"`` → floats; anything unparsable is ignored."""
    out: list[float] = []
    for part in (text or "").split(","):
        try:
            out.append(float(part))
        except ValueError:
            continue
    return out


def format_history(history: list[float]) -> str:
    return ",".join(f"{t:.3f}" for t in history)


def recovery_stalled(now: float, started_at: float | None, received_at: Iterable[float],
                     limit: float) -> float | None:
    """Seconds a table recovery has received no changelog record, when that exceeds ``limit``; else
    None.  ``started_at``: when the recovery (re)started (None: not recovering); ``received_at``: when
    each active changelog partition last delivered a record (all on the same monotonic clock).
    A recovery that has something left to read (it would have ended otherwise) and hears nothing
    for ``limit`` seconds waits on partitions the consumer is not fetching: after back-to-back
    rebalances Faust can keep a partition assigned and never fetch it (CI, the SIGSTOP test: two
    ``customers`` changelog partitions, "No event received ... since recovery start" for minutes).
    ``limit`` 0: never stalled."""
    if started_at is None or limit <= 0:
        return None
    quiet = now - max([started_at, *received_at])
    return quiet if quiet > limit else None


@dataclass
class FreezeWatch:
    """Notices that the process stood still longer than ``limit`` seconds (SIGSTOP, a paused VM).

    :meth:`tick` is called about once a second from the consumer's own thread,
    the one that sends the group heartbeats; a stop of the main event loop alone
    does not count, the heartbeats went on.  A process frozen past the group's
    session timeout has been evicted and its partitions handed to another worker;
    until it notices, whatever it writes is a zombie's: a stale table state in a
    changelog that the next owner restores, outputs of partitions it no longer
    owns.  :meth:`frozen` is asked before every output; a positive answer means
    restart from the committed offsets instead of writing.
    """

    limit: float
    last: float | None = None  # monotonic time of the last tick (None: not started, or stopped)
    frozen_for: float | None = None  # the longest stand-still a tick saw (sticky)

    def tick(self, now: float) -> None:
        if self.last is not None and now - self.last > self.limit:
            self.frozen_for = max(self.frozen_for or 0.0, now - self.last)
        self.last = now

    def frozen(self, now: float) -> float | None:
        """Seconds the process stood still, when longer than ``limit`` (a tick may not have run yet)."""
        if self.frozen_for is not None:
            return self.frozen_for
        if self.last is not None and now - self.last > self.limit:
            return now - self.last
        return None

    def stop(self) -> None:
        """Shutting down: the consumer's thread stops ticking, and that is no freeze."""
        self.last, self.frozen_for = None, None
