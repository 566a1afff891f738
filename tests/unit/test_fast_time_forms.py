"""The hot paths' own timestamp readers and writers agree with the general ones (issue 17):
``partials.event_time`` with ``parse_timestamp(str(v))``, ``enriched.processing_timestamp`` with
``format_timestamp`` — same value or same exception type, edge cases included."""

from __future__ import annotations

import math
import random

import pytest

from pipeline.aggregate.partials import event_time
from pipeline.core.timeparse import format_timestamp, parse_timestamp
from pipeline.outputs.enriched import processing_timestamp


def _outcome(f, v):
    try:
        return f(v)
    except Exception as exc:  # the exception's type is part of the contract
        return type(exc)


EDGE_TEXTS = [
    "2026-02-29T01:00:00.000Z", "2024-02-29T23:59:59.999Z", "2026-11-06T24:00:00.000Z",
    "2026-11-06T23:60:00.000Z", "2026-11-06T23:59:60.000Z", "2026-11-06 23:59:59.000Z",
    "2026-11-06T23:59:59.000z", "2026-11-06T23:59:59,000Z", "\uff12026-11-06T23:59:59.000Z",
    "2026-11-06T23:59:5\u0669.000Z", "0000-01-01T00:00:00.000Z", "0001-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z", "x" * 24, "2026-11-06T23:59:59.000+00:00", "2026-11-06T23:59:59+0000Z",
    12345, None, 1.5,
]


@pytest.mark.parametrize("value", EDGE_TEXTS)
def test_event_time_edge_cases(value):
    assert _outcome(event_time, value) == _outcome(lambda v: parse_timestamp(str(v)), value)


def test_event_time_on_formatted_times():
    rnd = random.Random(1)
    for i in range(20_000):
        x = rnd.uniform(-3e9, 7e9) if i % 3 else rnd.randrange(-10**9, 4 * 10**9) + rnd.randrange(1000) / 1000
        text = format_timestamp(x)
        assert event_time(text) == parse_timestamp(text), text


EDGE_EPOCHS = [0.0, -0.0, 0.9995, 0.9999995, 0.0000005, 0.0000015, 1_700_000_000.9999995,
               1_700_000_000.0005, 253402300798.9999, 253402300799.0, 1e-7, 123.4565]


@pytest.mark.parametrize("epoch", EDGE_EPOCHS)
def test_processing_timestamp_edge_cases(epoch):
    assert _outcome(processing_timestamp, epoch) == _outcome(format_timestamp.__wrapped__, epoch)


def test_processing_timestamp_on_clock_like_times():
    rnd = random.Random(2)
    for i in range(20_000):
        x = 1.7e9 + rnd.uniform(0, 3e8) if i % 2 else rnd.uniform(0, 4e9)
        if i % 7 == 0:
            x = math.floor(x) + rnd.choice((0.9995, 0.9999995, 0.0005, 0.0004999))
        assert processing_timestamp(x) == format_timestamp.__wrapped__(x), repr(x)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_processing_timestamp_outside_the_fast_range_is_format_timestamp(bad):
    assert _outcome(processing_timestamp, bad) == _outcome(format_timestamp.__wrapped__, bad)
