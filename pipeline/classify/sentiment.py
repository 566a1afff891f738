"""Sentiment label/score, numeric scores (stars, NPS, CSAT) and the satisfaction gap."""

from __future__ import annotations

from .model import Sentiment

POSITIVE_THRESHOLD = 0.3
NEGATIVE_THRESHOLD = -0.3
NUMERIC_WEIGHT = 0.6      # weight of a numeric score when the text also has sentiment words
DEFAULT_SCALE = (1.0, 5.0)  # stars / CSAT when no scale is given

# common scales, for callers: classify(..., scale=SCALES["nps"])
SCALES = {"stars": (1.0, 5.0), "csat": (1.0, 5.0), "nps": (0.0, 10.0)}


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return max(lo, min(hi, x))


def check_scale(scale: tuple[float, float] | None) -> tuple[float, float]:
    lo, hi = scale if scale is not None else DEFAULT_SCALE
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        raise ValueError(f"scale max must be greater than min, got {scale!r}")
    return lo, hi


def normalize_score(score: float, scale: tuple[float, float] | None = None) -> float:
    """Map a score on [min, max] linearly to -1..1 (midpoint -> 0), clipped."""
    lo, hi = check_scale(scale)
    return _clip(2.0 * (float(score) - lo) / (hi - lo) - 1.0)


def satisfaction_gap(
    score: float | None,
    expectation_score: float | None,
    scale: tuple[float, float] | None = None,
) -> float | None:
    """(experience - expectation) / (max - min), clipped to -1..1; None if either is missing."""
    if score is None or expectation_score is None:
        return None
    lo, hi = check_scale(scale)
    return _clip((float(score) - float(expectation_score)) / (hi - lo))


TEXT_SMOOTHING = 1.0  # evidence mass that pulls a thin text score towards 0
MIXED_MIN = 0.5       # a text with at least this much praise AND complaint ...
MIXED_RATIO = 0.3     # ... the weaker side at least this share of the stronger: mixed -> neutral
NEUTRAL_BAND = 0.29   # |score| of a mixed text is kept inside the neutral band


# How these were chosen (issue 3): with the English general lexicon added, the three-class
# decision (TEXT_SMOOTHING, MIXED_MIN, MIXED_RATIO and separate positive / negative thresholds)
# was grid-searched on the even ("tuning") rows of SemEval laptops and Amazon Alexa. The best
# grid points gained at most ~0.03 balanced accuracy on the even rows and lost on the odd
# (held-out) rows (Alexa 0.596 -> 0.587), i.e. they fitted noise (the Alexa neutral class has
# 34 reviews per half), so the values above were kept unchanged; Korean uses them too.


def text_sentiment(positive: float, negative: float) -> float | None:
    """Text sentiment in -1..1 from summed positive / negative evidence; None without any.

    (positive - negative) / (positive + negative + TEXT_SMOOTHING); a *mixed* text
    (clear praise and clear complaint, e.g. "love the sound, but it drops wifi every
    day") is labelled neutral: its score keeps its sign but stays inside the neutral band.
    """
    total = positive + negative
    if total <= 0:
        return None
    score = (positive - negative) / (total + TEXT_SMOOTHING)
    lo, hi = min(positive, negative), max(positive, negative)
    if lo >= MIXED_MIN and lo >= MIXED_RATIO * hi:
        score = max(-NEUTRAL_BAND, min(NEUTRAL_BAND, score))
    return score


def label_for(score: float) -> str:
    if score >= POSITIVE_THRESHOLD:
        return "positive"
    if score <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


def combine(
    text_score: float | None,
    text_weight: float,
    score: float | None = None,
    scale: tuple[float, float] | None = None,
) -> Sentiment:
    """Blend text sentiment with a numeric score.

    ``text_weight`` is how much sentiment evidence the text had (0 = none).
    Without text evidence the numeric score decides alone; with both, the
    numeric score gets ``NUMERIC_WEIGHT`` and the text the rest.
    """
    numeric = normalize_score(score, scale) if score is not None else None
    has_text = text_score is not None and text_weight > 0
    if numeric is None and not has_text:
        value = 0.0
    elif numeric is None:
        value = float(text_score)  # type: ignore[arg-type]
    elif not has_text:
        value = numeric
    else:
        value = NUMERIC_WEIGHT * numeric + (1 - NUMERIC_WEIGHT) * float(text_score)  # type: ignore[arg-type]
    value = _clip(value)
    return Sentiment(label_for(value), value)
