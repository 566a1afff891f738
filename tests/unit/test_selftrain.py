"""Self-trained sentiment, pure parts (pipeline/classify/selftrain.py, issue 20): samples from enriched
events, the sample store, the quality gate, the model registry, and the classifier naming its source.

Real reviews from ../shared/data (evaluation and tests only; models live in memory)."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import orjson
import pytest

from pipeline.classify import classify
from pipeline.classify.classifier import sentiment_example
from pipeline.classify.learned import SentimentModel, stars_to_label, train
from pipeline.classify.selftrain import (
    ModelRegistry,
    SampleStore,
    SelfTrainSettings,
    TrainingSample,
    candidate,
    gate,
    sample_from_enriched,
    version_sequence,
)
from pipeline.selftrain.settings import self_train_settings
from tests.unit.test_learned_sentiment import _alexa_rows

ROOT = Path(__file__).resolve().parents[2]
FEEDBACK = orjson.loads((ROOT / "schemas/examples/enriched_event/feedback_nps_at_risk.json").read_bytes())


def _alexa(limit: int | None = None) -> list[tuple[str, int]]:
    rows = _alexa_rows()
    return rows[:limit] if limit else rows


@pytest.fixture(scope="module")
def alexa_examples():
    return [sentiment_example(t, stars_to_label(s, (1, 5)), language="en") for t, s in _alexa()]


# -- samples --------------------------------------------------------------------------------------

def test_scored_feedback_with_text_is_a_sample_labelled_by_its_place_on_the_scale():
    s = sample_from_enriched(FEEDBACK)
    assert s is not None
    assert (s.event_id, s.language) == (FEEDBACK["event_id"], "en")
    assert s.text == FEEDBACK["event"]["text"]
    scale = FEEDBACK["event"]["scale"]
    assert s.label == stars_to_label(FEEDBACK["event"]["score"], (scale["min"], scale["max"]))
    assert TrainingSample.from_json(s.to_json()) == s


@pytest.mark.parametrize("change", [
    lambda d: d.update(kind="complaint"),
    lambda d: d["event"].pop("text"),
    lambda d: d["event"].update(text="   "),
    lambda d: d["event"].update(score=None),
    lambda d: d["event"].update(score=True),
    lambda d: d["event"].update(score=11),  # outside its 0..10 scale
    lambda d: d["event"].update(scale={"min": 5, "max": 1}),
    lambda d: d["classification"].update(language="und"),
    lambda d: d.update(classification=None),
    lambda d: d.update(event_id=""),
], ids=["complaint", "no_text", "blank_text", "no_score", "bool_score", "score_off_scale", "bad_scale",
        "language_unknown", "not_classified", "no_event_id"])
def test_no_sample_without_text_score_scale_or_language(change):
    doc = copy.deepcopy(FEEDBACK)
    change(doc)
    assert sample_from_enriched(doc) is None


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"event_id": "e"}',
                                 b'{"event_id": "e", "language": "en", "text": "t", "label": "great"}'])
def test_a_bad_samples_topic_value_is_skipped(raw):
    assert TrainingSample.from_json(raw) is None


def test_store_replaces_a_replayed_sample_keeps_the_newest_and_says_what_is_due():
    analysed = []

    def analyse(s):
        analysed.append(s.event_id)
        return sentiment_example(s.text, s.label, language=s.language)

    store = SampleStore(analyse, max_samples=3)
    cfg = SelfTrainSettings(min_samples=3, min_new_samples=2)
    for i in range(4):
        assert store.add(TrainingSample(f"e{i}", "en", f"text {i}", "positive"))
    assert not store.add(TrainingSample("e3", "en", "text 3", "positive"))  # a replay: nothing new
    assert analysed == ["e0", "e1", "e2", "e3"]
    assert store.count("en") == 3 and list(store.languages["en"].samples) == ["e1", "e2", "e3"]
    assert store.due(cfg) == ["en"]
    assert len(store.take("en")) == 3 and store.due(cfg) == []
    store.add(TrainingSample("e1", "en", "text 1", "negative"))  # a corrected label replaces and moves
    assert list(store.languages["en"].samples) == ["e2", "e3", "e1"]
    assert store.due(cfg) == []  # one new sample, two needed


# -- the quality gate -----------------------------------------------------------------------------

def test_gate_accepts_a_model_that_beats_the_lexicon_on_real_reviews(alexa_examples):
    verdict, model = candidate(alexa_examples, "en", 4, SelfTrainSettings())
    assert verdict.accepted, verdict
    assert verdict.model_balanced_accuracy >= verdict.lexicon_balanced_accuracy + 0.02
    assert verdict.samples == len(alexa_examples) and sum(verdict.per_label.values()) == len(alexa_examples)
    assert model is not None and model.version == "en-4" and model.source == "model:en-4"
    assert model.languages == frozenset({"en"}) and model.meta["gate"]["accepted"] is True


def test_gate_keeps_the_lexicon_when_the_model_is_not_better(alexa_examples):
    """Labels shuffled: the texts no longer predict them, so no model can beat the lexicon by the margin."""
    rng = random.Random(7)
    labels = [e.label for e in alexa_examples]
    rng.shuffle(labels)
    shuffled = [type(e)(e.tokens, e.lexicon, lab, e.language) for e, lab in zip(alexa_examples, labels)]
    verdict, model = candidate(shuffled, "en", 1, SelfTrainSettings())
    assert not verdict.accepted and model is None
    assert "not 0.020 above the lexicon" in verdict.reason
    registry = ModelRegistry()
    assert classify("The speaker is great", sentiment_model=registry).sentiment.source == "lexicon"


def test_gate_needs_enough_samples_and_labels(alexa_examples):
    few = gate(alexa_examples[:50], "en", SelfTrainSettings(min_samples=200))
    assert not few.accepted and "fewer than 200" in few.reason
    one_label = [e for e in alexa_examples if e.label == 2][:300]
    verdict = gate(one_label, "en", SelfTrainSettings())
    assert not verdict.accepted and "at least two labels" in verdict.reason


# -- the registry and the classifier ---------------------------------------------------------------

def _model(version: str, language: str = "en") -> SentimentModel:
    ex = [sentiment_example(t, stars_to_label(s, (1, 5)), language="en") for t, s in _alexa(300)]
    m = train(ex, steps=30, meta={"version": version})
    return SentimentModel(m.weights, m.bias, frozenset({language}), m.meta)


def test_registry_keeps_the_newest_version_and_ignores_stale_or_broken_records():
    reg = ModelRegistry()
    v2, v1, v3 = _model("en-2"), _model("en-1"), _model("en-3")
    assert reg.apply(b"en", v2.to_json()) == "en"
    assert reg.apply(b"en", v1.to_json()) is None  # older: a reordered or re-read record
    assert reg.apply(b"en", v2.to_json()) is None  # the same again
    assert reg.apply(b"en", b"{not json") is None and reg.apply(None, v3.to_json()) is None
    assert reg.apply(b"ko", v3.to_json()) is None  # a model not for the key's language
    assert reg.versions() == {"en": "en-2"}
    assert reg.apply(b"en", v3.to_json()) == "en" and reg.versions() == {"en": "en-3"}
    assert reg.for_language("ko") is None
    assert reg.apply(b"en", None) == "en" and reg.for_language("en") is None  # withdrawn: lexicon again


def test_registry_falls_back_to_the_static_model_file():
    static = _model("file-a")
    reg = ModelRegistry(static)
    assert reg.for_language("en") is static
    reg.apply(b"en", _model("en-1").to_json())
    assert reg.for_language("en").version == "en-1"


def test_classifier_names_the_model_it_used():
    reg = ModelRegistry()
    reg.apply(b"en", _model("en-7").to_json())
    en = classify("The sound is muffled and it keeps disconnecting", sentiment_model=reg)
    assert en.sentiment.source == "model:en-7"
    assert en.to_dict()["sentiment"]["source"] == "model:en-7"
    ko = classify("배송이 너무 늦어요", sentiment_model=reg)
    assert ko.sentiment.source == "lexicon"
    blended = classify("The sound is muffled", score=5, sentiment_model=reg)
    assert blended.sentiment.source == "model:en-7"  # the score is blended into the model's text sentiment
    assert classify("", sentiment_model=reg).sentiment.source == "lexicon"


def test_version_sequence():
    assert [version_sequence(v) for v in ("en-3", "pt-br-12", "file", "en-")] == [3, 12, 0, 0]


# -- settings -------------------------------------------------------------------------------------

def test_settings_from_the_environment():
    cfg = self_train_settings({"PIPELINE_SELF_TRAIN_MIN_SAMPLES": "50", "PIPELINE_SELF_TRAIN_MIN_GAIN": "0.05",
                               "PIPELINE_SELF_TRAIN_INTERVAL_SECONDS": "2.5"})
    assert (cfg.min_samples, cfg.min_gain, cfg.interval_seconds) == (50, 0.05, 2.5)
    assert self_train_settings({}) == SelfTrainSettings()
    with pytest.raises(ValueError, match="PIPELINE_SELF_TRAIN_FOLDS"):
        self_train_settings({"PIPELINE_SELF_TRAIN_FOLDS": "1"})
    with pytest.raises(ValueError, match="PIPELINE_SELF_TRAIN_MIN_SAMPLES must be an integer"):
        self_train_settings({"PIPELINE_SELF_TRAIN_MIN_SAMPLES": "many"})


def test_a_training_round_waits_for_the_trainer_to_catch_up():
    from pipeline.selftrain.trainer import BACKLOG_PATIENCE, round_due

    assert not round_due(299, 300, True)
    assert round_due(300, 300, True)
    assert not round_due(300, 300, False)  # still reading a backlog: train once, on all of it
    assert round_due(BACKLOG_PATIENCE * 300, 300, False)  # but a backlog postpones a round only so long


def test_metrics_count_sentiment_sources_and_show_the_applied_versions():
    from prometheus_client import generate_latest

    from pipeline.metrics import Metrics

    m = Metrics()
    m.learned_models({"en": "en-3", "pain:en": "pain-en-2", "xx": "xx-9"})
    text = generate_latest(m.registry).decode()
    assert 'pipeline_learned_model_sequence{kind="sentiment",language="en"} 3.0' in text
    assert 'pipeline_learned_model_sequence{kind="pain_points",language="en"} 2.0' in text
    assert 'language="other"' in text  # an unknown language code is bounded
    m.learned_models({"en": "en-4"})  # a withdrawn model disappears
    text = generate_latest(m.registry).decode()
    assert "pipeline_learned_model_sequence{kind=\"pain_points\"" not in text and 'language="en"} 4.0' in text


def test_status_lists_the_published_models_with_their_gate():
    from pipeline.selftrain.status import render, status_rows

    sentiment = orjson.dumps({"meta": {"version": "en-2", "examples": 1537, "gate": {
        "model_balanced_accuracy": 0.66, "lexicon_balanced_accuracy": 0.61}}})
    pain = orjson.dumps({"meta": {"version": "pain-en-1", "examples": 2891, "gate": [
        {"category": "delivery", "accepted": True, "model_f1": 0.95, "rules_f1": 0.0},
        {"category": "product_quality", "accepted": False, "model_f1": 0.0, "rules_f1": 0.0}]}})
    rows = status_rows([(b"en", b"{old"), (b"en", sentiment), (b"pain:en", pain), (b"ko", None), (None, b"x")])
    assert [(r["language"], r["kind"], r["version"]) for r in rows] == [
        ("en", "sentiment", "en-2"), ("ko", "sentiment", "-"), ("en", "pain_points", "pain-en-1")]
    text = render(rows)
    assert "0.66 (model) against 0.61 (lexicon)" in text and "delivery: F1 0.95 against rules 0.00" in text
    assert "product_quality" not in text and "withdrawn" in text
    assert "no self-trained model" in render([])
