"""Issue 15 (scope 4): producer times are bounded against the wall clock (no broker).

An event more than PIPELINE_MAX_FUTURE_SECONDS ahead of the wall clock, before
PIPELINE_MIN_EVENT_YEAR, or with a promise more than PIPELINE_MAX_PROMISE_DAYS
after it is dead-lettered with ``out_of_range`` and never reaches a clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from pipeline.config import ConfigError, load_settings
from pipeline.core.bounds import TimeLimits
from pipeline.core.timeparse import format_timestamp, parse_timestamp
from pipeline.ingest.validate import decode, validate_event
from pipeline.process import Processor, Record

ROOT = Path(__file__).resolve().parents[2]
S = load_settings({})
T = S.topics
LIMITS = S.time_limits
NOW = parse_timestamp("2026-12-02T12:00:00Z")  # the wall clock of these tests
DAY = 86_400.0

KIND_EXAMPLES = {
    "order": "order_event/placed.json",
    "complaint": "complaint_event/opened_en.json",
    "feedback": "feedback_event/nps_en.json",
    "customer_profile": "customer_profile/key_strategic_ko.json",
}
TOPIC = {"order": T.orders, "complaint": T.complaints, "feedback": T.feedback, "customer_profile": T.profiles}
PROMISES = [("order", "order_event/placed.json", "promised_delivery_at"),
            ("order", "order_event/delivery_rescheduled.json", "promised_delivery_at"),
            ("complaint", "complaint_event/opened_en.json", "promised_response_by"),
            ("complaint", "complaint_event/opened_en.json", "promised_resolution_by"),
            ("complaint", "complaint_event/opened_en.json", "promised_refund_by"),
            ("complaint", "complaint_event/updated_callback_ko.json", "promised_callback_at")]


def example(name: str) -> dict:
    return orjson.loads((ROOT / "schemas/examples" / name).read_bytes())


def at(kind: str, when: str, name: str | None = None) -> dict:
    """The kind's example with ``occurred_at`` at ``when``; its promises keep their distance to it."""
    ev = example(name or KIND_EXAMPLES[kind])
    shift = parse_timestamp(when) - parse_timestamp(ev["occurred_at"])
    for f, v in list(ev.items()):
        if f.startswith("promised_"):
            ev[f] = format_timestamp(parse_timestamp(v) + shift)
    ev["occurred_at"] = when
    return ev


def problems(ev: dict, kind: str, limits: TimeLimits = LIMITS, now: float = NOW) -> list[tuple[str, str]]:
    d = decode(orjson.dumps(ev), kind, S.max_event_bytes, limits, now)
    assert (d.event is None) == bool(d.problems)
    return [(p.code, p.path) for p in d.problems]


def iso(epoch: float) -> str:
    return format_timestamp(epoch)


# ----------------------------------------------------------------------------- the reported case


def test_year_one_with_plus_14_is_dead_lettered_out_of_range_not_retried():
    """The issue's record: year 0001 at +14:00 lies before the epoch; dead-lettered, never raises, no event time."""
    ev = at("order", "0001-01-01T00:00:00+14:00")
    raw = orjson.dumps(ev)
    step = Processor(S).process(Record(T.orders, 0, 7, ev["customer_id"].encode(), raw, NOW), {}.get, now=NOW)
    assert step.outcome == "deadletter" and step.event_time is None and step.state is None
    doc = orjson.loads(step.outputs[0].value)
    assert ("out_of_range", "/occurred_at") in [(e["code"], e["path"]) for e in doc["errors"]]
    assert {e["code"] for e in doc["errors"]} == {"out_of_range"}


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59-14:00",
                                "1970-01-01T00:00:00+14:00", "2100-12-31T23:59:59-14:00"])
def test_extreme_offsets_are_out_of_range_on_the_rekey_topic_too(ts):
    """validate_event (re-key topic) gives the same answer as decode for the extremes of year and offset."""
    ev = {**example(KIND_EXAMPLES["complaint"]), "occurred_at": ts}
    assert ("out_of_range", "/occurred_at") in problems(ev, "complaint")
    d = validate_event(ev, "complaint", limits=LIMITS, now=NOW)
    assert not d.ok and ("out_of_range", "/occurred_at") in [(p.code, p.path) for p in d.problems]


# ---------------------------------------------------------------------------------- far future


@pytest.mark.parametrize("kind", list(KIND_EXAMPLES))
def test_more_than_a_day_ahead_of_the_wall_clock_is_out_of_range(kind):
    assert problems(at(kind, iso(NOW + DAY + 1)), kind) == [("out_of_range", "/occurred_at")]
    far = problems(at(kind, iso(NOW + 365 * DAY)), kind)  # its promises, a few days later, may be beyond too
    assert ("out_of_range", "/occurred_at") in far and {c for c, _ in far} == {"out_of_range"}


@pytest.mark.parametrize("kind", list(KIND_EXAMPLES))
def test_up_to_a_day_ahead_is_accepted(kind):
    assert problems(at(kind, iso(NOW + DAY)), kind) == []
    assert problems(at(kind, iso(NOW - 3 * 365 * DAY)), kind) == []


def test_future_bound_is_measured_after_the_offset():
    """NOW + 1 day written in +14:00 local time is still NOW + 1 day; one second more is not."""
    local = datetime.fromtimestamp(NOW + DAY, tz=timezone(timedelta(hours=14))).isoformat()
    assert problems(at("feedback", local), "feedback") == []
    later = datetime.fromtimestamp(NOW + DAY + 1, tz=timezone(timedelta(hours=-12))).isoformat()
    assert problems(at("feedback", later), "feedback") == [("out_of_range", "/occurred_at")]


def test_the_wall_clock_is_a_parameter():
    """Pure check: the same event is ahead at one ``now`` and fine at a later one (the real clock is not read)."""
    ev = at("order", "2031-06-01T00:00:00Z")
    assert problems(ev, "order", now=parse_timestamp("2031-05-30T00:00:00Z")) == [("out_of_range", "/occurred_at")]
    assert problems(ev, "order", now=parse_timestamp("2031-05-31T00:00:01Z")) == []


def test_without_limits_only_the_static_years_apply():
    ev = at("order", "2099-01-01T00:00:00Z")
    assert decode(orjson.dumps(ev), "order", S.max_event_bytes).ok
    assert not decode(orjson.dumps(ev), "order", S.max_event_bytes, LIMITS, NOW).ok


# ------------------------------------------------------------------------------------ far past


@pytest.mark.parametrize("kind", list(KIND_EXAMPLES))
@pytest.mark.parametrize("ts", ["1999-12-31T23:59:59Z", "2000-01-01T00:30:00+01:00", "1970-01-01T00:00:00Z",
                                "1985-06-01T12:00:00-03:00"])
def test_before_2000_is_out_of_range(kind, ts):
    assert ("out_of_range", "/occurred_at") in problems(at(kind, ts), kind)


@pytest.mark.parametrize("kind", list(KIND_EXAMPLES))
def test_from_2000_is_accepted(kind):
    assert problems(at(kind, "2000-01-01T00:00:00Z"), kind) == []
    assert problems(at(kind, "2000-01-01T08:59:59+09:00"), kind) == [("out_of_range", "/occurred_at")]


def test_min_event_year_is_configurable():
    limits = load_settings({"PIPELINE_MIN_EVENT_YEAR": "1970"}).time_limits
    assert problems(at("order", "1999-12-31T23:59:59Z"), "order", limits) == []
    limits = load_settings({"PIPELINE_MIN_EVENT_YEAR": "2020"}).time_limits
    assert problems(at("order", "2019-12-31T23:59:59Z"), "order", limits) == [("out_of_range", "/occurred_at")]


# ------------------------------------------------------------------------------------- promises


@pytest.mark.parametrize("kind,name,field", PROMISES)
def test_promise_beyond_the_horizon_is_out_of_range(kind, name, field):
    ev = example(name)
    occurred = parse_timestamp(ev["occurred_at"])
    ev[field] = iso(occurred + 366 * DAY + 1)
    assert problems(ev, kind) == [("out_of_range", f"/{field}")]
    ev[field] = "2100-12-31T23:59:59Z"
    assert problems(ev, kind) == [("out_of_range", f"/{field}")]


@pytest.mark.parametrize("kind,name,field", PROMISES)
def test_promise_within_the_horizon_is_accepted(kind, name, field):
    ev = example(name)
    ev[field] = iso(parse_timestamp(ev["occurred_at"]) + 366 * DAY)
    assert problems(ev, kind) == []


def test_promise_horizon_is_relative_to_the_event_not_the_wall_clock():
    """An Olist-era order promising delivery 30 days later is fine years after the fact."""
    ev = at("order", "2017-10-02T10:56:33-03:00")
    ev["promised_delivery_at"] = "2017-11-01T23:59:59-03:00"
    assert problems(ev, "order", now=parse_timestamp("2030-01-01T00:00:00Z")) == []


@pytest.mark.parametrize("field", ["promised_response_by", "promised_refund_by"])
def test_promise_before_2000_is_out_of_range(field):
    ev = example("complaint_event/opened_en.json")
    ev[field] = "1999-06-01T00:00:00Z"
    assert ("out_of_range", f"/{field}") in problems(ev, "complaint")


def test_promise_horizon_is_configurable():
    ev = example("order_event/placed.json")
    ev["promised_delivery_at"] = iso(parse_timestamp(ev["occurred_at"]) + 10 * DAY)
    assert problems(ev, "order") == []
    limits = load_settings({"PIPELINE_MAX_PROMISE_DAYS": "7"}).time_limits
    assert problems(ev, "order", limits) == [("out_of_range", "/promised_delivery_at")]


# ------------------------------------------------------------------------------- customer_profile


def test_profile_signup_may_be_old_but_not_in_the_future():
    ev = example("customer_profile/key_strategic_ko.json")
    ev["signup_at"] = "1995-03-01T00:00:00+09:00"  # a customer since the nineties is no absurd past
    assert problems(ev, "customer_profile") == []
    ev["signup_at"] = iso(NOW + DAY + 1)
    assert problems(ev, "customer_profile") == [("out_of_range", "/signup_at")]


def test_minimal_profile_without_times_is_accepted():
    assert problems(example("customer_profile/minimal.json"), "customer_profile") == []


# ------------------------------------------------------------------------------ settings, processor


def test_defaults():
    assert (S.min_event_year, S.max_future_seconds, S.max_promise_days) == (2000, 86_400.0, 366.0)
    assert LIMITS.min_time == parse_timestamp("2000-01-01T00:00:00Z")


def test_max_future_seconds_is_configurable():
    limits = load_settings({"PIPELINE_MAX_FUTURE_SECONDS": "60"}).time_limits
    assert problems(at("order", iso(NOW + 60)), "order", limits) == []
    assert problems(at("order", iso(NOW + 61)), "order", limits) == [("out_of_range", "/occurred_at")]


@pytest.mark.parametrize("name,value", [("PIPELINE_MIN_EVENT_YEAR", "1969"), ("PIPELINE_MIN_EVENT_YEAR", "2101"),
                                        ("PIPELINE_MIN_EVENT_YEAR", "soon"), ("PIPELINE_MAX_FUTURE_SECONDS", "-1"),
                                        ("PIPELINE_MAX_FUTURE_SECONDS", "inf"), ("PIPELINE_MAX_PROMISE_DAYS", "nan"),
                                        ("PIPELINE_MAX_PROMISE_DAYS", "a year")])
def test_bad_settings_are_refused(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


@pytest.mark.parametrize("kind", list(KIND_EXAMPLES))
def test_processor_dead_letters_far_future_and_moves_no_clock(kind):
    """Far-future and far-past events of every kind: dead letter, no state, no event time; a normal one goes on."""
    p = Processor(S)
    for i, when in enumerate((iso(NOW + 30 * DAY), "1990-01-01T00:00:00Z")):
        ev = at(kind, when)
        rec = Record(TOPIC[kind], 0, i, ev["customer_id"].encode(), orjson.dumps(ev), NOW)
        step = p.process(rec, {}.get, now=NOW)
        assert step.outcome == "deadletter" and step.event_time is None and step.state is None
        errors = [(e["code"], e["path"]) for e in orjson.loads(step.outputs[0].value)["errors"]]
        assert ("out_of_range", "/occurred_at") in errors and {c for c, _ in errors} == {"out_of_range"}
    ev = at(kind, iso(NOW - 60))
    step = p.process(Record(TOPIC[kind], 0, 9, ev["customer_id"].encode(), orjson.dumps(ev), NOW), {}.get, now=NOW)
    assert step.outcome in ("enriched", "state")


def test_processor_checks_rekeyed_events_against_the_wall_clock():
    ev = at("order", iso(NOW + 2 * DAY))
    wrapper = {"kind": "order", "source": {"topic": T.orders, "partition": 1, "offset": 5, "timestamp": NOW},
               "event": ev}
    rec = Record(T.rekeyed, 0, 1, ev["customer_id"].encode(), orjson.dumps(wrapper), NOW)
    step = Processor(S).process(rec, {}.get, now=NOW)
    assert step.outcome == "deadletter" and step.event_time is None
    assert step.problems[0].code == "out_of_range" and step.problems[0].path == "/occurred_at"
    assert Processor(S).process(rec, {}.get, now=NOW + 2 * DAY).outcome == "enriched"


# --------------------------------------------------------------------------------- data sets


def test_simulated_stream_stays_behind_the_wall_clock():
    """The simulator's default start puts the whole stream in the past, so none of it is dead-lettered."""
    from pipeline.producers.simulator import iter_simulated_events

    now = datetime.now(timezone.utc).timestamp()
    events = list(iter_simulated_events(600, seed=3, data_dir=ROOT / "missing-data", customers=60))
    assert max(parse_timestamp(ev["occurred_at"]) for _, ev in events) <= now
    assert all(validate_event(ev, kind, limits=LIMITS, now=now).ok for kind, ev in events)


OLIST = S.data_dir / "olist_subset_5k"


@pytest.mark.skipif(not OLIST.is_dir(), reason="Olist subset not in the shared data folder")
def test_olist_history_stays_valid():
    from pipeline.producers.olist import iter_olist_events

    bad = [ev.get("event_id") for kind, ev in iter_olist_events(S.data_dir)
           if not validate_event(ev, kind, limits=LIMITS, now=NOW).ok]
    assert bad == []
