"""Language-independent scoring: signals -> per-category pain strengths + sentiment.

Each analyser (Korean, English/Portuguese) turns text into :class:`Signal`s
grouped by clause. Here, within a clause, every free polarity is attached to
the nearest aspect (any category); category-bound polarities count for their
own category. A category whose summed polarity in a clause is clearly negative
is a pain point candidate for that clause. Negative words with no aspect in
their clause go to the taxonomy's fallback category (if any) when nothing
more specific was found in the whole text.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from .model import Signal

CONTRAST_BEFORE = 0.5  # sentiment weight of the clause before a contrast ("good, but ...")
CONTRAST_AFTER = 1.0   # ... and of the clause right after it (1.5 measured worse on the dev data)
PAIN_THRESHOLD = 0.25  # |summed polarity| a clause needs to count as a complaint
MAX_EVIDENCE = 6


@dataclass
class Aggregate:
    # category -> list of (strength, [(start, end), ...]) per clause
    pains: dict[str, list[tuple[float, list[tuple[int, int]]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # unattributed negative clauses: (strength, spans)
    unattributed: list[tuple[float, list[tuple[int, int]]]] = field(default_factory=list)
    positive: float = 0.0
    negative: float = 0.0

    def merge(self, other: "Aggregate") -> None:
        for cid, items in other.pains.items():
            self.pains[cid].extend(items)
        self.unattributed.extend(other.unattributed)
        self.positive += other.positive
        self.negative += other.negative


def _nearest(pos: int, aspects: list[Signal], following_penalty: float) -> Signal | None:
    best, best_d = None, math.inf
    for a in aspects:
        d = abs(a.pos - pos)
        if a.pos > pos:
            d += following_penalty
        if d < best_d:
            best, best_d = a, d
    return best


def contrast_weight(clause: int, contrast_before) -> float:  # noqa: ANN001 - a set of clause ids
    """Sentiment weight of a clause given the clauses that end with a contrast cue."""
    w = 1.0
    if clause in contrast_before:
        w *= CONTRAST_BEFORE
    if clause - 1 in contrast_before:
        w *= CONTRAST_AFTER
    return w


def aggregate(
    signals: list[Signal], *, following_penalty: float = 0.0, contrast_before: frozenset[int] | set[int] = frozenset()
) -> Aggregate:
    """Score signals clause by clause (see module docstring). ``contrast_before``: clauses
    that end with a contrast cue; they weigh less in the sentiment sums, the next clause more."""
    out = Aggregate()
    by_clause: dict[int, list[Signal]] = defaultdict(list)
    for s in signals:
        by_clause[s.clause].append(s)
    for clause_id, clause in by_clause.items():
        sw = contrast_weight(clause_id, contrast_before) if contrast_before else 1.0
        anchors = [s for s in clause if s.category is not None and s.kind in ("aspect", "polar")]
        totals: dict[str | None, float] = defaultdict(float)
        spans: dict[str | None, list[tuple[int, int]]] = defaultdict(list)
        for s in clause:
            if s.kind == "aspect":
                spans[s.category].append((s.start, s.end))
                continue
            if s.kind == "context":
                cats = dict(s.ctx)
                near = _nearest(s.pos, [a for a in anchors if a.category in cats], following_penalty)
                if near is None:
                    continue
                value, cid = cats[near.category], near.category
            elif s.category is not None:
                value, cid = s.value, s.category
            else:
                near = _nearest(s.pos, anchors, following_penalty)
                value, cid = s.value, (near.category if near else None)
            if value > 0:
                out.positive += value * sw
            else:
                out.negative -= value * sw
            totals[cid] += value
            spans[cid].append((s.start, s.end))
        for cid, total in totals.items():
            if total > -PAIN_THRESHOLD:
                continue
            if cid is None:
                out.unattributed.append((-total, spans[cid]))
            else:
                out.pains[cid].append((-total, spans[cid]))
    return out


def strength_to_confidence(strength: float) -> float:
    return min(0.99, 0.35 + 0.6 * math.tanh(strength))


def noisy_or(confidences: list[float]) -> float:
    p = 1.0
    for c in confidences:
        p *= 1.0 - c
    return min(0.99, 1.0 - p)


def evidence_items(text: str, spans: list[tuple[int, int]]) -> list[dict]:
    """``{"text", "start", "end"}`` of the distinct valid spans in order, without those contained in
    an earlier kept one; at most :data:`MAX_EVIDENCE`."""
    out = []
    reach = None  # the largest end kept: every kept span starts at or before the current one (sorted)
    for start, end in sorted(set(spans)):
        if start < 0 or end > len(text) or start >= end:
            continue
        if reach is not None and end <= reach:  # contained in an already kept span
            continue
        reach = end if reach is None else max(reach, end)
        out.append({"text": text[start:end], "start": start, "end": end})
        if len(out) >= MAX_EVIDENCE:
            break
    return out


def sentiment_from_totals(positive: float, negative: float, smoothing: float = 0.6) -> float:
    """Text sentiment in -1..1 from summed positive and negative evidence."""
    total = positive + negative
    if total <= 0:
        return 0.0
    return (positive - negative) / (total + smoothing)
