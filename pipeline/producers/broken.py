"""Deliberately broken records, one per kind of breakage (demo and tests).

Each :class:`Broken` names the breakage, the input kind whose topic it goes to,
its key and its exact bytes; the pipeline must dead-letter every one with the
bytes unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class Broken:
    label: str
    kind: str  # order | complaint | feedback | customer_profile
    key: bytes | None
    value: bytes


def _order(i: int, **changes: object) -> dict:
    e = {
        "schema_version": 1,
        "event_id": f"bad-order-{i}",
        "order_id": f"o-bad-{i}",
        "customer_id": f"c-bad-{i}",
        "type": "placed",
        "occurred_at": "2026-11-20T10:00:00+09:00",
        "promised_delivery_at": "2026-11-22T23:59:59+09:00",
        "amount": 59000,
        "currency": "KRW",
        "channel": "app",
        "region": "Seoul",
        "items": [{"sku": "sku-1", "category": "kitchen", "qty": 1, "unit_price": 59000}],
    }
    e.update(changes)
    return {k: v for k, v in e.items() if v is not None}


def broken_records(n_each: int = 1, max_bytes: int = 256 * 1024) -> list[Broken]:
    """``n_each`` records of each of 14 breakages (labels are unique per record)."""
    out: list[Broken] = []
    for i in range(n_each):
        key = f"c-bad-{i}".encode()

        def add(label: str, kind: str, value: bytes, k: bytes | None = key) -> None:
            out.append(Broken(f"{label}#{i}", kind, k, value))

        good = orjson.dumps(_order(i))
        add("not_json", "order", b"this is not json {" + str(i).encode())
        add("not_utf8", "complaint", b'{"text": "\xff\xfe\xfa broken ' + str(i).encode() + b'"}')
        add("truncated", "order", good[: len(good) // 2])
        add("not_an_object", "feedback", orjson.dumps([1, 2, i]))
        add("wrong_type", "order", orjson.dumps(_order(i, amount="59000원")))
        add("missing_field", "order", orjson.dumps(_order(i, customer_id=None)))
        add("unknown_enum", "order", orjson.dumps(_order(i, type="teleported")))
        add("oversize", "complaint", b'{"text": "' + b"a" * (max_bytes + 10) + b'"}')
        add("unknown_schema_version", "order", orjson.dumps(_order(i, schema_version=99)))
        add("bad_timestamp", "order", orjson.dumps(_order(i, occurred_at="2026-11-20 10:00")))
        add("unknown_field", "order", orjson.dumps(_order(i, password="hunter2")))
        add("empty", "feedback", b"")
        add("null_value", "feedback", b"null")
        add(
            "score_out_of_scale", "feedback",
            orjson.dumps({
                "schema_version": 1, "event_id": f"bad-fb-{i}", "feedback_id": f"f-bad-{i}",
                "customer_id": f"c-bad-{i}", "source": "review", "score": 7,
                "scale": {"min": 1, "max": 5}, "occurred_at": "2026-11-20T10:00:00Z",
            }),
        )
    return out
