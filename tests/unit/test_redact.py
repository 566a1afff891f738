"""Redaction of personal data in enriched events and alerts (pipeline/outputs/redact.py)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import Settings
from pipeline.ingest.schemas import load_schema
from pipeline.outputs.redact import Redactor, luhn_ok, redact_alert
from pipeline.process import Processor, Record

ROOT = Path(__file__).resolve().parents[2]
R = Redactor()

POSITIVE = [
    ("배송 문의는 010-1234-5678 로 연락 주세요", "010-1234-5678", "phone"),
    ("01012345678로 전화 부탁드립니다", "01012345678", "phone"),
    ("번호010 9876 5432로 주세요", "010 9876 5432", "phone"),
    ("매장 02-123-4567 에서 받았어요", "02-123-4567", "phone"),
    ("지점 031-987-6543", "031-987-6543", "phone"),
    ("call +82 10-1234-5678 after 6pm", "+82 10-1234-5678", "phone"),
    ("reach me at (555) 123-4567", "(555) 123-4567", "phone"),
    ("my number is 555-123-4567.", "555-123-4567", "phone"),
    ("UK: +44 20 7946 0958", "+44 20 7946 0958", "phone"),
    ("me liga no (11) 91234-5678 por favor", "(11) 91234-5678", "phone"),
    ("Please email kim.minsu@naver.com about the refund", "kim.minsu@naver.com", "email"),
    ("환불 건은 minsu_kim+shop@gmail.com으로 보내주세요", "minsu_kim+shop@gmail.com", "email"),
    ("contato: joao.silva@empresa.com.br", "joao.silva@empresa.com.br", "email"),
    ("charged twice on 4111 1111 1111 1111 yesterday", "4111 1111 1111 1111", "card"),
    ("card 5500-0055-5555-5559 was declined", "5500-0055-5555-5559", "card"),
    ("카드번호 4012888888881881로 결제", "4012888888881881", "card"),
    ("amex 3782 822463 10005 refund", "3782 822463 10005", "card"),
]

NEGATIVE = [
    "배송이 2026-11-20 에 도착했어요", "59,000원 결제했는데", "order ORD-2024-000123 is late",
    "2026-11-20T10:00:00+09:00", "ticket 1234 5678 9012 3456 (not a card: Luhn fails)", "3 stars out of 5",
    "version 1.2.3", "100% refunded", "20261120", "sku-12345-67890-1234", "open 12:30-13:30", "R$ 1.234,56",
    "1,234,567.89 KRW", "the box was 30 x 20 x 10 cm", "배송이 너무 늦어요 ㅠㅠ",
]


@pytest.mark.parametrize("text, pii, kind", POSITIVE)
def test_personal_data_is_masked(text, pii, kind):
    out = R.text(text)
    assert pii not in out
    assert len(out) == len(text)
    assert [k for *_, k in R.spans(text)] == [kind]
    start = text.index(pii)
    assert set(out[start:start + len(pii)]) <= {"*", "-", " ", ".", "@", "+", "(", ")", "_"}
    assert out[:start] == text[:start] and out[start + len(pii):] == text[start + len(pii):]


@pytest.mark.parametrize("text", NEGATIVE)
def test_ordinary_text_is_untouched(text):
    assert R.text(text) is text


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112") and not luhn_ok("1234567890123456")


def test_configuration():
    assert Redactor.from_env({}).kinds == {"email", "phone", "card"}
    for off in ("0", "false", "off", "no"):
        assert not Redactor.from_env({"PIPELINE_REDACT": off}).enabled
    only = Redactor.from_env({"PIPELINE_REDACT_KINDS": "email, card"})
    text = "mail a.b@c.com or 010-1234-5678, card 4111 1111 1111 1111"
    assert only.text(text) == "mail *.*@*.*** or 010-1234-5678, card **** **** **** ****"
    assert Redactor.from_env({"PIPELINE_REDACT": "0"}).text(text) == text
    with pytest.raises(ValueError, match="unknown kind"):
        Redactor.from_env({"PIPELINE_REDACT_KINDS": "email,ssn"})


def test_event_free_text_only_ids_kept():
    ev = {"customer_id": "kim@naver.com", "event_id": "e1", "text": "call 010-1234-5678",
          "reason": "sent to a@b.co", "occurred_at": "2026-11-20T10:00:00Z",
          "attributes": {"contact": "010-1111-2222", "agent_id": "agent@corp.com", "nested": ["x@y.org"]}}
    out = R.event(ev)
    assert out["customer_id"] == "kim@naver.com" and out["attributes"]["agent_id"] == "agent@corp.com"
    assert out["text"] == "call ***-****-****" and out["reason"] == "sent to *@*.**"
    assert out["attributes"]["contact"] == "***-****-****" and out["attributes"]["nested"] == ["*@*.***"]
    assert ev["text"] == "call 010-1234-5678"  # the input is not mutated


def _feedback(text: str) -> bytes:
    return orjson.dumps({
        "schema_version": 1, "event_id": "fb-pii-1", "feedback_id": "f-1", "customer_id": "c-pii",
        "source": "review", "score": 1, "scale": {"min": 1, "max": 5}, "occurred_at": "2026-11-20T10:00:00Z",
        "text": text, "attributes": {"callback_number": "010-2222-3333"},
    })


PII_TEXT = ("배송이 너무 늦어요. 환불은 010-1234-5678 로 연락주세요. 카드 4111 1111 1111 1111 결제 취소, "
            "메일 kim.minsu@naver.com. The delivery was late and the agent was rude.")


@pytest.mark.parametrize("redact", [True, False])
def test_enriched_event_is_redacted_but_classified_on_the_original(redact):
    env = {} if redact else {"PIPELINE_REDACT": "0"}
    step = Processor(Settings(), env=env).process(
        Record("events.feedback", 0, 5, b"c-pii", _feedback(PII_TEXT), 1.7e9), lambda _k: None, now=1.7e9)
    assert step.outcome == "enriched"
    doc = orjson.loads(step.outputs[0].value)
    jsonschema_rs.validator_for(load_schema("enriched_event"), validate_formats=True).validate(doc)
    body = step.outputs[0].value.decode()
    pii = ["010-1234-5678", "4111 1111 1111 1111", "kim.minsu@naver.com", "010-2222-3333"]
    if redact:
        assert not any(p in body for p in pii)
        assert len(doc["event"]["text"]) == len(PII_TEXT)
    else:
        assert all(p in body for p in pii)
    c = doc["classification"]
    assert "delivery" in [p["id"] for p in c["pain_points"]]
    for pp in c["pain_points"]:
        for e in pp["evidence"]:
            if e["start"] >= 0:  # offsets still index the (redacted) text
                assert doc["event"]["text"][e["start"]:e["end"]] == e["text"]


def test_classification_is_the_same_with_and_without_redaction():
    def run(env):
        step = Processor(Settings(), env=env).process(
            Record("events.feedback", 0, 5, b"c-pii", _feedback(PII_TEXT), 1.7e9), lambda _k: None, now=1.7e9)
        c = orjson.loads(step.outputs[0].value)["classification"]
        return c["language"], c["sentiment"], [(p["id"], p["confidence"]) for p in c["pain_points"]]

    assert run({}) == run({"PIPELINE_REDACT": "0"})


def test_evidence_overlapping_personal_data_is_masked():
    text = "연락처 010-1234-5678 배송 늦음"
    c = {"pain_points": [{"id": "delivery", "confidence": 0.9, "evidence": [
        {"text": text[4:12], "start": 4, "end": 12}, {"text": "call a@b.co", "start": -1, "end": -1}]}]}
    out = R.classification(c, text)
    assert out["pain_points"][0]["evidence"][0]["text"] == "***-****"
    assert out["pain_points"][0]["evidence"][1]["text"] == "call *@*.**"


def test_alerts_are_redacted_and_still_valid():
    validator = jsonschema_rs.validator_for(load_schema("alert"), validate_formats=True)
    for path in sorted((ROOT / "schemas" / "examples" / "alert").glob("*.json")):
        alert = json.loads(path.read_text())
        alert["reason"] += " (customer wrote from kim@naver.com, 010-1234-5678)"
        alert.setdefault("details", {})["note"] = "card 4111-1111-1111-1111"
        out = redact_alert(alert, R)
        validator.validate(out)
        body = orjson.dumps(out).decode()
        assert "kim@naver.com" not in body and "010-1234-5678" not in body and "4111-1111" not in body
        assert out["alert_id"] == alert["alert_id"] and out["evidence"] == alert["evidence"]
        assert out["subject"] == alert["subject"]
    assert redact_alert(alert, Redactor(frozenset())) is alert


def test_alert_builders_apply_redaction():
    """Every alert builder passes its alert through ``redact_alert``."""
    import inspect

    from pipeline.aggregate import alerts as agg_alerts
    from pipeline.churn import alerts as churn_alerts
    from pipeline.commitments import alerts as cm_alerts

    for fn in (agg_alerts.surge_alert, churn_alerts.evaluate, cm_alerts.alerts_for):
        assert "redact_alert(" in inspect.getsource(fn), fn.__qualname__


# -- properties --------------------------------------------------------------------------------

emails = st.builds(
    lambda local, dom, tld: f"{local}@{dom}.{tld}",
    st.from_regex(r"[a-z0-9][a-z0-9._+]{0,15}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True),
    st.sampled_from(["com", "co.kr", "net", "org", "com.br", "kr"]),
)
korean_phones = st.builds(
    lambda pre, a, b, sep: f"{pre}{sep}{a}{sep}{b}",
    st.sampled_from(["010", "011", "016", "019", "02", "031", "051", "070"]),
    st.from_regex(r"[0-9]{3,4}", fullmatch=True), st.from_regex(r"[0-9]{4}", fullmatch=True),
    st.sampled_from(["-", " ", ".", ""]),
)


def _with_luhn(body: str) -> str:
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError


cards = st.builds(
    lambda body, sep: sep.join(_with_luhn(body)[i:i + 4] for i in range(0, 16, 4)),
    st.from_regex(r"[3-6][0-9]{14}", fullmatch=True), st.sampled_from([" ", "-", ""]),
)
filler = st.text(max_size=60)
PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(text=st.text(max_size=400) | st.lists(st.sampled_from(
    ["010", "-", "1234", " ", "@", ".", "com", "+82", "(", ")", "4111", "a", "배송", "로", "5678", "9"]),
    max_size=60).map("".join))
def test_redaction_never_raises_keeps_length_and_only_masks(text):
    out = R.text(text)
    assert len(out) == len(text)
    for a, b in zip(text, out):
        assert a == b or (a.isalnum() and b == "*")
    assert R.text(out) == out  # idempotent


@PROPS
@given(before=filler, after=filler, pii=emails | korean_phones | cards)
def test_injected_personal_data_never_survives(before, after, pii):
    text = f"{before} {pii} {after}"
    assert pii not in R.text(text)
