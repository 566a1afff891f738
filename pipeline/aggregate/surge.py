"""Surge detection on closed windows: per-segment baselines, the rule, cool-down, severity.

Rate
----
For a final record the *rate* is pain points per 100 events of the segment in
that window: ``100 × count / max(1, orders + feedback)`` (``orders`` = placed
orders, ``feedback`` = feedback + complaints; field ``rate_per_100_events``).
Normalising by the segment's own volume means busier hours do not look like
surges and quiet hours do not hide them.

Baseline
--------
One per (dimension, value, window name, pain point), kept in the key's
aggregate state under ``state["surge"]`` (so it is restored from the table
changelog): an exponentially weighted moving mean and variance of the rate
(``alpha``), and ``n``, the number of windows observed.  Every closed window
with ``orders + feedback >= min_volume`` updates the baselines of *all* pain
points seen so far for that key and window name — with rate 0 for those
absent from the window — so a baseline is not biased towards windows where
the pain point happened.  Windows below ``min_volume`` are ignored (their
rates are mostly 0 or 100).  Update (West/Finch)::

    d = rate − mean;  mean += alpha·d;  var = (1 − alpha)·(var + alpha·d²)

The baseline is updated **after** detection and **includes** the window just
judged, surge or not: a lasting shift becomes the new normal within a few
windows instead of alerting forever (the cool-down covers the windows in
between); a one-off spike raises the mean and variance for a while, which
makes the next few windows slightly harder to alert on — the conservative side.

Rule (a surge needs all of 1–3, and 4a or 4b)
---------------------------------------------
1. ``count >= min_support`` — "one angry word is not a trend";
2. ``n >= 1`` — some history of this segment and window size;
3. ``rate >= min_ratio × mean`` — the rate must have grown materially, not only
   be statistically unusual (true whenever the mean is 0);
4a. with ``n >= min_history``: ``z >= min_z`` where
    ``z = (rate − mean) / sqrt(var + 100·mean/volume + var_floor)``.  Besides the
    EWMA variance, the denominator holds the Poisson sampling variance of a rate
    measured on ``volume = orders + feedback`` events (so a small window is not
    judged as precisely as a big one) and ``var_floor`` (so a perfectly flat
    history does not make any wobble infinitely significant);
4b. with ``1 <= n < min_history``: the EWMA variance means little yet, so a
    Poisson test: ``P(X >= count | λ) < p_threshold`` with the expected count
    ``λ = max(min_expected, mean·volume/100)``; ``min_expected`` keeps a
    zero baseline from making any count "impossible".

Cool-down and severity
----------------------
* Final records whose value is in ``skip_values`` (default ``unknown``: "tier
  unknown" names nobody; ``all=all`` still covers those customers) are not
  checked; they are still aggregated and queryable.
* After an alert for (dimension, value, window name, pain point), the next
  ``cooldown_windows`` windows of that size raise no alert for it unless the
  severity is higher than the last alert's (they are returned as suppressed).
* Magnitude ``m``: EWMA rule ``min(ratio / min_ratio, z / min_z)`` (just ``z /
  min_z`` when the mean is 0); Poisson rule ``(count / λ) / min_ratio``.
  ``m < 2`` → ``low``, ``m < 4`` → ``medium``, else ``high``; a surge is at
  most ``medium`` under the Poisson rule (short history) or when ``count <
  2 × min_support`` (a handful of events is statistically, not operationally,
  big).  Subjects listed in
  ``escalate`` (default ``tier=key`` and ``lifecycle=at_risk``) are raised one
  level (``high`` → ``critical``).  ``info`` is not used for surges.

Configuration (environment, :meth:`SurgeConfig.from_env`; unset or empty = default)
-------------------------------------------------------------------------------------
| variable | default | meaning |
|---|---|---|
| `PIPELINE_SURGE_ALPHA` | `0.3` | EWMA weight of the newest window (0 < α <= 1) |
| `PIPELINE_SURGE_MIN_SUPPORT` | `5` | minimum pain-point count in the window |
| `PIPELINE_SURGE_MIN_HISTORY` | `3` | windows observed before the z rule (4a) replaces the Poisson rule (4b) |
| `PIPELINE_SURGE_MIN_RATIO` | `2.0` | the rate must be >= this × the baseline mean |
| `PIPELINE_SURGE_MIN_Z` | `3.0` | z-score threshold (4a) |
| `PIPELINE_SURGE_VAR_FLOOR` | `1.0` | added to the variance in z, in (per 100 events)² |
| `PIPELINE_SURGE_P_THRESHOLD` | `0.001` | Poisson tail-probability threshold (4b) |
| `PIPELINE_SURGE_MIN_EXPECTED` | `1.0` | floor of the expected count λ (4b) |
| `PIPELINE_SURGE_MIN_VOLUME` | `10` | orders + feedback a window needs to update the baselines |
| `PIPELINE_SURGE_COOLDOWN_WINDOWS` | `3` | windows after an alert in which a repeat needs a higher severity |
| `PIPELINE_SURGE_SKIP_VALUES` | `unknown` | comma-separated dimension values never checked (empty = none) |
| `PIPELINE_SURGE_ESCALATE` | `tier=key,lifecycle=at_risk` | comma-separated subjects whose severity is raised one level |
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import orjson

from pipeline.core.timeparse import parse_timestamp

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
RULE_EWMA = "ewma_z"
RULE_POISSON = "poisson"


@dataclass(frozen=True)
class SurgeConfig:
    """Thresholds of the surge rule (see the module docstring for each)."""

    alpha: float = 0.3
    min_support: int = 5
    min_history: int = 3
    min_ratio: float = 2.0
    min_z: float = 3.0
    var_floor: float = 1.0
    p_threshold: float = 0.001
    min_expected: float = 1.0
    min_volume: int = 10
    cooldown_windows: int = 3
    escalate: frozenset[str] = field(default_factory=lambda: frozenset({"tier=key", "lifecycle=at_risk"}))
    skip_values: frozenset[str] = field(default_factory=lambda: frozenset({"unknown"}))

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if self.min_history < 1:
            raise ValueError("min_history must be >= 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SurgeConfig":
        """Read ``PIPELINE_SURGE_*`` (unset or empty → default)."""
        env = {} if env is None else env  # the environment only when given (pipeline.stage_settings)
        base = cls()
        kwargs: dict[str, Any] = {}
        for name, conv in (
            ("alpha", float), ("min_support", int), ("min_history", int), ("min_ratio", float),
            ("min_z", float), ("var_floor", float), ("p_threshold", float), ("min_expected", float),
            ("min_volume", int), ("cooldown_windows", int),
        ):
            raw = env.get(f"PIPELINE_SURGE_{name.upper()}")
            kwargs[name] = conv(raw) if raw not in (None, "") else getattr(base, name)
        for name in ("escalate", "skip_values"):
            raw = env.get(f"PIPELINE_SURGE_{name.upper()}")
            if raw is not None:
                kwargs[name] = frozenset(p.strip() for p in raw.split(",") if p.strip())
        return cls(**kwargs)


@dataclass
class Baseline:
    """EWMA mean / variance of a rate and the number of windows observed."""

    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))

    def update(self, rate: float, alpha: float) -> "Baseline":
        """Fold one window's rate in (the first observation sets the mean)."""
        if self.n == 0:
            self.mean, self.var = float(rate), 0.0
        else:
            d = rate - self.mean
            self.mean += alpha * d
            self.var = (1 - alpha) * (self.var + alpha * d * d)
        self.n += 1
        return self

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "var": self.var, "n": self.n}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Baseline":
        data = data or {}
        return cls(float(data.get("mean", 0.0)), float(data.get("var", 0.0)), int(data.get("n", 0)))


@dataclass(frozen=True)
class Surge:
    """Why a final record is a surge (all rates per 100 events)."""

    rule: str  # RULE_EWMA or RULE_POISSON
    severity: str
    magnitude: float
    rate: float
    mean: float
    std: float
    ratio: float | None  # rate / mean; None when the mean is 0
    z: float | None  # None under the Poisson rule
    p_value: float | None  # None under the z rule
    expected_count: float
    windows_observed: int
    count: int
    volume: int

    def details(self) -> dict[str, Any]:
        """JSON-safe figures for an alert's ``details``."""
        r = lambda x: None if x is None else round(x, 4)  # noqa: E731
        return {
            "rule": self.rule, "current_rate": r(self.rate), "baseline_mean": r(self.mean),
            "baseline_std": r(self.std), "ratio": r(self.ratio), "z": r(self.z),
            "p_value": None if self.p_value is None else float(f"{self.p_value:.4g}"),
            "expected_count": r(self.expected_count), "windows_observed": self.windows_observed,
            "magnitude": r(self.magnitude),
        }


def rate_of(record: Mapping[str, Any]) -> float:
    """Pain points per 100 events of the segment: ``100 × count / max(1, orders + feedback)``."""
    return 100.0 * int(record.get("count") or 0) / max(1, volume_of(record))


def volume_of(record: Mapping[str, Any]) -> int:
    """``orders + feedback`` of a final record."""
    return int(record.get("orders") or 0) + int(record.get("feedback") or 0)


def poisson_sf(k: int, lam: float) -> float:
    """``P(X >= k)`` for ``X ~ Poisson(lam)``, accurate in the far tail."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    if k <= lam:  # the tail is large: 1 − CDF(k − 1) is accurate enough
        term = cdf = math.exp(-lam)
        for i in range(1, k):
            term *= lam / i
            cdf += term
        return max(0.0, 1.0 - cdf)
    term = math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1))
    total, i = 0.0, k
    while term > total * 1e-16 and i < k + 10_000:
        total += term
        i += 1
        term *= lam / i
    return min(1.0, total)


def _level(magnitude: float) -> int:
    return SEVERITIES.index("low" if magnitude < 2 else "medium" if magnitude < 4 else "high")


def detect(final_record: Mapping[str, Any], baseline: Baseline | Mapping[str, Any] | None, cfg: SurgeConfig) -> Surge | None:
    """Apply the surge rule (module docstring) to one final record against its baseline.

    Pure: neither the baseline nor any cool-down is touched.  Records with
    ``pain_point`` ``None`` or a value in ``cfg.skip_values`` are never surges.
    """
    if final_record.get("pain_point") is None or final_record.get("value") in cfg.skip_values:
        return None
    b = baseline if isinstance(baseline, Baseline) else Baseline.from_dict(baseline)
    count, volume = int(final_record.get("count") or 0), volume_of(final_record)
    rate = rate_of(final_record)
    if count < cfg.min_support or b.n < 1 or rate < cfg.min_ratio * b.mean:
        return None
    ratio = rate / b.mean if b.mean > 0 else None
    if b.n >= cfg.min_history:
        z = (rate - b.mean) / math.sqrt(b.var + 100.0 * b.mean / max(1, volume) + cfg.var_floor)
        if z < cfg.min_z:
            return None
        magnitude = z / cfg.min_z if ratio is None else min(ratio / cfg.min_ratio, z / cfg.min_z)
        rule, p_value, level = RULE_EWMA, None, _level(magnitude)
        if count < 2 * cfg.min_support:
            level = min(level, SEVERITIES.index("medium"))
        expected = b.mean * volume / 100.0
    else:
        expected = max(cfg.min_expected, b.mean * volume / 100.0)
        p_value = poisson_sf(count, expected)
        if p_value >= cfg.p_threshold:
            return None
        z = None
        magnitude = count / expected / cfg.min_ratio
        rule, level = RULE_POISSON, min(_level(magnitude), SEVERITIES.index("medium"))
    subject = f"{final_record.get('dimension')}={final_record.get('value')}"
    if subject in cfg.escalate:
        level = min(level + 1, len(SEVERITIES) - 1)
    return Surge(
        rule=rule, severity=SEVERITIES[level], magnitude=magnitude, rate=rate, mean=b.mean, std=b.std,
        ratio=ratio, z=z, p_value=p_value, expected_count=expected, windows_observed=b.n,
        count=count, volume=volume,
    )


@dataclass
class SurgeResult:
    """Outcome of :func:`process_finals`: surges to alert on and surges held back by the cool-down."""

    alerts: list[tuple[dict[str, Any], Surge]] = field(default_factory=list)
    suppressed: list[tuple[dict[str, Any], Surge]] = field(default_factory=list)


def process_finals(state: dict[str, Any], finals: Iterable[Mapping[str, Any]], cfg: SurgeConfig) -> tuple[dict[str, Any], SurgeResult]:
    """Detect surges in the final records of ``state``'s closed windows, then update baselines.

    ``finals`` are what :func:`pipeline.aggregate.state.close_windows` returned
    for this state (any order; windows are processed in window-end order).
    Per window: :func:`detect` every pain point against its baseline, apply the
    cool-down, then update every baseline of that window name (see the module
    docstring).  Baselines and last alerts live in ``state["surge"]``.
    """
    by_window: dict[tuple[float, str, str], list[Mapping[str, Any]]] = {}
    for rec in finals:
        key = (parse_timestamp(rec["window_end"]), str(rec["window"]), rec["window_start"])
        by_window.setdefault(key, []).append(rec)
    result = SurgeResult()
    # a copy (the stored state's surge part is never changed; see aggregate.state.working_copy)
    surge_state = state["surge"] = orjson.loads(orjson.dumps(state["surge"])) if by_window and "surge" in state \
        else state.setdefault("surge", {})
    for (_, name, _), records in sorted(by_window.items()):
        slot = surge_state.setdefault(name, {"baselines": {}, "alerts": {}})
        baselines, alerts = slot["baselines"], slot["alerts"]
        size = int(records[0].get("window_size_seconds") or 0)
        start = int(parse_timestamp(records[0]["window_start"]))
        volume = volume_of(records[0])
        for rec in records:
            pid = rec.get("pain_point")
            if pid is None:
                continue
            surge = detect(rec, baselines.get(pid), cfg)
            if surge is None:
                continue
            last = alerts.get(pid)
            quiet = (
                last is not None
                and start - int(last["start"]) <= cfg.cooldown_windows * size
                and SEVERITIES.index(surge.severity) <= SEVERITIES.index(last["severity"])
            )
            if quiet:
                result.suppressed.append((dict(rec), surge))
            else:
                alerts[pid] = {"start": start, "severity": surge.severity}
                result.alerts.append((dict(rec), surge))
        if volume >= cfg.min_volume:
            rates = {rec["pain_point"]: rate_of(rec) for rec in records if rec.get("pain_point") is not None}
            for pid in set(baselines) | set(rates):
                baselines[pid] = Baseline.from_dict(baselines.get(pid)).update(rates.get(pid, 0.0), cfg.alpha).to_dict()
    return state, result
