"""Regression floor: the classifier on the real Korean and English review data.

Reads ../shared/data (skipped when absent). Deterministic: same data, same figures.
Floors are the measured figures (``python bench/eval_classifier.py``, taxonomy 2025.11.5)
minus a small margin.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"

KOREAN_MICRO_F1_FLOOR = 0.73       # measured 0.762 (review level; target >= 0.65)
LAPTOPS_MICRO_F1_FLOOR = 0.49      # measured 0.518 (SemEval-2016 laptops sentences; target >= 0.50)
RESTAURANTS_MICRO_F1_FLOOR = 0.44  # measured 0.468
ENGLISH_MICRO_F1_FLOOR = 0.47      # measured 0.498 (laptops + restaurants)
KOREAN_SENTIMENT_BA_FLOOR = 0.72   # measured 0.754 balanced accuracy (target >= 0.75)
LAPTOPS_SENTIMENT_BA_FLOOR = 0.62  # measured 0.641 (target >= 0.75: not reached, see docs/classification.md)
ALEXA_SENTIMENT_BA_FLOOR = 0.57    # measured 0.598 (target >= 0.75: not reached, see docs/classification.md)
ALEXA_SENTIMENT_ACCURACY_FLOOR = 0.75  # measured 0.770 (3 classes, text only)

needs_ko = pytest.mark.skipif(not (DATA / "korean_smartstore_reviews" / "reviews_dev.csv").exists(),
                              reason="shared data missing")
needs_semeval = pytest.mark.skipif(not (DATA / "semeval2016_absa_en").exists(), reason="shared data missing")
needs_alexa = pytest.mark.skipif(not (DATA / "amazon_alexa_reviews").exists(), reason="shared data missing")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("eval_classifier", ROOT / "bench" / "eval_classifier.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    mod.shared_predictor = mod.Predictor()
    return mod


@needs_ko
def test_korean_eval_micro_f1_floor(bench):
    res = bench.korean_eval(DATA, predict=bench.shared_predictor)
    assert res["n"] == 315
    assert res["micro_f1"] >= KOREAN_MICRO_F1_FLOOR, res["micro"]
    # every scored category is found at least sometimes
    assert all(v["tp"] > 0 for v in res["per_category"].values()), res["per_category"]


@needs_semeval
def test_english_eval_micro_f1_floors(bench):
    res = bench.english_eval(DATA, predict=bench.shared_predictor)
    assert res["laptops"]["n"] == 2500 and res["restaurants"]["n"] == 2000
    assert res["laptops"]["micro_f1"] >= LAPTOPS_MICRO_F1_FLOOR, res["laptops"]["micro"]
    assert res["restaurants"]["micro_f1"] >= RESTAURANTS_MICRO_F1_FLOOR, res["restaurants"]["micro"]
    assert res["combined"]["micro_f1"] >= ENGLISH_MICRO_F1_FLOOR, res["combined"]["micro"]


@needs_ko
def test_korean_sentiment_balanced_accuracy_floor(bench):
    res = bench.korean_sentiment_eval(DATA, predict=bench.shared_predictor)
    assert res["n"] == 315
    assert res["balanced_accuracy"] >= KOREAN_SENTIMENT_BA_FLOOR, res["confusion"]


@needs_semeval
def test_laptops_sentiment_balanced_accuracy_floor(bench):
    res = bench.laptop_sentiment_eval(DATA, predict=bench.shared_predictor)
    assert res["n"] > 2000  # sentences with opinions
    assert res["balanced_accuracy"] >= LAPTOPS_SENTIMENT_BA_FLOOR, res["confusion"]


@needs_alexa
def test_alexa_sentiment_floors(bench):
    res = bench.sentiment_eval(DATA, predict=bench.shared_predictor)
    assert res["accuracy"] >= ALEXA_SENTIMENT_ACCURACY_FLOOR, res["confusion"]
    assert res["balanced_accuracy"] >= ALEXA_SENTIMENT_BA_FLOOR, res["confusion"]


@needs_ko
def test_halves_are_reported(bench):
    even = bench.korean_eval(DATA, which="even", predict=bench.shared_predictor)
    odd = bench.korean_eval(DATA, which="odd", predict=bench.shared_predictor)
    assert even["n"] + odd["n"] == 315
