"""Command-line entry points of the classifier (hooked into ``pipeline/cli.py``).

``python -m pipeline classify [--taxonomy FILE]`` — the stable contract other tools use:

* reads JSON Lines on stdin, each ``{"id": str, "text": str, "language"?: str}``;
* writes exactly one JSON line per input line, in order, flushed line by line (works in a
  pipe): ``{"id", "language", "sentiment": {"label", "score"}, "pain_points": [{"id",
  "confidence", "evidence"}]}``;
* a bad line (blank, not JSON, not an object, id or text missing or not a string, language
  not a string, invalid UTF-8, ...) yields ``{"id"?: ..., "error": "..."}`` for that line and
  the stream goes on; the process never crashes on input;
* without ``--taxonomy`` the file named by ``PIPELINE_TAXONOMY_FILE`` is used, else the
  bundled default taxonomy. ``--sentiment-model FILE`` (default ``PIPELINE_SENTIMENT_MODEL``)
  takes the text sentiment from a model made by ``train-sentiment``. Exit code 0; 2 when the
  taxonomy or the model cannot be loaded.

Texts longer than ``MAX_ANALYSED_CHARS`` (20,000) are analysed on their first 20,000
characters (evidence offsets still index the full text).

``python -m pipeline classify-bench`` prints classifier texts/s per language
(:func:`run_classify_bench`); ``python -m pipeline evaluate`` runs the evaluation on the
labelled data in ../shared/data (:func:`run_eval`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
from pathlib import Path
from typing import IO, Any, Iterator

from .classify import classify, load_taxonomy
from .classify.classifier import MAX_ANALYSED_CHARS
from .classify.learned import SentimentModel
from .classify.taxonomy import Taxonomy, TaxonomyError

TAXONOMY_ENV = "PIPELINE_TAXONOMY_FILE"
SENTIMENT_MODEL_ENV = "PIPELINE_SENTIMENT_MODEL"
ROOT = Path(__file__).resolve().parent.parent
MAX_ID_ECHO = 200  # characters of a bad line's id echoed back in its error line

__all__ = [
    "MAX_ANALYSED_CHARS",
    "add_classify_arguments",
    "add_classify_bench_arguments",
    "add_eval_arguments",
    "classify_record",
    "main_classify",
    "run_classify",
    "run_classify_bench",
    "run_eval",
]


# ----------------------------------------------------------------------------- classify

def _lines(stdin: IO) -> Iterator[str | bytes]:
    """Lines of ``stdin`` as they arrive (bytes when the stream has a binary buffer)."""
    src = getattr(stdin, "buffer", None) or stdin
    readline = src.readline
    while True:
        line = readline()
        if not line:
            return
        yield line


def _decode(line: str | bytes) -> str:
    if isinstance(line, bytes):
        line = line.decode("utf-8")  # UnicodeDecodeError handled by the caller
    return line.rstrip("\r\n").lstrip("\ufeff")


def _error(msg: str, ident: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(ident, str):
        out["id"] = ident[:MAX_ID_ECHO]
    elif isinstance(ident, int) and not isinstance(ident, bool) or isinstance(ident, float) and math.isfinite(ident):
        out["id"] = ident
    out["error"] = msg
    return out


def classify_record(line: str, taxonomy: Taxonomy, sentiment_model: SentimentModel | None = None) -> dict[str, Any]:
    """One input line (without its newline) -> one output object (a result or an error)."""
    if not line.strip():
        return _error("empty line: expected a JSON object {\"id\": str, \"text\": str}")
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return _error(f"invalid JSON: {exc}"[:300])
    if not isinstance(rec, dict):
        return _error(f"expected a JSON object, got {type(rec).__name__}")
    ident = rec.get("id")
    if "id" not in rec:
        return _error("missing field 'id'")
    if not isinstance(ident, str):
        return _error(f"field 'id' must be a string, got {type(ident).__name__}", ident)
    if "text" not in rec:
        return _error("missing field 'text'", ident)
    text = rec["text"]
    if not isinstance(text, str):
        return _error(f"field 'text' must be a string, got {type(text).__name__}", ident)
    lang = rec.get("language")
    if lang is not None and (not isinstance(lang, str) or not lang.strip()):
        return _error("field 'language' must be a non-empty string when given", ident)
    try:
        c = classify(text, language=lang.strip().lower() if lang else None, taxonomy=taxonomy,
                     sentiment_model=sentiment_model)
    except Exception as exc:  # never crash the stream on one text
        return _error(f"classification failed: {type(exc).__name__}: {exc}"[:300], ident)
    return {
        "id": ident,
        "language": c.language,
        "sentiment": c.sentiment.to_dict(),
        "pain_points": [p.to_dict() for p in c.pain_points],
    }


def _writer(stdout: IO):  # noqa: ANN202
    """A function writing one JSON line and flushing (UTF-8 bytes when possible)."""
    buf = getattr(stdout, "buffer", None)
    if buf is not None:
        def write(obj: dict[str, Any]) -> None:
            buf.write(json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n")
            buf.flush()
    else:
        def write(obj: dict[str, Any]) -> None:
            stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
            stdout.flush()
    return write


def load_cli_taxonomy(path: str | None, prog: str, stderr: IO) -> Taxonomy | None:
    """The taxonomy of a command: ``path``, else ``$PIPELINE_TAXONOMY_FILE``, else the bundled one;
    None after one error line on ``stderr`` when it cannot be loaded."""
    path = path or os.environ.get(TAXONOMY_ENV) or None
    try:
        return load_taxonomy(path)
    except (TaxonomyError, OSError, ValueError) as exc:
        print(f"{prog}: cannot load taxonomy {path!r}: {exc}", file=stderr)
        return None


def run_classify(stdin: IO, stdout: IO, taxonomy_path: str | None = None, stderr: IO | None = None,
                 model_path: str | None = None) -> int:
    """``python -m pipeline classify [--taxonomy FILE] [--sentiment-model FILE]`` (contract above)."""
    stderr = stderr if stderr is not None else sys.stderr
    tax = load_cli_taxonomy(taxonomy_path, "classify", stderr)
    if tax is None:
        return 2
    model_path = model_path or os.environ.get(SENTIMENT_MODEL_ENV) or None
    try:
        model = SentimentModel.load(model_path) if model_path else None
    except ValueError as exc:
        print(f"classify: {exc}", file=stderr)
        return 2
    write = _writer(stdout)
    try:
        for raw in _lines(stdin):
            try:
                line = _decode(raw)
            except UnicodeDecodeError as exc:
                write(_error(f"invalid UTF-8: {exc}"[:300]))
                continue
            write(classify_record(line, tax, model))
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stdout.fileno())
        except (OSError, AttributeError, ValueError):
            pass
        return 0
    except KeyboardInterrupt:
        return 130
    return 0


# ----------------------------------------------------------------------------- bench / evaluate

def _bench_module(name: str):  # noqa: ANN202
    """Load bench/<name>.py (the bench folder is not a package)."""
    path = ROOT / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses in the module need it registered
    spec.loader.exec_module(mod)
    return mod


def _run_bench_main(name: str, argv: list[str], stdout: IO | None) -> int:
    mod = _bench_module(name)
    if stdout is None:
        return int(mod.main(argv))
    import contextlib

    with contextlib.redirect_stdout(stdout):
        return int(mod.main(argv))


def run_classify_bench(args: argparse.Namespace | list[str] | None = None, stdout: IO | None = None) -> int:
    """``python -m pipeline classify-bench [--seconds S] [--lang en|ko]... [--json] [--data-dir D]``:
    classifier texts/s per language on real texts (bench/classify_speed.py).

    ``args``: a namespace from a parser set up by :func:`add_classify_bench_arguments`, or argv."""
    if isinstance(args, argparse.Namespace):
        argv = ["--seconds", str(args.seconds)]
        for lang in args.lang or ():
            argv += ["--lang", lang]
        if args.json:
            argv.append("--json")
        if args.data_dir:
            argv += ["--data-dir", str(args.data_dir)]
        if getattr(args, "sentiment_model", None):
            argv += ["--sentiment-model", str(args.sentiment_model)]
    else:
        argv = list(args or [])
    return _run_bench_main("classify_speed", argv, stdout)


def run_eval(args: argparse.Namespace | list[str] | None = None, stdout: IO | None = None) -> int:
    """``python -m pipeline evaluate [--json] [--no-speed] [--errors SET] [--half H] [--data-dir D]``:
    per-class P/R/F1, micro-F1, sentiment accuracy and balanced accuracy on ../shared/data
    (all rows, even and odd halves), then a Markdown summary table (bench/eval_classifier.py).

    ``evaluate --self-train [--json] [--data-dir D]``: instead, the self-trained sentiment replayed
    in stream order, learning curves per data set (bench/self_train_eval.py).

    ``args``: a namespace from a parser set up by :func:`add_eval_arguments`, or argv."""
    if isinstance(args, argparse.Namespace) and getattr(args, "self_train", False):
        argv = ["--json"] if args.json else []
        if args.data_dir:
            argv += ["--data-dir", str(args.data_dir)]
        return _run_bench_main("self_train_eval", argv, stdout)
    if isinstance(args, list) and "--self-train" in args:
        return _run_bench_main("self_train_eval", [a for a in args if a != "--self-train"], stdout)
    if isinstance(args, argparse.Namespace):
        argv = []
        if args.json:
            argv.append("--json")
        if args.no_speed:
            argv.append("--no-speed")
        if args.errors:
            argv += ["--errors", args.errors, "--half", args.half, "--max-errors", str(args.max_errors)]
        if args.data_dir:
            argv += ["--data-dir", str(args.data_dir)]
    else:
        argv = list(args or [])
    return _run_bench_main("eval_classifier", argv, stdout)


# ----------------------------------------------------------------------------- argparse glue

def add_classify_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--taxonomy", metavar="FILE", default=None,
                   help=f"taxonomy YAML file (default: ${TAXONOMY_ENV}, else the bundled default)")
    p.add_argument("--sentiment-model", metavar="FILE", default=None,
                   help=f"sentiment model from train-sentiment (default: ${SENTIMENT_MODEL_ENV}, else none)")
    return p


def add_classify_bench_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per language (default 3)")
    p.add_argument("--lang", action="append", choices=["en", "ko"], help="only these languages (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--data-dir", default=None, help="labelled data (default ../shared/data)")
    p.add_argument("--sentiment-model", default=None, metavar="FILE",
                   help="also time each language the model covers (en, ko) with this sentiment model")
    return p


def add_eval_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--no-speed", action="store_true", help="skip the throughput part")
    p.add_argument("--errors", default=None, choices=["korean", "laptops", "restaurants", "korean-sentiment",
                                                      "laptops-sentiment", "alexa-sentiment"],
                   help="also list misclassified texts of this set")
    p.add_argument("--half", default="even", choices=["all", "even", "odd"], help="half whose errors are listed")
    p.add_argument("--max-errors", type=int, default=60)
    p.add_argument("--data-dir", default=None, help="labelled data (default ../shared/data)")
    p.add_argument("--self-train", action="store_true",
                   help="instead: replay the scored feedback in stream order and print the self-trained "
                        "sentiment's learning curves (gate verdict, model / lexicon / applied balanced "
                        "accuracy on the later half; bench/self_train_eval.py)")
    return p


def main_classify(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m pipeline.classify_cli [--taxonomy FILE]``."""
    p = add_classify_arguments(argparse.ArgumentParser(
        prog="python -m pipeline classify",
        description="Classify JSON Lines {id, text, language?} from stdin; one JSON line out per line in."))
    args = p.parse_args(argv)
    return run_classify(sys.stdin, sys.stdout, args.taxonomy, model_path=args.sentiment_model)


if __name__ == "__main__":
    raise SystemExit(main_classify())
