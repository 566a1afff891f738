"""Issue 18, scope 5: the history importer's mapping (pipeline/producers/importer.py), without a broker."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.core.timeparse import parse_timestamp
from pipeline.producers.importer import MappingError, import_rows, load_mapping

OLIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "olist_subset_5k"
LIMITS = load_settings({}).time_limits


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return p


def test_olist_orders_through_a_mapping(tmp_path):
    if not OLIST.exists():
        pytest.skip("Olist data missing")
    mapping = write(tmp_path, "olist.yaml", f"""
        sources:
          - file: {OLIST / "olist_orders_dataset.csv"}
            kind: order
            timezone: America/Sao_Paulo
            time_format: "%m/%d/%Y %H:%M"
            fields:
              event_id: {{template: "imp-{{order_id}}-placed"}}
              order_id: order_id
              customer_id: customer_id
              type: {{const: placed}}
              occurred_at: {{time: order_purchase_timestamp}}
              promised_delivery_at: {{time: order_estimated_delivery_date}}
              amount: {{const: 0}}
              currency: {{const: BRL}}
              channel: {{const: web}}
              region: {{const: BR}}
              items: {{const: [{{sku: unknown, category: unknown, qty: 1, unit_price: 0}}]}}
        """)
    got = import_rows(load_mapping(mapping), LIMITS, now=parse_timestamp("2026-12-04T00:00:00Z"))
    print(f"\n{got.rows} Olist order rows: {len(got.events)} events, {len(got.rejects)} rejected")
    assert got.rows == 5000 and len(got.events) + len(got.rejects) == 5000 and len(got.events) > 4900
    times = [parse_timestamp(e["occurred_at"]) for _, e in got.events]
    assert times == sorted(times)
    first = got.events[0][1]
    assert first["occurred_at"].endswith("Z") and first["event_id"].startswith("imp-")
    # Sao Paulo local 10:56 (UTC-3 in October 2017) is 13:56 UTC
    e = next(e for _, e in got.events if e["order_id"] == "e481f51cbdc54678b7cc49136f2d6af7")
    assert e["occurred_at"] == "2017-10-02T13:56:00Z"


def test_bad_rows_are_rejected_with_line_and_reason(tmp_path):
    write(tmp_path, "fb.jsonl", """
        {"id": "f1", "who": "c1", "at": "2026-01-05T10:00:00+01:00", "stars": "5", "text": "great", "src": "R"}
        {"id": "f2", "who": "c2", "at": "not a time", "stars": "4", "src": "R"}
        not json
        {"id": "f3", "who": "c3", "at": "2026-01-04T10:00:00Z", "stars": "many", "src": "R"}
        {"id": "f4", "at": "2026-01-03T10:00:00Z", "stars": "2", "src": "S"}
        """)
    write(tmp_path, "p.csv", """
        cust,since
        c1,2025-02-01
        """)
    mapping = write(tmp_path, "m.yaml", """
        sources:
          - file: fb.jsonl
            kind: feedback
            fields:
              event_id: {template: "fb-{id}"}
              feedback_id: id
              customer_id: who
              occurred_at: {time: at}
              source: {column: src, map: {R: review, S: survey}}
              score: {number: stars}
              scale: {const: {min: 1, max: 5}}
              text: text
              channel: {column: channel, default: web}
          - file: p.csv
            kind: customer_profile
            fields:
              event_id: {template: "prof-{cust}"}
              customer_id: cust
              occurred_at: {time: since}
              attributes.imported: {const: true}
        """)
    got = import_rows(load_mapping(mapping), LIMITS, now=parse_timestamp("2026-12-04T00:00:00Z"))
    assert got.rows == 6
    assert [(k, e["event_id"]) for k, e in got.events] == [("customer_profile", "prof-c1"), ("feedback", "fb-f1")]
    fb = got.events[1][1]
    assert fb["occurred_at"] == "2026-01-05T09:00:00Z" and fb["score"] == 5.0 and fb["source"] == "review"
    assert got.events[0][1]["attributes"] == {"imported": True}
    rejected = {r.line: [p.code for p in r.problems] for r in got.rejects}
    assert rejected[2] == ["invalid_format"] and rejected[3] == ["not_json"] and rejected[4] == ["invalid_format"]
    assert "missing_field" in rejected[5]  # no customer_id: the schema refuses it


@pytest.mark.parametrize("text,message", [
    ("sources: []", "at least one source"),
    ("sources: [{file: x.csv, kind: nope, fields: {a: b}}]", "needs 'file' and 'kind'"),
    ("sources: [{file: x.csv, kind: order}]", "needs 'fields'"),
    ("sources: [{file: x.csv, kind: order, fields: {a: {oops: 1}}}]", "needs one of"),
    ("sources: [{file: x.csv, kind: order, timezone: Mars/Base, fields: {a: b}}]", "unknown timezone"),
])
def test_mapping_errors_say_where(tmp_path, text, message):
    with pytest.raises(MappingError, match=message):
        load_mapping(write(tmp_path, "m.yaml", text))


def test_the_olist_mapping_gives_the_adapters_events():
    """deploy/import/olist.yaml through the generic importer: the same profiles, orders, deliveries,
    cancellations and reviews as pipeline/producers/olist.py (ids, customers, instants, promises,
    types, sellers, scores, reasons, amounts, regions)."""
    if not OLIST.exists():
        pytest.skip("Olist data missing")
    from pipeline.producers.olist import iter_olist_events

    mapping = load_mapping(Path(__file__).resolve().parents[2] / "deploy" / "import" / "olist.yaml", OLIST)
    got = import_rows(mapping, LIMITS, now=parse_timestamp("2026-12-04T00:00:00Z"))

    def key(kind: str, e: dict) -> tuple:
        promise = e.get("promised_delivery_at")
        return (kind, e["event_id"], e["customer_id"], parse_timestamp(e["occurred_at"]),
                promise and parse_timestamp(promise), e.get("type"), e.get("order_id"), e.get("seller_id"),
                e.get("score"), e.get("reason"), e.get("amount"), e.get("region"))

    mine = [key(k, e) for k, e in got.events]
    theirs = [key(k, e) for k, e in iter_olist_events(OLIST)]
    print(f"\nOlist through the mapping: {len(mine)} events, {len(got.rejects)} rejected rows")
    assert not got.rejects and len(mine) == len(theirs) == 24808
    assert set(mine) == set(theirs)
    assert [k[3] for k in mine] == sorted(k[3] for k in mine)  # event-time order
