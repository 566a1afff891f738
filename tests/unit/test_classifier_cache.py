"""Recent analyses are remembered per taxonomy (issue 17): the same text gives the same
classification, computed once; another taxonomy computes its own."""

from __future__ import annotations

import dataclasses

from pipeline.classify import classifier
from pipeline.classify.classifier import classify
from pipeline.classify.taxonomy import default_taxonomy, load_taxonomy

TEXTS = ["배송이 너무 늦었어요. 포장도 엉망이네요", "The delivery was late and support never answered.",
         "A entrega atrasou muito", "😍", ""]


def test_a_repeated_text_is_analysed_once_with_the_same_result(monkeypatch):
    tax = load_taxonomy(None)
    first = [classify(t, taxonomy=tax) for t in TEXTS]
    calls = []
    real = classifier._analyse
    monkeypatch.setattr(classifier, "_analyse", lambda *a: calls.append(a) or real(*a))
    again = [classify(t, taxonomy=tax, score=2.0) for t in TEXTS]  # a score does not change the analysis
    assert calls == []
    assert [c.pain_points for c in again] == [c.pain_points for c in first]
    assert [c.language for c in again] == [c.language for c in first]
    assert classify(TEXTS[1], taxonomy=tax, language="pt") is not None
    assert len(calls) == 1  # another language hint is another analysis


def test_each_taxonomy_has_its_own_recent_analyses():
    base = default_taxonomy()
    other = dataclasses.replace(base, version="other")
    other._compiled = {}  # a distinct taxonomy object with its own compiled state
    a = classify(TEXTS[1], taxonomy=base)
    b = classify(TEXTS[1], taxonomy=other)
    assert a.taxonomy_version != b.taxonomy_version
    assert a.pain_points == b.pain_points


def test_the_cache_is_bounded():
    recent = classifier._Recent(3)
    for k in range(5):
        recent.put(k, k)
    assert list(recent.items) == [2, 3, 4]
    assert recent.get(2) == 2 and list(recent.items) == [3, 4, 2]
