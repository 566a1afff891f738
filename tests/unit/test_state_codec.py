"""The table encoding (pipeline/codec.py): versioned, compact, reads the old plain-JSON form."""

from __future__ import annotations

import zlib

import orjson
import pytest
from faust.serializers import codecs

from pipeline import codec

STATE = {
    "seg": {"orders": 3, "spend": 120.5, "recent_ids": [f"sim-7-6ae9316a-{i:08d}" for i in range(30)]},
    "cm": {"commitments": {f"o{i}": {"kind": "delivery", "due_at": 1.7e9 + i, "status": "open"} for i in range(10)}},
    "churn": {"last_event_at": 1_700_000_000.0, "pain_points": {"delivery_delay": 2}},
    "ca": None,
}


def test_round_trip_and_smaller_than_json():
    data = codec.encode_state(STATE)
    assert data[:1] == codec.STATE_V2
    assert codec.decode_state(data) == STATE
    assert len(data) < len(orjson.dumps(STATE)) / 2


def test_the_previous_zlib_form_is_read_as_it_is():
    """Version 1 (zlib), written before version 2: an existing changelog is read without a step."""
    data = codec.STATE_V1 + zlib.compress(orjson.dumps(STATE), 1)
    assert codec.decode_state(data) == STATE


def test_the_old_plain_json_form_is_read_as_it_is():
    """Migration path: an existing changelog (version 0, plain JSON) is read without a step."""
    for value in (STATE, {}, [], "text", 3, None):
        assert codec.decode_state(orjson.dumps(value)) == value
    assert codec.decode_state(b'  {"a": 1}') == {"a": 1}  # JSON may start with whitespace


def test_an_unknown_version_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="unknown encoding"):
        codec.decode_state(b"\x03" + b"anything")


def test_the_faust_codec_is_registered_and_used_both_ways():
    codec.register()
    c = codecs.get_codec("state")
    data = c.dumps(STATE)
    assert data[:1] == codec.STATE_V2 and c.loads(data) == STATE and c.loads(orjson.dumps(STATE)) == STATE


def test_non_string_keys_still_become_strings():
    """The fast path (no OPT_NON_STR_KEYS) falls back for a value with such keys: same bytes as before."""
    value = {1: {"a": 2}, "b": [{3: 4}]}
    assert codec.dumps(value) == orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    assert codec.decode_state(codec.encode_state(value)) == {"1": {"a": 2}, "b": [{"3": 4}]}
    assert codec.dumps(STATE) == orjson.dumps(STATE, option=orjson.OPT_NON_STR_KEYS)
