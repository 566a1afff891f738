"""Per-partition due-time index (pure data structure, no Faust).

Faust tables cannot be written from timers, so time-driven work (commitment
deadlines, closing aggregate windows) runs inside the agent that owns the
partition, when a tick or an event for that partition arrives.  This index
tells the agent *which* keys of the partition have something due, without
scanning the table: a min-heap of ``(due_time, key)`` per partition with lazy
deletion (the authoritative due time per key lives in ``_due``).

The index is process memory: after an assignment the agent rebuilds a
partition's entries from its table (:meth:`DueIndex.rebuild`), and forgets
revoked partitions (:meth:`DueIndex.drop`).
"""

from __future__ import annotations

import heapq
from typing import Iterable


class DueIndex:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[float, str]]] = {}
        self._due: dict[int, dict[str, float]] = {}

    def known(self, partition: int) -> bool:
        return partition in self._heaps

    def set(self, partition: int, key: str, due: float | None) -> None:
        """Record ``key``'s next due time (``None``: nothing due)."""
        dues = self._due.setdefault(partition, {})
        heap = self._heaps.setdefault(partition, [])
        if due is None:
            dues.pop(key, None)
            return
        if dues.get(key) == due:
            return
        dues[key] = due
        heapq.heappush(heap, (due, key))

    def due(self, partition: int, key: str) -> float | None:
        """``key``'s due time as last set (``None``: none set, popped, or the partition unknown)."""
        dues = self._due.get(partition)
        return None if dues is None else dues.get(key)

    def pop_due(self, partition: int, now: float) -> list[str]:
        """Keys whose due time is ``<= now`` (each once; they are removed until set again)."""
        heap = self._heaps.get(partition)
        dues = self._due.get(partition, {})
        out: list[str] = []
        while heap and heap[0][0] <= now:
            due, key = heapq.heappop(heap)
            if dues.get(key) == due:
                del dues[key]
                out.append(key)
        return out

    def next_due(self, partition: int) -> float | None:
        heap = self._heaps.get(partition)
        dues = self._due.get(partition, {})
        while heap and dues.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def size(self, partition: int) -> int:
        """Keys of ``partition`` with a due time."""
        return len(self._due.get(partition, {}))

    def overdue(self, partition: int, now: float) -> int:
        """Keys of ``partition`` due at or before ``now`` (visits only heap entries ``<= now``)."""
        heap = self._heaps.get(partition) or []
        dues = self._due.get(partition, {})
        found: set[str] = set()
        stack = [0] if heap else []
        while stack:
            i = stack.pop()
            due, key = heap[i]
            if due > now:
                continue  # a heap's children are never earlier than their parent
            if dues.get(key) == due:
                found.add(key)
            stack.extend(c for c in (2 * i + 1, 2 * i + 2) if c < len(heap))
        return len(found)

    def rebuild(self, partition: int, items: Iterable[tuple[str, float | None]]) -> None:
        self.drop(partition)
        self._heaps[partition] = []
        for key, due in items:
            self.set(partition, key, due)

    def drop(self, partition: int) -> None:
        self._heaps.pop(partition, None)
        self._due.pop(partition, None)

    def __len__(self) -> int:
        return sum(len(d) for d in self._due.values())
