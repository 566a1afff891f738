"""Silence as a signal (issue 15): the churn rescoring schedule, pure and through the Processor, no broker."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from pipeline.churn.alerts import ChurnPolicy, evaluate, load_playbook
from pipeline.churn.schedule import MAX_POINTS, RAMP_POINTS, next_rescore, ramps, upper_bound
from pipeline.churn.score import load_weights, score
from pipeline.churn.state import apply_event
from pipeline.config import load_settings
from pipeline.ingest.normalise import Event, normalise
from pipeline.core.timeparse import format_timestamp, parse_timestamp
from pipeline.metrics import Metrics
from pipeline.process import Processor, Record
from pipeline.scheduling import DueIndex

DAY = 86400.0
T0 = parse_timestamp("2026-01-05T10:00:00Z")
W = load_weights(env={})
POLICY = ChurnPolicy()
LOW = ChurnPolicy(threshold=30.0, lower_threshold=20.0)  # recency alone (at most 35 points) can cross it
PLAYBOOK = load_playbook(env={})
S = load_settings({})
T = S.topics
SEGMENT = {"value_tier": "regular", "lifecycle": "active", "channel": "web"}


# ----------------------------------------------------------------------------- builders

def placed(cid: str, n: int, t: float) -> tuple[str, dict[str, Any]]:
    return ("order", {
        "schema_version": 1, "event_id": f"{cid}-o{n}-placed", "order_id": f"{cid}-ord-{n}", "customer_id": cid,
        "type": "placed", "occurred_at": format_timestamp(t), "promised_delivery_at": format_timestamp(t + 3 * DAY),
        "amount": 80.0, "currency": "USD", "channel": "web", "region": "US-CA",
        "items": [{"sku": "sku-1", "category": "home", "qty": 1, "unit_price": 80.0}],
    })


def delivered(cid: str, n: int, t: float) -> tuple[str, dict[str, Any]]:
    return ("order", {"schema_version": 1, "event_id": f"{cid}-o{n}-delivered", "order_id": f"{cid}-ord-{n}",
                      "customer_id": cid, "type": "delivered", "occurred_at": format_timestamp(t)})


def complaint(cid: str, status: str, t: float) -> tuple[str, dict[str, Any]]:
    e = {"schema_version": 1, "event_id": f"{cid}-cp-{status}", "complaint_id": f"{cid}-cp", "customer_id": cid,
         "status": status, "channel": "web", "occurred_at": format_timestamp(t)}
    if status == "opened":
        e["text"] = "My last order never arrived."
    return ("complaint", e)


def weekly_then_silent(cid: str, weeks: int = 8, resolved_complaint: bool = False) -> list[tuple[str, dict]]:
    """Weekly orders delivered on time; with ``resolved_complaint`` the last one is never delivered and a
    complaint about it is opened and resolved.  Then nothing more from this customer."""
    out: list[tuple[str, dict]] = []
    last = T0 + (weeks - 1) * 7 * DAY
    for n in range(weeks):
        t = T0 + n * 7 * DAY
        out.append(placed(cid, n, t))
        if not (resolved_complaint and t == last):
            out.append(delivered(cid, n, t + 2 * DAY))
    if resolved_complaint:
        out += [complaint(cid, "opened", last + 4 * DAY), complaint(cid, "resolved", last + 5 * DAY)]
    return out


def last_order(weeks: int = 8) -> float:
    return T0 + (weeks - 1) * 7 * DAY


class Run:
    """A Processor with an in-memory table, driven by events and clock advances (as the agent does)."""

    def __init__(self, env: dict[str, str] | None = None, index: DueIndex | None = None) -> None:
        """``index``: kept as the stage-1 driver keeps its due index, and handed to the processor."""
        self.p = Processor(S, env=env or {})
        self.store: dict[str, Any] = {}
        self.offset = 0
        self.alerts: list[dict[str, Any]] = []
        self.rescored = 0
        self.index = index

    def _keep(self, step: Any) -> Any:
        if step.state is not None:
            self.store[step.state_key] = orjson.loads(orjson.dumps(step.state))  # what the table holds
        if self.index is not None and step.state_key is not None:
            self.index.set(0, step.state_key, step.next_due)
        self.alerts += step.alerts
        self.rescored += step.rescored
        return step

    def send(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        topics = {"order": T.orders, "complaint": T.complaints, "feedback": T.feedback}
        index = self.index
        due_of = None if index is None else (lambda key: index.due(0, key))
        for kind, ev in events:
            self.offset += 1
            rec = Record(topics[kind], 0, self.offset, ev["customer_id"].encode(), orjson.dumps(ev), 1.7e9)
            step = self._keep(self.p.process(rec, self.store.get, now=time.time(), due_of=due_of))
            assert step.outcome == "enriched", step.problems

    def advance(self, cid: str, clock: float) -> Any:
        return self._keep(self.p.advance(cid, self.store.get(cid), clock, now=time.time()))

    def churn(self, cid: str, typ: str = "churn_risk") -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["type"] == typ and a["subject"]["customer_id"] == cid]


def evaluated(events: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Churn state and alert state after ``events``, each evaluated at its own time (pure path)."""
    state: dict[str, Any] | None = None
    alert: dict[str, Any] | None = None
    for kind, raw in events:
        ev: Event = normalise(kind, raw)
        state = apply_event(state, ev, None, SEGMENT)
        alert, _ = evaluate(alert, score(state, ev.occurred_at, W), ev.occurred_at, ev.customer_id, SEGMENT,
                            POLICY, PLAYBOOK, 0.0)
    assert state is not None and alert is not None
    return state, alert


# ----------------------------------------------------------------------------- the schedule, pure

def test_weekly_customer_who_stops_ordering_is_due_where_recency_reaches_the_threshold():
    state, alert = evaluated(weekly_then_silent("w"))
    last = last_order()
    (ramp,) = ramps(state, W)
    assert ramp.factor == "recency_vs_cadence"
    assert (ramp.start - last) / DAY == pytest.approx(1.5 * 7) and (ramp.end - last) / DAY == pytest.approx(3 * 7)
    # with the default threshold recency alone (35 points at most) can never alert: nothing scheduled
    assert upper_bound(state, ramp.start, W) == pytest.approx(35.0)
    assert next_rescore(state, alert, W, POLICY) is None
    # with a threshold of 30 it can: the first point of the ramp where the score reaches 30
    due = next_rescore(state, alert, W, LOW)
    step = (ramp.end - ramp.start) / RAMP_POINTS
    assert due is not None and (due - ramp.start) / step == pytest.approx(round((due - ramp.start) / step))
    assert score(state, due, W).score >= 30 > score(state, due - step, W).score
    assert (due - last) / DAY == pytest.approx(10.5 + 7 * 1.3125)  # 2.8x the cadence, score 30.6


def test_nothing_is_scheduled_for_a_customer_without_orders_or_rising_factors():
    assert next_rescore(None, None, W, LOW) is None
    review = ("feedback", {"schema_version": 1, "event_id": "r1", "feedback_id": "r1", "customer_id": "n",
                           "source": "review", "score": 1, "scale": {"min": 1, "max": 5},
                           "occurred_at": format_timestamp(T0)})
    state, alert = evaluated([review])
    assert ramps(state, W) == [] and next_rescore(state, alert, W, LOW) is None


def test_disarmed_customer_is_not_scheduled_and_cooldown_defers_the_point():
    state, alert = evaluated(weekly_then_silent("w"))
    assert next_rescore(state, {**alert, "armed": False}, W, LOW) is None
    last = last_order()
    due = next_rescore(state, alert, W, LOW)
    assert due is not None
    # an alert 20 days after the last order (previous episode): the cool-down (7 days) ends after `due`
    cooled = {**alert, "last_alert_at": last + 20 * DAY}
    later = next_rescore(state, cooled, W, LOW)
    assert later == pytest.approx(last + 27 * DAY)  # the end of the cool-down, when the score is still >= 30


def test_points_are_bounded_and_spaced():
    state, alert = evaluated(weekly_then_silent("w", resolved_complaint=True))
    for r in ramps(state, W):
        pts = r.points()
        assert len(pts) == RAMP_POINTS
        assert min(b - a for a, b in zip(pts, pts[1:])) >= (r.end - r.start) / RAMP_POINTS - 1e-6
    # walking the schedule from the last evaluation: each point strictly later, few of them in all
    policy = ChurnPolicy(threshold=99.0, lower_threshold=10.0)  # never reached: only checkpoints, if any
    a, seen = dict(alert), []
    while (t := next_rescore(state, a, W, policy)) is not None:
        assert not seen or t > seen[-1]
        seen.append(t)
        a["last_at"] = t
    assert len(seen) <= MAX_POINTS


# ----------------------------------------------------------------------------- through the Processor

def test_silent_weekly_customer_alerts_on_recency_when_the_clock_passes_the_threshold():
    run = Run({"PIPELINE_CHURN_THRESHOLD": "30", "PIPELINE_CHURN_LOWER_THRESHOLD": "20"})
    run.send(weekly_then_silent("w"))
    last = last_order()
    due = run.p.next_due(run.store["w"])
    assert due == pytest.approx(last + (10.5 + 7 * 1.3125) * DAY)
    ca = run.store["w"]["ca"]
    before = run.advance("w", due - 1)  # at most commitment housekeeping (fulfilled promises purged)
    assert before.rescored == 0 and not before.alerts and before.next_due == due
    assert run.store["w"]["ca"] == ca  # not evaluated
    late = run.advance("w", due + 3 * DAY)  # the clock passed it by three days: evaluated at the due time
    assert late.rescored == 1 and late.rescore_late == pytest.approx(3 * DAY)
    (alert,) = run.churn("w")
    assert alert["alert_id"] == "churn_risk:w:1"
    assert parse_timestamp(alert["event_time"]) == pytest.approx(due)
    assert alert["details"]["factors"][0]["name"] == "recency_vs_cadence"
    assert "recency vs cadence" in alert["reason"] and alert["suggested_actions"]
    assert alert["evidence"] == ["w-o7-placed"]
    assert late.next_due is None  # disarmed: nothing more until the customer's next event
    assert [o.topic for o in late.outputs] == [T.alerts_churn] and late.outputs[0].kind is None


def test_resolved_complaint_then_silence_names_follow_up_with_default_settings():
    run = Run()
    run.send(weekly_then_silent("f", resolved_complaint=True))
    last = last_order()
    due = run.p.next_due(run.store["f"])
    assert due is not None
    clock = last + 5 * DAY
    steps = []
    while clock < last + 40 * DAY:  # the agent's sweeps: half a day at a time
        clock += DAY / 2
        if run.p.next_due(run.store["f"]) is not None and run.p.next_due(run.store["f"]) <= clock:
            steps.append(run.advance("f", clock))
    (alert,) = run.churn("f")
    names = [f["name"] for f in alert["details"]["factors"]]
    assert "follow_up" in names and "recency_vs_cadence" in names, names
    assert alert["details"]["score"] >= POLICY.threshold
    assert "f-cp-resolved" in alert["evidence"]
    assert 10 * DAY < parse_timestamp(alert["event_time"]) - last < 25 * DAY
    assert sum(s.rescored for s in steps) == 1  # one rescoring on silence, the one that alerted
    assert run.p.next_due(run.store["f"]) is None


def test_same_alert_id_when_the_same_stored_state_is_rescored_again_after_a_crash():
    run = Run({"PIPELINE_CHURN_THRESHOLD": "30", "PIPELINE_CHURN_LOWER_THRESHOLD": "20"})
    run.send(weekly_then_silent("w"))
    stored = orjson.loads(orjson.dumps(run.store["w"]))
    due = run.p.next_due(stored)
    assert due is not None
    first = run.p.advance("w", stored, due + DAY, now=1.0)
    again = run.p.advance("w", stored, due + 5 * DAY, now=2.0)  # re-run later, from the same stored state
    assert [a["alert_id"] for a in first.alerts] == [a["alert_id"] for a in again.alerts] == ["churn_risk:w:1"]
    assert first.alerts[0]["event_time"] == again.alerts[0]["event_time"]
    assert first.alerts[0]["details"] == again.alerts[0]["details"]


def test_an_event_after_the_due_time_gets_the_silence_alert_first_at_its_time():
    """A replay where the customer's next event is processed before any sweep: same alert as a sweep."""
    run = Run({"PIPELINE_CHURN_THRESHOLD": "30", "PIPELINE_CHURN_LOWER_THRESHOLD": "20"})
    run.send(weekly_then_silent("w"))
    due = run.p.next_due(run.store["w"])
    assert due is not None
    run.send([placed("w", 99, due + 10 * DAY)])
    (alert,) = run.churn("w")
    assert parse_timestamp(alert["event_time"]) == pytest.approx(due)
    assert alert["details"]["factors"][0]["name"] == "recency_vs_cadence"
    assert run.rescored == 1


def test_the_due_index_spares_the_silence_search_and_changes_nothing(monkeypatch):
    """With the driver's due index (a lower bound of each customer's next due time) an event before
    it skips the search for rescorings due first; the alerts and states are the same as without."""
    searched = {"n": 0}
    search = Processor._rescore_silence

    def counted(self: Processor, *args: Any) -> Any:
        searched["n"] += 1
        return search(self, *args)

    monkeypatch.setattr(Processor, "_rescore_silence", counted)
    env = {"PIPELINE_CHURN_THRESHOLD": "30", "PIPELINE_CHURN_LOWER_THRESHOLD": "20"}
    runs = []
    for index in (None, DueIndex()):
        run, searched["n"] = Run(env, index), 0
        run.send(weekly_then_silent("w"))
        due = run.p.next_due(run.store["w"])
        assert due is not None
        run.send([placed("w", 99, due + 10 * DAY)])
        runs.append((run, searched["n"]))
    (plain, plain_searches), (indexed, indexed_searches) = runs
    assert indexed.store == plain.store and indexed.rescored == plain.rescored == 1
    assert [(a["alert_id"], a["event_time"]) for a in indexed.alerts] == \
        [(a["alert_id"], a["event_time"]) for a in plain.alerts]
    assert indexed.churn("w") and indexed_searches < plain_searches


def test_default_settings_no_extra_churn_work_for_a_regular_customer():
    run = Run()
    run.send(weekly_then_silent("w"))
    assert run.p.next_due(run.store["w"]) is None  # recency alone cannot reach 60: nothing scheduled
    step = run.advance("w", last_order() + 400 * DAY)  # (commitment housekeeping only)
    assert step.rescored == 0 and step.next_due is None and run.churn("w") == []


def test_next_due_is_the_earlier_of_commitment_and_rescoring():
    run = Run({"PIPELINE_CHURN_THRESHOLD": "30", "PIPELINE_CHURN_LOWER_THRESHOLD": "20"})
    run.send(weekly_then_silent("w")[:-1])  # the last order is not delivered yet: its promise is open
    from pipeline.commitments import tracker

    st = run.store["w"]
    cm_due = tracker.due_soonest(st["cm"])
    churn_due = next_rescore(st["churn"], st["ca"], run.p.churn_weights, run.p.churn_policy)
    assert cm_due is not None and churn_due is not None and cm_due < churn_due
    assert run.p.next_due(st) == cm_due
    assert run.p.next_due({"churn": st["churn"], "ca": st["ca"]}) == churn_due


def test_next_due_search_stops_at_the_deadline_with_the_same_result():
    """The rescoring search is bounded by the commitment deadline: the result is still the earlier of
    the two, whichever comes first (ties included)."""
    run = Run({"PIPELINE_CHURN_THRESHOLD": "30", "PIPELINE_CHURN_LOWER_THRESHOLD": "20"})
    run.send(weekly_then_silent("w"))
    st = run.store["w"]
    churn_due = next_rescore(st["churn"], st["ca"], run.p.churn_weights, run.p.churn_policy)
    assert churn_due is not None
    for deadline in (churn_due - DAY, churn_due - 1.0, churn_due, churn_due + 1.0, churn_due + 30 * DAY):
        cm = {"commitments": {"c": {"status": "warned", "due_at": deadline}}}
        assert run.p.next_due({**st, "cm": cm}) == min(deadline, churn_due)


# ----------------------------------------------------------------------------- index and metrics

def test_due_index_size_and_overdue():
    idx = DueIndex()
    for i, due in enumerate((5.0, 1.0, 9.0, 3.0, 7.0)):
        idx.set(0, f"k{i}", due)
    idx.set(0, "k0", 20.0)  # moved later: its stale entry at 5 is not counted
    idx.set(1, "other", 0.0)
    assert idx.size(0) == 5 and idx.size(1) == 1 and idx.size(2) == 0
    assert idx.overdue(0, 6.0) == 2  # k1 (1), k3 (3)
    assert idx.overdue(0, 100.0) == 5 and idx.overdue(0, 0.5) == 0 and idx.overdue(2, 10.0) == 0


def test_schedule_metrics():
    m = Metrics()
    run = Run({"PIPELINE_CHURN_THRESHOLD": "30", "PIPELINE_CHURN_LOWER_THRESHOLD": "20"})
    run.send(weekly_then_silent("w"))
    due = run.p.next_due(run.store["w"])
    assert due is not None
    m.observe_advance(run.advance("w", due + 60))
    m.set_schedule(3, 12, 1)

    def value(name: str, **labels: str) -> float | None:
        return m.registry.get_sample_value(name, labels)

    assert value("pipeline_churn_rescores_total") == 1
    assert value("pipeline_churn_rescore_lateness_seconds_count") == 1
    assert value("pipeline_schedule_keys", partition="3") == 12
    assert value("pipeline_schedule_overdue_keys", partition="3") == 1
    m.drop_schedule(3)
    m.drop_schedule(3)
    assert value("pipeline_schedule_keys", partition="3") is None


def test_the_fused_point_check_equals_the_bound_then_the_full_score():
    """``next_rescore`` asks, per point, "ruled out by the bound, else does the score reach the
    threshold?" in one pass (``_reaches``); it must answer exactly as ``upper_bound`` then ``score``."""
    import itertools

    from pipeline.churn import schedule
    from pipeline.producers.simulator import iter_simulated_events
    from pipeline.producers.publish import topic_for

    run = Run()
    for n, (kind, ev) in enumerate(itertools.islice(iter_simulated_events(None, seed=5, data_dir=S.data_dir,
                                                                          customers=60), 1500)):
        rec = Record(topic_for(kind, S), 0, n, str(ev["customer_id"]).encode(), orjson.dumps(ev), 1.7e9)
        run._keep(run.p.process(rec, run.store.get, now=time.time()))
    checked = reached = ruled_out = 0
    for state in run.store.values():
        churn = state.get("churn")
        if not churn:
            continue
        rising = ramps(churn, W)
        points = sorted({t for r in rising for t in r.points()}) or [churn.get("last_event_at") or T0]
        for t in points[:12]:
            for threshold in (20.0, 40.0, 60.0, 80.0):
                expected = None if upper_bound(churn, t, W, rising) < threshold else (
                    score(churn, t, W).score >= threshold)
                assert schedule._reaches(churn, t, W, rising, threshold) is expected
                checked += 1
                reached += expected is True
                ruled_out += expected is None
    assert checked > 500 and reached > 0 and ruled_out > 0  # every branch was exercised


def test_the_due_hint_is_a_lower_bound_of_the_exact_due_time():
    """``Processor.due_hint`` (what the due index holds after an event, scoring nothing) is never
    after ``next_due`` and is ``None`` only when ``next_due`` is: on simulated customers, with the
    default policy and one low enough for recency alone to alert, before and after a cool-down."""
    import itertools

    from pipeline.producers.publish import topic_for
    from pipeline.producers.simulator import iter_simulated_events

    checked = bounded = 0
    for env in ({}, {"PIPELINE_CHURN_THRESHOLD": "30", "PIPELINE_CHURN_LOWER_THRESHOLD": "20"}):
        run = Run(env)
        for n, (kind, ev) in enumerate(itertools.islice(iter_simulated_events(None, seed=9, data_dir=S.data_dir,
                                                                              customers=80), 2500)):
            rec = Record(topic_for(kind, S), 0, n, str(ev["customer_id"]).encode(), orjson.dumps(ev), 1.7e9)
            step = run._keep(run.p.process(rec, run.store.get, now=time.time()))
            if step.state_key is None or step.state_key not in run.store:
                continue
            state = run.store[step.state_key]
            exact, hint = run.p.next_due(state), run.p.due_hint(state)
            assert step.next_due == hint
            if exact is not None:
                assert hint is not None and hint <= exact, (step.state_key, hint, exact)
                bounded += hint < exact
            checked += 1
        for cid in list(run.store)[:20]:  # rescored on silence (alerts, cool-downs): still a lower bound
            exact = run.p.next_due(run.store[cid])
            if exact is not None:
                step = run.advance(cid, exact)
                after, hint = run.p.next_due(run.store[cid]), run.p.due_hint(run.store[cid])
                assert after is None or (hint is not None and hint <= after)
    assert checked > 2000 and bounded > 0


def test_the_gap_trend_bound_equals_the_factor_over_every_suffix():
    """One pass over the suffixes (issue 17) gives exactly what applying the factor to each did."""
    import random

    from pipeline.churn.schedule import gap_trend_bound
    from pipeline.churn.score import FACTORS

    fw = W.factors["satisfaction_gap_trend"]
    rng = random.Random(17)
    for _ in range(400):
        n = rng.randint(0, 12)
        gaps = sorted([[T0 + rng.uniform(-400, 40) * DAY, rng.choice([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]),
                        f"e{i}"] for i in range(n)])
        t = T0 + rng.uniform(-10, 60) * DAY
        expected = 0.0
        for k in range(len(gaps)):
            raw = FACTORS["satisfaction_gap_trend"]({"gaps": gaps[k:]}, t, fw, W, False)
            expected = max(expected, raw.pressure if raw is not None else 0.0)
        assert gap_trend_bound(gaps, t, fw) == expected
