"""Churn-risk alert policy (pure): when a score becomes a ``churn_risk`` alert.

Rules (defaults from :class:`ChurnPolicy`, overridable by environment)
----------------------------------------------------------------------
* **Crossing with hysteresis.**  A customer starts *armed*.  An armed customer
  whose score is at or above ``threshold`` (60) gets one ``churn_risk`` alert
  and is disarmed.  It is armed again only when its score falls below
  ``lower_threshold`` (45); each re-arming starts a new **episode**.  A score
  oscillating between the two thresholds therefore alerts once.
* **Cool-down.**  No ``churn_risk`` within ``cooldown_days`` (7) of event time
  after the previous one, even in a new episode.  The alert is delayed, not
  dropped: if the customer is still armed and above the threshold at a later
  evaluation after the cool-down, it alerts then.
* **Cleared.**  When a disarmed customer re-arms and ``emit_cleared`` is true,
  a ``churn_risk_cleared`` alert (severity ``info``) closes the episode.
* **Deterministic ids.**  ``churn_risk:{customer_id}:{episode}`` and
  ``churn_risk_cleared:{customer_id}:{episode}``: a restart or a redelivery
  that re-evaluates the same episode yields the same id, never a second alert.
* **Severity** starts at ``medium`` and goes up one step (``high``, then
  ``critical``) for each of: key customer (segment ``value_tier == "key"``),
  steep rise (score − previous evaluated score ≥ ``steep_rise``, 20; the first
  evaluation of a customer counts from 0), high score (≥ ``high_score``, 80).

Alerts validate against ``schemas/alert.schema.json``.  ``reason`` names the
top factors with their descriptions (no personal data, no customer text);
``evidence`` holds the event ids behind the top factors; ``details`` carries
``score``, ``previous_score`` and the top ``factors`` as ``{name, value,
contribution}``; ``suggested_actions`` come from the playbook
(:func:`load_playbook`, ``pipeline/playbooks/churn.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..core.timeparse import format_timestamp
from ..core.redact import Redactor, redact_alert
from ..playbooks import PLAYBOOK_DIR, action_lines, playbook_path, read_playbook
from .score import Factor, RiskScore
from .state import DAY

AlertState = dict[str, Any]

DEFAULT_PLAYBOOK_PATH = PLAYBOOK_DIR / "churn.yaml"
ENV_PLAYBOOK_FILE = "PIPELINE_CHURN_PLAYBOOK_FILE"
SEVERITIES = ("medium", "high", "critical")
MAX_EVIDENCE = 100
MAX_REASON = 2000


@dataclass(frozen=True)
class ChurnPolicy:
    """Thresholds of the alert policy (scores are 0..100, times are event time)."""

    threshold: float = 60.0
    lower_threshold: float = 45.0
    cooldown_days: float = 7.0
    steep_rise: float = 20.0
    high_score: float = 80.0
    top_n: int = 3
    emit_cleared: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.lower_threshold < self.threshold <= 100:
            raise ValueError(f"churn policy: need 0 <= lower_threshold < threshold <= 100, "
                             f"got {self.lower_threshold} / {self.threshold}")
        if self.cooldown_days < 0 or self.steep_rise <= 0 or self.top_n < 1:
            raise ValueError("churn policy: cooldown_days >= 0, steep_rise > 0 and top_n >= 1 required")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "ChurnPolicy":
        """Read ``PIPELINE_CHURN_THRESHOLD``, ``_LOWER_THRESHOLD``, ``_COOLDOWN_DAYS``,
        ``_STEEP_RISE``, ``_HIGH_SCORE``, ``_TOP_FACTORS`` and ``_CLEARED_ALERTS``
        (``true``/``false``); unset variables keep the defaults."""
        env = {} if env is None else env  # the environment only when given (pipeline.stage_settings)
        d = cls()

        def num(name: str, default: float) -> float:
            raw = env.get(f"PIPELINE_CHURN_{name}")
            return float(raw) if raw not in (None, "") else default

        cleared = env.get("PIPELINE_CHURN_CLEARED_ALERTS")
        return cls(
            threshold=num("THRESHOLD", d.threshold),
            lower_threshold=num("LOWER_THRESHOLD", d.lower_threshold),
            cooldown_days=num("COOLDOWN_DAYS", d.cooldown_days),
            steep_rise=num("STEEP_RISE", d.steep_rise),
            high_score=num("HIGH_SCORE", d.high_score),
            top_n=int(num("TOP_FACTORS", d.top_n)),
            emit_cleared=d.emit_cleared if cleared in (None, "")
            else cleared.strip().lower() in ("1", "true", "yes", "on"),
        )


@dataclass(frozen=True)
class Playbook:
    """Suggested-action lines per factor, for key customers, a default, and for cleared alerts."""

    factors: Mapping[str, list[str]]
    key_customer: list[str] = field(default_factory=list)
    default: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    source: str = ""

    def actions(self, factors: list[Factor], key_customer: bool) -> list[str]:
        """Lines for ``factors`` (in order, placeholders filled from each factor's details),
        preceded by the key-customer lines when ``key_customer``; never empty if the
        playbook has a default."""
        out = list(self.key_customer) if key_customer else []
        factor_lines = [
            line.format_map(_Keep({k: v for k, v in f.details.items()}))
            for f in factors for line in self.factors.get(f.name, [])
        ]
        out += factor_lines or list(self.default)
        return [line for line in dict.fromkeys(out) if line][:20]


class _Keep(dict[str, Any]):
    """``format_map`` helper: unknown placeholders stay as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def load_playbook(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Playbook:
    """Read ``pipeline/playbooks/churn.yaml``, then merge ``path`` (or ``$PIPELINE_CHURN_PLAYBOOK_FILE``)
    over it: a factor listed in the operator's file replaces that factor's lines, other top-level
    keys replace the default's.  Raises :class:`~pipeline.playbooks.PlaybookError` (a ``ValueError``)
    if the file is missing or a section is not a list of strings."""
    env = {} if env is None else env
    chosen = playbook_path(path, env, ENV_PLAYBOOK_FILE, DEFAULT_PLAYBOOK_PATH.name)
    data = read_playbook(DEFAULT_PLAYBOOK_PATH)
    source = str(DEFAULT_PLAYBOOK_PATH)
    if chosen.resolve() != DEFAULT_PLAYBOOK_PATH:
        over = read_playbook(chosen)
        factors = dict(data.get("factors") or {})
        factors.update(over.get("factors") or {})
        data = {**data, **over, "factors": factors}
        source = f"{DEFAULT_PLAYBOOK_PATH} + {chosen}"

    def lines(value: Any, where: str) -> list[str]:
        return list(action_lines(value, f"churn playbook {source}: {where}"))

    return Playbook(
        factors={k: lines(v, f"factors.{k}") for k, v in (data.get("factors") or {}).items()},
        key_customer=lines(data.get("key_customer"), "key_customer"),
        default=lines(data.get("default"), "default"),
        cleared=lines(data.get("cleared"), "cleared"),
        source=source,
    )


def new_alert_state() -> AlertState:
    """Alert state of a customer never evaluated: armed, episode 1."""
    return {"episode": 1, "armed": True, "last_alert_at": None, "last_alert_score": None,
            "last_score": None, "last_at": None}


def evaluate(
    alert_state: AlertState | None,
    score: RiskScore,
    now: float,
    customer_id: str,
    segment: Mapping[str, Any] | None,
    policy: ChurnPolicy,
    playbook: Playbook,
    emitted_at: float,
    redactor: Redactor | None = None,
) -> tuple[AlertState, list[dict[str, Any]]]:
    """Apply the policy to one score at event time ``now``; return ``(new alert state, alerts)``.

    ``emitted_at`` is the wall-clock time stamped on the alerts (it affects nothing else).
    The input state is not mutated.
    """
    st = dict(alert_state) if alert_state else new_alert_state()
    prev = st["last_score"]
    value = score.score
    alerts: list[dict[str, Any]] = []
    if not st["armed"] and value < policy.lower_threshold:
        if policy.emit_cleared:
            alerts.append(redact_alert(_cleared(st, score, now, customer_id, segment, policy, playbook, emitted_at),
                                        redactor))
        st["episode"] += 1
        st["armed"] = True
    elif st["armed"] and value >= policy.threshold:
        last = st["last_alert_at"]
        if last is None or now - last >= policy.cooldown_days * DAY:
            alerts.append(redact_alert(_risk(st, score, now, customer_id, segment, policy, playbook, emitted_at), redactor))
            st.update(armed=False, last_alert_at=now, last_alert_score=value)
    st["last_score"] = value
    st["last_at"] = now
    return st, alerts


def severity(score: float, previous: float | None, segment: Mapping[str, Any] | None,
             policy: ChurnPolicy) -> tuple[str, list[str]]:
    """``(severity, reasons it was raised)`` per the rules in the module docstring."""
    raised = []
    if (segment or {}).get("value_tier") == "key":
        raised.append("key customer")
    if score - (previous or 0.0) >= policy.steep_rise:
        raised.append("steep rise")
    if score >= policy.high_score:
        raised.append("high score")
    return SEVERITIES[min(len(raised), len(SEVERITIES) - 1)], raised


def _subject(customer_id: str, segment: Mapping[str, Any] | None) -> dict[str, Any]:
    subject: dict[str, Any] = {"kind": "customer", "customer_id": customer_id}
    if segment is not None:
        subject["segment"] = dict(segment)
    return subject


def _risk(st: AlertState, score: RiskScore, now: float, customer_id: str, segment: Mapping[str, Any] | None,
          policy: ChurnPolicy, playbook: Playbook, emitted_at: float) -> dict[str, Any]:
    prev = st["last_score"]
    score = score.explained()
    top = score.top_factors(policy.top_n)
    sev, raised = severity(score.score, prev, segment, policy)
    rise = "" if prev is None else f", up {score.score - prev:.0f} points"
    reason = (f"Churn risk {score.score:.0f}/100 crossed the threshold {policy.threshold:.0f}{rise}. Top factors: "
              + "; ".join(f"{f.name.replace('_', ' ')}: {f.description}" for f in top) + ".")
    evidence = list(dict.fromkeys(e for f in top for e in f.evidence if e))[:MAX_EVIDENCE]
    return {
        "schema_version": 1,
        "alert_id": f"churn_risk:{customer_id}:{st['episode']}",
        "type": "churn_risk",
        "severity": sev,
        "subject": _subject(customer_id, segment),
        "reason": reason[:MAX_REASON],
        "evidence": evidence,
        "event_time": format_timestamp(now),
        "emitted_at": format_timestamp(emitted_at),
        "suggested_actions": playbook.actions(top, (segment or {}).get("value_tier") == "key"),
        "details": {
            "score": score.score,
            "previous_score": prev,
            "threshold": policy.threshold,
            "lower_threshold": policy.lower_threshold,
            "episode": st["episode"],
            "severity_raised_by": raised,
            "factors": [f.brief() for f in top],
        },
    }


def _cleared(st: AlertState, score: RiskScore, now: float, customer_id: str, segment: Mapping[str, Any] | None,
             policy: ChurnPolicy, playbook: Playbook, emitted_at: float) -> dict[str, Any]:
    episode = st["episode"]
    score = score.explained()
    return {
        "schema_version": 1,
        "alert_id": f"churn_risk_cleared:{customer_id}:{episode}",
        "type": "churn_risk_cleared",
        "severity": "info",
        "subject": _subject(customer_id, segment),
        "reason": (f"Churn risk fell to {score.score:.0f}/100, below the lower threshold "
                   f"{policy.lower_threshold:.0f}, after the churn-risk alert of this episode."),
        "evidence": list(dict.fromkeys(e for f in score.top_factors(policy.top_n) for e in f.evidence))[:MAX_EVIDENCE],
        "event_time": format_timestamp(now),
        "emitted_at": format_timestamp(emitted_at),
        "suggested_actions": list(playbook.cleared),
        "details": {
            "score": score.score,
            "previous_score": st["last_score"],
            "alert_score": st["last_alert_score"],
            "clears": f"churn_risk:{customer_id}:{episode}",
            "episode": episode,
            "factors": [f.brief() for f in score.top_factors(policy.top_n)],
        },
    }
