"""``classify()``: text (+ optional numeric score) -> language, sentiment, pain points.

Long texts are analysed up to ``MAX_ANALYSED_CHARS`` characters (cut at a
whitespace near the limit): a 100 KB paste returns in milliseconds, and
evidence offsets still index the original text (the analysed part is a prefix).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Iterable

from . import english, korean
from .language import (
    HANGUL,
    UNDETERMINED,
    ScriptProfile,
    detect_language,
    languages_present,
    latin_language_from_tokens,
    script_profile,
)
from .learned import LABELS, Example, ModelLookup, SentimentModel, lexicon_features
from .painlearn import PainExample
from .model import Classification, PainPoint, Sentiment
from .scoring import Aggregate, aggregate, evidence_items, noisy_or, strength_to_confidence
from .sentiment import combine, label_for, satisfaction_gap, text_sentiment
from .taxonomy import Taxonomy, default_taxonomy

KOREAN_FOLLOWING_PENALTY = 0.5  # Korean predicates follow their subject: prefer the aspect before
MAX_ANALYSED_CHARS = 20_000     # analysis cap for very long texts (documented in docs/classification.md)
# Lone surrogates cannot come from JSON input (orjson refuses them) but can from library callers;
# Kiwi fails on them.  Replaced one for one by U+FFFD, so offsets are unchanged.
_SURROGATES = re.compile("[\ud800-\udfff]")


def analysed_part(text: str, limit: int = MAX_ANALYSED_CHARS) -> str:
    """``text`` itself, or its first ``limit`` characters cut at a whitespace."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit - 200, limit)
    return text[: cut if cut > 0 else limit]


def analyse_text(
    text: str,
    lang: str,
    taxonomy: Taxonomy,
    tokens: tuple[str, list[str]] | None = None,
    profile: ScriptProfile | None = None,
) -> Aggregate:
    """Run the analysers for ``lang`` and any second script in ``text``; merge the scores.

    ``tokens``: :func:`english.tokenize` of ``text`` when the caller has it (ASCII fast path).
    """
    if not text or lang == UNDETERMINED:
        return Aggregate()
    if tokens is not None or text.isascii():
        codes = [lang]
    else:
        codes = languages_present(text, lang, profile)
    total: Aggregate | None = None
    for code in codes:
        if taxonomy.lexicon(code) is None:
            continue
        if code == "ko":
            contrast: set[int] = set()
            sigs = korean.analyse(text, taxonomy, code, contrast=contrast)
            agg = aggregate(sigs, following_penalty=KOREAN_FOLLOWING_PENALTY, contrast_before=contrast)
        else:
            agg = english.analyse(text, taxonomy, code, tokens=tokens if code == lang else None)
        if total is None:
            total = agg
        else:
            total.merge(agg)
    return total if total is not None else Aggregate()


def _without_surrogates(text: str) -> str:
    """Lone surrogates replaced one for one by U+FFFD (Kiwi fails on them; offsets unchanged)."""
    if not text.isascii() and _SURROGATES.search(text):
        return _SURROGATES.sub("\ufffd", text)
    return text


def _analyse(work: str, language: str | None, tax: Taxonomy) -> tuple[str, tuple[str, list[str]] | None, Aggregate]:
    """(language, English tokens when computed, aggregate) of the analysed part of a text."""
    tokens = None
    profile = None
    if language != "ko" and work.isascii():
        tokens = english.tokenize(work)
        lang = language or latin_language_from_tokens(tokens[1])
    else:
        profile = script_profile(work) if work else None  # one character pass for both uses
        lang = language or detect_language(work, profile)
    agg = analyse_text(work, lang, tax, tokens, profile)
    if lang == UNDETERMINED and work and not work.isascii():
        agg = _symbols_only(work, tax)
    return lang, tokens, agg


ANALYSIS_CACHE_TEXTS = 2048
"""Texts whose analysis is kept per taxonomy (least recently used first out): the same text sent
again (a re-sent review, a templated complaint, a replay) skips tokenising (Kiwi: ~2 ms a Korean
text) and matching.  The analysis is a pure function of the text, the language hint and the taxonomy."""


class _Recent:
    """A small thread-safe LRU map."""

    def __init__(self, size: int) -> None:
        self.size, self.items = size, OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: object) -> object | None:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: object, value: object) -> None:
        with self.lock:
            self.items[key] = value
            if len(self.items) > self.size:
                self.items.popitem(last=False)


def _analyse_cached(work: str, language: str | None,
                    tax: Taxonomy) -> tuple[str, tuple[str, list[str]] | None, Aggregate]:
    """:func:`_analyse`, remembered per taxonomy for the last :data:`ANALYSIS_CACHE_TEXTS` texts.
    The result is shared: callers read it and never change it."""
    cache: _Recent = tax.compiled("classify:recent-analyses", lambda _t: _Recent(ANALYSIS_CACHE_TEXTS))
    key = (work, language)
    hit = cache.get(key)
    if hit is None:
        hit = _analyse(work, language, tax)
        cache.put(key, hit)
    return hit  # type: ignore[return-value]


def _symbols_only(text: str, taxonomy: Taxonomy) -> Aggregate:
    """A text without letters ("😍", "👎👎"): sentiment from the emoji patterns of the first
    Latin-script lexicon; pain points need words, so none."""
    for code in ("en", *taxonomy.languages):
        if code != "ko" and taxonomy.lexicon(code) is not None:
            agg = english.analyse(text, taxonomy, code)
            agg.pains.clear()
            agg.unattributed.clear()
            return agg
    return Aggregate()


def pain_points_from(agg: Aggregate, text: str, taxonomy: Taxonomy) -> list[PainPoint]:
    if not agg.pains and not agg.unattributed:
        return []
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
    sentiment_model: ModelLookup | None = None,
) -> Classification:
    """Classify one piece of feedback.

    ``language`` skips detection. ``score`` is a numeric rating on ``scale``
    (min, max) — stars 1-5 (the default scale), CSAT 1-5, NPS 0-10 — blended
    with the text's sentiment. With ``expectation_score`` (same scale) the
    satisfaction gap (score - expectation) / (max - min) is reported.
    ``sentiment_model`` (:mod:`.learned`): one model, or a lookup of one model per
    language (:class:`.selftrain.ModelRegistry`); for texts in a language it has a model
    for, the text sentiment comes from that model (which sees the lexicon's view as
    features) and ``sentiment.source`` names it (``model:<version>``), else ``lexicon``.
    """
    tax = taxonomy or default_taxonomy()
    text = _without_surrogates(text if isinstance(text, str) else "")
    work = analysed_part(text)
    lang, tokens, agg = _analyse_cached(work, language, tax)
    pains = pain_points_from(agg, text, tax)
    text_score = text_sentiment(agg.positive, agg.negative)
    pain_model = sentiment_model.pain_model_for(lang) if sentiment_model is not None and work else None
    if pain_model is not None:  # operator-labelled pain points (issue 20, scope 2): .painlearn
        pains = pain_model.decide(_tokens(tokens, work), pains)
    model = sentiment_model.for_language(lang) if sentiment_model is not None and work else None
    if model is not None:
        sentiment = _learned_sentiment(model, _tokens(tokens, work), agg, text_score, score, scale)
    else:
        sentiment = combine(text_score, agg.positive + agg.negative, score, scale)
    gap = satisfaction_gap(score, expectation_score, scale) if expectation_score is not None else None
    return Classification(
        language=lang,
        sentiment=sentiment,
        satisfaction_gap=gap,
        pain_points=pains,
        taxonomy_version=tax.version,
    )


def _tokens(tokens: tuple[str, list[str]] | None, work: str) -> list[str]:
    """The word tokens the learned models see: Kiwi's for Korean, else the English tokenizer's."""
    return tokens[1] if tokens is not None else english.tokenize(work)[1]


def _lexicon_view(agg: Aggregate, text_score: float | None) -> list[tuple[str, float]]:
    lex = text_score if text_score is not None else 0.0
    return lexicon_features(lex, label_for(lex), agg.positive, agg.negative)


def _learned_sentiment(model: SentimentModel, tokens: list[str], agg: Aggregate, text_score: float | None,
                       score: float | None, scale: tuple[float, float] | None) -> Sentiment:
    label, value = model.predict(tokens, _lexicon_view(agg, text_score))
    if score is None:
        return Sentiment(label=label, score=value, source=model.source)
    blended = combine(value, 1.0, score, scale)  # a numeric score is blended in as for the lexicon
    return Sentiment(blended.label, blended.score, model.source)


def sentiment_example(text: str, label: str, *, language: str | None = None,
                      taxonomy: Taxonomy | None = None) -> Example:
    """A training example for :func:`.learned.train`: the text's tokens and the lexicon's view."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}; got {label!r}")
    tax = taxonomy or default_taxonomy()
    work = analysed_part(_without_surrogates(text))
    lang, tokens, agg = _analyse(work, language, tax)  # exactly what classify() sees
    view = _lexicon_view(agg, text_sentiment(agg.positive, agg.negative))
    return Example(tuple(_tokens(tokens, work)), tuple(view), LABELS.index(label), lang)


def pain_example(text: str, categories: Iterable[str], *, language: str | None = None,
                 taxonomy: Taxonomy | None = None) -> PainExample:
    """A training example for :func:`.painlearn.pain_candidate`: the tokens and the rules' findings."""
    tax = taxonomy or default_taxonomy()
    work = analysed_part(_without_surrogates(text))
    lang, tokens, agg = _analyse(work, language, tax)
    found = tuple((p.id, p.confidence) for p in pain_points_from(agg, text, tax))
    return PainExample(tuple(_tokens(tokens, work)), found, frozenset(categories), lang)


__all__ = ["MAX_ANALYSED_CHARS", "analyse_text", "analysed_part", "classify", "pain_example", "pain_points_from",
           "sentiment_example"]


def prefetch(texts: Iterable[tuple[str | None, str | None]], taxonomy: Taxonomy | None = None) -> None:
    """Start the Korean analysis of the texts :func:`classify` will soon be given (``(text,
    language)`` pairs as it gets them) on Kiwi's worker threads (:func:`.korean.prefetch`).

    Only a speed-up, never a change of result: a text with Hangul whose analysis is not cached
    yet is submitted as :func:`.korean.analyse` will see it; one that turns out not to be analysed
    as Korean, or is never classified, costs Kiwi's threads only."""
    tax = taxonomy or default_taxonomy()
    if tax.lexicon("ko") is None:
        return
    cache: _Recent = tax.compiled("classify:recent-analyses", lambda _t: _Recent(ANALYSIS_CACHE_TEXTS))
    works = []
    for text, language in texts:
        if not isinstance(text, str) or text.isascii() or not HANGUL.search(text):
            continue
        work = analysed_part(_without_surrogates(text))
        if (work, language) not in cache.items:
            works.append(work)
    korean.prefetch(works)
