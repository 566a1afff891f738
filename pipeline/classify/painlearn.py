"""Pain points learned from the operator's own labels (issue 20, scope 2; optional, off by default).

Where operators label their tickets (a complaint's category in the ticketing system), the same
self-training mechanism as for sentiment (:mod:`.selftrain`) learns which texts carry which
pain point, per language. Pure parts; the trainer (:mod:`pipeline.selftrain.trainer`) and the
workers' model follower are the edge.

Semantics:

* **Label**: an enriched complaint or feedback event whose ``event.attributes[<attribute>]``
  (``PIPELINE_SELF_TRAIN_PAIN_LABEL_ATTRIBUTE``) is a label of the operator's label map
  (``PIPELINE_SELF_TRAIN_PAIN_LABEL_MAP``: label -> taxonomy category id, or ``null`` for "no
  pain point") yields a :class:`PainSample`: the text, the language, the categories. A label
  missing from the map yields no sample (it says nothing the pipeline can use).
* **Model**: per language and per category, a class-balanced binary logistic regression over the
  text's words and word pairs **plus the rule classifier's own finding** (``rule:<category>``,
  its confidence), fitted with :func:`.learned.train` (labels absent / present): it starts from
  the rules and learns the operator's corrections.
* **Gate, per category**: at least ``min_positive`` labelled texts with the category; stratified
  k-fold cross-validation; the category's model is kept only when the F1 of what would be applied
  (the rules' findings plus the model's, below) is at least ``min_gain`` above both the rules' F1
  on the same texts and the F1 of flagging every text (the chance baseline: where the rules are
  poor, a model must still beat guessing). A model with no kept category is not published.
* **Applied**: the model only adds. For each category the published model covers, a probability
  >= 0.5 adds the category when the rules did not find it, with the evidence ``{"text": "learned
  from labelled tickets", "source": "model:<version>"}``, or raises a rule finding's confidence to
  the model's (its evidence spans stay). The rules' findings are never removed: a model fitted to
  one operator's ticket phrasing must not silence the rules on texts unlike its training texts.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import orjson

from ..core.records import json_object
from .learned import Example, SentimentModelError, folds, train
from .model import PainPoint

FORMAT = "feedback-pipeline/pain-point-model"
FORMAT_VERSION = 1
MAX_SAMPLE_CHARS = 2000
LEARNED_EVIDENCE = "learned from labelled tickets"


@dataclass(frozen=True)
class PainSample:
    event_id: str
    language: str
    text: str
    categories: tuple[str, ...]  # taxonomy ids; empty: labelled "no pain point"

    def to_json(self) -> bytes:
        return orjson.dumps({"kind": "pain_points", **asdict(self)})

    @classmethod
    def from_json(cls, raw: bytes) -> "PainSample | None":
        doc = json_object(raw)
        if doc is None or doc.get("kind") != "pain_points":
            return None
        vals = [doc.get(k) for k in ("event_id", "language", "text")]
        cats = doc.get("categories")
        if not all(isinstance(v, str) and v for v in vals) or not isinstance(cats, list) \
                or not all(isinstance(c, str) and c for c in cats):
            return None
        return cls(vals[0], vals[1], vals[2], tuple(sorted(set(cats))))


def pain_sample_from_enriched(doc: Mapping[str, Any], attribute: str,
                              label_map: Mapping[str, str | None]) -> PainSample | None:
    """The labelled sample an enriched complaint or feedback event yields, or ``None``."""
    if doc.get("kind") not in ("complaint", "feedback") or not attribute:
        return None
    ev, cls = doc.get("event"), doc.get("classification")
    if not isinstance(ev, dict) or not isinstance(cls, dict):
        return None
    attrs, text, lang = ev.get("attributes"), ev.get("text"), cls.get("language")
    if not isinstance(attrs, dict) or not isinstance(text, str) or not text.strip():
        return None
    label = attrs.get(attribute)
    if not isinstance(label, str) or label not in label_map or not isinstance(lang, str) or lang == "und":
        return None
    event_id = doc.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        return None
    mapped = label_map[label]
    return PainSample(event_id, lang, text[:MAX_SAMPLE_CHARS], (mapped,) if mapped else ())


@dataclass(frozen=True)
class PainExample:
    """A labelled text as the model sees it: its tokens, the rules' findings, the true categories."""

    tokens: tuple[str, ...]
    found: tuple[tuple[str, float], ...]  # (category, rule confidence)
    categories: frozenset[str]
    language: str

    def binary(self, category: str) -> Example:
        """This text as a present (2) / absent (0) example of ``category``."""
        rules = tuple(("rule:" + c, conf) for c, conf in self.found)
        return Example(self.tokens, rules, 2 if category in self.categories else 0, self.language)


@dataclass
class CategoryModel:
    weights: dict[str, float]  # feature -> log-odds contribution (present vs absent)
    bias: float

    def probability(self, features: set[str], rules: Sequence[tuple[str, float]]) -> float:
        z = self.bias
        w = self.weights
        for f in features:
            z += w.get(f, 0.0)
        for f, x in rules:
            z += w.get(f, 0.0) * x
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


@dataclass
class PainPointModel:
    language: str
    categories: dict[str, CategoryModel]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        v = self.meta.get("version")
        return v if isinstance(v, str) and v else "file"

    @property
    def languages(self) -> frozenset[str]:
        return frozenset({self.language})

    def decide(self, tokens: Sequence[str], found: list[PainPoint]) -> list[PainPoint]:
        """The pain points after the model (module docstring, *Applied*)."""
        from .learned import token_features

        feats = token_features(tokens)
        rules = [("rule:" + p.id, p.confidence) for p in found]
        by_id = {p.id: p for p in found}
        source = "model:" + self.version
        for cat, m in self.categories.items():
            p = m.probability(feats, rules)
            if p < 0.5:
                continue
            rule = by_id.get(cat)
            if rule is not None:
                by_id[cat] = PainPoint(cat, round(max(rule.confidence, p), 4), list(rule.evidence))
            else:
                by_id[cat] = PainPoint(cat, round(p, 4), [{"text": LEARNED_EVIDENCE, "start": -1, "end": -1,
                                                           "source": source}])
        out = list(by_id.values())
        out.sort(key=lambda q: (-q.confidence, q.id))
        return out

    def to_json(self) -> bytes:
        return orjson.dumps({
            "format": FORMAT, "format_version": FORMAT_VERSION, "language": self.language, "meta": self.meta,
            "categories": {c: {"bias": round(m.bias, 6), "weights": {k: round(v, 5) for k, v in sorted(m.weights.items())}}
                           for c, m in sorted(self.categories.items())}})

    @classmethod
    def from_json(cls, raw: bytes | str, where: str = "pain-point model") -> "PainPointModel":
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SentimentModelError(f"{where}: not JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise SentimentModelError(f"{where}: not a pain-point model (format {FORMAT} version {FORMAT_VERSION})")
        cats, lang = doc.get("categories"), doc.get("language")
        if not isinstance(lang, str) or not lang or not isinstance(cats, dict) or not cats:
            raise SentimentModelError(f"{where}: needs a language and at least one category")
        out: dict[str, CategoryModel] = {}
        for c, m in cats.items():
            w = m.get("weights") if isinstance(m, dict) else None
            b = m.get("bias") if isinstance(m, dict) else None
            if not isinstance(w, dict) or not _finite(b) or not all(_finite(v) for v in w.values()):
                raise SentimentModelError(f"{where}: category {c!r} needs a finite bias and finite weights")
            out[c] = CategoryModel({k: float(v) for k, v in w.items()}, float(b))
        meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
        return cls(lang, out, meta)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _binary_model(examples: Sequence[Example], l2: float) -> CategoryModel:
    m = train(list(examples), l2=l2)
    weights = {f: v[2] - v[0] for f, v in m.weights.items() if abs(v[2] - v[0]) >= 1e-4}
    return CategoryModel(weights, m.bias[2] - m.bias[0])


def f1(gold: Sequence[bool], pred: Sequence[bool]) -> float:
    tp = sum(1 for g, p in zip(gold, pred) if g and p)
    fp = sum(1 for g, p in zip(gold, pred) if p and not g)
    fn = sum(1 for g, p in zip(gold, pred) if g and not p)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


@dataclass(frozen=True)
class CategoryVerdict:
    category: str
    positives: int
    model_f1: float
    rules_f1: float
    accepted: bool


def gate_category(examples: Sequence[PainExample], category: str, k: int, min_positive: int,
                  min_gain: float, l2: float) -> CategoryVerdict:
    """Cross-validated F1 of the rules plus the category's model against the rules' F1 on the same texts."""
    from .learned import token_features

    gold = [category in e.categories for e in examples]
    rules = [any(c == category for c, _ in e.found) for e in examples]
    positives = sum(gold)
    rules_f1 = f1(gold, rules)
    if positives < max(min_positive, k) or len(examples) - positives < k:
        return CategoryVerdict(category, positives, 0.0, rules_f1, False)
    binary = [e.binary(category) for e in examples]
    pred = [False] * len(examples)
    for held in folds([b.label for b in binary], k):
        held_set = set(held)
        m = _binary_model([b for i, b in enumerate(binary) if i not in held_set], l2)
        for i in held:
            pred[i] = rules[i] or m.probability(token_features(binary[i].tokens), binary[i].lexicon) >= 0.5
    model_f1 = f1(gold, pred)  # what is applied: the rules' findings plus the model's
    flag_all_f1 = 2 * positives / (len(examples) + positives)  # flagging every text: the chance baseline
    return CategoryVerdict(category, positives, model_f1, rules_f1,
                           model_f1 >= max(rules_f1, flag_all_f1) + min_gain)


def pain_candidate(examples: Sequence[PainExample], language: str, sequence: int, *, k: int = 5,
                   min_positive: int = 20, min_gain: float = 0.02,
                   l2: float = 0.03) -> tuple[list[CategoryVerdict], PainPointModel | None]:
    """Every labelled category's verdict and, when any is accepted, the model of the accepted ones."""
    cats = sorted({c for e in examples for c in e.categories} | {c for e in examples for c, _ in e.found})
    verdicts = [gate_category(examples, c, k, min_positive, min_gain, l2) for c in cats]
    kept = [v.category for v in verdicts if v.accepted]
    if not kept:
        return verdicts, None
    models = {c: _binary_model([e.binary(c) for e in examples], l2) for c in kept}
    counts = Counter(c for e in examples for c in e.categories)
    meta = {"version": f"pain-{language}-{sequence}", "examples": len(examples),
            "gate": [asdict(v) for v in verdicts], "positives": dict(sorted(counts.items()))}
    return verdicts, PainPointModel(language, models, meta)


__all__ = ["CategoryModel", "CategoryVerdict", "LEARNED_EVIDENCE", "PainExample", "PainPointModel", "PainSample",
           "f1", "gate_category", "pain_candidate", "pain_sample_from_enriched"]
