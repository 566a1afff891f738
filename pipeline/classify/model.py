"""Plain result types of the classifier."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PainPoint:
    id: str
    confidence: float
    # each item: {"text": str, "start": int, "end": int}; offsets index the
    # classified text (text[start:end] == item["text"]). Structured signals
    # carry {"text": description, "start": -1, "end": -1, "source": ...}.
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "confidence": round(float(self.confidence), 4),
            "evidence": [dict(e) for e in self.evidence],
        }


@dataclass
class Sentiment:
    label: str  # "negative" | "neutral" | "positive"
    score: float  # -1 .. 1
    # where the text's part came from: "lexicon", or "model:<version>" (a learned model, issue 20)
    source: str = "lexicon"

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(float(self.score), 4), "source": self.source}


@dataclass
class Classification:
    language: str
    sentiment: Sentiment
    satisfaction_gap: float | None
    pain_points: list[PainPoint]
    taxonomy_version: str

    def to_dict(self) -> dict[str, Any]:
        gap = self.satisfaction_gap
        pain_points = self.pain_points
        return {
            "language": self.language,
            "sentiment": self.sentiment.to_dict(),
            "satisfaction_gap": None if gap is None else round(float(gap), 4),
            # most events have no pain point: their (empty) list copied without running a comprehension
            "pain_points": [p.to_dict() for p in pain_points] if pain_points else list(pain_points),
            "taxonomy_version": self.taxonomy_version,
        }

    def pain_point_ids(self) -> list[str]:
        return [p.id for p in self.pain_points]


@dataclass(slots=True)
class Signal:
    """One piece of evidence found by a language analyser.

    kind:
      ``aspect``  names a category (``category``), carries no polarity;
      ``polar``   a sentiment value; bound to ``category`` or free (None);
      ``context`` polarity that applies only next to an aspect of a category
                  listed in ``ctx`` ((category, weight), ...).
    ``pos`` is a token index used for distances; ``clause`` groups signals.
    """

    kind: str
    pos: int
    start: int
    end: int
    clause: int
    value: float = 0.0
    category: str | None = None
    ctx: tuple[tuple[str, float], ...] = ()
