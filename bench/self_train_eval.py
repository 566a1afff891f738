"""Self-trained sentiment replayed in stream order: learning curves (issue 20).

    python bench/self_train_eval.py                      # Markdown tables, all sets
    python bench/self_train_eval.py --json --sets korean
    python -m pipeline evaluate --self-train             # the same through the CLI

What the pipeline does (``pipeline/classify/selftrain.py``): scored feedback (stars, NPS, CSAT)
of a language becomes training samples, labelled by the score's place on its scale
(``stars_to_label``: 1-2 negative, 3 neutral, 4-5 positive); a quality gate compares a model's
cross-validated balanced accuracy with the lexicon's on the same folds and publishes a model
trained on every sample only when it beats the lexicon by ``min_gain``; texts of that language
then take their sentiment from the model, otherwise from the lexicon.

This script replays each data set **in stream order** (the review date, ties by file order;
file order where there is no date) and splits it in two halves:

* the **seen** half (the first half in stream order): the scored feedback that arrived so far;
  every model and every gate verdict below is computed from a prefix of it only;
* the **later** half: texts that arrive afterwards, never trained on, never used to choose
  anything; every "later" figure is measured on it.

Curve points: the first n seen samples for n = 50, 100, 200, 400, ... and finally the whole
seen half. At each point:

* **gate**: ``selftrain.gate`` on those n samples with the default settings except
  ``min_samples`` lowered to 1 (so the small points are evaluated): the 5-fold cross-validated
  balanced accuracy of the model and of the lexicon on the same folds, and the verdict;
  **default gate** says what the pipeline's ``min_samples`` = 200 does (waits below 200);
* **model BA later**: balanced accuracy (mean recall of the labels present) on the later half of
  the model trained on the n samples (``learned.train``, l2 of the settings: exactly the model
  ``selftrain.candidate`` publishes);
* **lexicon BA later**: the lexicon classifier's label (its ``lex:label`` feature) on the later half;
* **applied**: what the pipeline would apply after this point with the default gate (the model
  if the gate accepted and n >= 200, else the lexicon) and its balanced accuracy on the later half.

For the final point also the recall of each label on the later half, and a model whose L2
strength was chosen by cross-validation inside the seen half only (``--l2-grid``; the later
half plays no part in the choice).

The language is given (the data set's), not detected; examples are built with
``classifier.sentiment_example`` (what the pipeline's sample store holds). Exact duplicate texts
are dropped after their first occurrence in stream order (a duplicate on both sides of the split
would be a leak); empty texts are dropped. Data sets are read in place from ../shared/data.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "bench") not in sys.path:
    sys.path.append(str(ROOT / "bench"))  # eval_classifier's loader; last, so bench never shadows a package

from eval_classifier import KO_SENTIMENT_RULE, load_korean  # noqa: E402
from pipeline.classify import load_taxonomy  # noqa: E402
from pipeline.classify.classifier import sentiment_example  # noqa: E402
from pipeline.classify.learned import (  # noqa: E402
    LABELS, Example, SentimentModel, balanced_accuracy, cross_validate, stars_to_label, train)
from pipeline.classify.selftrain import SelfTrainSettings, candidate, lexicon_label  # noqa: E402
from pipeline.classify.taxonomy import Taxonomy  # noqa: E402

DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data"
SETS = ("alexa", "korean", "olist")
FIRST_POINT = 50
DEFAULT_MIN_SAMPLES = SelfTrainSettings().min_samples
DEFAULT_L2_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)
STARS_RULE = "stars 1-2 -> negative, 3 -> neutral, 4-5 -> positive (stars_to_label on 1..5)"
OLIST_DATE_FORMATS = ("%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


# ----------------------------------------------------------------------------- stream-order loaders

@dataclass(frozen=True)
class Row:
    """One scored feedback text: its label and its row in the file (0-based, data rows only)."""

    text: str
    label: str  # one of LABELS
    index: int


@dataclass
class Stream:
    """A data set in stream order, with what was dropped on the way."""

    name: str
    title: str
    language: str
    source: str  # file, relative to the data directory
    rule: str  # how the label was derived
    order: str  # what the stream order is
    rows: list[Row] = field(default_factory=list)
    dropped_empty: int = 0
    dropped_duplicates: int = 0
    note: str = ""  # why a set yields nothing, when it does not


def dedupe(rows: Sequence[Row]) -> tuple[list[Row], int]:
    """``rows`` without exact duplicate texts after their first occurrence, and how many were dropped."""
    seen: set[str] = set()
    out: list[Row] = []
    for r in rows:
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out, len(rows) - len(out)


def _in_stream_order(keyed: list[tuple[Any, Row]]) -> list[Row]:
    """Rows sorted by their key, ties in file order (``sorted`` is stable; the index breaks ties too)."""
    return [r for _, r in sorted(keyed, key=lambda kr: (kr[0], kr[1].index))]


def load_alexa_stream(data_dir: Path) -> Stream:
    """Amazon Alexa reviews (English) ordered by their ``date`` (``31-Jul-18``) ascending, ties by file
    order; stars 1-2 / 3 / 4-5; empty texts and rows without a valid rating or date dropped."""
    s = Stream("alexa", "Amazon Alexa reviews", "en", "amazon_alexa_reviews/reviews_dev.tsv", STARS_RULE,
               "review date ascending, ties by file order")
    keyed: list[tuple[datetime, Row]] = []
    with (data_dir / s.source).open(encoding="utf-8", newline="") as fh:
        for i, rec in enumerate(csv.DictReader(fh, delimiter="\t")):
            text = (rec.get("verified_reviews") or "").strip()
            try:
                stars = int(rec["rating"])
                when = datetime.strptime((rec.get("date") or "").strip(), "%d-%b-%y")
            except (KeyError, ValueError):
                continue
            if not text:
                s.dropped_empty += 1
                continue
            keyed.append((when, Row(text, stars_to_label(stars, (1, 5)), i)))
    s.rows, s.dropped_duplicates = dedupe(_in_stream_order(keyed))
    return s


def load_korean_stream(data_dir: Path) -> Stream:
    """Korean Smartstore reviews in file order (no date), labelled as ``eval_classifier.load_korean``
    does (from the aspect polarities); empty texts dropped."""
    s = Stream("korean", "Korean Smartstore reviews", "ko", "korean_smartstore_reviews/reviews_dev.csv",
               KO_SENTIMENT_RULE, "file order: the file has no date")
    rows: list[Row] = []
    for it in load_korean(data_dir):
        text = it.text.strip()
        if not text or it.sentiment is None:
            s.dropped_empty += 1
            continue
        rows.append(Row(text, it.sentiment, it.index))
    s.rows, s.dropped_duplicates = dedupe(rows)
    return s


def _olist_date(raw: str) -> datetime | None:
    for fmt in OLIST_DATE_FORMATS:
        try:
            return datetime.strptime(raw.strip(), fmt)
        except ValueError:
            continue
    return None


def load_olist_stream(data_dir: Path) -> Stream:
    """Olist reviews (Portuguese): text = ``review_comment_title`` + ``review_comment_message``, rows
    with an empty message skipped, ordered by ``review_creation_date``, label from ``review_score``
    1-5 (``stars_to_label``). A file without the message column yields no rows and a note."""
    s = Stream("olist", "Olist order reviews", "pt", "olist_subset_5k/olist_order_reviews_dataset.csv", STARS_RULE,
               "review_creation_date ascending, ties by file order")
    keyed: list[tuple[datetime, Row]] = []
    with (data_dir / s.source).open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if "review_comment_message" not in (reader.fieldnames or ()):
            s.note = ("the file has no review_comment_message column (this subset's author dropped the "
                      "comment text): nothing to learn from")
            return s
        for i, rec in enumerate(reader):
            msg = (rec.get("review_comment_message") or "").strip()
            title = (rec.get("review_comment_title") or "").strip()
            when = _olist_date(rec.get("review_creation_date") or "")
            try:
                score = float(rec.get("review_score") or "")
            except ValueError:
                continue
            if not msg:
                s.dropped_empty += 1
                continue
            if when is None or not 1 <= score <= 5:
                continue
            keyed.append((when, Row(f"{title}. {msg}" if title else msg, stars_to_label(score, (1, 5)), i)))
    s.rows, s.dropped_duplicates = dedupe(_in_stream_order(keyed))
    return s


LOADERS: dict[str, Callable[[Path], Stream]] = {
    "alexa": load_alexa_stream, "korean": load_korean_stream, "olist": load_olist_stream}


# ----------------------------------------------------------------------------- the curve

def split_halves(items: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """(seen, later): the first ``len // 2`` items in stream order and the rest."""
    mid = len(items) // 2
    return list(items[:mid]), list(items[mid:])


def curve_sizes(n_seen: int, first: int = FIRST_POINT) -> list[int]:
    """first, 2·first, 4·first, ... below ``n_seen``, then ``n_seen`` itself."""
    out: list[int] = []
    n = first
    while n < n_seen:
        out.append(n)
        n *= 2
    return out + [n_seen] if n_seen > 0 else out


def per_label(labels: Sequence[int]) -> dict[str, int]:
    return {lab: sum(1 for x in labels if x == k) for k, lab in enumerate(LABELS)}


def recalls(gold: Sequence[int], pred: Sequence[int]) -> dict[str, float | None]:
    """Recall of each label (``None`` for a label absent from ``gold``)."""
    out: dict[str, float | None] = {}
    for k, lab in enumerate(LABELS):
        idx = [i for i, g in enumerate(gold) if g == k]
        out[lab] = round(sum(1 for i in idx if pred[i] == k) / len(idx), 4) if idx else None
    return out


def predict_all(model: SentimentModel, examples: Sequence[Example]) -> list[int]:
    return [LABELS.index(model.predict(e.tokens, e.lexicon)[0]) for e in examples]


@dataclass
class Point:
    """One point of the learning curve (the figures are described in the module docstring)."""

    n: int
    labels_seen: dict[str, int]
    gate_model_cv_ba: float
    gate_lexicon_cv_ba: float
    gate_accepted: bool
    gate_reason: str
    default_gate: str  # "accepted" / "rejected" / "waits (n < 200)"
    model_ba_later: float | None  # None: fewer than two labels, no model
    lexicon_ba_later: float
    applied: str  # "model" / "lexicon"
    applied_ba_later: float


def evaluate_point(seen: Sequence[Example], later: Sequence[Example], language: str,
                   settings: SelfTrainSettings) -> tuple[Point, list[int] | None, list[int]]:
    """The curve point of the samples ``seen`` (trained on, gated) measured on ``later`` (only predicted).

    Returns the point, the model's predictions on ``later`` (``None`` without a model) and the
    applied predictions on ``later``."""
    gold = [e.label for e in later]
    lex_pred = [lexicon_label(e) for e in later]
    verdict, model = candidate(seen, language, len(seen), replace(settings, min_samples=1))
    if model is None and len({e.label for e in seen}) >= 2:
        model = train(list(seen), l2=settings.l2)  # the same model candidate() would publish
    model_pred = predict_all(model, later) if model is not None else None
    if len(seen) < settings.min_samples:
        default = f"waits (n < {settings.min_samples})"
    else:
        default = "accepted" if verdict.accepted else "rejected"
    use_model = default == "accepted" and model_pred is not None
    applied_pred = model_pred if use_model and model_pred is not None else lex_pred
    point = Point(
        n=len(seen), labels_seen=verdict.per_label,
        gate_model_cv_ba=round(verdict.model_balanced_accuracy, 4),
        gate_lexicon_cv_ba=round(verdict.lexicon_balanced_accuracy, 4),
        gate_accepted=verdict.accepted, gate_reason=verdict.reason, default_gate=default,
        model_ba_later=round(balanced_accuracy(gold, model_pred), 4) if model_pred is not None else None,
        lexicon_ba_later=round(balanced_accuracy(gold, lex_pred), 4),
        applied="model" if use_model else "lexicon",
        applied_ba_later=round(balanced_accuracy(gold, applied_pred), 4))
    return point, model_pred, applied_pred


def learning_curve(seen: Sequence[Example], later: Sequence[Example], language: str,
                   settings: SelfTrainSettings, first: int = FIRST_POINT) -> dict[str, Any]:
    """The curve over prefixes of ``seen`` (the only examples ever trained on or gated), each point
    measured on ``later``; with the final point's per-label recalls on ``later``."""
    points: list[Point] = []
    model_pred: list[int] | None = None
    applied_pred: list[int] = []
    for n in curve_sizes(len(seen), first):
        point, model_pred, applied_pred = evaluate_point(seen[:n], later, language, settings)
        points.append(point)
    gold = [e.label for e in later]
    final = {
        "n": len(seen),
        "later_labels": per_label(gold),
        "recall_model": recalls(gold, model_pred) if model_pred is not None else None,
        "recall_lexicon": recalls(gold, [lexicon_label(e) for e in later]),
        "recall_applied": recalls(gold, applied_pred) if points else None,
    }
    return {"points": [asdict(p) for p in points], "final": final}


def tuned_l2(seen: Sequence[Example], later: Sequence[Example], settings: SelfTrainSettings,
             grid: Sequence[float]) -> dict[str, Any] | None:
    """L2 chosen by ``settings.folds``-fold cross-validation on ``seen`` only (highest CV balanced
    accuracy, the larger L2 on ties), then the model trained on all of ``seen`` with it, measured on
    ``later``. ``None`` when ``seen`` cannot be cross-validated."""
    labels = [e.label for e in seen]
    counts = per_label(labels)
    if len([c for c in counts.values() if c]) < 2 or min(c for c in counts.values() if c) < settings.folds:
        return None
    cv = {l2: round(cross_validate(seen, settings.folds, l2=l2), 4) for l2 in grid}
    best = max(cv, key=lambda l2: (cv[l2], l2))
    model = train(list(seen), l2=best)
    gold = [e.label for e in later]
    pred = predict_all(model, later)
    return {"cv_ba_by_l2": {str(k): v for k, v in cv.items()}, "l2": best,
            "model_ba_later": round(balanced_accuracy(gold, pred), 4), "recall_model": recalls(gold, pred)}


# ----------------------------------------------------------------------------- one set

def evaluate_set(stream: Stream, settings: SelfTrainSettings, taxonomy: Taxonomy | None, limit: int | None = None,
                 l2_grid: Sequence[float] = DEFAULT_L2_GRID) -> dict[str, Any]:
    """Replay one stream: examples in stream order (the first ``limit`` rows when given), the halves,
    the learning curve and the CV-chosen L2 at the final point."""
    t0 = time.perf_counter()
    rows = stream.rows[:limit] if limit else stream.rows
    out: dict[str, Any] = {
        "title": stream.title, "language": stream.language, "source": stream.source, "label_rule": stream.rule,
        "stream_order": stream.order, "rows": len(rows), "dropped_empty": stream.dropped_empty,
        "dropped_duplicates": stream.dropped_duplicates}
    if len(rows) < 4:
        out["skipped"] = stream.note or f"only {len(rows)} usable rows"
        return out
    examples = [sentiment_example(r.text, r.label, language=stream.language, taxonomy=taxonomy) for r in rows]
    seen, later = split_halves(examples)
    out.update(seen=len(seen), later=len(later), seen_labels=per_label([e.label for e in seen]),
               later_labels=per_label([e.label for e in later]))
    out["curve"] = learning_curve(seen, later, stream.language, settings)
    out["tuned_l2"] = tuned_l2(seen, later, settings, l2_grid) if l2_grid else None
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


# ----------------------------------------------------------------------------- output

def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _labels(d: dict[str, int]) -> str:
    return " / ".join(str(d[lab]) for lab in LABELS)


def render_set(name: str, res: dict[str, Any]) -> str:
    """One set as Markdown: a header line, the curve table and the final point's per-label recalls."""
    head = f"### {res['title']} (`{name}`, language `{res['language']}`)\n\n"
    if "skipped" in res:
        return head + f"Skipped: {res['skipped']}."
    lines = [head + f"{res['rows']} texts in stream order ({res['stream_order']}; {res['dropped_empty']} empty "
             f"and {res['dropped_duplicates']} duplicate texts dropped); seen half {res['seen']} "
             f"(neg / neu / pos {_labels(res['seen_labels'])}), later half {res['later']} "
             f"({_labels(res['later_labels'])}). Label: {res['label_rule']}.\n",
             "| seen n | gate CV BA: model / lexicon | gate verdict | default gate (min 200) | model BA later | "
             "lexicon BA later | applied | applied BA later |",
             "|---:|---:|---|---|---:|---:|---|---:|"]
    for p in res["curve"]["points"]:
        verdict = "accepted" if p["gate_accepted"] else "rejected"
        cv = f"{_f(p['gate_model_cv_ba'])} / {_f(p['gate_lexicon_cv_ba'])}" if p["gate_model_cv_ba"] else \
            f"- / {_f(p['gate_lexicon_cv_ba'])}"
        lines.append(f"| {p['n']} | {cv} | {verdict} | {p['default_gate']} | {_f(p['model_ba_later'])} | "
                     f"{_f(p['lexicon_ba_later'])} | {p['applied']} | {_f(p['applied_ba_later'])} |")
    fin = res["curve"]["final"]
    tuned = res.get("tuned_l2")
    lines += ["", f"Recall per label on the later half, final point (n = {fin['n']}):", "",
              "| label | later texts | model | lexicon | applied |" + (f" model, l2 {tuned['l2']} (CV on seen) |"
                                                                         if tuned else ""),
              "|---|---:|---:|---:|---:|" + ("---:|" if tuned else "")]
    for lab in LABELS:
        rm = fin["recall_model"] or {}
        row = (f"| {lab} | {fin['later_labels'][lab]} | {_f(rm.get(lab))} | {_f(fin['recall_lexicon'][lab])} | "
               f"{_f((fin['recall_applied'] or {}).get(lab))} |")
        lines.append(row + (f" {_f(tuned['recall_model'][lab])} |" if tuned else ""))
    if tuned:
        cv = ", ".join(f"{k} {v:.3f}" for k, v in tuned["cv_ba_by_l2"].items())
        lines.append(f"\nL2 chosen inside the seen half ({cv} CV BA): {tuned['l2']}; that model on the later "
                     f"half: BA {_f(tuned['model_ba_later'])}.")
    return "\n".join(lines)


def render(rep: dict[str, Any]) -> str:
    s = rep["settings"]
    out = [f"Self-training replay (gate: {s['folds']}-fold CV, min_gain {s['min_gain']}, l2 {s['l2']}, "
           f"min_samples {DEFAULT_MIN_SAMPLES} for the default gate)"]
    out += [render_set(name, res) for name, res in rep["sets"].items()]
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated subset of {','.join(SETS)}")
    ap.add_argument("--min-gain", type=float, default=SelfTrainSettings().min_gain)
    ap.add_argument("--folds", type=int, default=SelfTrainSettings().folds)
    ap.add_argument("--limit", type=int, default=None, help="only the first N texts of each stream (quick runs)")
    ap.add_argument("--l2-grid", default=",".join(map(str, DEFAULT_L2_GRID)),
                    help="L2 values tried by CV inside the seen half at the final point ('' to skip)")
    args = ap.parse_args(argv)
    names = [x.strip() for x in args.sets.split(",") if x.strip()]
    bad = [x for x in names if x not in LOADERS]
    if bad or not names:
        print(f"--sets: unknown {bad or 'empty'}; choose from {', '.join(SETS)}", file=sys.stderr)
        return 2
    if not args.data_dir.exists():
        print(f"data directory not found: {args.data_dir}", file=sys.stderr)
        return 2
    settings = SelfTrainSettings(min_gain=args.min_gain, folds=args.folds)
    grid = [float(x) for x in args.l2_grid.split(",") if x.strip()]
    tax = load_taxonomy()
    rep: dict[str, Any] = {"settings": asdict(settings), "first_point": FIRST_POINT, "taxonomy_version": tax.version,
                           "sets": {}}
    for name in names:
        rep["sets"][name] = evaluate_set(LOADERS[name](args.data_dir), settings, tax, args.limit, grid)
    print(json.dumps(rep, ensure_ascii=False, indent=2) if args.json else render(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
