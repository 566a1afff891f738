"""A sentiment model learned from an operator's own labelled or star-rated feedback (optional).

The lexicon classifier needs no training and works on any product; a model fitted to the
operator's own feedback knows its domain ("keys stick", "10 hours of battery"). This module
trains and applies such a model; it is off unless a model file is given
(``PIPELINE_SENTIMENT_MODEL``, ``classify --sentiment-model``).

Semantics:

* **Model**: multinomial logistic regression over three labels (negative / neutral /
  positive), class-balanced (every label weighs the same in the loss however rare), L2
  regularised, fitted by full-batch Adam on sparse features.
* **Features** of a text: its distinct lower-cased word tokens and adjacent token pairs
  (binary), kept when they occur in at least ``min_count`` training texts, plus the lexicon
  classifier's own view of the text (its score, its label, its praise and complaint mass). So
  the model starts from the lexicon and learns the domain's corrections.
* **Output**: the most probable label; the score is P(positive) - P(negative) in -1..1.
* **Scope**: applied only to texts in the languages it was trained on (``languages``, those of
  at least 10 % of the training texts); other texts keep the lexicon's sentiment. Pain points
  never change: the model is sentiment only.
* **File**: JSON (never pickle), validated on load; a bad file is a clear
  :class:`SentimentModelError` (a ``ValueError``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence

import orjson

if TYPE_CHECKING:  # numpy is needed for training only, imported there
    import numpy as np

LABELS = ("negative", "neutral", "positive")
FORMAT = "feedback-pipeline/sentiment-model"
FORMAT_VERSION = 1
LEX_EVIDENCE_CAP = 3.0
MIN_LANGUAGE_SHARE = 0.1


class SentimentModelError(ValueError):
    """A model file that cannot be read or is not a valid model (the message says why)."""


def stars_to_label(stars: float, scale: tuple[float, float]) -> str:
    """Lower 40 % of the scale negative, middle 20 % neutral, upper 40 % positive (1-2 / 3 / 4-5 stars;
    NPS 0-3 / 4-6 / 7-10)."""
    lo, hi = scale
    x = (stars - lo) / (hi - lo)
    if x < 0.4 - 1e-9:
        return "negative"
    if x <= 0.6 + 1e-9:
        return "neutral"
    return "positive"


def lexicon_features(score: float, label: str, positive: float, negative: float) -> list[tuple[str, float]]:
    """The lexicon classifier's view of a text as features (values about -1..1)."""
    feats = [
        ("lex:score", score),
        ("lex:label=" + label, 1.0),
        ("lex:positive", min(positive, LEX_EVIDENCE_CAP) / LEX_EVIDENCE_CAP),
        ("lex:negative", min(negative, LEX_EVIDENCE_CAP) / LEX_EVIDENCE_CAP),
    ]
    if positive + negative <= 0:
        feats.append(("lex:none", 1.0))
    return feats


def token_features(tokens: Sequence[str]) -> set[str]:
    """Distinct words and adjacent word pairs of a token list (already lower-cased)."""
    feats = {"w:" + t for t in tokens}
    feats.update("b:" + a + " " + b for a, b in zip(tokens, tokens[1:]))
    return feats


class ModelLookup(Protocol):
    """Where the classifier finds the learned model for a language: one model (``PIPELINE_SENTIMENT_MODEL``)
    or the self-trained models of every language (:class:`pipeline.classify.selftrain.ModelRegistry`)."""

    def for_language(self, language: str) -> "SentimentModel | None": ...

    def pain_model_for(self, language: str) -> Any: ...  # a .painlearn.PainPointModel or None


@dataclass(frozen=True)
class Example:
    tokens: tuple[str, ...]
    lexicon: tuple[tuple[str, float], ...]
    label: int  # index into LABELS
    language: str = "en"


@dataclass
class SentimentModel:
    weights: dict[str, tuple[float, float, float]]
    bias: tuple[float, float, float]
    languages: frozenset[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def applies_to(self, language: str) -> bool:
        return language in self.languages

    def for_language(self, language: str) -> "SentimentModel | None":
        """This model for texts in ``language``, else ``None`` (the lexicon): see :class:`ModelLookup`."""
        return self if language in self.languages else None

    def pain_model_for(self, language: str) -> None:
        """A sentiment model file carries no pain-point model (:class:`ModelLookup`)."""
        return None

    @property
    def version(self) -> str:
        """``meta["version"]`` (self-trained models: ``<language>-<sequence>``), else ``file``."""
        v = self.meta.get("version")
        return v if isinstance(v, str) and v else "file"

    @property
    def source(self) -> str:
        """What enriched events name as their sentiment's source: ``model:<version>``."""
        return "model:" + self.version

    def predict(self, tokens: Sequence[str], lexicon: Iterable[tuple[str, float]]) -> tuple[str, float]:
        """(label, score): the most probable label and P(positive) - P(negative)."""
        z0, z1, z2 = self.bias
        w = self.weights
        for f in token_features(tokens):
            v = w.get(f)
            if v is not None:
                z0 += v[0]
                z1 += v[1]
                z2 += v[2]
        for f, x in lexicon:
            v = w.get(f)
            if v is not None:
                z0 += v[0] * x
                z1 += v[1] * x
                z2 += v[2] * x
        m = max(z0, z1, z2)
        e0, e1, e2 = math.exp(z0 - m), math.exp(z1 - m), math.exp(z2 - m)
        total = e0 + e1 + e2
        best = 0 if z0 >= z1 and z0 >= z2 else (1 if z1 >= z2 else 2)
        return LABELS[best], (e2 - e0) / total

    # -- file ------------------------------------------------------------------------------------
    def to_json(self, compact: bool = False) -> bytes:
        """The model file; ``compact``: without indentation (on the wire)."""
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "labels": list(LABELS),
            "languages": sorted(self.languages),
            "bias": [round(b, 6) for b in self.bias],
            "meta": self.meta,
            "weights": {k: [round(x, 5) for x in v] for k, v in sorted(self.weights.items())},
        }
        return orjson.dumps(doc) if compact else orjson.dumps(doc, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, raw: bytes | str, where: str = "sentiment model") -> "SentimentModel":
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SentimentModelError(f"{where}: not JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise SentimentModelError(f"{where}: not a sentiment model file (expected \"format\": \"{FORMAT}\")")
        if doc.get("format_version") != FORMAT_VERSION:
            raise SentimentModelError(f"{where}: format_version {doc.get('format_version')!r} is not supported "
                             f"(this version reads {FORMAT_VERSION})")
        if doc.get("labels") != list(LABELS):
            raise SentimentModelError(f"{where}: labels must be {list(LABELS)}")
        langs = doc.get("languages")
        if not isinstance(langs, list) or not langs or not all(isinstance(x, str) for x in langs):
            raise SentimentModelError(f"{where}: \"languages\" must be a non-empty list of language codes")
        weights = doc.get("weights")
        if not isinstance(weights, dict):
            raise SentimentModelError(f"{where}: \"weights\" must be an object")
        parsed: dict[str, tuple[float, float, float]] = {}
        for k, v in weights.items():
            parsed[k] = _triple(v, f"{where}: weights[{k!r}]")
        meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
        return cls(parsed, _triple(doc.get("bias"), f"{where}: bias"), frozenset(langs), meta)

    @classmethod
    def load(cls, path: str | Path) -> "SentimentModel":
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise SentimentModelError(f"sentiment model {p}: cannot read ({exc.strerror})") from None
        return cls.from_json(raw, f"sentiment model {p}")


def _triple(v: Any, where: str) -> tuple[float, float, float]:
    if (not isinstance(v, list) or len(v) != 3
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)):
        raise SentimentModelError(f"{where} must be a list of 3 finite numbers")
    return float(v[0]), float(v[1]), float(v[2])


# -- training -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Problem:
    """A training set as a sparse design matrix (coordinate triples), one-hot targets and sample weights."""

    rows: np.ndarray  # example index of each non-zero entry
    cols: np.ndarray  # feature index of each non-zero entry
    vals: np.ndarray  # value of each non-zero entry
    targets: np.ndarray  # (n, 3) one-hot labels
    sample_weights: np.ndarray  # (n,) class-balanced, divided by n
    n: int  # examples
    d: int  # features


def _label_counts(examples: Sequence[Example]) -> Counter:
    """Examples per label; raises ``ValueError`` without examples or with a single label."""
    if not examples:
        raise ValueError("no training examples")
    counts = Counter(e.label for e in examples)
    if len(counts) < 2:
        raise ValueError(f"training needs at least two labels; got only {LABELS[next(iter(counts))]!r}")
    return counts


def _vocabulary(examples: Sequence[Example], min_count: int) -> dict[str, int]:
    """Feature -> column: token features in >= ``min_count`` texts (sorted), then the lexicon features."""
    df: Counter = Counter()
    for e in examples:
        df.update(token_features(e.tokens))
    vocab = {f: i for i, f in enumerate(sorted(f for f, c in df.items() if c >= min_count))}
    for e in examples:
        for f, _ in e.lexicon:
            vocab.setdefault(f, len(vocab))
    return vocab


def _problem(examples: Sequence[Example], vocab: dict[str, int], counts: Counter) -> _Problem:
    """The design matrix, targets and class-balanced sample weights of ``examples``."""
    import numpy as np

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for r, e in enumerate(examples):
        for f in token_features(e.tokens):
            j = vocab.get(f)
            if j is not None:
                rows.append(r)
                cols.append(j)
                vals.append(1.0)
        for f, x in e.lexicon:
            rows.append(r)
            cols.append(vocab[f])
            vals.append(float(x))
    n, d = len(examples), len(vocab)
    y = np.asarray([e.label for e in examples], dtype=np.int64)
    Y = np.zeros((n, 3))
    Y[np.arange(n), y] = 1.0
    # class-balanced sample weights: each present label carries the same total weight
    present = len(counts)
    sw = np.asarray([n / (present * counts[e.label]) for e in examples]) / n
    return _Problem(np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64),
                    np.asarray(vals, dtype=np.float64), Y, sw, n, d)


def _gradient(p: _Problem, W: np.ndarray, b: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the weighted, L2-regularised cross-entropy with respect to ``W`` and ``b``."""
    import numpy as np

    R, C, V = p.rows, p.cols, p.vals
    Z = np.empty((p.n, 3))
    for k in range(3):
        Z[:, k] = np.bincount(R, weights=V * W[C, k], minlength=p.n)
    Z += b
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    G = (P - p.targets) * p.sample_weights[:, None]  # d loss / d logits
    gW = np.empty_like(W)
    for k in range(3):
        gW[:, k] = np.bincount(C, weights=V * G[R, k], minlength=p.d)
    gW += l2 * W
    gb = G.sum(axis=0)
    return gW, gb


def _fit(p: _Problem, l2: float, steps: int, learning_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(d, 3)`` and bias ``(3,)`` after ``steps`` full-batch Adam steps from zero."""
    import numpy as np

    W = np.zeros((p.d, 3))
    b = np.zeros(3)
    mW, vW = np.zeros_like(W), np.zeros_like(W)
    mb, vb = np.zeros(3), np.zeros(3)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        gW, gb = _gradient(p, W, b, l2)
        mW = beta1 * mW + (1 - beta1) * gW
        vW = beta2 * vW + (1 - beta2) * gW * gW
        mb = beta1 * mb + (1 - beta1) * gb
        vb = beta2 * vb + (1 - beta2) * gb * gb
        c1, c2 = 1 - beta1 ** t, 1 - beta2 ** t
        W -= learning_rate * (mW / c1) / (np.sqrt(vW / c2) + eps)
        b -= learning_rate * (mb / c1) / (np.sqrt(vb / c2) + eps)
    return W, b


def train(
    examples: Sequence[Example],
    *,
    min_count: int = 2,
    l2: float = 0.03,
    steps: int = 300,
    learning_rate: float = 0.05,
    meta: dict[str, Any] | None = None,
) -> SentimentModel:
    """Fit the model to ``examples`` (needs numpy). Deterministic for the same input."""
    import numpy as np

    counts = _label_counts(examples)
    vocab = _vocabulary(examples, min_count)
    problem = _problem(examples, vocab, counts)
    W, b = _fit(problem, l2, steps, learning_rate)
    n, d = problem.n, problem.d
    names = list(vocab)  # indices were handed out in insertion order
    weights = {names[j]: (float(W[j, 0]), float(W[j, 1]), float(W[j, 2]))
               for j in range(d) if np.abs(W[j]).max() >= 1e-4}
    langs = Counter(e.language for e in examples)
    languages = frozenset(lang for lang, c in langs.items() if c >= MIN_LANGUAGE_SHARE * n)
    info = {"examples": n, "per_label": {LABELS[k]: counts.get(k, 0) for k in range(3)},
            "features": len(weights), "min_count": min_count, "l2": l2, "steps": steps}
    return SentimentModel(weights, (float(b[0]), float(b[1]), float(b[2])), languages,
                          {**info, **(meta or {})})


def balanced_accuracy(gold: Sequence[int], pred: Sequence[int]) -> float:
    """Mean recall over the labels present in ``gold``."""
    support = Counter(gold)
    hits = Counter(g for g, p in zip(gold, pred) if g == p)
    return sum(hits[k] / support[k] for k in support) / len(support) if support else 0.0


def folds(labels: Sequence[int], k: int) -> list[list[int]]:
    """Stratified, deterministic k folds of example indices (every k-th example of each label)."""
    out: list[list[int]] = [[] for _ in range(k)]
    seen: Counter = Counter()
    for i, lab in enumerate(labels):
        out[seen[lab] % k].append(i)
        seen[lab] += 1
    return out


def cross_validate(examples: Sequence[Example], k: int = 5, extra: Sequence[Example] = (), **train_kw: Any) -> float:
    """Balanced accuracy of k-fold cross-validation (each fold predicted by a model not trained on it).

    ``extra``: examples added to every fold's training set and never predicted (other data sets).
    """
    if k < 2:
        raise ValueError("cross-validation needs k >= 2")
    labels = [e.label for e in examples]
    pred = [0] * len(examples)
    for held in folds(labels, k):
        held_set = set(held)
        model = train([e for i, e in enumerate(examples) if i not in held_set] + list(extra), **train_kw)
        for i in held:
            e = examples[i]
            pred[i] = LABELS.index(model.predict(e.tokens, e.lexicon)[0])
    return balanced_accuracy(labels, pred)
