"""Churn risk (issue 6), pure: state, factors, decay, alert policy, playbook, snapshot, Olist replay."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from pipeline.churn.alerts import ChurnPolicy, Playbook, evaluate, load_playbook, new_alert_state
from pipeline.churn.score import Factor, RiskScore, load_weights, score
from pipeline.churn.snapshot import risk_snapshot
from pipeline.churn.state import apply_commitment_transition, apply_event, new_state
from pipeline.config import SegmentThresholds
from pipeline.ingest.normalise import Event, normalise
from pipeline.core.timeparse import format_timestamp, parse_timestamp

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0
T0 = parse_timestamp("2026-03-01T00:00:00Z")
W = load_weights(env={})
POLICY = ChurnPolicy()
PLAYBOOK = load_playbook(env={})
SEGMENT = {"value_tier": "regular", "tier_source": "spend", "lifecycle": "active", "region": "SP",
           "relationship_level": "unknown", "channel": "web", "profile_known": False}
KEY_SEGMENT = {**SEGMENT, "value_tier": "key"}
ALERT_VALIDATOR = jsonschema_rs.validator_for(
    json.loads((ROOT / "schemas" / "alert.schema.json").read_text()), validate_formats=True)


# ----------------------------------------------------------------------------- builders

def placed(i: int | str, t: float, cid: str = "c1", amount: float = 50.0) -> Event:
    return normalise("order", {
        "schema_version": 1, "event_id": f"ord-{i}-placed", "order_id": f"o{i}", "customer_id": cid,
        "type": "placed", "occurred_at": format_timestamp(t), "promised_delivery_at": format_timestamp(t + 3 * DAY),
        "amount": amount, "currency": "USD", "items": [{"sku": "s", "category": "c", "qty": 1, "unit_price": amount}],
    })


def complaint(i: int | str, t: float, status: str, complaint_id: str = "cmp-1", cid: str = "c1") -> Event:
    e = {"schema_version": 1, "event_id": f"cmp-{i}-{status}", "complaint_id": complaint_id, "customer_id": cid,
         "status": status, "channel": "phone", "occurred_at": format_timestamp(t)}
    if status == "opened":
        e["text"] = "the parcel is late again"
    return normalise("complaint", e)


def review(i: int | str, t: float, stars: int, cid: str = "c1", expectation: float | None = None) -> Event:
    e = {"schema_version": 1, "event_id": f"rev-{i}", "feedback_id": f"rev-{i}", "customer_id": cid,
         "source": "review", "score": stars, "scale": {"min": 1, "max": 5}, "occurred_at": format_timestamp(t)}
    if expectation is not None:
        e["expectation_score"] = expectation
    return normalise("feedback", e)


def stars_cls(stars: float, gap: float | None = None, pains: tuple[str, ...] = ()) -> dict[str, Any]:
    """The brief's review classification: label from stars, score (stars − 3) / 2."""
    label = "negative" if stars <= 2 else "positive" if stars >= 4 else "neutral"
    return {"language": "und", "sentiment": {"label": label, "score": (stars - 3) / 2}, "satisfaction_gap": gap,
            "pain_points": [{"id": p, "confidence": 0.9, "evidence": []} for p in pains], "taxonomy_version": "t"}


def complaint_cls(pains: tuple[str, ...] = ("delivery",)) -> dict[str, Any]:
    return {"language": "en", "sentiment": {"label": "negative", "score": -0.6}, "satisfaction_gap": None,
            "pain_points": [{"id": p, "confidence": 0.9, "evidence": []} for p in pains], "taxonomy_version": "t"}


def broken(n: int | str, at: float, kind: str = "delivery", evidence: tuple[str, ...] | None = None,
           type_: str = "breached") -> dict[str, Any]:
    return {"type": type_, "kind": kind, "commitment_id": f"{kind}:o{n}", "at": at,
            "evidence": list(evidence) if evidence is not None else [f"ord-{n}-placed"]}


def fake_score(value: float, name: str = "negative_feedback") -> RiskScore:
    f = Factor(name, 1.0, value, ("ev-1",), "test factor", 1.0, {})
    return RiskScore(value, (f,) if value > 0 else (), 0.0)


def factor(rs: RiskScore, name: str) -> Factor | None:
    return next((f for f in rs.factors if f.name == name), None)


class Customer:
    """One customer run the way the lead's agent will: apply, score at event time, evaluate."""

    def __init__(self, cid: str = "c1", segment: dict[str, Any] | None = None, policy: ChurnPolicy = POLICY) -> None:
        self.cid, self.segment, self.policy = cid, segment or SEGMENT, policy
        self.state: dict[str, Any] | None = None
        self.alert_state: dict[str, Any] | None = None
        self.alerts: list[dict[str, Any]] = []
        self.scores: list[float] = []

    def _evaluate(self, now: float) -> RiskScore:
        rs = score(self.state, now, W)
        self.alert_state, out = evaluate(self.alert_state, rs, now, self.cid, self.segment, self.policy, PLAYBOOK,
                                         emitted_at=now + 1)
        self.alerts += out
        self.scores.append(rs.score)
        return rs

    def event(self, ev: Event, cls: dict[str, Any] | None = None) -> RiskScore:
        self.state = apply_event(self.state, ev, cls, self.segment)
        return self._evaluate(ev.occurred_at)

    def transition(self, tr: dict[str, Any]) -> RiskScore:
        self.state = apply_commitment_transition(self.state, tr)
        return self._evaluate(tr["at"])


def run(events: list[tuple[Event, dict[str, Any] | None]], transitions: list[dict[str, Any]] = ()) -> dict[str, Any]:
    s = None
    for ev, cls in events:
        s = apply_event(s, ev, cls, SEGMENT)
    for tr in transitions:
        s = apply_commitment_transition(s, tr)
    return s


def assert_valid_alert(alert: dict[str, Any]) -> None:
    errors = [e.message for e in ALERT_VALIDATOR.iter_errors(alert)]
    assert not errors, errors


# ----------------------------------------------------------------------------- state

def test_updates_never_change_the_state_they_were_given():
    """Copy on write (issue 17: the whole-state copy per event was a hotspot): every update returns a
    new state and leaves each earlier one, nested values included, exactly as it was."""
    import copy

    steps = [
        lambda s: apply_event(s, placed(1, T0), None, SEGMENT),
        lambda s: apply_event(s, complaint(1, T0 + DAY, "opened"), complaint_cls(), SEGMENT),
        lambda s: apply_event(s, review(1, T0 + 2 * DAY, 1, expectation=4.0), stars_cls(1, -0.5, ("delivery",)),
                              SEGMENT),
        lambda s: apply_event(s, review(2, T0 + 3 * DAY, 2), stars_cls(2, -0.2, ("delivery", "price")), SEGMENT),
        lambda s: apply_event(s, complaint(2, T0 + 4 * DAY, "resolved"), complaint_cls(), SEGMENT),
        lambda s: apply_event(s, complaint(3, T0 + 5 * DAY, "reopened"), complaint_cls(), SEGMENT),
        lambda s: apply_commitment_transition(s, broken(1, T0 + 6 * DAY)),
        lambda s: apply_commitment_transition(s, broken(1, T0 + 7 * DAY, type_="fulfilled_late",
                                                        evidence=("ord-1-delivered",))),
        lambda s: apply_commitment_transition(s, {**broken(1, T0 + 8 * DAY), "detail": {"breach_retracted": True}}),
        lambda s: apply_commitment_transition(s, broken(2, T0 + 9 * DAY, type_="fulfilled")),
        lambda s: apply_event(s, placed(2, T0 + 10 * DAY), None, SEGMENT),
    ]
    states: list[Any] = [None]
    frozen: list[Any] = [None]
    for step in steps:
        states.append(step(states[-1]))
        frozen.append(copy.deepcopy(states[-1]))
        assert states == frozen  # no earlier state changed by a later update
    assert states[-1]["orders"] == 2 and states[-1]["breaches"] == {}
    assert states[-1]["complaints"]["cmp-1"]["reopened"] == 1
    assert set(states[-1]["pain_points"]) == {"delivery", "price"}


def test_state_is_json_serialisable_pure_and_bounded():
    assert json.loads(json.dumps(new_state())) == new_state()
    assert json.loads(json.dumps(new_alert_state())) == new_alert_state()
    s0 = run([(placed(1, T0), None)])
    before = json.dumps(s0, sort_keys=True)
    s1 = apply_event(s0, review(1, T0 + DAY, 1), stars_cls(1, gap=-0.5), SEGMENT)
    s1 = apply_commitment_transition(s1, broken(1, T0 + 4 * DAY))
    assert json.dumps(s0, sort_keys=True) == before  # input untouched
    assert json.loads(json.dumps(s1)) == s1
    for i in range(200):
        s1 = apply_event(s1, review(f"b{i}", T0 + i * 60, 1), stars_cls(1, gap=-0.5), SEGMENT)
        s1 = apply_commitment_transition(s1, broken(f"b{i}", T0 + i * 60))
    assert len(s1["recent_ids"]) == 128 and len(s1["negative"]) == 32 and len(s1["gaps"]) == 32
    assert len(s1["breaches"]) == 32


def test_orders_spend_cadence_and_complaint_lifecycle():
    s = run([(placed(1, T0, amount=10), None), (placed(2, T0 + 10 * DAY, amount=20), None),
             (placed(3, T0 + 30 * DAY, amount=30), None),
             (complaint(1, T0 + 31 * DAY, "opened"), complaint_cls()),
             (complaint(2, T0 + 32 * DAY, "resolved"), None), (complaint(3, T0 + 33 * DAY, "reopened"), None)])
    assert (s["orders"], s["gap_mean_days"], s["last_order_event"]) == (3, 15.0, "ord-3-placed")
    c = s["complaints"]["cmp-1"]
    assert (c["status"], c["reopened"], c["opened_at"], c["reopened_at"]) == ("open", 1, T0 + 31 * DAY, T0 + 33 * DAY)
    assert s["last_resolved"] == {"at": T0 + 32 * DAY, "complaint_id": "cmp-1", "event_id": "cmp-2-resolved"}
    assert s["pain_points"]["delivery"]["count"] == 1


def test_idempotent_per_event_id_and_commitment_id():
    events = [(placed(1, T0), None), (review(1, T0 + DAY, 1), stars_cls(1)), (complaint(1, T0, "opened"), None)]
    once = run(events, [broken(1, T0 + 4 * DAY)])
    twice = run(events + events, [broken(1, T0 + 4 * DAY), broken(1, T0 + 4 * DAY)])
    assert once == twice
    assert score(once, T0 + 5 * DAY, W) == score(twice, T0 + 5 * DAY, W)
    # breached, then fulfilled late: still one broken commitment, decayed from the later transition
    both = apply_commitment_transition(
        once, broken(1, T0 + 9 * DAY, evidence=("ord-1-delivered",), type_="fulfilled_late"))
    b = both["breaches"]["delivery:o1"]
    assert (b["at"], b["last"], b["type"], b["evidence"]) == (
        T0 + 4 * DAY, T0 + 9 * DAY, "fulfilled_late", ["ord-1-placed", "ord-1-delivered"])
    assert factor(score(both, T0 + 9 * DAY, W), "broken_commitments").value == 1.0
    assert apply_commitment_transition(once, {**broken(2, T0), "type": "fulfilled"}) == once


def test_commitment_tracker_transitions_as_emitted():
    from pipeline.commitments.model import Transition

    def tr(type_: str, at: float, generation: int = 0, event_id: str | None = None, **detail) -> dict[str, Any]:
        return Transition(type=type_, customer_id="c1", commitment_id="delivery:o1", kind="delivery",
                          generation=generation, at=at, commitment={"evidence": ["ord-1-placed"]},
                          event_id=event_id, detail=detail).to_dict()

    s = apply_commitment_transition(None, tr("breached", T0))
    s = apply_commitment_transition(s, tr("fulfilled_late", T0 + 2 * DAY, event_id="ord-1-delivered"))
    assert list(s["breaches"]) == ["delivery:o1"]
    assert s["breaches"]["delivery:o1"]["evidence"] == ["ord-1-placed", "ord-1-delivered"]
    again = apply_commitment_transition(s, tr("breached", T0 + 9 * DAY, generation=1))  # rescheduled, broken again
    assert factor(score(again, T0 + 9 * DAY, W), "broken_commitments").details["count"] == 2
    retracted = apply_commitment_transition(
        apply_commitment_transition(None, tr("breached", T0)),
        tr("fulfilled", T0 + DAY, event_id="ord-1-delivered", breach_retracted=True))
    assert retracted["breaches"] == {}
    for other in ("made", "warned", "fulfilled", "voided", "expired"):
        assert apply_commitment_transition(s, tr(other, T0 + 3 * DAY)) == s


# ----------------------------------------------------------------------------- factors

def test_happy_state_scores_zero():
    events = [(placed(i, T0 + i * 14 * DAY), None) for i in range(6)]
    events += [(review(i, T0 + i * 14 * DAY + 3 * DAY, 5), stars_cls(5, gap=0.25)) for i in range(6)]
    rs = score(run(events), T0 + 80 * DAY, W)
    assert rs.score == 0 and rs.factors == ()


@pytest.mark.parametrize("n, value, expected", [(1, 1.0, 33.33), (2, 2.0, 50.0)])
def test_factor_broken_commitments(n, value, expected):
    s = run([(placed(1, T0), None)], [broken(i, T0) for i in range(n)])
    rs = score(s, T0, W)
    f = factor(rs, "broken_commitments")
    assert (f.value, rs.score, f.contribution) == (value, expected, expected)
    assert f.details["kinds"] == "delivery" and "ord-0-placed" in f.evidence


def test_factor_open_complaints_grows_with_age_and_stops_when_resolved():
    s = run([(complaint(1, T0, "opened"), None)])
    assert score(s, T0, W).score == pytest.approx(100 * 0.3 * 0.3, abs=0.01)  # fresh: being handled
    assert score(s, T0 + 14 * DAY, W).score == pytest.approx(30.0, abs=0.01)  # two weeks open: full
    f = factor(score(s, T0 + 7 * DAY, W), "open_complaints")
    assert (f.value, f.pressure, f.evidence) == (1.0, 0.65, ("cmp-1-opened",))
    resolved = apply_event(s, complaint(2, T0 + DAY, "resolved"), None, SEGMENT)
    assert factor(score(resolved, T0 + 2 * DAY, W), "open_complaints") is None


def test_factor_reopened_complaints():
    s = run([(complaint(1, T0, "opened"), None), (complaint(2, T0 + DAY, "resolved"), None),
             (complaint(3, T0 + 2 * DAY, "reopened"), None)])
    rs = score(s, T0 + 2 * DAY, W)
    assert factor(rs, "reopened_complaints").value == 1.0
    assert factor(rs, "open_complaints").value == 1.0
    assert factor(rs, "follow_up") is None  # the resolved complaint was reopened


@pytest.mark.parametrize("stars, pressure", [(1, 1.0), (2, 0.5), (3, None), (5, None)])
def test_factor_negative_feedback(stars, pressure):
    rs = score(run([(review(1, T0, stars), stars_cls(stars))]), T0, W)
    f = factor(rs, "negative_feedback")
    assert (f.pressure if f else None) == pressure
    if f:
        assert rs.score == pytest.approx(50 * pressure) and f.evidence == ("rev-1",)


def test_negative_feedback_without_classification_uses_the_score():
    assert factor(score(run([(review(1, T0, 1), None)]), T0, W), "negative_feedback").pressure == 1.0
    assert factor(score(run([(review(1, T0, 4), None)]), T0, W), "negative_feedback") is None


def test_factor_satisfaction_gap_level_and_fall():
    low = score(run([(review(1, T0, 2, expectation=4), stars_cls(2, gap=-0.5))]), T0, W)
    assert factor(low, "satisfaction_gap_trend").pressure == 1.0
    falling = run([(review(1, T0, 5, expectation=4), stars_cls(5, gap=0.25)),
                   (review(2, T0 + DAY, 4, expectation=4), stars_cls(4, gap=0.0))])
    f = factor(score(falling, T0 + DAY, W), "satisfaction_gap_trend")
    assert f.pressure == pytest.approx(0.5, abs=0.01) and "fell by 0.25" in f.description
    steady = run([(review(1, T0, 5, expectation=4), stars_cls(5, gap=0.25))])
    assert factor(score(steady, T0, W), "satisfaction_gap_trend") is None


def test_factor_recency_vs_cadence_relative_to_own_habit():
    s = run([(placed(i, T0 + i * 10 * DAY), None) for i in range(3)])  # every 10 days, last at T0+20d
    assert factor(score(s, T0 + 20 * DAY + 14 * DAY, W), "recency_vs_cadence") is None  # 1.4x
    f = factor(score(s, T0 + 20 * DAY + 22.5 * DAY, W), "recency_vs_cadence")  # 2.25x
    assert f.value == 2.25 and f.pressure == 0.5 and f.evidence == ("ord-2-placed",)
    assert score(s, T0 + 20 * DAY + 60 * DAY, W).score == 35.0  # 6x: full pressure, weight 0.35
    # one order: the default 90-day cadence applies
    assert factor(score(run([(placed(1, T0), None)]), T0 + 100 * DAY, W), "recency_vs_cadence") is None


def test_factor_pain_points_recent_counts_recurring_mentions_from_customer_voice():
    once = run([(complaint(1, T0, "opened"), complaint_cls(("delivery", "customer_service")))])
    assert factor(score(once, T0, W), "pain_points_recent") is None  # one mention: the complaint covers it
    twice = apply_event(once, review(1, T0, 3), stars_cls(3, pains=("delivery",)), SEGMENT)
    f = factor(score(twice, T0, W), "pain_points_recent")
    assert (f.value, f.pressure, f.details["top_pain_point"]) == (2.0, 0.5, "delivery")
    assert f.evidence == ("cmp-1-opened", "rev-1") or set(f.evidence) == {"cmp-1-opened", "rev-1"}
    thrice = apply_event(twice, review(2, T0, 3), stars_cls(3, pains=("delivery",)), SEGMENT)
    assert factor(score(thrice, T0, W), "pain_points_recent").pressure == 1.0
    assert run([(placed(1, T0), complaint_cls(("delivery",)))])["pain_points"] == {}  # orders do not count


def test_contributions_add_up_to_the_score_and_are_sorted():
    s = run([(placed(1, T0), None), (complaint(1, T0, "opened"), complaint_cls()),
             (review(1, T0 + DAY, 1), stars_cls(1))], [broken(1, T0 + DAY)])
    rs = score(s, T0 + DAY, W)
    assert sum(f.contribution for f in rs.factors) == pytest.approx(rs.score, abs=0.05)
    assert [f.contribution for f in rs.factors] == sorted((f.contribution for f in rs.factors), reverse=True)
    assert [f.name for f in rs.top_factors(2)] == ["negative_feedback", "broken_commitments"]


def test_decay_same_trouble_90_days_later_scores_lower():
    s = run([(placed(1, T0), None), (review(1, T0 + DAY, 1), stars_cls(1))], [broken(1, T0 + DAY)])
    fresh, later = score(s, T0 + DAY, W), score(s, T0 + 91 * DAY, W)
    assert fresh.score >= 60 > 20 > later.score > 0
    # half-life 30 days for negative feedback: 90 days → 1/8
    assert factor(later, "negative_feedback").value == pytest.approx(0.125, abs=0.001)
    gone = score(s, T0 + 400 * DAY, W)
    assert factor(gone, "negative_feedback") is None and factor(gone, "broken_commitments") is None


def test_follow_up_resolved_complaint_then_one_star_raises_risk():
    base = [(placed(1, T0), None), (complaint(1, T0 + DAY, "opened"), None),
            (complaint(2, T0 + 3 * DAY, "resolved"), None)]
    bad = run(base + [(review(1, T0 + 5 * DAY, 1), stars_cls(1))])
    only_review = run([(placed(1, T0), None), (review(1, T0 + 5 * DAY, 1), stars_cls(1))])
    before_resolution = run([(placed(1, T0), None), (complaint(1, T0 + DAY, "opened"), None),
                             (review(1, T0 + 2 * DAY, 1), stars_cls(1)),
                             (complaint(2, T0 + 3 * DAY, "resolved"), None)])
    now = T0 + 5 * DAY
    rs = score(bad, now, W)
    f = factor(rs, "follow_up")
    assert f is not None and f.evidence == ("rev-1", "cmp-2-resolved") and "followed by 1 negative" in f.description
    assert rs.score > score(only_review, now, W).score + 10
    assert factor(score(before_resolution, now, W), "follow_up") is None
    assert rs.score >= POLICY.threshold  # resolved complaint + 1-star review is an alert


def test_follow_up_resolved_then_no_purchase_within_cadence_raises_risk():
    orders = [(placed(i, T0 + i * 20 * DAY), None) for i in range(4)]  # cadence 20 days, last at T0+60d
    resolved = [(complaint(1, T0 + 61 * DAY, "opened"), None), (complaint(2, T0 + 62 * DAY, "resolved"), None)]
    now = T0 + 62 * DAY + 35 * DAY  # 35 days of silence after the resolution: 1.75x the cadence
    silent = score(run(orders + resolved), now, W)
    f = factor(silent, "follow_up")
    assert f is not None and f.details["silent"] and f.pressure == pytest.approx(0.75 * 0.5 ** (15 / 30), abs=0.01)
    assert silent.score > score(run(orders), now, W).score  # same history without the complaint
    bought = run(orders + resolved + [(placed(9, T0 + 70 * DAY), None)])
    assert factor(score(bought, now, W), "follow_up") is None
    assert factor(score(run(orders + resolved), T0 + 62 * DAY + 15 * DAY, W), "follow_up") is None  # within cadence


# ----------------------------------------------------------------------------- weights and playbook files

def test_weights_file_overrides_merge_and_validate(tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("factors:\n  negative_feedback: {weight: 0.2}\n  pain_points_recent: {weight: 0}\n")
    w = load_weights(env={"PIPELINE_CHURN_WEIGHTS_FILE": str(f)})
    assert w.factors["negative_feedback"].weight == 0.2
    assert w.factors["negative_feedback"].get("half_life_days") == 30  # kept from the default
    s = run([(review(1, T0, 1), stars_cls(1, pains=("delivery",)))])
    assert score(s, T0, w).score == 20.0 and factor(score(s, T0, w), "pain_points_recent") is None
    for bad in ("factors:\n  nope: {weight: 0.1}\n", "factors:\n  follow_up: {weight: 1.0}\n",
                "factors:\n  follow_up: {halflife: 3}\n", "factors:\n  follow_up: {half_life_days: 0}\n"):
        f.write_text(bad)
        with pytest.raises(ValueError):
            load_weights(f)


def test_playbook_file_override_and_placeholders(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("factors:\n  broken_commitments: ['약속한 {kinds} 지연 사과 전화']\nkey_customer: ['담당 AM 호출']\n",
                 encoding="utf-8")
    pb = load_playbook(env={"PIPELINE_CHURN_PLAYBOOK_FILE": str(f)})
    fac = Factor("broken_commitments", 2.0, 40.0, ("e",), "d", 1.0, {"kinds": "delivery"})
    neg = Factor("negative_feedback", 1.0, 20.0, ("r",), "d", 1.0, {})
    assert pb.actions([fac, neg], key_customer=True)[:2] == ["담당 AM 호출", "약속한 delivery 지연 사과 전화"]
    assert pb.actions([fac, neg], True)[2] == PLAYBOOK.factors["negative_feedback"][0]
    assert Playbook(factors={}, default=["look"]).actions([neg], False) == ["look"]
    f.write_text("factors:\n  follow_up: 'not a list'\n")
    with pytest.raises(ValueError):
        load_playbook(f)


def test_policy_from_env():
    p = ChurnPolicy.from_env({"PIPELINE_CHURN_THRESHOLD": "70", "PIPELINE_CHURN_LOWER_THRESHOLD": "50",
                              "PIPELINE_CHURN_COOLDOWN_DAYS": "3", "PIPELINE_CHURN_STEEP_RISE": "15",
                              "PIPELINE_CHURN_CLEARED_ALERTS": "false"})
    assert (p.threshold, p.lower_threshold, p.cooldown_days, p.steep_rise, p.emit_cleared) == (70, 50, 3, 15, False)
    assert ChurnPolicy.from_env({}) == ChurnPolicy(60, 45, 7, 20)
    with pytest.raises(ValueError):
        ChurnPolicy.from_env({"PIPELINE_CHURN_LOWER_THRESHOLD": "65"})


# ----------------------------------------------------------------------------- alert policy

def drive(values: list[tuple[float, float]], policy: ChurnPolicy = POLICY, segment=SEGMENT):
    """Evaluate (day, score) pairs; return all alerts and the final alert state."""
    st, alerts = None, []
    for day, v in values:
        st, out = evaluate(st, fake_score(v), T0 + day * DAY, "c1", segment, policy, PLAYBOOK, T0)
        alerts += out
    return alerts, st


def test_hysteresis_oscillation_around_the_threshold_alerts_once():
    alerts, st = drive([(0, 30), (1, 58), (2, 62), (3, 58), (4, 63), (5, 46), (6, 61), (20, 59), (30, 64)])
    assert [a["alert_id"] for a in alerts] == ["churn_risk:c1:1"]
    assert st["armed"] is False and st["episode"] == 1


def test_rearm_below_lower_threshold_clears_and_starts_a_new_episode():
    alerts, st = drive([(0, 30), (1, 62), (10, 44), (20, 65)])
    assert [(a["type"], a["alert_id"]) for a in alerts] == [
        ("churn_risk", "churn_risk:c1:1"), ("churn_risk_cleared", "churn_risk_cleared:c1:1"),
        ("churn_risk", "churn_risk:c1:2")]
    assert alerts[1]["severity"] == "info" and alerts[1]["details"]["clears"] == "churn_risk:c1:1"
    for a in alerts:
        assert_valid_alert(a)
    quiet, _ = drive([(0, 30), (1, 62), (10, 44)], ChurnPolicy(emit_cleared=False))
    assert [a["type"] for a in quiet] == ["churn_risk"]


def test_cooldown_delays_a_new_episode_alert():
    alerts, _ = drive([(0, 30), (1, 62), (2, 40), (3, 66), (7.9, 66)])
    assert [a["alert_id"] for a in alerts if a["type"] == "churn_risk"] == ["churn_risk:c1:1"]
    alerts, _ = drive([(0, 30), (1, 62), (2, 40), (3, 66), (8.1, 66)])
    risk = [a for a in alerts if a["type"] == "churn_risk"]
    assert [a["alert_id"] for a in risk] == ["churn_risk:c1:1", "churn_risk:c1:2"]
    assert risk[1]["event_time"] == format_timestamp(T0 + 8.1 * DAY)


def test_restart_or_redelivery_never_makes_a_second_alert_for_an_episode():
    st0, _ = drive([(0, 50)])
    st1, first = evaluate(st0, fake_score(65), T0 + DAY, "c1", SEGMENT, POLICY, PLAYBOOK, T0)
    _, again_after_commit = evaluate(st1, fake_score(65), T0 + DAY, "c1", SEGMENT, POLICY, PLAYBOOK, T0 + 99)
    _, again_before_commit = evaluate(st0, fake_score(65), T0 + DAY, "c1", SEGMENT, POLICY, PLAYBOOK, T0 + 99)
    assert again_after_commit == []
    assert [a["alert_id"] for a in again_before_commit] == [a["alert_id"] for a in first] == ["churn_risk:c1:1"]
    assert json.loads(json.dumps(st1)) == st1


def test_steep_rise_raises_severity():
    gradual, _ = drive([(0, 50), (1, 55), (2, 62)])
    steep, _ = drive([(0, 50), (1, 30), (2, 62)])
    assert gradual[0]["severity"] == "medium" and steep[0]["severity"] == "high"
    assert steep[0]["details"]["severity_raised_by"] == ["steep rise"] and steep[0]["details"]["previous_score"] == 30


def test_key_customer_and_high_score_raise_severity():
    regular, _ = drive([(0, 50), (1, 62)])
    key, _ = drive([(0, 50), (1, 62)], segment=KEY_SEGMENT)
    key_high_steep, _ = drive([(0, 50), (1, 85)], segment=KEY_SEGMENT)
    assert (regular[0]["severity"], key[0]["severity"], key_high_steep[0]["severity"]) == ("medium", "high", "critical")
    assert key[0]["suggested_actions"][0] == PLAYBOOK.key_customer[0]
    assert not any("account manager" in a for a in regular[0]["suggested_actions"])


def test_alert_validates_and_carries_no_customer_text():
    c = Customer(segment=KEY_SEGMENT)
    c.event(placed(1, T0))
    c.transition(broken(1, T0 + 4 * DAY, evidence=("ord-1-placed",)))
    c.event(complaint(1, T0 + 5 * DAY, "opened"), complaint_cls())
    c.event(review(1, T0 + 6 * DAY, 1), stars_cls(1))
    assert len(c.alerts) == 1
    alert = c.alerts[0]
    assert_valid_alert(alert)
    assert "parcel" not in json.dumps(alert) and "c1" not in alert["reason"]
    assert alert["details"]["factors"][0].keys() == {"name", "value", "contribution"}
    assert set(alert["evidence"]) == {"rev-1", "ord-1-placed", "cmp-1-opened"}


# ----------------------------------------------------------------------------- the issue's scenarios

def test_issue_scenario_two_broken_deliveries_open_complaint_one_star_review_alerts_once():
    c = Customer()
    for i in range(3):
        c.event(placed(i, T0 + i * 15 * DAY))
    c.event(review("ok", T0 + 5 * DAY, 5), stars_cls(5))
    c.transition(broken(1, T0 + 18 * DAY, evidence=("ord-1-placed",)))
    c.transition(broken(2, T0 + 33 * DAY, evidence=("ord-2-placed",)))
    c.event(complaint(1, T0 + 34 * DAY, "opened"), complaint_cls())
    c.event(review(1, T0 + 35 * DAY, 1), stars_cls(1))
    c.event(complaint(2, T0 + 36 * DAY, "updated"), None)  # still unresolved
    c.transition(broken(2, T0 + 37 * DAY, evidence=("ord-2-delivered",), type_="fulfilled_late"))  # redelivered news
    c.event(review(1, T0 + 35 * DAY, 1), stars_cls(1))  # redelivery of the review
    risk = [a for a in c.alerts if a["type"] == "churn_risk"]
    assert len(risk) == 1 and len(c.alerts) == 1
    alert = risk[0]
    names = [f["name"] for f in alert["details"]["factors"]]
    assert set(names) == {"broken_commitments", "negative_feedback", "open_complaints"}
    for label in ("broken commitments", "negative feedback", "open complaints"):
        assert label in alert["reason"]
    assert "missed delivery" in " ".join(alert["suggested_actions"])
    assert {"ord-1-placed", "ord-2-placed", "cmp-1-opened", "rev-1"} <= set(alert["evidence"])
    assert_valid_alert(alert)
    print(f"\n[churn] issue scenario: scores {c.scores} -> {alert['severity']} alert: {alert['reason']}")


def test_happy_customer_never_alerts():
    c = Customer(segment=KEY_SEGMENT)
    for i in range(12):
        c.event(placed(i, T0 + i * 21 * DAY, amount=300))
        c.event(review(i, T0 + i * 21 * DAY + 4 * DAY, 5, expectation=4), stars_cls(5, gap=0.25))
    assert c.alerts == [] and max(c.scores) == 0


def test_snapshot_levels_and_top_factors():
    s = run([(placed(1, T0), None), (review(1, T0, 1), stars_cls(1))], [broken(1, T0)])
    snap = risk_snapshot(score(s, T0, W))
    assert snap["level"] == "high" and snap["score"] == 66.67
    assert [f["name"] for f in snap["top_factors"]] == ["negative_feedback", "broken_commitments"]
    assert snap["top_factors"][0].keys() == {"name", "value", "contribution"}
    assert risk_snapshot(fake_score(50))["level"] == "medium" and risk_snapshot(fake_score(0)) == {
        "score": 0, "level": "low", "top_factors": []}


# ----------------------------------------------------------------------------- Olist replay (pure)

OLIST_DIR = Path(os.environ.get("PIPELINE_DATA_DIR", ROOT.parent / "shared" / "data")) / "olist_subset_5k"


@pytest.mark.skipif(not OLIST_DIR.is_dir(), reason=f"Olist subset not found at {OLIST_DIR}")
def test_olist_replay_customers_crossing_the_threshold():
    from pipeline.producers.olist import iter_olist_events
    from pipeline.segment.customer import apply_event as segment_apply
    from pipeline.segment.segments import derive_segment

    thresholds = SegmentThresholds()
    seg_states: dict[str, Any] = {}
    segments: dict[str, dict[str, Any]] = {}
    churn: dict[str, Any] = {}
    alert_states: dict[str, Any] = {}
    # a stand-in for the commitment tracker: each order's delivery promise is a commitment,
    # "breached" at its due time if not delivered or cancelled by then, "fulfilled_late" on a late delivery
    pending: dict[str, dict[str, tuple[float, str]]] = defaultdict(dict)  # customer -> order -> (due, placed id)
    breached: dict[str, tuple[float, str]] = {}  # order -> (due, placed id)
    orders: dict[str, int] = defaultdict(int)
    delivered: dict[str, int] = defaultdict(int)
    late: dict[str, int] = defaultdict(int)
    stars: dict[str, list[int]] = defaultdict(list)
    alerts: list[dict[str, Any]] = []
    customers: set[str] = set()
    delivered_orders: set[str] = set()
    order_customer: dict[str, str] = {}

    def assess(cid: str, now: float) -> None:
        rs = score(churn.get(cid), now, W)
        alert_states[cid], out = evaluate(alert_states.get(cid), rs, now, cid, segments.get(cid), POLICY,
                                          PLAYBOOK, emitted_at=now)
        alerts.extend(out)

    def fire_due(cid: str, until: float) -> None:
        """Breaches whose due time passed before ``until`` (the tracker's timers, in event time)."""
        for order_id, (due, placed_id) in sorted(pending[cid].items(), key=lambda kv: kv[1][0]):
            if due < until:
                del pending[cid][order_id]
                breached[order_id] = (due, placed_id)
                churn[cid] = apply_commitment_transition(churn.get(cid), {
                    "type": "breached", "kind": "delivery", "commitment_id": f"delivery:{order_id}",
                    "at": due, "evidence": [placed_id]})
                assess(cid, due)

    end = 0.0
    for kind, raw in iter_olist_events(OLIST_DIR):
        ev = normalise(kind, raw)
        cid, now = ev.customer_id, ev.occurred_at
        end = max(end, now)
        customers.add(cid)
        seg_states[cid], _ = segment_apply(seg_states.get(cid), ev, thresholds.fx_rates)
        if kind == "customer_profile":
            continue
        fire_due(cid, now)
        segments[cid] = derive_segment(seg_states[cid], now, thresholds)
        cls = None
        if kind == "feedback":
            stars[cid].append(int(raw["score"]))
            cls = stars_cls(int(raw["score"]))
        churn[cid] = apply_event(churn.get(cid), ev, cls, segments[cid])
        order_id, order_type = raw.get("order_id"), raw.get("type")
        if kind == "order" and order_type == "placed":
            pending[cid][order_id] = (ev.times["promised_delivery_at"], ev.event_id)
            orders[cid] += 1
            order_customer[order_id] = cid
        elif kind == "order" and order_type in ("delivered", "cancelled"):
            pending[cid].pop(order_id, None)
            if order_type == "delivered":
                delivered[cid] += 1
                delivered_orders.add(order_id)
                if order_id in breached:
                    late[cid] += 1
                    churn[cid] = apply_commitment_transition(churn[cid], {
                        "type": "fulfilled_late", "kind": "delivery", "commitment_id": f"delivery:{order_id}",
                        "at": now, "evidence": [breached[order_id][1], ev.event_id]})
        assess(cid, now)
    for cid in list(pending):
        fire_due(cid, end)  # promises that ran out before the data ends, never delivered

    for a in alerts:
        assert_valid_alert(a)
    risk = [a for a in alerts if a["type"] == "churn_risk"]
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    crossed = {a["subject"]["customer_id"] for a in risk}
    others = customers - crossed

    undelivered = defaultdict(int)  # breached and never delivered
    for order_id in set(breached) - delivered_orders:
        undelivered[order_customer[order_id]] += 1

    def group(ids: set[str]) -> tuple[int, int, int, int, float, int, int, float]:
        d = sum(delivered[c] for c in ids)
        lt = sum(late[c] for c in ids)
        sc = [s for c in ids for s in stars[c]]
        return (len(ids), sum(orders[c] for c in ids), d, lt, lt / d if d else 0.0,
                sum(undelivered[c] for c in ids), len(sc), sum(sc) / len(sc) if sc else float("nan"))

    g_cross, g_other = group(crossed), group(others)
    sev: dict[str, int] = defaultdict(int)
    for a in risk:
        sev[a["severity"]] += 1
    top: dict[str, int] = defaultdict(int)
    for a in risk:
        for f in a["details"]["factors"]:
            top[f["name"]] += 1
    lines = [
        "",
        f"[churn] Olist replay: {len(customers)} customers, {len(risk)} churn_risk alerts, "
        f"{len(alerts) - len(risk)} churn_risk_cleared; {len(crossed)} customers crossed the threshold "
        f"{POLICY.threshold:.0f} ({100 * len(crossed) / len(customers):.1f}%)",
        f"  severity: {dict(sorted(sev.items()))}; factors named in alerts: {dict(sorted(top.items()))}",
        "",
        f"  {'group':<20}{'customers':>10}{'orders':>8}{'delivered':>11}{'late':>6}{'late share':>12}"
        f"{'past due, undelivered':>23}{'reviews':>9}{'mean review':>13}",
    ]
    for name, g in (("crossed threshold", g_cross), ("everyone else", g_other)):
        lines.append(f"  {name:<20}{g[0]:>10}{g[1]:>8}{g[2]:>11}{g[3]:>6}{100 * g[4]:>11.1f}%{g[5]:>23}{g[6]:>9}"
                     f"{g[7]:>13.2f}")
    with_late = {c for c in customers if late[c]}
    one_star = {c for c in customers if 1 in stars[c]}
    lines += [
        "",
        f"  customers with a late delivery: {len(with_late)}, of whom crossed: {len(with_late & crossed)}; "
        f"with a 1-star review: {len(one_star)}, of whom crossed: {len(one_star & crossed)}; "
        f"with both: {len(with_late & one_star)}",
    ]
    print("\n".join(lines))
    assert crossed and others
    assert g_cross[4] > g_other[4] and g_cross[7] < g_other[7]


def test_a_score_without_explanations_has_the_same_numbers_and_explains_itself_for_an_alert():
    """``score(..., explain=False)`` (what an event's snapshot uses): same score, factor names, values,
    contributions and order; ``explained()`` gives the full score, and the alert built from the
    cheap score is the alert built from the full one."""
    c = Customer()
    c.event(placed(1, T0))
    c.event(complaint(1, T0 + DAY, "opened"), complaint_cls())
    c.transition(broken(1, T0 + 2 * DAY))
    c.event(review(1, T0 + 3 * DAY, 1, expectation=4.0), stars_cls(1, -0.5, ("delivery",)))
    for at in (T0 + 3 * DAY, T0 + 40 * DAY, T0 + 200 * DAY):
        full, cheap = score(c.state, at, W), score(c.state, at, W, explain=False)
        assert cheap.score == full.score and cheap.at == full.at
        assert [(f.name, f.value, f.contribution, f.pressure) for f in cheap.factors] == \
            [(f.name, f.value, f.contribution, f.pressure) for f in full.factors]
        assert all(f.description == "" and f.evidence == () for f in cheap.factors)
        assert cheap.explained() == full and full.explained() is full
        assert risk_snapshot(cheap) == risk_snapshot(full)
    rs = score(c.state, T0 + 3 * DAY, W, explain=False)
    assert rs.score >= POLICY.threshold
    a_cheap = evaluate(None, rs, T0 + 3 * DAY, "c1", SEGMENT, POLICY, PLAYBOOK, emitted_at=T0)
    a_full = evaluate(None, rs.explained(), T0 + 3 * DAY, "c1", SEGMENT, POLICY, PLAYBOOK, emitted_at=T0)
    assert a_cheap == a_full and a_cheap[1] and a_cheap[1][0]["evidence"]
