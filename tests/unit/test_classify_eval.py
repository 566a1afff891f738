"""Regression floor: the classifier on the real Korean and English review data.

Reads ../shared/data (skipped when absent). Deterministic: same data, same figures.
Floors are the measured figures (see bench/eval_classifier.py) minus a margin.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"

KOREAN_MICRO_F1_FLOOR = 0.70     # measured 0.752 (taxonomy 2025.11.1)
ENGLISH_MICRO_F1_FLOOR = 0.38    # measured 0.424 (SemEval-2016 laptops + restaurants)
SENTIMENT_ACCURACY_FLOOR = 0.75  # measured 0.801 (Amazon Alexa, 3 classes)


def _bench():
    spec = importlib.util.spec_from_file_location("eval_classifier", ROOT / "bench" / "eval_classifier.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.mark.skipif(not (DATA / "korean_smartstore_reviews" / "reviews_dev.csv").exists(), reason="shared data missing")
def test_korean_eval_micro_f1_floor():
    res = _bench().korean_eval(DATA)
    assert res["n"] == 315
    assert res["micro_f1"] >= KOREAN_MICRO_F1_FLOOR, res["micro"]
    # every scored category is found at least sometimes
    assert all(v["tp"] > 0 for v in res["per_category"].values()), res["per_category"]


@pytest.mark.skipif(not (DATA / "semeval2016_absa_en").exists(), reason="shared data missing")
def test_english_eval_micro_f1_floor():
    res = _bench().english_eval(DATA)
    assert res["combined"]["micro_f1"] >= ENGLISH_MICRO_F1_FLOOR, res["combined"]["micro"]


@pytest.mark.skipif(not (DATA / "amazon_alexa_reviews").exists(), reason="shared data missing")
def test_sentiment_accuracy_floor():
    res = _bench().sentiment_eval(DATA)
    assert res["accuracy"] >= SENTIMENT_ACCURACY_FLOOR, res["confusion"]
