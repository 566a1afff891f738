"""Issue 14: bounded numbers, times and ids — schemas, decode, stage logic, internal topics (no broker)."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest

from pipeline.churn.state import apply_event as churn_apply
from pipeline.churn.state import new_state as churn_new_state
from pipeline.config import load_settings
from pipeline.core.bounds import MAX_SPEND, finite, time_in_range
from pipeline.aggregate.internal import Control, Partial, parse_control, parse_partial, parse_stage2
from pipeline.ingest.internal import Tick, parse_tick
from pipeline.ingest.normalise import normalise
from pipeline.ingest.validate import Problem, decode, validate_event
from pipeline.process import Processor, Record
from pipeline.segment.customer import apply_event as segment_apply
from pipeline.segment.segments import derive_segment

ROOT = Path(__file__).resolve().parents[2]
S = load_settings({})
T = S.topics
NOW = 1_800_000_000.0


def example(name: str) -> dict:
    return orjson.loads((ROOT / "schemas/examples" / name).read_bytes())


def codes(raw: bytes, kind: str) -> list[tuple[str, str]]:
    d = decode(raw, kind, S.max_event_bytes)
    assert d.event is None
    return [(p.code, p.path) for p in d.problems]


def placed(**changes) -> dict:
    ev = example("order_event/placed.json")
    ev.update(changes)
    return ev


# ------------------------------------------------------------------ decode: numbers


@pytest.mark.parametrize("amount", [1e308, 1e12 + 1, 1.7976931348623157e308])
def test_huge_amount_is_out_of_range(amount):
    assert codes(orjson.dumps(placed(amount=amount)), "order") == [("out_of_range", "/amount")]


def test_bounds_themselves_are_accepted():
    ev = placed(amount=1e12)
    ev["items"][0].update(qty=1_000_000, unit_price=1e12)
    assert decode(orjson.dumps(ev), "order", S.max_event_bytes).ok


@pytest.mark.parametrize("field,value", [("qty", 1_000_001), ("qty", 1e308), ("unit_price", 1e308),
                                         ("unit_price", 1e13)])
def test_huge_item_numbers_are_out_of_range(field, value):
    ev = placed()
    ev["items"][0][field] = value
    assert codes(orjson.dumps(ev), "order") == [("out_of_range", f"/items/0/{field}")]


@pytest.mark.parametrize("literal", [b"1e309", b"-1e400", b"123456789e999"])
def test_number_beyond_double_is_out_of_range_not_not_json(literal):
    raw = orjson.dumps(placed(amount=1.0)).replace(b'"amount":1.0', b'"amount":' + literal)
    assert literal in raw
    assert codes(raw, "order") == [("out_of_range", "")]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf"])
def test_nan_like_literals_are_refused(literal):
    raw = orjson.dumps(placed(amount=1.0)).replace(b'"amount":1.0', b'"amount":' + literal)
    assert codes(raw, "order") == [("not_json", "")]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_in_parsed_object_is_out_of_range(value):
    d = validate_event(placed(amount=value), "order")
    assert not d.ok and [(p.code, p.path) for p in d.problems] == [("out_of_range", "/amount")]
    nested = placed(attributes={"x": value})
    assert [(p.code, p.path) for p in validate_event(nested, "order").problems] == [("out_of_range", "/attributes/x")]


@pytest.mark.parametrize("field,value", [("score", 1e308), ("expectation_score", -1e308)])
def test_feedback_scores_bounded(field, value):
    ev = example("feedback_event/nps_en.json")
    ev[field] = value
    assert ("out_of_range", f"/{field}") in codes(orjson.dumps(ev), "feedback")


def test_feedback_scale_bounded():
    ev = example("feedback_event/nps_en.json")
    ev["scale"] = {"min": -1e308, "max": 1e308}
    assert {c for c, _ in codes(orjson.dumps(ev), "feedback")} == {"out_of_range"}


def test_score_outside_its_scale_still_out_of_range():
    ev = example("feedback_event/nps_en.json")
    ev["score"] = 11
    assert codes(orjson.dumps(ev), "feedback") == [("out_of_range", "/score")]


# ------------------------------------------------------------------- decode: times


@pytest.mark.parametrize("ts", ["9999-12-31T00:00:00Z", "2101-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                                "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00"])
def test_timestamp_year_outside_1970_2100_is_out_of_range(ts):
    ev = placed(occurred_at=ts, promised_delivery_at=ts)
    got = codes(orjson.dumps(ev), "order")
    assert ("out_of_range", "/occurred_at") in got and {c for c, _ in got} == {"out_of_range"}


@pytest.mark.parametrize("ts", ["1970-01-01T00:30:00+01:00", "2100-12-31T23:00:00-05:00"])
def test_timestamp_pushed_out_of_range_by_its_offset(ts):
    assert ("out_of_range", "/occurred_at") in codes(orjson.dumps(placed(occurred_at=ts)), "order")


@pytest.mark.parametrize("ts", ["1970-01-01T00:00:00Z", "2100-12-31T23:59:59Z", "2024-02-29T12:00:00+09:00"])
def test_timestamp_edges_accepted(ts):
    ev = placed(occurred_at=ts, promised_delivery_at="2100-12-31T23:59:59Z")
    assert decode(orjson.dumps(ev), "order", S.max_event_bytes).ok


@pytest.mark.parametrize("kind,name,field", [("complaint", "complaint_event/opened_ko.json", "promised_response_by"),
                                             ("customer_profile", "customer_profile/minimal.json", "signup_at"),
                                             ("feedback", "feedback_event/nps_en.json", "occurred_at")])
def test_year_9999_rejected_in_every_input_kind(kind, name, field):
    ev = example(name)
    ev[field] = "9999-01-01T00:00:00Z"
    assert ("out_of_range", f"/{field}") in codes(orjson.dumps(ev), kind)


# --------------------------------------------------------------------- decode: ids


@pytest.mark.parametrize("field", ["customer_id", "order_id", "event_id", "seller_id", "region"])
@pytest.mark.parametrize("char", ["\x00", "\n", "\x1b", "\x7f", "\x85"])
def test_control_characters_in_ids_are_invalid_format(field, char):
    ev = placed(**{field: f"abc{char}def"})
    assert ("invalid_format", f"/{field}") in codes(orjson.dumps(ev), "order")


def test_control_characters_in_item_sku_and_other_kinds():
    ev = placed()
    ev["items"][0]["sku"] = "a\tb"
    assert codes(orjson.dumps(ev), "order") == [("invalid_format", "/items/0/sku")]
    fb = example("feedback_event/nps_en.json")
    fb["feedback_id"] = "x\ry"
    assert codes(orjson.dumps(fb), "feedback") == [("invalid_format", "/feedback_id")]


def test_non_ascii_ids_stay_valid():
    ev = placed(customer_id="고객-ü-😀", order_id="주문 1")
    assert decode(orjson.dumps(ev), "order", S.max_event_bytes).ok


def test_id_max_length_kept():
    assert codes(orjson.dumps(placed(customer_id="x" * 129)), "order") == [("out_of_range", "/customer_id")]


@pytest.mark.parametrize("event", [None, [], "x", 1, {"schema_version": 1}, {"schema_version": True}])
def test_validate_event_never_raises(event):
    for kind in ("order", "feedback", "nonsense"):
        d = validate_event(event, kind)
        assert not d.ok and d.problems


# ----------------------------------------------------------- stage logic: finite spend


def _order_ev(amount, eid="e1", ts="2024-03-01T00:00:00Z"):
    ev = placed(amount=amount, event_id=eid, occurred_at=ts, promised_delivery_at="2024-03-09T00:00:00Z")
    return normalise("order", ev)


@pytest.mark.parametrize("old_spend", [None, float("inf"), float("nan"), float("-inf"), "12", [], -5.0])
def test_segment_state_with_bad_spend_is_repaired(old_spend):
    seg = {**segment_apply(None, _order_ev(10.0, "e0"), {})[0], "spend": old_spend}
    state, changed = segment_apply(seg, _order_ev(25.5), {})
    assert changed and state["spend"] == 25.5 and state["orders"] == 2
    segment = derive_segment(seg, NOW, S.segment)  # the stored old state itself derives too
    assert segment["spend"] == 0.0 and segment["orders_count"] == 1


def test_segment_spend_clamped_and_json_safe():
    fx = {"BRL": 1e300}
    state, _ = segment_apply(None, _order_ev(1e12, "e0"), fx)
    assert state["spend"] == 1e12  # one order adds at most MAX_AMOUNT after FX
    state, _ = segment_apply({**state, "spend": MAX_SPEND - 1.0}, _order_ev(1e12, "e1"), fx)
    assert state["spend"] == MAX_SPEND
    assert orjson.loads(orjson.dumps(state))["spend"] == MAX_SPEND
    assert derive_segment(state, NOW, S.segment)["value_tier"] == "key"


@pytest.mark.parametrize("bad", [{"fx": float("inf")}, {"fx": float("nan")}])
def test_non_finite_fx_rate_does_not_poison(bad):
    state, _ = segment_apply(None, _order_ev(10.0), {"BRL": bad["fx"]})
    assert state["spend"] == 10.0


def test_segment_old_state_missing_keys_and_bad_times():
    old = {"orders": 3, "spend": None, "last_order_at": float("inf"), "first_order_at": None,
           "gap_mean_days": float("nan"), "profile": {"signup_at": "0000-01-01T00:00:00Z"}}
    segment = derive_segment(old, NOW, S.segment)
    assert segment["spend"] == 0.0 and segment["lifecycle"] == "unknown"
    state, changed = segment_apply(old, _order_ev(5.0), {})
    assert changed and state["spend"] == 5.0 and state["last_order_at"] == state["first_order_at"]


@pytest.mark.parametrize("old_spend", [None, float("inf"), float("nan"), "x"])
def test_churn_state_with_bad_spend_is_repaired(old_spend):
    old = {**churn_new_state(), "orders": 1, "spend": old_spend, "gap_mean_days": None}
    s = churn_apply(old, _order_ev(7.0), None, None)
    assert s["spend"] == 7.0 and s["orders"] == 2
    s = churn_apply(old, _order_ev(7.0, "e2"), None, {"spend": float("inf")})
    assert s["spend"] == 7.0  # a non-finite segment spend is ignored, the running sum used
    s = churn_apply(s, _order_ev(1e12, "e3"), None, {"spend": 1e300})
    assert s["spend"] == MAX_SPEND


def test_churn_state_of_an_old_version_missing_keys():
    s = churn_apply({"orders": 2, "spend": None}, _order_ev(3.0), None, None)
    assert s["spend"] == 3.0 and s["complaints"] == {} and s["recent_ids"] == ["e1"]


def test_processor_old_state_with_null_spend_does_not_dead_letter():
    """The issue's scenario: a stored state with spend null (was inf) — later events are enriched."""
    p = Processor(S)
    first = placed(event_id="o-1")
    cid = first["customer_id"]
    store: dict = {}
    step = p.process(Record(T.orders, 0, 1, cid.encode(), orjson.dumps(first), 1.7e9), store.get, now=NOW)
    assert step.outcome == "enriched"
    stored = copy.deepcopy(step.state)
    stored["seg"]["spend"] = float("inf")
    stored["churn"]["spend"] = float("inf")
    store[cid] = orjson.loads(orjson.dumps(stored))  # what the table held after a restart: null
    assert store[cid]["seg"]["spend"] is None and store[cid]["churn"]["spend"] is None
    for i, kind_topic in enumerate([(T.orders, placed(event_id="o-2")),
                                    (T.feedback, example("feedback_event/nps_en.json"))]):
        topic, ev = kind_topic
        ev["customer_id"] = cid
        step = p.process(Record(topic, 0, 2 + i, cid.encode(), orjson.dumps(ev), 1.7e9), store.get, now=NOW)
        assert step.outcome == "enriched", step.problems
        doc = orjson.loads(step.outputs[0].value)
        assert isinstance(doc["segment"]["spend"], float)
        store[cid] = orjson.loads(orjson.dumps(step.state))
    adv = p.advance(cid, store[cid], NOW + 86400 * 400, now=NOW)
    assert adv.outcome == "advanced"


def test_processor_dead_letters_huge_amount_and_year_9999():
    p = Processor(S)
    for ev in (placed(amount=1e308), placed(occurred_at="9999-01-01T00:00:00Z",
                                           promised_delivery_at="9999-01-02T00:00:00Z")):
        step = p.process(Record(T.orders, 0, 1, ev["customer_id"].encode(), orjson.dumps(ev), 1.7e9), {}.get, now=NOW)
        assert step.outcome == "deadletter" and step.state is None
        assert {x.code for x in step.problems} == {"out_of_range"}


def test_absurd_kafka_record_time_is_ignored():
    p = Processor(S)
    ev = placed()
    step = p.process(Record(T.orders, 0, 1, ev["customer_id"].encode(), orjson.dumps(ev), 1e13), {}.get, now=NOW)
    assert step.outcome == "enriched"


def test_rekeyed_record_is_validated_again():
    p = Processor(S)
    ev = placed(amount=1e308)
    cid = ev["customer_id"].encode()
    wrapper = {"kind": "order", "source": {"topic": T.orders, "partition": 0, "offset": 3, "timestamp": None},
               "event": ev}
    step = p.process(Record(T.rekeyed, 0, 1, cid, orjson.dumps(wrapper), 1.7e9), {}.get, now=NOW)
    assert step.outcome == "deadletter" and [x.code for x in step.problems] == ["out_of_range"]
    for bad_src in ({"topic": T.orders, "partition": -1, "offset": 3}, {"topic": 5, "partition": 0, "offset": 3},
                    {"topic": T.orders, "partition": 0, "offset": 3, "timestamp": 1e300}):
        w = dict(wrapper, event=placed(), source=bad_src)
        step = p.process(Record(T.rekeyed, 0, 1, cid, orjson.dumps(w), 1.7e9), {}.get, now=NOW)
        assert step.outcome == "deadletter" and [x.code for x in step.problems] == ["invalid_value"]
    w = dict(wrapper, kind="enriched", event=placed())
    assert p.process(Record(T.rekeyed, 0, 1, cid, orjson.dumps(w), 1.7e9), {}.get, now=NOW).outcome == "deadletter"


# -------------------------------------------------------------------------- helpers


def test_bounds_helpers():
    assert finite(None) == 0.0 and finite(float("nan"), 1.0) == 1.0 and finite(True) == 0.0
    assert finite(5e20, 0.0, 0.0, 1e15) == 1e15 and finite(-3, 0.0, 0.0) == 0.0
    assert time_in_range(0.0) and not time_in_range(-1.0) and not time_in_range(float("inf"))
    assert not time_in_range(4_133_980_800.0) and time_in_range(4_133_980_799.0)


# ------------------------------------------------------------------ internal: ticks


def test_parse_tick_valid():
    assert parse_tick(b'{"now": 1710000000.5}') == Tick(now=1710000000.5)
    t = parse_tick(b'{"advance_to": 1710000000, "after": {"events.orders": 12, "events.feedback": 0}}')
    assert isinstance(t, Tick) and t.is_advance and t.advance_to == 1710000000.0
    assert dict(t.after) == {"events.orders": 12, "events.feedback": 0}
    assert parse_tick(b'{"advance_to": 1710000000}') == Tick(advance_to=1710000000.0)


@pytest.mark.parametrize("raw,code", [
    (None, "not_json"),
    (b"", "not_json"),
    (b"\xff\xfe", "not_utf8"),
    (b"not json", "not_json"),
    (b"[1710000000]", "not_an_object"),
    (b"{}", "missing_field"),
    (b'{"now": NaN}', "not_json"),
    (b'{"now": Infinity}', "not_json"),
    (b'{"now": 1e309}', "out_of_range"),
    (b'{"now": 1e308}', "out_of_range"),
    (b'{"now": -1}', "out_of_range"),
    (b'{"now": 253402300799}', "out_of_range"),  # 9999-12-31
    (b'{"now": "1710000000"}', "wrong_type"),
    (b'{"now": true}', "wrong_type"),
    (b'{"now": null}', "wrong_type"),
    (b'{"now": 1710000000, "extra": 1}', "unknown_field"),
    (b'{"advance_to": 1710000000, "now": 1710000000}', "unknown_field"),
    (b'{"advance_to": 1710000000, "after": []}', "wrong_type"),
    (b'{"advance_to": 1710000000, "after": {"t": -1}}', "out_of_range"),
    (b'{"advance_to": 1710000000, "after": {"t": 1.5}}', "wrong_type"),
    (b'{"advance_to": 1710000000, "after": {"t": "3"}}', "wrong_type"),
    (b'{"advance_to": 1710000000, "after": {"bad topic": 3}}', "invalid_format"),
    (b'{"advance_to": 9e18}', "out_of_range"),
    (b'{"mystery": 1}', "unknown_field"),
])
def test_parse_tick_rejects(raw, code):
    got = parse_tick(raw)
    assert isinstance(got, Problem) and got.code == code, got


# ---------------------------------------------------------------- internal: control


def test_parse_control_valid():
    assert parse_control(b'{"control": "advance", "to": 1710000000, "from": 2, "of": 4}') == \
        Control("advance", 1710000000.0, 2, 4)
    assert parse_control(b'{"control": "advance", "to": 1710000000}') == Control("advance", 1710000000.0, 0, 1)
    assert parse_control(b'{"control": "tick", "now": 1710000000.25}') == Control("tick", 1710000000.25)
    assert parse_control(b'{"control": "clock", "time": 1710000000.5, "from": 3, "of": 4}') == \
        Control("clock", 1710000000.5, 3, 4)


@pytest.mark.parametrize("raw,code", [
    (b'{"control": "advance", "to": 1e308, "from": 0, "of": 1}', "out_of_range"),
    (b'{"control": "advance", "to": 1e999, "from": 0, "of": 1}', "out_of_range"),
    (b'{"control": "advance", "to": NaN}', "not_json"),
    (b'{"control": "advance", "to": "soon"}', "wrong_type"),
    (b'{"control": "advance", "to": 1710000000, "from": 4, "of": 4}', "out_of_range"),
    (b'{"control": "advance", "to": 1710000000, "from": -1, "of": 4}', "out_of_range"),
    (b'{"control": "advance", "to": 1710000000, "from": 0, "of": 0}', "out_of_range"),
    (b'{"control": "advance", "to": 1710000000, "from": 0, "of": 1e9}', "wrong_type"),
    (b'{"control": "advance", "from": 0, "of": 1}', "missing_field"),
    (b'{"control": "advance", "to": 1710000000, "now": 1}', "unknown_field"),
    (b'{"control": "tick", "now": 253402300799}', "out_of_range"),
    (b'{"control": "tick"}', "missing_field"),
    (b'{"control": "clock", "time": 1710000000, "from": 4, "of": 4}', "out_of_range"),
    (b'{"control": "clock", "time": 1710000000, "of": 4}', "missing_field"),
    (b'{"control": "clock", "time": 1e308, "from": 0, "of": 4}', "out_of_range"),
    (b'{"control": "rewind", "to": 1}', "invalid_value"),
    (b'{"control": 1}', "wrong_type"),
    (b'{"dimension": "all"}', "missing_field"),
    (b"[]", "not_an_object"),
])
def test_parse_control_rejects(raw, code):
    got = parse_control(raw)
    assert isinstance(got, Problem) and got.code == code, got


# ---------------------------------------------------------------- internal: partials


def _partial() -> dict:
    from pipeline.aggregate.partials import PartialsBuilder
    from pipeline.aggregate.windows import parse_windows

    b = PartialsBuilder(parse_windows("1h=3600,1d=86400"))
    b.add({"event_id": "e1", "occurred_at": "2024-03-19T01:05:00Z", "kind": "feedback",
           "segment": {"value_tier": "key"}, "event": {},
           "classification": {"sentiment": {"label": "negative"},
                              "pain_points": [{"id": "delivery", "confidence": 0.9}]}})
    doc = b.partials()["tier=key"]
    doc.update(src=1, upto={"events.orders": -1, "events.feedback": 7})
    return doc


def test_parse_partial_accepts_what_stage_1_writes():
    doc = _partial()
    got = parse_partial(orjson.dumps(doc))
    assert isinstance(got, Partial) and got.doc == doc and got.src == 1 and got.dimension == "tier"
    assert isinstance(parse_stage2(orjson.dumps(doc)), Partial)
    assert isinstance(parse_stage2(b'{"control": "tick", "now": 1710000000}'), Control)


def _mutated(path: list, value) -> bytes:
    doc = _partial()
    node = doc
    for k in path[:-1]:
        node = node[k] if not k == "*" else next(iter(node.values()))
    if path[-1] is None:
        del node[next(iter(node))]
    else:
        node[path[-1]] = value
    return orjson.dumps(doc)


@pytest.mark.parametrize("path,value,code", [
    (["max_event_time"], 1e308, "out_of_range"),
    (["max_event_time"], 253402300799, "out_of_range"),
    (["max_event_time"], None, "wrong_type"),
    (["dimension"], "Tier=x", "invalid_format"),
    (["value"], "v" * 65, "out_of_range"),
    (["value"], 3, "wrong_type"),
    (["src"], -1, "out_of_range"),
    (["upto"], {"events.orders": -2}, "out_of_range"),
    (["windows"], [], "wrong_type"),
    (["windows", "*", "events"], -1, "out_of_range"),
    (["windows", "*", "events"], 1e308, "wrong_type"),
    (["windows", "*", "size"], 0, "out_of_range"),
    (["windows", "*", "start"], 1, "invalid_value"),
    (["windows", "*", "surprise"], 1, "unknown_field"),
    (["windows", "*", "pain"], {"delivery": 1e12}, "wrong_type"),
    (["windows", "*", "evidence"], {"delivery": ["a\x00b"]}, "invalid_format"),
    (["windows", "*", "evidence"], {"delivery": ["e"] * 6}, "out_of_range"),
    (["extra"], 1, "unknown_field"),
])
def test_parse_partial_rejects(path, value, code):
    got = parse_partial(_mutated(path, value))
    assert isinstance(got, Problem) and got.code == code, got


def test_parse_partial_rejects_bad_window_key():
    doc = _partial()
    doc["windows"] = {"1h": next(iter(doc["windows"].values()))}
    got = parse_partial(orjson.dumps(doc))
    assert isinstance(got, Problem) and got.code == "invalid_format"
