"""Self-trained sentiment: learn each operator's language from their own scored feedback (issue 20).

Pure parts; the Kafka edge is :mod:`pipeline.selftrain` (the trainer) and
:mod:`pipeline.agents.models` (every worker follows the published models).

Semantics:

* **Sample**: an enriched feedback event with a text and a numeric score (stars, CSAT, NPS ...)
  becomes one :class:`TrainingSample`, keyed by its ``event_id`` (a replayed event replaces its
  sample: at-least-once input gives the same sample set). Its label is the score's place on its
  scale (:func:`~.learned.stars_to_label`: lower 40 % negative, middle 20 % neutral, upper 40 %
  positive), its language the one the classifier detected (or the event gave).
* **Store** (:class:`SampleStore`): the newest ``max_samples`` samples of each language, in
  arrival order.
* **Candidate and quality gate** (:func:`gate`): at most once per ``interval_seconds``, for each
  language with at least ``min_samples`` samples and ``min_new_samples`` new ones since its last
  attempt, the same stratified ``folds``-fold split scores a model trained on the other folds and
  the lexicon alone. The candidate is **accepted** only when the model's cross-validated balanced
  accuracy is at least ``min_gain`` above the lexicon's; then one model trained on every sample
  is published as version ``<language>-<sequence>``. Otherwise the language keeps what it had
  (the lexicon, or the previous model).
* **Registry** (:class:`ModelRegistry`): the newest published model per language, the same on
  every worker because every worker reads the same compacted topic; a language without one uses
  the static model file (``PIPELINE_SENTIMENT_MODEL``) when it covers the language, else the lexicon.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import orjson

from ..core.records import json_object
from .painlearn import PainPointModel
from .learned import LABELS, Example, SentimentModel, SentimentModelError, balanced_accuracy, folds, stars_to_label, train

MAX_SAMPLE_CHARS = 2000  # the classifier analyses at most this much of a text (MAX_ANALYSED_CHARS)
PAIN_KEY_PREFIX = "pain:"  # models-topic key of a language's pain-point model (.painlearn)


@dataclass(frozen=True)
class SelfTrainSettings:
    """``PIPELINE_SELF_TRAIN_*`` (docs/configuration.md)."""

    min_samples: int = 200  # per language, before the first candidate
    min_new_samples: int = 100  # new samples of a language since its last attempt
    max_samples: int = 20_000  # newest kept per language
    folds: int = 5
    min_gain: float = 0.02  # cross-validated balanced accuracy over the lexicon's
    interval_seconds: float = 300.0
    l2: float = 0.03
    # operator-labelled pain points (scope 2; off while the attribute is empty): the event attribute
    # holding the ticket's label, and label -> taxonomy category id (None: "no pain point")
    pain_label_attribute: str = ""
    pain_label_map: tuple[tuple[str, str | None], ...] = ()
    pain_min_positive: int = 20  # labelled texts of a category before its model is gated


@dataclass(frozen=True)
class TrainingSample:
    event_id: str
    language: str
    text: str
    label: str  # one of LABELS

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> "TrainingSample | None":
        """The sample of a training-topic value; ``None`` for anything else (never raises)."""
        doc = json_object(raw)
        if doc is None:
            return None
        vals = [doc.get(k) for k in ("event_id", "language", "text", "label")]
        if not all(isinstance(v, str) and v for v in vals) or vals[3] not in LABELS:
            return None
        return cls(*vals)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def sample_from_enriched(doc: Mapping[str, Any]) -> TrainingSample | None:
    """The training sample an enriched event yields, or ``None`` (not feedback, no text, no score,
    language unknown)."""
    if doc.get("kind") != "feedback":
        return None
    ev, cls = doc.get("event"), doc.get("classification")
    if not isinstance(ev, dict) or not isinstance(cls, dict):
        return None
    text, scale = ev.get("text"), ev.get("scale")
    score = _number(ev.get("score"))
    if not isinstance(text, str) or not text.strip() or score is None or not isinstance(scale, dict):
        return None
    lo, hi = _number(scale.get("min")), _number(scale.get("max"))
    lang = cls.get("language")
    if lo is None or hi is None or not hi > lo or not lo <= score <= hi or not isinstance(lang, str) or lang == "und":
        return None
    event_id = doc.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        return None
    return TrainingSample(event_id, lang, text[:MAX_SAMPLE_CHARS], stars_to_label(score, (lo, hi)))


@dataclass
class _Language:
    samples: "OrderedDict[str, tuple[Any, Any]]" = field(default_factory=OrderedDict)  # id -> (sample, analysed)
    new: int = 0  # samples added since the last attempt


class SampleStore:
    """The newest ``max_samples`` samples of each language with their analysed form.

    ``analyse(sample)``: the classifier's view of the text (an :class:`Example` for a
    :class:`TrainingSample`, a :class:`~.painlearn.PainExample` for a pain-point sample); called
    once per sample, when it arrives. A sample has ``event_id`` and ``language`` and compares by value.
    """

    def __init__(self, analyse: Callable[[Any], Any], max_samples: int) -> None:
        self.analyse, self.max_samples = analyse, max_samples
        self.languages: dict[str, _Language] = {}

    def add(self, sample: Any) -> bool:
        """Add (or replace, same ``event_id``); ``False`` when the same sample is already there."""
        lang = self.languages.setdefault(sample.language, _Language())
        old = lang.samples.get(sample.event_id)
        if old is not None and old[0] == sample:
            return False
        lang.samples[sample.event_id] = (sample, self.analyse(sample))
        lang.samples.move_to_end(sample.event_id)
        lang.new += 1
        while len(lang.samples) > self.max_samples:
            lang.samples.popitem(last=False)
        return True

    def count(self, language: str) -> int:
        lang = self.languages.get(language)
        return len(lang.samples) if lang else 0

    def due(self, settings: SelfTrainSettings) -> list[str]:
        """Languages with enough samples and enough new ones for a candidate."""
        return sorted(code for code, lang in self.languages.items()
                      if len(lang.samples) >= settings.min_samples and lang.new >= settings.min_new_samples)

    def take(self, language: str) -> list[Any]:
        """The language's examples, oldest first; resets its count of new samples."""
        lang = self.languages[language]
        lang.new = 0
        return [ex for _, ex in lang.samples.values()]


@dataclass(frozen=True)
class GateResult:
    language: str
    samples: int
    per_label: dict[str, int]
    model_balanced_accuracy: float
    lexicon_balanced_accuracy: float
    accepted: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["model_balanced_accuracy"] = round(self.model_balanced_accuracy, 4)
        out["lexicon_balanced_accuracy"] = round(self.lexicon_balanced_accuracy, 4)
        return out


def lexicon_label(e: Example) -> int:
    """The lexicon classifier's label of an example (its ``lex:label=`` feature)."""
    for f, _ in e.lexicon:
        if f.startswith("lex:label="):
            return LABELS.index(f.split("=", 1)[1])
    return LABELS.index("neutral")


def gate(examples: Sequence[Example], language: str, settings: SelfTrainSettings) -> GateResult:
    """Cross-validated balanced accuracy of the model and of the lexicon on the same folds, and the verdict."""
    labels = [e.label for e in examples]
    counts = Counter(labels)
    per_label = {LABELS[k]: counts.get(k, 0) for k in range(3)}
    lexicon_ba = balanced_accuracy(labels, [lexicon_label(e) for e in examples]) if examples else 0.0

    def result(model_ba: float, accepted: bool, reason: str) -> GateResult:
        return GateResult(language, len(examples), per_label, model_ba, lexicon_ba, accepted, reason)

    if len(examples) < settings.min_samples:
        return result(0.0, False, f"{len(examples)} samples, fewer than {settings.min_samples}")
    if len(counts) < 2 or min(counts.values()) < settings.folds:
        return result(0.0, False, f"labels {per_label}: every present label needs at least {settings.folds} "
                                  "samples and at least two labels")
    pred = [0] * len(examples)
    for held in folds(labels, settings.folds):
        held_set = set(held)
        model = train([e for i, e in enumerate(examples) if i not in held_set], l2=settings.l2)
        for i in held:
            pred[i] = LABELS.index(model.predict(examples[i].tokens, examples[i].lexicon)[0])
    model_ba = balanced_accuracy(labels, pred)
    if model_ba < lexicon_ba + settings.min_gain:
        return result(model_ba, False, f"model {model_ba:.3f} is not {settings.min_gain:.3f} above the lexicon {lexicon_ba:.3f}")
    return result(model_ba, True, f"model {model_ba:.3f} against lexicon {lexicon_ba:.3f}")


def candidate(examples: Sequence[Example], language: str, sequence: int,
              settings: SelfTrainSettings) -> tuple[GateResult, SentimentModel | None]:
    """The gate's verdict and, when accepted, the model trained on every example as ``<language>-<sequence>``."""
    verdict = gate(examples, language, settings)
    if not verdict.accepted:
        return verdict, None
    model = train(list(examples), l2=settings.l2, meta={"version": f"{language}-{sequence}", "gate": verdict.to_dict()})
    # the languages of a per-language model are exactly its own (a stray text of another language
    # detected in its samples must not make it apply elsewhere)
    return verdict, SentimentModel(model.weights, model.bias, frozenset({language}), model.meta)


def version_sequence(version: str) -> int:
    """The sequence number of ``<language>-<sequence>`` (0 when it has none)."""
    tail = version.rpartition("-")[2]
    return int(tail) if tail.isdigit() else 0


class ModelRegistry:
    """The learned model of each language: the newest published one, else the static file model.

    Implements :class:`~.learned.ModelLookup` for :func:`~.classifier.classify`.
    """

    def __init__(self, static: SentimentModel | None = None) -> None:
        self.static = static
        self.models: dict[str, SentimentModel] = {}
        self.pain_models: dict[str, PainPointModel] = {}  # key "pain:<language>" on the topic (scope 2)

    def pain_model_for(self, language: str) -> PainPointModel | None:
        return self.pain_models.get(language)

    def for_language(self, language: str) -> SentimentModel | None:
        model = self.models.get(language)
        if model is not None:
            return model
        return self.static.for_language(language) if self.static is not None else None

    def _held(self, key: str) -> tuple[dict[str, Any], str, Any]:
        """(the models of the key's kind, its language, that kind's model class)."""
        if key.startswith(PAIN_KEY_PREFIX):
            return self.pain_models, key[len(PAIN_KEY_PREFIX):], PainPointModel
        return self.models, key, SentimentModel

    def next_sequence(self, key: str) -> int:
        """The sequence number the next model published under ``key`` gets."""
        held, language, _ = self._held(key)
        model = held.get(language)
        return (version_sequence(model.version) if model is not None else 0) + 1

    def apply(self, key: bytes | None, value: bytes | None) -> str | None:
        """One record of the models topic (key: ``<language>`` for sentiment, ``pain:<language>`` for pain
        points; value: model JSON; ``None``: withdrawn).

        Returns the key changed, or ``None`` when the record changes nothing: a bad record, a model
        for another language than its key, or a version not newer than the one held (a re-read or a
        stale duplicate). Raises nothing.
        """
        if not key:
            return None
        name = key.decode("utf-8", "replace")
        held, language, kind = self._held(name)
        if value is None:
            return name if held.pop(language, None) is not None else None
        try:
            model = kind.from_json(value, f"model {name!r}")
        except SentimentModelError:
            return None
        old = held.get(language)
        if language not in model.languages or (
                old is not None and version_sequence(model.version) <= version_sequence(old.version)):
            return None
        held[language] = model
        return name

    def versions(self) -> dict[str, str]:
        out = {lang: m.version for lang, m in self.models.items()}
        out.update({PAIN_KEY_PREFIX + lang: m.version for lang, m in self.pain_models.items()})
        return dict(sorted(out.items()))


__all__ = ["GateResult", "ModelRegistry", "SampleStore", "SelfTrainSettings", "TrainingSample", "candidate",
           "gate", "lexicon_label", "sample_from_enriched", "version_sequence"]
