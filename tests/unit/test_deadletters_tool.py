"""The dead-letter tool's pure parts (pipeline/deadletters.py)."""

from __future__ import annotations

import base64

import orjson
import pytest

from pipeline.deadletters import DeadLetter, load_edits, reasons_table, rows_table, select


def letter(i: int, topic: str, *codes: str) -> DeadLetter:
    doc = {"dead_letter_id": f"{topic}:0:{i}", "source": {"topic": topic, "key_b64": base64.b64encode(b"k").decode()},
           "errors": [{"code": c} for c in codes], "original_b64": base64.b64encode(b'{"x": 1}').decode(),
           "received_at": "2026-03-02T09:00:00Z"}
    return DeadLetter.of(doc)


LETTERS = [letter(0, "events.orders", "missing_field"), letter(1, "events.feedback", "invalid_json"),
           letter(2, "events.orders", "out_of_range", "missing_field"), letter(0, "events.orders", "missing_field")]


def test_of_decodes_key_and_original():
    d = LETTERS[0]
    assert (d.key, d.original, d.reason, d.source_topic) == (b"k", b'{"x": 1}', "missing_field", "events.orders")


def test_select_narrows_and_never_selects_by_default():
    assert select(LETTERS) == []
    assert [d.dead_letter_id for d in select(LETTERS, everything=True)] == [
        "events.orders:0:0", "events.feedback:0:1", "events.orders:0:2"]  # a repeated id once
    assert [d.dead_letter_id for d in select(LETTERS, reason="missing_field")] == ["events.orders:0:0",
                                                                                 "events.orders:0:2"]
    assert [d.dead_letter_id for d in select(LETTERS, reason="missing_field", ids=["events.orders:0:2"])] == [
        "events.orders:0:2"]
    assert [d.dead_letter_id for d in select(LETTERS, source="events.feedback")] == ["events.feedback:0:1"]


def test_tables_count_by_first_reason_and_hide_originals():
    table = reasons_table(select(LETTERS, everything=True), {"events.orders:0:0"})
    assert "missing_field" in table and "out_of_range" in table
    rows = rows_table(select(LETTERS, everything=True), set(), show_original=False)
    assert '"x"' not in rows and rows_table(LETTERS[:1], set(), show_original=True).count('{"x": 1}') == 1


def test_load_edits(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_text(orjson.dumps({"dead_letter_id": "a:0:1", "value": {"y": 2}}).decode() + "\n\n")
    assert load_edits(p) == {"a:0:1": b'{"y":2}'}
    p.write_text('{"value": {}}\n')
    with pytest.raises(ValueError, match="e.jsonl:1"):
        load_edits(p)
