"""Pure-logic feedback classifier (no Kafka): language, sentiment, pain points.

    from pipeline.classify import classify
    result = classify("배송이 너무 늦어요", score=2)
    result.to_dict()
    # {"language": "ko", "sentiment": {"label": "negative", "score": ...},
    #  "satisfaction_gap": None,
    #  "pain_points": [{"id": "delivery", "confidence": ..., "evidence": [...]}],
    #  "taxonomy_version": "..."}

The taxonomy (categories, per-language terms and sentiment lexicons) is data:
``load_taxonomy(path)``; ``None`` loads ``pipeline/taxonomies/default.yaml``.
"""

from .classifier import classify
from .language import detect_language
from .model import Classification, PainPoint, Sentiment
from .sentiment import SCALES, normalize_score, satisfaction_gap
from .structured import structured_pain_points
from .taxonomy import Category, Taxonomy, TaxonomyError, default_taxonomy, load_taxonomy

__all__ = [
    "SCALES",
    "Category",
    "Classification",
    "PainPoint",
    "Sentiment",
    "Taxonomy",
    "TaxonomyError",
    "classify",
    "default_taxonomy",
    "detect_language",
    "load_taxonomy",
    "normalize_score",
    "satisfaction_gap",
    "structured_pain_points",
]
