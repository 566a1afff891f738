"""Deliberately broken records, one per kind of breakage (demo and tests).

Each :class:`Broken` names the breakage, the input kind whose topic it goes to,
its key and its exact bytes; the pipeline must dead-letter every one with the
bytes unchanged.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

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


RANDOM_BREAKAGES = (
    "random_bytes", "not_utf8", "not_json", "truncated", "not_an_object", "wrong_type", "missing_field",
    "unknown_enum", "unknown_schema_version", "bad_timestamp", "unknown_field", "score_out_of_scale",
    "oversize", "empty", "null_value", "deep_nesting",
)


def random_invalid_records(n: int, seed: int = 0, max_bytes: int = 256 * 1024) -> Iterator[Broken]:
    """``n`` random records, every one invalid for its topic (for hostile-input runs through Kafka).

    A seeded mix of :data:`RANDOM_BREAKAGES`: random bytes, broken UTF-8, text
    that is not JSON, truncated JSON, JSON that is not an object, schema
    violations of real-looking events, records over ``max_bytes``, empty and
    ``null`` values.  Keys are a customer-like id, random bytes or ``None`` (``b""`` on
    the compacted profile topic, which refuses records without a key).
    Most values carry a per-record tag (``<seed>-<i>``) so they can be traced back.
    """
    rng = random.Random(seed)
    kinds = ("order", "complaint", "feedback", "customer_profile")
    for i in range(n):
        breakage = RANDOM_BREAKAGES[rng.randrange(len(RANDOM_BREAKAGES))]
        kind = kinds[rng.randrange(4)]
        r = rng.random()
        key = f"c-rnd-{rng.randrange(5000)}".encode() if r < 0.6 else (rng.randbytes(rng.randrange(1, 24)) if r < 0.8 else None)
        if key is None and kind == "customer_profile":
            key = b""  # the compacted profile topic refuses records without a key
        tag = f"{seed}-{i}"
        if breakage == "random_bytes":
            value = b"\xff" + rng.randbytes(rng.randrange(0, 200)) + tag.encode()
        elif breakage == "not_utf8":
            value = b'{"text": "' + tag.encode() + bytes([0xC0 | rng.randrange(2), rng.randrange(0x80)]) + b'"}'
        elif breakage == "not_json":
            words = ["hello", "{", "}", "[", ":", "배송", "null", "'x'", "NaN", ",", "\"", "=", "<xml>"]
            value = (" ".join(rng.choice(words) for _ in range(rng.randrange(1, 12))) + " #" + tag + " {").encode()
        elif breakage == "truncated":  # a proper prefix of a JSON object is never valid JSON
            good = orjson.dumps(_order(i, event_id=f"bad-{tag}"))
            value = good[: rng.randrange(1, len(good))]
        elif breakage == "not_an_object":
            value = orjson.dumps(rng.choice([[i, tag], tag, i + 0.5, True, [[{"a": tag}]]]))
        elif breakage == "deep_nesting":
            depth = rng.randrange(50, 900)
            value = b"[" * depth + orjson.dumps(tag) + b"]" * depth
        elif breakage == "oversize":
            value = b'{"text": "' + tag.encode() + b"x" * (max_bytes + rng.randrange(1, 100)) + b'"}'
        elif breakage == "empty":
            value = b""
        elif breakage == "null_value":
            value = rng.choice([b"null", b" null ", b"null\n"])
        elif breakage == "score_out_of_scale":
            kind = "feedback"
            value = orjson.dumps({
                "schema_version": 1, "event_id": f"bad-fb-{tag}", "feedback_id": f"f-{tag}",
                "customer_id": f"c-{tag}", "source": "review", "score": rng.choice([0, 6, 7, -1, 100]),
                "scale": {"min": 1, "max": 5}, "occurred_at": "2026-11-20T10:00:00Z",
            })
        else:
            kind = "order"
            changes: dict = {
                "wrong_type": {"amount": rng.choice(["59000원", [1], {"v": 1}, True])},
                "missing_field": {rng.choice(["customer_id", "event_id", "occurred_at", "type"]): None},
                "unknown_enum": {"type": rng.choice(["teleported", "PLACED", "", "delivered!"])},
                "unknown_schema_version": {"schema_version": rng.choice([0, 2, 99, "1", 1.5, None])},
                "bad_timestamp": {"occurred_at": rng.choice(["2026-11-20 10:00", "yesterday", "2026-13-40T25:00:00Z", ""])},
                "unknown_field": {"password": "hunter2"},
            }[breakage]
            event = _order(i, event_id=f"bad-{tag}")
            event.update(changes)
            value = orjson.dumps({k: v for k, v in event.items() if v is not None})
        yield Broken(f"{breakage}#{tag}", kind, key, value)
