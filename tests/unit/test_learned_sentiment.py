"""The optional learned sentiment model (pipeline/classify/learned.py) and `train-sentiment`.

Training data: the labelled review files in ../shared/data (evaluation and tests only, never
shipped: the models made here live in tmp_path).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from pipeline.classify import classify
from pipeline.classify.classifier import sentiment_example
from pipeline.classify.learned import (
    LABELS,
    SentimentModel,
    SentimentModelError,
    balanced_accuracy,
    cross_validate,
    folds,
    train,
)
from pipeline.cli import main as cli_main
from pipeline.sentiment_training import lexicon_balanced_accuracy, parse_line, stars_to_label

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
ALEXA = DATA / "amazon_alexa_reviews" / "reviews_dev.tsv"


def _alexa_rows() -> list[tuple[str, int]]:
    if not ALEXA.exists():
        pytest.skip("../shared/data not present")
    with ALEXA.open(encoding="utf-8", newline="") as fh:
        return [((r.get("verified_reviews") or "").strip(), int(r["rating"]))
                for r in csv.DictReader(fh, delimiter="\t") if (r.get("verified_reviews") or "").strip()]


@pytest.fixture(scope="module")
def alexa_examples():
    return [sentiment_example(t, stars_to_label(s, (1, 5)), language="en") for t, s in _alexa_rows()]


@pytest.fixture(scope="module")
def alexa_model(alexa_examples):
    return train(alexa_examples)


def test_cross_validated_model_beats_the_lexicon_on_real_reviews(alexa_examples):
    # measured: model 0.664-0.678, lexicon 0.610 (5 folds, 1,537 Alexa reviews, stars as labels)
    model_ba = cross_validate(alexa_examples, 5)
    lex_ba = lexicon_balanced_accuracy(alexa_examples)
    assert model_ba > lex_ba + 0.02, (model_ba, lex_ba)


def test_training_is_deterministic_and_the_file_round_trips(alexa_examples, alexa_model):
    again = train(alexa_examples)
    assert again.to_json() == alexa_model.to_json()
    loaded = SentimentModel.from_json(alexa_model.to_json())
    for e in alexa_examples[:200]:
        assert loaded.predict(e.tokens, e.lexicon)[0] == alexa_model.predict(e.tokens, e.lexicon)[0]
    assert loaded.languages == frozenset({"en"})
    assert loaded.meta["examples"] == len(alexa_examples)


def test_model_changes_sentiment_only_and_only_in_its_languages(alexa_model):
    text = "The speaker stopped working after two days and support never called back."
    plain, learned = classify(text), classify(text, sentiment_model=alexa_model)
    assert [p.to_dict() for p in learned.pain_points] == [p.to_dict() for p in plain.pain_points]
    assert learned.sentiment.label == "negative" and -1.0 <= learned.sentiment.score <= 1.0
    korean = "배송이 너무 늦어요"
    assert classify(korean, sentiment_model=alexa_model).sentiment == classify(korean).sentiment


def test_a_numeric_score_still_weighs_in(alexa_model):
    text = "Love it, sounds great and works every day."
    assert classify(text, sentiment_model=alexa_model).sentiment.label == "positive"
    # one star with praise text: the numeric score pulls the blend down (same rule as the lexicon)
    blended = classify(text, score=1, sentiment_model=alexa_model).sentiment
    assert blended.score < classify(text, sentiment_model=alexa_model).sentiment.score
    assert blended.label != "positive"


@pytest.mark.parametrize(
    "doc, reason",
    [
        (b"not json", "not JSON"),
        (b'{"format": "something-else"}', "not a sentiment model file"),
        (b'{"format": "feedback-pipeline/sentiment-model", "format_version": 99}', "format_version 99"),
        (b'{"format": "feedback-pipeline/sentiment-model", "format_version": 1, "labels": ["a", "b", "c"]}',
         "labels must be"),
        (b'{"format": "feedback-pipeline/sentiment-model", "format_version": 1, '
         b'"labels": ["negative", "neutral", "positive"], "languages": [], "weights": {}, "bias": [0, 0, 0]}',
         "languages"),
        (b'{"format": "feedback-pipeline/sentiment-model", "format_version": 1, '
         b'"labels": ["negative", "neutral", "positive"], "languages": ["en"], "weights": {"w:x": [1, 2]}, '
         b'"bias": [0, 0, 0]}', "list of 3 finite numbers"),
        (b'{"format": "feedback-pipeline/sentiment-model", "format_version": 1, '
         b'"labels": ["negative", "neutral", "positive"], "languages": ["en"], "weights": {}, "bias": [0, "x", 0]}',
         "bias must be"),
    ],
)
def test_bad_model_files_are_clear_errors(doc, reason):
    with pytest.raises(SentimentModelError, match=reason):
        SentimentModel.from_json(doc)


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(SentimentModelError, match="cannot read"):
        SentimentModel.load(tmp_path / "nope.json")


def test_training_refuses_one_label_only():
    ex = [sentiment_example("great", "positive"), sentiment_example("love it", "positive")]
    with pytest.raises(ValueError, match="two labels"):
        train(ex)


def test_folds_are_stratified_and_cover_every_example():
    labels = [0] * 10 + [1] * 5 + [2] * 20
    fs = folds(labels, 5)
    assert sorted(i for f in fs for i in f) == list(range(35))
    for f in fs:
        assert [labels[i] for i in f].count(1) == 1 and [labels[i] for i in f].count(2) == 4


def test_balanced_accuracy_is_mean_recall():
    assert balanced_accuracy([0, 0, 1, 2], [0, 1, 1, 2]) == pytest.approx((0.5 + 1 + 1) / 3)


@pytest.mark.parametrize("stars, label", [(1, "negative"), (2, "negative"), (3, "neutral"), (4, "positive"),
                                          (5, "positive")])
def test_stars_map_like_the_evaluation(stars, label):
    assert stars_to_label(stars, (1, 5)) == label


def test_other_scales_split_40_20_40():
    assert [stars_to_label(x, (0, 10)) for x in (0, 3, 4, 6, 7, 10)] == [
        "negative", "negative", "neutral", "neutral", "positive", "positive"]


@pytest.mark.parametrize(
    "line, reason",
    [(b"nope", "invalid JSON"), (b"[1]", "JSON object"), (b'{"text": ""}', "non-empty string"),
     (b'{"text": "ok"}', "'label' or 'stars'"), (b'{"text": "ok", "label": "meh"}', "must be one of"),
     (b'{"text": "ok", "stars": 7}', "outside the scale"), (b'{"text": "ok", "stars": true}', "must be a number"),
     (b'{"text": "ok", "label": "neutral", "language": 3}', "'language'")],
)
def test_bad_training_lines_say_why(line, reason):
    with pytest.raises(ValueError, match=reason):
        parse_line(line, (1.0, 5.0))


def test_train_sentiment_command_end_to_end(tmp_path, capsys):
    rows = _alexa_rows()
    src = tmp_path / "train.jsonl"
    with src.open("w", encoding="utf-8") as fh:
        for text, stars in rows:
            fh.write(json.dumps({"text": text, "stars": stars}) + "\n")
        fh.write("not json\n")
        fh.write(json.dumps({"text": "fine", "label": "bogus"}) + "\n")
    out = tmp_path / "model.json"
    assert cli_main(["train-sentiment", "--input", str(src), "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert f"examples: {len(rows)}" in cap.out and "bad lines: 2" in cap.out
    assert "cross-validated balanced accuracy: model" in cap.out
    assert f"line {len(rows) + 1}: invalid JSON" in cap.err and f"line {len(rows) + 2}:" in cap.err
    doc = orjson.loads(out.read_bytes())
    assert doc["meta"]["cv"]["balanced_accuracy"] > doc["meta"]["cv"]["lexicon_balanced_accuracy"]

    # the classify contract with the model: same fields, one line per line
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "classify", "--sentiment-model", str(out)],
        input='{"id": "a", "text": "Stopped working after a week, returning it."}\nnot json\n',
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    first, second = (json.loads(x) for x in proc.stdout.splitlines())
    assert first["id"] == "a" and first["sentiment"]["label"] == "negative"
    assert set(first) == {"id", "language", "sentiment", "pain_points"} and "error" in second


def test_train_sentiment_needs_two_labels(tmp_path, capsys):
    src = tmp_path / "one.jsonl"
    src.write_text('{"text": "great", "label": "positive"}\n{"text": "love it", "stars": 5}\n')
    assert cli_main(["train-sentiment", "--input", str(src), "--out", str(tmp_path / "m.json")]) == 1
    assert "at least two labels" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_worker_refuses_a_bad_model_before_touching_kafka(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    env = {"PATH": "/usr/bin:/bin", "PIPELINE_SENTIMENT_MODEL": str(bad),
           "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pipeline", "worker"], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 2
    assert "not a sentiment model file" in proc.stderr and "Traceback" not in proc.stderr


def test_labels_are_the_three_of_the_contract():
    assert LABELS == ("negative", "neutral", "positive")


def test_classify_bench_times_the_model_too(tmp_path, alexa_model):
    import io

    from pipeline.classify_cli import run_classify_bench

    path = tmp_path / "m.json"
    path.write_bytes(alexa_model.to_json())
    out = io.StringIO()
    assert run_classify_bench(["--seconds", "0.05", "--lang", "en", "--json", "--sentiment-model", str(path)], out) == 0
    res = json.loads(out.getvalue())
    assert res["en (with sentiment model)"]["texts_per_s"] > 0
