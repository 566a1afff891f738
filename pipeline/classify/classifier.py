"""``classify()``: text (+ optional numeric score) -> language, sentiment, pain points."""

from __future__ import annotations

from . import english, korean
from .language import UNDETERMINED, detect_language, languages_present
from .model import Classification, PainPoint
from .scoring import (
    Aggregate,
    aggregate,
    evidence_items,
    noisy_or,
    sentiment_from_totals,
    strength_to_confidence,
)
from .sentiment import combine, satisfaction_gap
from .taxonomy import Taxonomy, default_taxonomy

KOREAN_FOLLOWING_PENALTY = 0.5  # Korean predicates follow their subject: prefer the aspect before


def analyse_text(text: str, lang: str, taxonomy: Taxonomy) -> Aggregate:
    """Run the analysers for ``lang`` and any second script in ``text``; merge the scores."""
    total = Aggregate()
    if not text or lang == UNDETERMINED:
        return total
    for code in languages_present(text, lang):
        if taxonomy.lexicon(code) is None:
            continue
        if code == "ko":
            sigs = korean.analyse(text, taxonomy, code)
            total.merge(aggregate(sigs, following_penalty=KOREAN_FOLLOWING_PENALTY))
        else:
            sigs = english.analyse(text, taxonomy, code)
            total.merge(aggregate(sigs))
    return total


def pain_points_from(agg: Aggregate, text: str, taxonomy: Taxonomy) -> list[PainPoint]:
    found: dict[str, tuple[float, list[tuple[int, int]]]] = {}
    for cid, items in agg.pains.items():
        conf = noisy_or([strength_to_confidence(s) for s, _ in items])
        found[cid] = (conf, [sp for _, sps in items for sp in sps])
    fb = taxonomy.fallback_category
    if fb and agg.unattributed and (taxonomy.fallback_mode == "always" or not found):
        conf = noisy_or([strength_to_confidence(s) for s, _ in agg.unattributed]) * taxonomy.fallback_factor
        spans = [sp for _, sps in agg.unattributed for sp in sps]
        if fb in found:
            old_conf, old_spans = found[fb]
            conf, spans = noisy_or([old_conf, conf]), old_spans + spans
        found[fb] = (conf, spans)
    out = [
        PainPoint(cid, round(conf, 4), evidence_items(text, spans))
        for cid, (conf, spans) in found.items()
        if conf >= taxonomy.min_confidence
    ]
    out.sort(key=lambda p: (-p.confidence, p.id))
    return out


def classify(
    text: str | None,
    *,
    language: str | None = None,
    score: float | None = None,
    scale: tuple[float, float] | None = None,
    expectation_score: float | None = None,
    taxonomy: Taxonomy | None = None,
) -> Classification:
    """Classify one piece of feedback.

    ``language`` skips detection. ``score`` is a numeric rating on ``scale``
    (min, max) — stars 1-5 (the default scale), CSAT 1-5, NPS 0-10 — blended
    with the text's sentiment. With ``expectation_score`` (same scale) the
    satisfaction gap (score - expectation) / (max - min) is reported.
    """
    tax = taxonomy or default_taxonomy()
    text = text if isinstance(text, str) else ""
    lang = language or detect_language(text)
    agg = analyse_text(text, lang, tax)
    pains = pain_points_from(agg, text, tax)
    weight = agg.positive + agg.negative
    text_score = sentiment_from_totals(agg.positive, agg.negative) if weight > 0 else None
    sentiment = combine(text_score, weight, score, scale)
    gap = satisfaction_gap(score, expectation_score, scale)
    return Classification(
        language=lang,
        sentiment=sentiment,
        satisfaction_gap=gap,
        pain_points=pains,
        taxonomy_version=tax.version,
    )
