"""Korean texts analysed ahead on Kiwi's worker threads (issue 17): the same morphemes, signals and
classifications as one text at a time, whatever the order the texts are then asked for."""

from __future__ import annotations

import csv
import dataclasses
import time
import unicodedata
from pathlib import Path

import orjson
import pytest

from pipeline.classify import classifier, korean
from pipeline.classify.classifier import classify
from pipeline.classify.taxonomy import default_taxonomy
from pipeline.config import load_settings
from pipeline.ingest.normalise import normalise
from pipeline.process import Processor

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "korean_smartstore_reviews" / "reviews_dev.csv"
needs_ko = pytest.mark.skipif(not DATA.exists(), reason="shared data missing")


def _reviews(n: int) -> list[str]:
    with DATA.open(encoding="utf-8") as f:
        return [row["review"] for row in csv.DictReader(f)][:n]


def _morphs(tokens) -> list[tuple]:
    return [(t.form, t.tag, t.start, t.len) for t in tokens]


def _ready(texts: list[str], deadline: float = 30.0) -> None:
    """Wait (polling, with a deadline) until the collector holds every one of ``texts``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with korean._ahead.lock:
            if all(t in korean._ahead.ready for t in texts):
                return
        time.sleep(0.01)
    raise AssertionError("prefetched texts not ready in time")


@needs_ko
def test_morphemes_taken_ahead_equal_one_text_at_a_time():
    texts = _reviews(80)
    kiwi = korean.get_kiwi()
    alone = [_morphs(kiwi.tokenize(t)) for t in texts]
    korean.prefetch(texts)
    _ready(texts)
    ahead = {i: korean._ahead.take(texts[i]) for i in reversed(range(len(texts)))}  # any order
    assert [_morphs(ahead[i]) for i in range(len(texts))] == alone
    assert korean._ahead.take(texts[0]) is None  # taken once; the next analysis is its own


@needs_ko
def test_take_never_waits_and_a_new_batch_drops_the_last():
    texts = _reviews(30)
    korean.prefetch(texts[:20])
    korean._ahead.take(texts[19])  # ready or not: answers at once (None when not ready)
    _ready(texts[:3])
    assert korean._ahead.take(texts[1]) is not None
    korean.prefetch(texts[20:])
    assert korean._ahead.take(texts[2]) is None  # dropped with its batch
    _ready(texts[25:26])
    assert korean._ahead.take(texts[25]) is not None
    assert korean._ahead.take("배송이 늦었어요") is None  # never submitted
    assert all(t not in korean._ahead.ready for t in texts[:20])  # the old batch is never kept


@needs_ko
def test_classifications_are_the_same_with_and_without_prefetch():
    texts = _reviews(60) + ["배송은 빨랐는데 The box was damaged 포장이 엉망", "좋아요 " * 5]
    fresh = dataclasses.replace(default_taxonomy(), version="prefetch-off")
    fresh._compiled = {}
    alone = [classify(t, taxonomy=fresh) for t in texts]
    tax = dataclasses.replace(default_taxonomy(), version="prefetch-on")
    tax._compiled = {}
    classifier.prefetch([(t, None) for t in texts], tax)
    ahead = [classify(t, taxonomy=tax) for t in texts]
    assert [(c.language, c.sentiment, c.pain_points) for c in ahead] == \
        [(c.language, c.sentiment, c.pain_points) for c in alone]


def test_the_processor_submits_the_text_normalise_gives_the_classifier(monkeypatch):
    proc = Processor(load_settings({}))
    topics = proc.topics
    event = {"event_id": "e1", "customer_id": "c1", "occurred_at": "2026-01-02T03:04:05Z",
             "text": "  배송이 \u1100\u1161 늦었어요  ", "language": "KO", "score": 2, "scale": {"min": 1, "max": 5}}
    wrapped = {"kind": "complaint", "source": {"topic": topics.complaints, "partition": 0, "offset": 0},
               "event": event}
    seen = []
    monkeypatch.setattr("pipeline.process.prefetch_texts", lambda texts, tax: seen.extend(texts))
    proc.prefetch([(topics.feedback, orjson.dumps(event)), (topics.rekeyed, orjson.dumps(wrapped)),
                   (topics.orders, orjson.dumps(event)),  # an order is never classified from text
                   (topics.feedback, orjson.dumps({**event, "text": "late delivery"})),  # no Hangul
                   (topics.feedback, b"{not json \xea\xb0\x80")])
    ev = normalise("feedback", event)
    assert ev.text == unicodedata.normalize("NFC", event["text"]).strip()
    assert seen == [(ev.text, ev.language), (ev.text, ev.language)]
