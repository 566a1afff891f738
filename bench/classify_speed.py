"""Classifier speed: texts per second per language, classifier alone, one core.

    python bench/classify_speed.py              # default: ~3 s per language
    python bench/classify_speed.py --seconds 10 --json

Real texts from ../shared/data:
  en  SemEval-2016 laptop + restaurant sentences and Bitext customer-service utterances
      (short texts, 4,500 + 7,290); language detection included (``classify(text)``);
  ko  Korean Smartstore reviews (315 reviews, with Kiwi morphological analysis).
Also ``en (language given)`` skips detection. ``--sentiment-model FILE`` (a
``train-sentiment`` or self-trained model) adds a row ``<lang> (with sentiment model)`` for each
timed language the model covers (its ``languages``), e.g. ``en`` for an English model, ``ko`` for
a Korean one. Both wall-clock and process-CPU-time rates
are printed (they agree on an idle machine). Each language is warmed up by one full
pass over its texts (builds Kiwi and the compiled lexicons, fills the per-token caches; that
first pass is reported too, as "cold"), then timed over whole passes of the text list until
``--seconds`` have elapsed. Single process, single thread.

The classifier remembers the analyses of its last 2,048 texts (``classifier._analyse_cached``);
the 315 Korean texts would fit, and every warm pass would time memory hits (about 7 µs a text)
instead of Kiwi and the lexicons. So every timed pass runs with that memory replaced by one that
always misses (:func:`analysis_memory_off`): the figures are those of a stream of distinct
texts. ``--repeated-texts`` times with the memory instead (a text sent again).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.classify import classify, default_taxonomy  # noqa: E402

DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data"
ANALYSIS_MEMORY_KEY = "classify:recent-analyses"  # the taxonomy's compiled-state key of that memory


class _AlwaysMiss:
    """Stands in for the classifier's recent-analyses memory: every lookup misses; every store is
    made and dropped at once (the bookkeeping of a miss in a full memory)."""

    def __init__(self) -> None:
        self.items: OrderedDict = OrderedDict()

    def get(self, key: object) -> None:
        return None

    def put(self, key: object, value: object) -> None:
        self.items[key] = value
        self.items.popitem(last=False)


@contextmanager
def analysis_memory_off(tax: Any) -> Iterator[bool]:
    """While inside, ``tax``'s recent-analyses memory always misses (every text is analysed again);
    restored on exit. Yields ``False`` (and changes nothing) when the taxonomy has no such state."""
    compiled = getattr(tax, "_compiled", None)
    if not isinstance(compiled, dict):
        yield False
        return
    old = compiled.get(ANALYSIS_MEMORY_KEY)
    compiled[ANALYSIS_MEMORY_KEY] = _AlwaysMiss()
    try:
        yield True
    finally:
        if old is None:
            compiled.pop(ANALYSIS_MEMORY_KEY, None)
        else:
            compiled[ANALYSIS_MEMORY_KEY] = old


def english_texts(data_dir: Path) -> list[str]:
    out: list[str] = []
    for name in ("ABSA16_Laptops_Train_SB1_v2.xml", "ABSA16_Restaurants_Train_SB1_v2.xml"):
        p = data_dir / "semeval2016_absa_en" / name
        if p.exists():
            out.extend((s.findtext("text") or "") for s in ET.parse(p).iter("sentence"))
    p = data_dir / "bitext_customer_support" / "Bitext_Sample_Customer_Service_Training_Dataset.csv"
    if p.exists():
        with p.open(encoding="utf-8", newline="") as fh:
            out.extend(row["utterance"] for row in csv.DictReader(fh))
    return [t for t in out if t.strip()]


def korean_texts(data_dir: Path) -> list[str]:
    p = data_dir / "korean_smartstore_reviews" / "reviews_dev.csv"
    if not p.exists():
        return []
    with p.open(encoding="utf-8", newline="") as fh:
        return [row["review"] for row in csv.DictReader(fh) if row["review"].strip()]


def measure(texts: list[str], seconds: float, language: str | None = None, model=None,  # noqa: ANN001
            repeated: bool = False) -> dict:
    """Texts/s of ``classify`` over ``texts`` (see the module docstring); ``repeated``: with the
    classifier's recent-analyses memory (warm passes then hit it when the texts fit in it)."""
    tax = default_taxonomy()
    if repeated:
        return _measure(texts, seconds, tax, language, model)
    with analysis_memory_off(tax):
        return _measure(texts, seconds, tax, language, model)


def _measure(texts: list[str], seconds: float, tax: Any, language: str | None, model: Any) -> dict:
    # first pass: the per-token caches are cold for most words (Kiwi and the lexicons are
    # built by then); reported as ``cold_texts_per_s``. Then timed warm passes.
    classify(texts[0], language=language, taxonomy=tax, sentiment_model=model)
    c0 = time.perf_counter()
    for t in texts:
        classify(t, language=language, taxonomy=tax, sentiment_model=model)
    cold = len(texts) / (time.perf_counter() - c0)
    n = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    while True:
        for t in texts:
            classify(t, language=language, taxonomy=tax, sentiment_model=model)
        n += len(texts)
        dt = time.perf_counter() - t0
        if dt >= seconds:
            break
    cpu = time.process_time() - c0
    chars = sum(len(t) for t in texts) / len(texts)
    return {"texts": n, "seconds": round(dt, 2), "texts_per_s": round(n / dt), "us_per_text": round(1e6 * dt / n, 1),
            "cpu_texts_per_s": round(n / cpu) if cpu > 0 else None, "cold_texts_per_s": round(cold),
            "mean_chars": round(chars, 1), "distinct_texts": len(texts)}


def run(data_dir: Path = DEFAULT_DATA_DIR, seconds: float = 3.0, langs: tuple[str, ...] = ("en", "ko"),
        model=None, repeated: bool = False) -> dict:  # noqa: ANN001 - a learned.SentimentModel
    out: dict[str, dict] = {}
    if "en" in langs:
        en = english_texts(data_dir)
        if en:
            out["en"] = measure(en, seconds, repeated=repeated)
            out["en (language given)"] = measure(en, seconds, language="en", repeated=repeated)
            if model is not None and model.applies_to("en"):
                out["en (with sentiment model)"] = measure(en, seconds, model=model, repeated=repeated)
    if "ko" in langs:
        ko = korean_texts(data_dir)
        if ko:
            out["ko"] = measure(ko, seconds, repeated=repeated)
            if model is not None and model.applies_to("ko"):
                out["ko (with sentiment model)"] = measure(ko, seconds, model=model, repeated=repeated)
    return out


def render(res: dict) -> str:
    lines = ["| language | texts/s (wall clock, one core) | texts/s (process CPU time) | first pass, cold caches | "
             "µs/text | mean chars | texts timed |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for lang, v in res.items():
        lines.append(f"| {lang} | {v['texts_per_s']:,} | {v['cpu_texts_per_s'] or 0:,} | {v['cold_texts_per_s']:,} | "
                     f"{v['us_per_text']} | {v['mean_chars']} | {v['texts']:,} |")
    try:
        load = os.getloadavg()[0]
        lines.append(f"\n(load average {load:.2f} on {os.cpu_count()} cores while measuring; the wall-clock figure "
                     "drops when other processes compete for the core)")
    except OSError:  # pragma: no cover
        pass
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per language")
    ap.add_argument("--lang", action="append", choices=["en", "ko"], help="only these languages")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeated-texts", action="store_true",
                    help="time with the classifier's memory of recent analyses (texts sent again)")
    ap.add_argument("--sentiment-model", default=None,
                    help="also time each language the model covers (en, ko) with this sentiment model")
    args = ap.parse_args(argv)
    if not args.data_dir.exists():
        print(f"data directory not found: {args.data_dir}", file=sys.stderr)
        return 2
    model = None
    if args.sentiment_model:
        from pipeline.classify.learned import SentimentModel, SentimentModelError

        try:
            model = SentimentModel.load(args.sentiment_model)
        except SentimentModelError as exc:
            print(str(exc), file=sys.stderr)
            return 2
    res = run(args.data_dir, args.seconds, tuple(args.lang or ("en", "ko")), model, args.repeated_texts)
    print(json.dumps(res, indent=2) if args.json else render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
