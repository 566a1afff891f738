"""``python -m pipeline train-sentiment``: fit a sentiment model to your own labelled feedback.

Input: JSON Lines, one example per line, either
``{"text": str, "label": "negative" | "neutral" | "positive", "language"?: str}`` or
``{"text": str, "stars": number, "language"?: str}`` (stars on ``--scale`` min,max, default 1,5:
the lower 40 % of the scale negative, the middle 20 % neutral, the upper 40 % positive, i.e.
1-2 / 3 / 4-5 stars). A bad line is reported on stderr with its line number and skipped; the
run fails (exit 1) only when no usable example is left or the examples hold fewer than two
labels.

Output: the model file (JSON; ``--out``), and a report on stdout: examples per label, the
k-fold cross-validated balanced accuracy of the model and, on the same folds, of the lexicon
classifier alone, so the gain on *your* data is measured before the model is used. Use the
file with ``PIPELINE_SENTIMENT_MODEL=FILE`` (worker) or ``classify --sentiment-model FILE``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import IO, Any

import orjson

from .classify.classifier import sentiment_example
from .classify.learned import LABELS, Example, balanced_accuracy, cross_validate, stars_to_label, train
from .classify_cli import load_cli_taxonomy


def parse_line(line: bytes, scale: tuple[float, float]) -> tuple[str, str, str | None]:
    """(text, label, language) of one input line; ``ValueError`` with the reason otherwise."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("field 'text' must be a non-empty string")
    lang = rec.get("language")
    if lang is not None and (not isinstance(lang, str) or not lang.strip()):
        raise ValueError("field 'language' must be a non-empty string when given")
    if "label" in rec:
        label = rec["label"]
        if label not in LABELS:
            raise ValueError(f"field 'label' must be one of {', '.join(LABELS)}")
    elif "stars" in rec:
        stars = rec["stars"]
        if isinstance(stars, bool) or not isinstance(stars, (int, float)) or not math.isfinite(stars):
            raise ValueError("field 'stars' must be a number")
        if not scale[0] <= stars <= scale[1]:
            raise ValueError(f"field 'stars' {stars} is outside the scale {scale[0]:g}..{scale[1]:g}")
        label = stars_to_label(float(stars), scale)
    else:
        raise ValueError("each line needs 'label' or 'stars'")
    return text, label, lang.strip().lower() if lang else None


def read_examples(stream: IO[bytes], scale: tuple[float, float], taxonomy: Any, stderr: IO[str]) -> tuple[list[Example], int]:
    """Examples of a JSON Lines stream and the number of bad lines (each reported on ``stderr``)."""
    examples: list[Example] = []
    bad = 0
    for n, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        try:
            text, label, lang = parse_line(raw, scale)
        except ValueError as exc:
            bad += 1
            print(f"train-sentiment: line {n}: {exc}"[:300], file=stderr)
            continue
        examples.append(sentiment_example(text, label, language=lang, taxonomy=taxonomy))
    return examples, bad


def lexicon_balanced_accuracy(examples: list[Example]) -> float:
    """The lexicon classifier's balanced accuracy on the examples (it needs no training)."""
    pred = [LABELS.index(_lexicon_label(e)) for e in examples]
    return balanced_accuracy([e.label for e in examples], pred)


def _lexicon_label(e: Example) -> str:
    for f, _ in e.lexicon:
        if f.startswith("lex:label="):
            return f.split("=", 1)[1]
    return "neutral"


def _scale(value: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("--scale takes MIN,MAX, e.g. 1,5 or 0,10") from None
    if not hi > lo:
        raise argparse.ArgumentTypeError("--scale MAX must be greater than MIN")
    return lo, hi


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--input", metavar="FILE", default="-", help="JSON Lines examples (default: stdin)")
    p.add_argument("--out", metavar="FILE", required=True, help="where to write the model (JSON)")
    p.add_argument("--scale", type=_scale, default=(1.0, 5.0), metavar="MIN,MAX",
                   help="scale of 'stars' (default 1,5; NPS: 0,10)")
    p.add_argument("--cv", type=int, default=5, metavar="K", help="folds of the cross-validation (0: skip; default 5)")
    p.add_argument("--l2", type=float, default=0.03, help="L2 regularisation (default 0.03)")
    p.add_argument("--min-count", type=int, default=2, help="keep words seen in at least this many texts (default 2)")
    p.add_argument("--taxonomy", metavar="FILE", default=None,
                   help="taxonomy whose lexicon feeds the model (default: $PIPELINE_TAXONOMY_FILE, else bundled)")
    return p


def run(args: argparse.Namespace, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    taxonomy = load_cli_taxonomy(args.taxonomy, "train-sentiment", stderr)
    if taxonomy is None:
        return 2
    try:
        if args.input == "-":
            examples, bad = read_examples(sys.stdin.buffer, args.scale, taxonomy, stderr)
        else:
            with open(args.input, "rb") as fh:
                examples, bad = read_examples(fh, args.scale, taxonomy, stderr)
    except OSError as exc:
        print(f"train-sentiment: cannot read {args.input}: {exc.strerror}", file=stderr)
        return 2
    per_label = {lab: sum(1 for e in examples if e.label == i) for i, lab in enumerate(LABELS)}
    print(f"examples: {len(examples)} ({', '.join(f'{k} {v}' for k, v in per_label.items())}); bad lines: {bad}",
          file=stdout)
    if sum(1 for v in per_label.values() if v) < 2:
        print("train-sentiment: need examples of at least two labels", file=stderr)
        return 1
    kw = {"l2": args.l2, "min_count": args.min_count}
    meta: dict[str, Any] = {"taxonomy_version": taxonomy.version, "bad_lines": bad}
    smallest = min(v for v in per_label.values() if v)
    if args.cv >= 2 and smallest >= args.cv:
        model_ba = cross_validate(examples, args.cv, **kw)
        lex_ba = lexicon_balanced_accuracy(examples)
        meta["cv"] = {"folds": args.cv, "balanced_accuracy": round(model_ba, 4),
                      "lexicon_balanced_accuracy": round(lex_ba, 4)}
        print(f"{args.cv}-fold cross-validated balanced accuracy: model {model_ba:.3f}, lexicon alone {lex_ba:.3f}",
              file=stdout)
        if model_ba < lex_ba:
            print("note: on this data the model does worse than the lexicon alone; more examples or a larger "
                  "--l2 may help", file=stdout)
    elif args.cv >= 2:
        print(f"cross-validation skipped: the rarest label has {smallest} examples (< {args.cv} folds)", file=stdout)
    model = train(examples, meta=meta, **kw)
    out = Path(args.out)
    try:
        out.write_bytes(model.to_json())
    except OSError as exc:
        print(f"train-sentiment: cannot write {out}: {exc.strerror}", file=stderr)
        return 2
    print(f"model: {out} ({len(model.weights)} features, languages {', '.join(sorted(model.languages))})",
          file=stdout)
    return 0


__all__ = ["add_arguments", "lexicon_balanced_accuracy", "parse_line", "read_examples", "run", "stars_to_label"]
