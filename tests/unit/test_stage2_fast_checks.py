"""The fast checks and builders of stage 2 agree with the full ones they stand in for (issue 17)."""

from __future__ import annotations

import random

import pytest

from pipeline.aggregate import internal, state
from pipeline.aggregate.partials import EVIDENCE_LIMIT, merge_bucket, new_bucket
from pipeline.ingest.internal import EVENT_ID

ODD_IDS = ["e1", "", "a" * 128, "a" * 129, "a" * 127 + "\n", "a" * 128 + "\n", "ab\n", "ab\n\n", "\n", "a\x00b",
           "a\x1fb", "a\x7f", "\x9f", "\xa0ok", "é/~ ", "a\tb", 1, None, b"x"]


def test_event_ids_ok_is_the_per_id_check() -> None:
    rnd = random.Random(3)
    for _ in range(20_000):
        ids = [rnd.choice(ODD_IDS) for _ in range(rnd.randint(1, EVIDENCE_LIMIT))]
        assert internal._event_ids_ok(ids) == all(internal._str_ok(e, EVENT_ID) for e in ids), ids


def _full_ok(bucket: object, start: int) -> bool:
    try:
        internal._bucket(bucket, "/windows/1h:0", "1h", start)
    except internal._Bad:
        return False
    return True


BUCKET = {"size": 3600, "start": 7200, "events": 2, "orders": 1, "feedback": 1, "complaints": 0,
          "negative_feedback": 0, "pain": {"delivery": 1}, "evidence": {"delivery": ["e1", "e2"]}}


@pytest.mark.parametrize("change", [
    {}, {"events": -1}, {"orders": 10**9}, {"orders": 10**9 + 1}, {"feedback": True}, {"complaints": 1.0},
    {"events": 536870912, "orders": 536870913}, {"start": 3600}, {"size": 7}, {"pain": {"bad id": 1}},
    {"pain": {"delivery": -1}}, {"evidence": {"delivery": ["e1", "e1\x00e2"]}}, {"evidence": {"delivery": "e1"}},
    {"evidence": {"delivery": ["e"] * (EVIDENCE_LIMIT + 1)}}, {"extra": 1},
])
def test_bucket_ok_accepts_only_what_the_full_check_accepts(change: dict[str, object]) -> None:
    bucket = {**BUCKET, **change}
    if internal._bucket_ok(bucket, 7200):
        assert _full_ok(bucket, 7200)
    sparse = {k: v for k, v in bucket.items() if k not in ("complaints", "pain")}
    if internal._bucket_ok(sparse, 7200):
        assert _full_ok(sparse, 7200)


def test_new_window_is_an_empty_window_merged() -> None:
    for bucket in (BUCKET, {**BUCKET, "evidence": {"delivery": ["e1", "e1", "e2"], "x": []}, "pain": {}},
                   {"size": 3600, "start": 7200}):
        expected = new_bucket(3600, 7200)
        expected.update(closed=False, late_events=0)
        merge_bucket(expected, bucket, EVIDENCE_LIMIT)
        got = state._new_window(3600, 7200, bucket)
        assert got == expected and list(got) == list(expected)
