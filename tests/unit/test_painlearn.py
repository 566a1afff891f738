"""Pain points learned from operator labels (pipeline/classify/painlearn.py, issue 20 scope 2).

Labelled texts: the Bitext customer-service utterances in ../shared/data, their intent standing in
for a ticketing system's category (tests only)."""

from __future__ import annotations

import copy
import csv
import random
from pathlib import Path

import orjson
import pytest

from pipeline.classify import classify
from pipeline.classify.classifier import pain_example
from pipeline.classify.model import PainPoint
from pipeline.classify.painlearn import (
    LEARNED_EVIDENCE,
    CategoryModel,
    PainPointModel,
    PainSample,
    f1,
    pain_candidate,
    pain_sample_from_enriched,
)
from pipeline.classify.selftrain import ModelRegistry, SelfTrainSettings
from pipeline.selftrain.settings import label_map, self_train_settings

ROOT = Path(__file__).resolve().parents[2]
BITEXT = ROOT.parent / "shared" / "data" / "bitext_customer_support" / "Bitext_Sample_Customer_Service_Training_Dataset.csv"
COMPLAINT = orjson.loads((ROOT / "schemas/examples/enriched_event/complaint_ko_classified.json").read_bytes())
# a ticketing system's categories -> the taxonomy (None: the ticket names no pain point)
TICKET_MAP = {"delivery_period": "delivery", "track_order": "delivery", "get_refund": "refund_return",
              "track_refund": "refund_return", "payment_issue": "billing_payment", "complaint": "customer_service",
              "place_order": None, "create_account": None, "edit_account": None, "newsletter_subscription": None,
              "recover_password": None, "review": None, "check_payment_methods": None, "delivery_options": None}


def bitext(limit: int = 1500) -> list[tuple[str, str]]:
    if not BITEXT.exists():
        pytest.skip("../shared/data not present")
    with BITEXT.open(encoding="utf-8", newline="") as fh:
        rows = [(r["utterance"].strip(), r["intent"]) for r in csv.DictReader(fh) if r["intent"] in TICKET_MAP]
    random.Random(3).shuffle(rows)
    return rows[:limit]


@pytest.fixture(scope="module")
def examples():
    return [pain_example(t, [TICKET_MAP[i]] if TICKET_MAP[i] else [], language="en") for t, i in bitext()]


def test_a_labelled_complaint_is_a_sample_and_unmapped_labels_are_not():
    doc = copy.deepcopy(COMPLAINT)
    doc["event"]["attributes"] = {"category": "track_order"}
    s = pain_sample_from_enriched(doc, "category", TICKET_MAP)
    assert s is not None and s.categories == ("delivery",) and s.language == doc["classification"]["language"]
    assert PainSample.from_json(s.to_json()) == s
    doc["event"]["attributes"] = {"category": "review"}
    assert pain_sample_from_enriched(doc, "category", TICKET_MAP).categories == ()  # labelled: no pain point
    for attrs in ({"category": "unknown_label"}, {"other": "track_order"}, {"category": 3}):
        doc["event"]["attributes"] = attrs
        assert pain_sample_from_enriched(doc, "category", TICKET_MAP) is None
    doc["event"]["attributes"] = {"category": "track_order"}
    assert pain_sample_from_enriched(doc, "", TICKET_MAP) is None  # off
    doc["kind"] = "order"
    assert pain_sample_from_enriched(doc, "category", TICKET_MAP) is None
    assert PainSample.from_json(b'{"event_id": "e", "language": "en", "text": "t", "label": "positive"}') is None


def test_gate_keeps_categories_where_the_labels_beat_the_rules_and_leaves_the_others(examples):
    verdicts, model = pain_candidate(examples, "en", 2)
    by = {v.category: v for v in verdicts}
    # "where is my order" is a delivery ticket for this operator; the rules see no complaint in it
    assert by["delivery"].accepted and by["delivery"].model_f1 > by["delivery"].rules_f1 + 0.5
    assert by["refund_return"].accepted
    for v in verdicts:
        chance = 2 * v.positives / (len(examples) + v.positives)
        assert v.accepted == (v.positives >= 20 and v.model_f1 >= max(v.rules_f1, chance) + 0.02)
    assert model is not None and model.version == "pain-en-2"
    assert set(model.categories) == {v.category for v in verdicts if v.accepted}
    assert "product_quality" not in model.categories  # never labelled: the rules keep deciding it
    again = PainPointModel.from_json(model.to_json())
    assert again.version == model.version and set(again.categories) == set(model.categories)


def test_no_model_when_no_category_beats_the_rules(examples):
    rng = random.Random(5)
    cats = [e.categories for e in examples]
    rng.shuffle(cats)
    shuffled = [type(e)(e.tokens, e.found, c, e.language) for e, c in zip(examples, cats)]
    verdicts, model = pain_candidate(shuffled, "en", 1)
    assert model is None and not any(v.accepted for v in verdicts)


def test_the_model_only_adds_pain_points():
    model = PainPointModel("en", {
        "delivery": CategoryModel({"w:order": 3.0}, -1.0),   # "order" -> delivery
        "billing_payment": CategoryModel({}, -5.0),          # never
    }, {"version": "pain-en-4"})
    rule_billing = PainPoint("billing_payment", 0.9, [{"text": "charged twice", "start": 2, "end": 15}])
    rule_quality = PainPoint("product_quality", 0.7, [{"text": "broke", "start": 0, "end": 5}])
    out = {p.id: p for p in model.decide(["where", "is", "my", "order"], [rule_billing, rule_quality])}
    assert set(out) == {"delivery", "billing_payment", "product_quality"}  # the model never removes a finding
    assert out["billing_payment"] is rule_billing
    assert out["delivery"].evidence == [{"text": LEARNED_EVIDENCE, "start": -1, "end": -1, "source": "model:pain-en-4"}]
    assert out["product_quality"] is rule_quality
    rule_delivery = PainPoint("delivery", 0.99, [{"text": "late", "start": 0, "end": 4}])
    kept = model.decide(["late", "order"], [rule_delivery])
    assert kept[0].confidence == 0.99 and kept[0].evidence == rule_delivery.evidence  # confirmed: rule evidence


def test_registry_and_classifier_apply_a_published_pain_model(examples):
    _, model = pain_candidate(examples, "en", 1)
    reg = ModelRegistry()
    assert reg.apply(b"pain:en", model.to_json()) == "pain:en"
    assert reg.apply(b"pain:en", model.to_json()) is None  # same version again
    assert reg.apply(b"pain:ko", model.to_json()) is None  # a model for another language than its key
    assert reg.versions() == {"pain:en": "pain-en-1"}
    text = "where is my order? I need to track it"
    plain = classify(text)
    learned = classify(text, sentiment_model=reg)
    assert "delivery" in {p.id for p in learned.pain_points}
    assert classify("배송이 너무 늦어요", sentiment_model=reg).pain_points == classify("배송이 너무 늦어요").pain_points
    assert plain.sentiment == learned.sentiment  # pain points only
    assert reg.apply(b"pain:en", None) == "pain:en" and reg.pain_model_for("en") is None


def test_f1():
    assert f1([True, True, False], [True, False, True]) == 0.5
    assert f1([False], [False]) == 0.0


def test_label_map_settings(tmp_path):
    good = tmp_path / "map.yaml"
    good.write_text("track_order: delivery\nreview: null\n")
    assert label_map(str(good), ("delivery",)) == (("track_order", "delivery"), ("review", None))
    cfg = self_train_settings({"PIPELINE_SELF_TRAIN_PAIN_LABEL_ATTRIBUTE": "category",
                               "PIPELINE_SELF_TRAIN_PAIN_LABEL_MAP": str(good)})
    assert cfg.pain_label_attribute == "category" and dict(cfg.pain_label_map)["review"] is None
    assert self_train_settings({}).pain_label_attribute == "" and SelfTrainSettings().pain_label_map == ()
    with pytest.raises(ValueError, match="not a category of the taxonomy"):
        label_map(str(good), ("billing_payment",))
    bad = tmp_path / "bad.yaml"
    bad.write_text("track_order: [delivery]\n")
    with pytest.raises(ValueError, match="must map to a category id or null"):
        label_map(str(bad))


def test_trainer_refuses_a_map_to_unknown_categories(tmp_path):
    from pipeline.config import load_settings
    from pipeline.selftrain.trainer import Trainer

    cfg = SelfTrainSettings(pain_label_attribute="category", pain_label_map=(("x", "no_such_category"),))
    with pytest.raises(ValueError, match="no_such_category"):
        Trainer(load_settings({}), cfg)
