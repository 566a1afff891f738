"""Loaders of real customer texts from the shared data folder, for the simulator.

Each loader returns a list of :class:`Text` in file order (so a seeded
simulator stays deterministic), is cached per data folder with
:func:`functools.lru_cache`, and returns an empty list when its file is
missing, so callers can fall back to built-in sentences.  The returned lists
are shared: do not mutate them.

Sources (see the data folder's README.md for provenance and licences; these
texts are for tests, demos and load generation, never shipped):

* :func:`korean_reviews` - Naver Smartstore reviews, ``negative`` when any
  hand-labelled aspect has polarity ``N``; ``topic`` = those aspects'
  categories (e.g. ``"배송,품질"``).
* :func:`cfpb_narratives` - CFPB consumer complaint narratives; ``topic`` = issue.
* :func:`bitext_utterances` - Bitext customer-service utterances whose intent
  reads as a complaint or a problem (:data:`COMPLAINT_INTENTS`); ``topic`` = intent.
* :func:`english_complaints` - bitext utterances followed by CFPB narratives.
* :func:`alexa_reviews` - Amazon Alexa reviews with their 1-5 star ``rating``;
  ``negative`` when rating <= 2.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

COMPLAINT_INTENTS = frozenset(
    {
        "complaint",
        "delivery_period",
        "track_order",
        "get_refund",
        "track_refund",
        "cancel_order",
        "check_cancellation_fee",
        "payment_issue",
        "change_order",
        "change_shipping_address",
        "contact_human_agent",
        "contact_customer_service",
        "registration_problems",
        "recover_password",
    }
)


@dataclass(frozen=True, slots=True)
class Text:
    """One real text: ISO 639-1 ``language``; ``rating`` 1-5 stars when known;
    ``negative`` when the source labels it; ``topic`` the source's label."""

    text: str
    language: str
    rating: int | None = None
    negative: bool | None = None
    topic: str | None = None


def _rows(path: Path, delimiter: str = ",") -> Iterator[dict[str, str]]:
    if not path.is_file():
        return
    with path.open(newline="", encoding="utf-8-sig") as fh:
        yield from csv.DictReader(fh, delimiter=delimiter)


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",")]


@lru_cache(maxsize=8)
def korean_reviews(data_dir: Path) -> list[Text]:
    """Korean product reviews with ``negative`` = any aspect polarity ``N``."""
    out: list[Text] = []
    for row in _rows(Path(data_dir) / "korean_smartstore_reviews" / "reviews_dev.csv"):
        text = (row.get("review") or "").strip()
        if not text:
            continue
        polarities = _split(row.get("final_polarity"))
        categories = _split(row.get("final_category"))
        negative_cats = [c for c, p in zip(categories, polarities) if p == "N" and c]
        out.append(
            Text(
                text=text,
                language="ko",
                negative="N" in polarities,
                topic=",".join(dict.fromkeys(negative_cats)) or None,
            )
        )
    return out


@lru_cache(maxsize=8)
def cfpb_narratives(data_dir: Path) -> list[Text]:
    """English complaint narratives (rows without a narrative are left out)."""
    out: list[Text] = []
    for row in _rows(Path(data_dir) / "cfpb_complaints" / "complaints_dev.csv"):
        text = (row.get("Consumer complaint narrative") or "").strip()
        if text:
            out.append(Text(text=text, language="en", negative=True, topic=row.get("Issue") or None))
    return out


@lru_cache(maxsize=8)
def bitext_utterances(data_dir: Path) -> list[Text]:
    """English customer-service utterances with a complaint/problem intent."""
    out: list[Text] = []
    folder = Path(data_dir) / "bitext_customer_support"
    for name in ("Training", "Validation"):
        path = folder / f"Bitext_Sample_Customer_Service_{name}_Dataset.csv"
        for row in _rows(path):
            text = (row.get("utterance") or "").strip()
            intent = (row.get("intent") or "").strip()
            if text and intent in COMPLAINT_INTENTS:
                out.append(Text(text=text, language="en", negative=True, topic=intent))
    return out


@lru_cache(maxsize=8)
def english_complaints(data_dir: Path) -> list[Text]:
    """Bitext utterances then CFPB narratives (short and long English complaints)."""
    return bitext_utterances(data_dir) + cfpb_narratives(data_dir)


@lru_cache(maxsize=8)
def alexa_reviews(data_dir: Path) -> list[Text]:
    """English Amazon Alexa reviews with star ``rating`` 1-5 (empty texts left out)."""
    out: list[Text] = []
    for row in _rows(Path(data_dir) / "amazon_alexa_reviews" / "reviews_dev.tsv", delimiter="\t"):
        text = (row.get("verified_reviews") or "").strip()
        try:
            rating = int(row.get("rating") or "")
        except ValueError:
            continue
        if text and 1 <= rating <= 5:
            out.append(Text(text=text, language="en", rating=rating, negative=rating <= 2))
    return out
