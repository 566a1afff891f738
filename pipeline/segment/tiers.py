"""Value tiers by rank (issue 18): the 80/20 rule relative to the customer base, for any currency.

**Value.** A customer's *decayed spend*: every order's amount (in the reference currency, after
``PIPELINE_FX_RATES``) weighted by ``2 ** ((t - LANDMARK) / half_life)`` at its event time ``t``
(forward decay, Cormode et al. 2009).  All customers' weights shrink at the same rate as time
passes, so comparing forward-decayed sums ranks customers exactly as comparing their spends
decayed to any common "now" — without rewriting anyone's value when the clock moves.
``half_life_days`` 0 (the default) turns decay off: plain cumulative spend (docs/configuration.md
has the measurement behind that default).

**Sketch.** Per stage-1 partition, a :class:`SpendSketch` counts the values of the partition's
customers with at least one order in logarithmic buckets (DDSketch's mapping, ``ddsketch`` package:
every value in a bucket is within ``relative_accuracy`` of the bucket's representative).  Unlike a
plain DDSketch it also *removes* a value, so a customer whose spend grows moves from one bucket to
another instead of being counted twice.  Customers hash evenly over partitions, so one partition's
ranks estimate ranks in the whole base (sampling error ~ ``sqrt(q (1 - q) / n)`` for ``n``
customers in the partition: ±1.1 rank points at q = 0.8 with n = 1,250).  Within the sketch, a rank
is exact except between customers whose values lie within ``relative_accuracy`` of each other (the
same bucket: each counts as half below the other).  The sketch is an index over the stored states:
the stage-1 driver rebuilds it from the table when it takes a partition and moves a customer's
value on every state it writes, so it needs no storage and no recovery of its own.

**Tier.** ``key`` for the top ``key_share`` of customers by rank, ``regular`` for the next
``regular_share``, ``general`` for the rest.  Hysteresis: a customer enters a higher tier at its
cut-off and leaves it only ``hysteresis`` rank points below, so a customer near a cut-off does not
flip on every event.  Below ``min_customers`` customers with orders in the partition, ranks mean
little and the fixed spend thresholds apply instead.  A profile's ``tier`` always wins
(:func:`~pipeline.segment.segments.derive_segment`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from typing import Any, Iterable, Protocol

from ddsketch.mapping import LogarithmicMapping

from ..config import TierConfig

LANDMARK = 1577836800.0  # 2020-01-01T00:00:00Z: the forward-decay landmark (any fixed time would do)
DAY = 86400.0
TIERS = ("general", "regular", "key")  # low to high


def decay_weight(at: float, half_life_days: float) -> float:
    """The forward-decay weight of an amount spent at ``at`` (epoch seconds)."""
    if half_life_days <= 0:
        return 1.0
    exponent = (at - LANDMARK) / (half_life_days * DAY)
    return 2.0 ** max(-1000.0, min(1000.0, exponent))


def tier_value(seg: dict[str, Any] | None) -> float | None:
    """The value a customer state counts with in the sketch (``None``: no order, not counted)."""
    if not seg or int(seg.get("orders") or 0) <= 0:
        return None
    value = seg.get("dspend")
    return float(value) if isinstance(value, (int, float)) and value == value and value >= 0 else 0.0


class Ranks(Protocol):
    """What :func:`assign_tier` needs of a partition's sketch."""

    def rank(self, value: float, own: float | None = None) -> float | None:
        """Mid-rank of ``value`` in ``[0, 1]`` (``own``: the customer's counted value, left out);
        ``None`` while too few customers are counted."""


class SpendSketch:
    """Log-bucketed counts of the values of one partition's customers (see the module docstring)."""

    def __init__(self, relative_accuracy: float = 0.01, min_customers: int = 1) -> None:
        self.mapping = LogarithmicMapping(relative_accuracy)
        self.min_customers = min_customers
        self.counts: Counter[int] = Counter()
        # ``counts`` again as two lists sorted by key, so a rank sums a slice in C instead of looping
        # over every bucket in Python (issue 17: that loop was most of a rank's time)
        self._keys: list[int] = []
        self._sorted_counts: list[int] = []
        self.zeros = 0
        self.n = 0

    def _key(self, value: float) -> int | None:
        return None if value <= self.mapping.min_possible else self.mapping.key(value)

    def add(self, value: float, weight: int = 1) -> None:
        key = self._key(value)
        if key is None:
            self.zeros += weight
        else:
            self._count(key, self.counts[key] + weight)
        self.n += weight

    def _count(self, key: int, count: int) -> None:
        """Set the count of bucket ``key`` (a bucket with none left is dropped)."""
        keys, i = self._keys, bisect_left(self._keys, key)
        present = i < len(keys) and keys[i] == key
        if count <= 0:
            del self.counts[key]
            if present:
                del keys[i], self._sorted_counts[i]
        else:
            self.counts[key] = count
            if present:
                self._sorted_counts[i] = count
            else:
                keys.insert(i, key)
                self._sorted_counts.insert(i, count)

    def remove(self, value: float) -> None:
        self.add(value, -1)

    def move(self, old: float | None, new: float | None) -> None:
        """A customer's counted value changed (``None``: not counted)."""
        if old == new:
            return
        if old is not None:
            self.remove(old)
        if new is not None:
            self.add(new)

    def rank(self, value: float, own: float | None = None) -> float | None:
        n = self.n - (own is not None) + 1  # the customer counted once, at ``value``
        if n < self.min_customers:
            return None
        key = self._key(value)
        if key is None:
            below, same = 0, self.zeros
        else:
            i = bisect_left(self._keys, key)
            below = self.zeros + sum(self._sorted_counts[:i])
            same = self.counts.get(key, 0)
        if own is not None:
            own_key = key if own == value else self._key(own)  # most events leave the value as it was
            if own_key == key:
                same -= 1
            elif own_key is None or (key is not None and own_key < key):
                below -= 1
        return (below + 0.5 * (same + 1)) / n

    @classmethod
    def of(cls, values: Iterable[float | None], relative_accuracy: float = 0.01,
           min_customers: int = 1) -> "SpendSketch":
        sketch = cls(relative_accuracy, min_customers)
        for value in values:
            if value is not None:
                sketch.add(value)
        return sketch


def rank_tier(rank: float, previous: str | None, cfg: TierConfig) -> str:
    """The tier at ``rank`` for a customer now in ``previous`` (hysteresis on the way down)."""
    regular_at, key_at = cfg.cutoffs
    by_rank = "key" if rank >= key_at else "regular" if rank >= regular_at else "general"
    if previous not in TIERS or TIERS.index(previous) <= TIERS.index(by_rank):
        return by_rank
    # dropping: stay in the previous tier while within the hysteresis band below its cut-off
    floor = key_at if previous == "key" else regular_at
    if rank >= floor - cfg.hysteresis:
        return previous
    return "regular" if previous == "key" and rank >= regular_at - cfg.hysteresis else by_rank


def assign_tier(seg: dict[str, Any], own: float | None, ranks: Ranks | None, cfg: TierConfig) -> dict[str, Any]:
    """``seg`` with ``rank_tier`` set from the customer's rank in ``ranks`` (``own``: its value as
    counted before this event); unchanged without an order or while the sketch is too small."""
    value = tier_value(seg)
    if value is None or ranks is None:
        return seg
    rank = ranks.rank(value, own)
    if rank is None:
        return seg
    tier = rank_tier(rank, seg.get("rank_tier"), cfg)
    return seg if seg.get("rank_tier") == tier else {**seg, "rank_tier": tier}
