"""Explainable churn-risk score (0..100) from a customer's churn state.

:func:`score` evaluates every factor configured in the weights file
(``default_weights.yaml`` next to this module, or the operator's own file via
``PIPELINE_CHURN_WEIGHTS_FILE``; see :func:`load_weights`).  Each factor maps
the state to a **pressure** ``p`` in 0..1 and has a **weight** ``w`` in [0, 1).
The factors combine as a noisy OR::

    score = 100 * (1 - Π_i (1 - w_i * p_i))

so a factor alone at full pressure gives ``100 * w_i`` points, several factors
add up with diminishing returns, and the score never exceeds 100.  The score is
attributed to the factors exactly, in proportion to ``-ln(1 - w_i * p_i)`` (the
noisy OR is a sum in that space): the contributions add up to the score.

Time decay is exponential in event time: an item ``age`` days before ``now``
weighs ``0.5 ** (age / half_life_days)``; items below :data:`RELEVANT` are
neither counted nor cited.  Items dated after ``now`` (late arrivals) count as
age 0.  The factors and their parameters are documented in
``default_weights.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from ..yamlfile import read_mapping
from .state import DAY, State, cadence_days

DEFAULT_WEIGHTS_PATH = Path(__file__).resolve().parent / "default_weights.yaml"
ENV_WEIGHTS_FILE = "PIPELINE_CHURN_WEIGHTS_FILE"
RELEVANT = 0.05  # decay weight below which an item no longer counts
MAX_FACTOR_EVIDENCE = 10
MAX_PRESSURE = 0.999  # keeps ln(1 - w*p) finite

# Parameters each factor accepts besides ``weight`` (anything else in the file is an error).
FACTOR_PARAMS: dict[str, frozenset[str]] = {
    "broken_commitments": frozenset({"half_life_days", "full"}),
    "open_complaints": frozenset({"full", "base", "age_full_days"}),
    "reopened_complaints": frozenset({"half_life_days", "full"}),
    "negative_feedback": frozenset({"half_life_days", "full"}),
    "satisfaction_gap_trend": frozenset({"half_life_days", "level_full", "fall_full"}),
    "recency_vs_cadence": frozenset({"start_ratio", "full"}),
    "follow_up": frozenset({"half_life_days", "full", "silence_ramp"}),
    "pain_points_recent": frozenset({"half_life_days", "start", "full"}),
}


@dataclass(frozen=True)
class FactorWeight:
    """One factor's configuration: its ``weight`` and numeric parameters (``half_life_days``, ``full``, ...)."""

    weight: float
    params: Mapping[str, float]

    def get(self, name: str, default: float | None = None) -> float:
        try:
            return self._values[name]
        except KeyError:
            value = self.params.get(name, default)
        if value is None:
            raise KeyError(f"churn weights: missing parameter {name!r}")
        return float(value)

    @cached_property
    def _values(self) -> dict[str, float]:
        """The numeric ``params`` as floats, converted once (:meth:`get` runs about a dozen times per
        score); any other value takes :meth:`get`'s general path, with its error."""
        return {name: float(value) for name, value in self.params.items() if isinstance(value, (int, float))}


@dataclass(frozen=True)
class Weights:
    """All factor configurations plus the cadence defaults; ``source`` names the file(s) read."""

    factors: Mapping[str, FactorWeight]
    default_cadence_days: float = 90.0
    min_cadence_days: float = 7.0
    source: str = ""

    @cached_property
    def active(self) -> tuple[tuple[str, FactorWeight, Callable[..., _Raw | None]], ...]:
        """``(name, configuration, factor function)`` of every factor with a positive weight, in the
        configuration's order (looked up once, not per score)."""
        return tuple((name, fw, FACTORS[name]) for name, fw in self.factors.items() if fw.weight > 0)

    @cached_property
    def positive(self) -> Mapping[str, FactorWeight]:
        """The factors with a positive weight, by name."""
        return {name: fw for name, fw in self.factors.items() if fw.weight > 0}


@dataclass(frozen=True)
class Factor:
    """One factor's part in a score.

    ``value`` is the factor's measurement in its own unit (see the weights file),
    ``pressure`` its 0..1 mapping, ``contribution`` the points of the score it
    accounts for, ``evidence`` the event ids behind it (newest first),
    ``description`` a sentence without personal data or customer text, and
    ``details`` template values for playbooks (e.g. ``kinds``, ``count``).
    """

    name: str
    value: float
    contribution: float
    evidence: tuple[str, ...]
    description: str
    pressure: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)

    def brief(self) -> dict[str, Any]:
        """``{name, value, contribution}`` as carried by alerts and snapshots."""
        return {"name": self.name, "value": self.value, "contribution": self.contribution}


@dataclass(frozen=True)
class RiskScore:
    """A score 0..100 at event time ``at`` with its non-zero factors, largest contribution first.

    Scored with ``explain=False`` the factors carry no evidence, description or details (the
    score, names, values, contributions and order are the same); :meth:`explained` builds them.
    """

    score: float
    factors: tuple[Factor, ...]
    at: float
    explain: Callable[[], RiskScore] | None = field(default=None, compare=False, repr=False)

    def top_factors(self, n: int = 3) -> list[Factor]:
        return list(self.factors[:n])

    def explained(self) -> RiskScore:
        """This score with every factor's evidence, description and details."""
        return self if self.explain is None else self.explain()


@dataclass(slots=True)
class _Raw:
    """A factor's measurement.  Evaluated with ``explain=False`` (the silence schedule's bounds and
    totals) only ``pressure`` and ``value`` are set: evidence, description and details stay empty
    (``details`` ``None``).  Neither frozen nor with default factories: built once per factor and score."""

    pressure: float
    value: float
    evidence: Sequence[str] = ()
    description: str = ""
    details: dict[str, Any] | None = None


# --------------------------------------------------------------------------- weights


def load_weights(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Weights:
    """Read the default weights, then merge ``path`` (or ``$PIPELINE_CHURN_WEIGHTS_FILE``) over them.

    Raises ``ValueError`` for an unknown factor or parameter, a weight outside
    [0, 1), or a non-positive half-life / ``full``.
    """
    env = {} if env is None else env  # the environment only when given (pipeline.stage_settings)
    chosen = Path(path) if path is not None else (Path(env[ENV_WEIGHTS_FILE]) if env.get(ENV_WEIGHTS_FILE) else None)
    data = read_mapping(DEFAULT_WEIGHTS_PATH, "churn weights")
    source = str(DEFAULT_WEIGHTS_PATH)
    if chosen is not None and chosen.resolve() != DEFAULT_WEIGHTS_PATH:
        data = _merge(data, read_mapping(chosen, "churn weights"))
        source = f"{DEFAULT_WEIGHTS_PATH} + {chosen}"
    return weights_from_mapping(data, source)


def weights_from_mapping(data: Mapping[str, Any], source: str = "") -> Weights:
    """Build :class:`Weights` from a complete mapping shaped like ``default_weights.yaml``."""
    factors: dict[str, FactorWeight] = {}
    for name, spec in (data.get("factors") or {}).items():
        if name not in FACTOR_PARAMS:
            raise ValueError(f"churn weights: unknown factor {name!r} (known: {sorted(FACTOR_PARAMS)})")
        spec = dict(spec or {})
        weight = float(spec.pop("weight", 0.0))
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"churn weights: {name}.weight must be in [0, 1), got {weight}")
        unknown = set(spec) - FACTOR_PARAMS[name]
        if unknown:
            raise ValueError(f"churn weights: unknown parameter(s) {sorted(unknown)} for {name}")
        params = {k: float(v) for k, v in spec.items()}
        for k in ("half_life_days", "full", "age_full_days", "level_full", "fall_full", "silence_ramp"):
            if k in params and params[k] <= 0:
                raise ValueError(f"churn weights: {name}.{k} must be > 0, got {params[k]}")
        factors[name] = FactorWeight(weight, params)
    return Weights(
        factors=factors,
        default_cadence_days=float(data.get("default_cadence_days", 90.0)),
        min_cadence_days=float(data.get("min_cadence_days", 7.0)),
        source=source,
    )

def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


# --------------------------------------------------------------------------- scoring


def score(state: State | None, now: float, weights: Weights, explain: bool = True) -> RiskScore:
    """Score ``state`` at event time ``now`` (epoch s) with ``weights``; pure and deterministic.
    ``explain=False``: no factor evidence, description or details until :meth:`RiskScore.explained`
    (an enriched event's snapshot needs none; only an alert does)."""
    s = state or {}
    found: list[tuple[str, _Raw]] = []
    logs: list[float] = []
    for name, fw, measure in weights.active:
        raw = measure(s, now, fw, weights, explain)
        if raw is not None and raw.pressure > 0:
            found.append((name, raw))
            logs.append(-math.log1p(-min(MAX_PRESSURE, fw.weight * raw.pressure)))
    total_log = sum(logs)
    total = 100.0 * (1.0 - math.exp(-total_log))
    factors = [
        Factor(name, round(raw.value, 3), round(total * lg / total_log, 2) if total_log > 0 else 0.0,
               tuple(raw.evidence[:MAX_FACTOR_EVIDENCE]), raw.description, round(raw.pressure, 4),
               {} if raw.details is None else raw.details)
        for (name, raw), lg in zip(found, logs)
    ]
    if len(factors) > 1:
        factors.sort(key=_rank)
    later = None if explain else partial(score, state, now, weights)
    return RiskScore(round(total, 2), tuple(factors), now, later)


def _rank(f: Factor) -> tuple[float, str]:
    """Sort key of a score's factors: largest contribution first, then by name."""
    return -f.contribution, f.name


def decay(age_seconds: float, half_life_days: float) -> float:
    """``0.5 ** (age / half-life)``; a negative age (item after ``now``) counts as 0."""
    return 0.5 ** (max(0.0, age_seconds) / (half_life_days * DAY))


def _days(seconds: float) -> str:
    d = max(0.0, seconds) / DAY
    return "today" if d < 1 else f"{_plural(round(d), 'day')} ago"


def _span(days: float) -> str:
    return "less than a day" if days < 1 else _plural(round(days), "day")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _broken_commitments(s: State, now: float, fw: FactorWeight, w: Weights, explain: bool = True) -> _Raw | None:
    scale = fw.get("half_life_days") * DAY
    items: list[tuple[dict[str, Any], float]] = []
    for b in (s.get("breaches") or {}).values():
        age = now - b["last"]
        d = 0.5 ** ((age if age > 0.0 else 0.0) / scale)  # decay(), inlined: the hottest loop of a score
        if d >= RELEVANT:
            items.append((b, d))
    if not items:
        return None
    if len(items) > 1:
        items.sort(key=_by_last)
    value = sum([d for _, d in items])
    if not explain:
        return _Raw(min(1.0, value / fw.get("full")), value)
    kinds = list(dict.fromkeys(b["kind"] for b, _ in items))
    evidence = [e for b, _ in items for e in reversed(b["evidence"])]
    desc = (f"{_plural(len(items), 'broken commitment')} ({', '.join(kinds)}), "
            f"latest {_days(now - items[0][0]['last'])}")
    return _Raw(min(1.0, value / fw.get("full")), value, _unique(evidence), desc,
                {"kinds": " and ".join(kinds), "count": len(items)})


def _open_complaints(s: State, now: float, fw: FactorWeight, w: Weights, explain: bool = True) -> _Raw | None:
    open_ = [c for c in (s.get("complaints") or {}).values() if c["status"] == "open"]
    if not open_:
        return None
    base, age_full = fw.get("base"), fw.get("age_full_days")
    ages = [max(0.0, now - (c["reopened_at"] or c["opened_at"])) / DAY for c in open_]
    total = sum([base + (1 - base) * min(1.0, a / age_full) for a in ages])
    if not explain:
        return _Raw(min(1.0, total / fw.get("full")), float(len(open_)))
    open_.sort(key=lambda c: -(c["reopened_at"] or c["opened_at"]))
    evidence = [e for c in open_ for e in reversed(c["event_ids"])]
    oldest = max(ages)
    desc = f"{_plural(len(open_), 'open complaint')}, the oldest open for {_span(oldest)}"
    return _Raw(min(1.0, total / fw.get("full")), float(len(open_)), _unique(evidence), desc,
                {"count": len(open_), "oldest_days": round(oldest, 1)})


def _reopened_complaints(s: State, now: float, fw: FactorWeight, w: Weights, explain: bool = True) -> _Raw | None:
    scale = fw.get("half_life_days") * DAY
    items: list[tuple[dict[str, Any], float]] = []
    for c in (s.get("complaints") or {}).values():
        if c["reopened"] > 0 and c["reopened_at"] is not None:
            age = now - c["reopened_at"]
            d = 0.5 ** ((age if age > 0.0 else 0.0) / scale)
            if d >= RELEVANT:
                items.append((c, d))
    if not items:
        return None
    if len(items) > 1:
        items.sort(key=_by_reopened_at)
    value = sum([c["reopened"] * d for c, d in items])
    if not explain:
        return _Raw(min(1.0, value / fw.get("full")), value)
    times = sum(c["reopened"] for c, _ in items)
    evidence = [e for c, _ in items for e in reversed(c["event_ids"])]
    desc = (f"{_plural(len(items), 'complaint')} reopened ({_plural(times, 'reopening')}), "
            f"latest {_days(now - items[0][0]['reopened_at'])}")
    return _Raw(min(1.0, value / fw.get("full")), value, _unique(evidence), desc, {"count": times})


def _relevant_triples(rows: Any, now: float, scale: float) -> list[tuple[Any, Any, Any, float]]:
    """``(t, a, b, weight)`` of each stored ``[t, a, b]`` row (``negative``, ``gaps``) whose decay
    weight at ``now`` (:func:`decay`, inlined: a score's hottest loop; ``scale`` = half-life in
    seconds) reaches :data:`RELEVANT`, in stored order."""
    out = []
    for t, a, b in rows:
        age = now - t
        d = 0.5 ** ((age if age > 0.0 else 0.0) / scale)
        if d >= RELEVANT:
            out.append((t, a, b, d))
    return out


def _negative_feedback(s: State, now: float, fw: FactorWeight, w: Weights, explain: bool = True) -> _Raw | None:
    items = _relevant_triples(s.get("negative") or [], now, fw.get("half_life_days") * DAY)
    if not items:
        return None
    if len(items) > 1:
        items.sort(key=_by_time_desc)
    value = sum([m * d for _, _, m, d in items])
    if not explain:
        return _Raw(min(1.0, value / fw.get("full")), value)
    strongest = max(m for _, _, m, _ in items)
    desc = (f"{_plural(len(items), 'negative feedback')} (strongest {strongest:.2f} on a 0-1 scale), "
            f"latest {_days(now - items[0][0])}")
    return _Raw(min(1.0, value / fw.get("full")), value, _unique([x[1] for x in items]), desc,
                {"count": len(items)})


def _satisfaction_gap_trend(s: State, now: float, fw: FactorWeight, w: Weights, explain: bool = True) -> _Raw | None:
    items = _relevant_triples(s.get("gaps") or [], now, fw.get("half_life_days") * DAY)
    if not items:
        return None
    if len(items) > 1:
        items.sort(key=_by_time)
    mean = sum([g * d for _, g, _, d in items]) / sum([x[3] for x in items])
    level = max(0.0, -mean) / fw.get("level_full")
    drop = 0.0
    if len(items) >= 2:
        earlier = items[:-1]
        earlier_mean = sum([g * d for _, g, _, d in earlier]) / sum([x[3] for x in earlier])
        drop = max(0.0, earlier_mean - items[-1][1])
    pressure = min(1.0, max(level, drop / fw.get("fall_full")))
    if pressure <= 0:
        return None
    if not explain:
        return _Raw(pressure, mean)
    evidence = [eid for _, g, eid, _ in reversed(items) if g < 0 or eid == items[-1][2]]
    desc = f"satisfaction gap (experience - expectation) averages {mean:+.2f}"
    if drop > 0:
        desc += f", latest fell by {drop:.2f}"
    return _Raw(pressure, mean, _unique(evidence), desc, {"mean_gap": round(mean, 2), "drop": round(drop, 2)})


def _recency_vs_cadence(s: State, now: float, fw: FactorWeight, w: Weights, explain: bool = True) -> _Raw | None:
    last = s.get("last_order_at")
    if not s.get("orders") or last is None:
        return None
    cadence = cadence_days(s, w.default_cadence_days, w.min_cadence_days)
    since = max(0.0, now - last) / DAY
    ratio = since / cadence
    start, full = fw.get("start_ratio"), fw.get("full")
    pressure = min(1.0, max(0.0, (ratio - start) / (full - start))) if full > start else float(ratio >= start)
    if pressure <= 0:
        return None
    if not explain:
        return _Raw(pressure, ratio)
    desc = f"{since:.0f} days since the last order, {ratio:.1f}x the usual {cadence:.0f} days between orders"
    evidence = [s["last_order_event"]] if s.get("last_order_event") else []
    return _Raw(pressure, ratio, evidence, desc, {"days_since": round(since), "cadence_days": round(cadence)})


def _follow_up(s: State, now: float, fw: FactorWeight, w: Weights, explain: bool = True) -> _Raw | None:
    resolved = s.get("last_resolved")
    if not resolved:
        return None
    complaint = (s.get("complaints") or {}).get(resolved["complaint_id"])
    if complaint is not None and complaint["status"] != "resolved":
        return None  # reopened: the reopened / open complaint factors cover it
    hl, at = fw.get("half_life_days"), resolved["at"]
    after = [(t, eid, m, decay(now - t, hl)) for t, eid, m in s.get("negative") or [] if t > at]
    after = [x for x in after if x[3] >= RELEVANT]
    p_neg = min(1.0, sum([m * d for _, _, m, d in after]) / fw.get("full"))
    p_silence = 0.0
    cadence = cadence_days(s, w.default_cadence_days, w.min_cadence_days)
    last_order = s.get("last_order_at")
    if s.get("orders") and last_order is not None and last_order <= at:
        silence = (now - at) / DAY / cadence
        ramp = min(1.0, max(0.0, (silence - 1.0) / fw.get("silence_ramp")))
        p_silence = ramp * decay(now - at - cadence * DAY, hl)
    pressure = max(p_neg, p_silence)
    if pressure <= 0:
        return None
    since = max(0.0, now - at) / DAY
    if not explain:
        return _Raw(pressure, since)
    parts = []
    if after:
        parts.append(f"followed by {_plural(len(after), 'negative feedback')}")
    if p_silence > 0:
        parts.append(f"no order since (usual cadence {cadence:.0f} days)")
    desc = f"a complaint resolved {_days(now - at)} was {' and '.join(parts)}"
    evidence = [x[1] for x in sorted(after, key=lambda x: -x[0])] + [resolved["event_id"]]
    return _Raw(pressure, since, _unique(evidence), desc,
                {"negative_after": len(after), "silent": p_silence > 0, "cadence_days": round(cadence)})


def _pain_points_recent(s: State, now: float, fw: FactorWeight, w: Weights, explain: bool = True) -> _Raw | None:
    hl, start, full = fw.get("half_life_days"), fw.get("start", 0.0), fw.get("full")
    scale = hl * DAY
    per_id: dict[str, float] = {}
    seen: dict[str, list[tuple[float, str]]] = {}
    for pid, p in (s.get("pain_points") or {}).items():
        for t, eid in p["seen"]:
            age = now - t
            d = 0.5 ** ((age if age > 0.0 else 0.0) / scale)
            if d >= RELEVANT:
                per_id[pid] = per_id.get(pid, 0.0) + d
                if explain:
                    seen.setdefault(pid, []).append((t, eid))
    if not per_id:
        return None
    value = max(per_id.values())  # the most-mentioned pain point's (ties have the same value)
    pressure = min(1.0, max(0.0, (value - start) / (full - start))) if full > start else float(value > start)
    if pressure <= 0:
        return None
    if not explain:
        return _Raw(pressure, value)
    ranked = sorted(per_id, key=lambda k: (-per_id[k], k))
    desc = "recurring pain points: " + ", ".join(f"{k} ({len(seen[k])} mentions)" for k in ranked)
    evidence = [eid for _, eid in sorted(seen[ranked[0]], key=lambda x: -x[0])]
    return _Raw(pressure, value, _unique(evidence), desc,
                {"pain_points": ", ".join(ranked), "top_pain_point": ranked[0]})


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


# sort keys of the factors' items (module functions: no closure built per call)
def _by_last(item: tuple[dict[str, Any], float]) -> float:
    return -item[0]["last"]


def _by_reopened_at(item: tuple[dict[str, Any], float]) -> float:
    return -item[0]["reopened_at"]


def _by_time_desc(item: tuple[Any, ...]) -> float:
    return -item[0]


def _by_time(item: tuple[Any, ...]) -> float:
    return item[0]


FACTORS: dict[str, Callable[..., _Raw | None]] = {  # (state, now, weight, weights, explain=True)
    "broken_commitments": _broken_commitments,
    "open_complaints": _open_complaints,
    "reopened_complaints": _reopened_complaints,
    "negative_feedback": _negative_feedback,
    "satisfaction_gap_trend": _satisfaction_gap_trend,
    "recency_vs_cadence": _recency_vs_cadence,
    "follow_up": _follow_up,
    "pain_points_recent": _pain_points_recent,
}
