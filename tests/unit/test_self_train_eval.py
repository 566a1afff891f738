"""The self-training replay (bench/self_train_eval.py, ``python -m pipeline evaluate --self-train``).

Stream-order loaders on small files written here (and on ../shared/data when present), the
curve's points, that the later half is never trained on, and a small end-to-end run.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

import pipeline.classify.learned as learned
import pipeline.classify.selftrain as selftrain
from pipeline import classify_cli
from pipeline.classify.classifier import sentiment_example
from pipeline.classify.selftrain import SelfTrainSettings

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
KOREAN = DATA / "korean_smartstore_reviews" / "reviews_dev.csv"
ALEXA = DATA / "amazon_alexa_reviews" / "reviews_dev.tsv"


@pytest.fixture(scope="module")
def ste():
    spec = importlib.util.spec_from_file_location("self_train_eval", ROOT / "bench" / "self_train_eval.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- loaders

def test_alexa_stream_is_in_date_order_with_ties_by_file_order(ste, tmp_path):
    _write(tmp_path / "amazon_alexa_reviews" / "reviews_dev.tsv",
           "rating\tdate\tvariation\tverified_reviews\tfeedback\n"
           "5\t31-Jul-18\tx\tlate love\t1\n"      # 0
           "1\t2-Jun-18\tx\tbroke quickly\t0\n"   # 1
           "3\t2-Jun-18\tx\tit is ok\t1\n"        # 2: same day as 1, after it
           "4\t\tx\tno date\t1\n"                 # 3: no date: dropped
           "2\t15-May-18\tx\tmeh bad\t0\n"        # 4
           "5\t1-Jul-18\tx\t  \t1\n"              # 5: empty
           "5\t3-Jul-18\tx\tbroke quickly\t1\n")  # 6: duplicate of 1, later in the stream
    s = ste.load_alexa_stream(tmp_path)
    assert [r.index for r in s.rows] == [4, 1, 2, 0]
    assert [r.label for r in s.rows] == ["negative", "negative", "neutral", "positive"]
    assert (s.dropped_empty, s.dropped_duplicates, s.language) == (1, 1, "en")


def test_olist_stream_skips_empty_messages_and_is_in_date_order(ste, tmp_path):
    _write(tmp_path / "olist_subset_5k" / "olist_order_reviews_dataset.csv",
           "review_id,order_id,review_score,review_comment_title,review_comment_message,review_creation_date\n"
           "a,o1,5,Ótimo,chegou rápido,2018-03-02 00:00:00\n"        # 0
           "b,o2,1,,não recebi o produto,2017-11-20 00:00:00\n"      # 1
           "c,o3,4,,,2017-01-01 00:00:00\n"                          # 2: no message: skipped
           "d,o4,3,Nada,\"\",2017-05-01 00:00:00\n"                  # 3: title only: skipped
           "e,o5,3,,produto ok,2017-11-20 00:00:00\n"                # 4: same day as 1, after it
           "f,o6,2,,demorou muito,2/1/2017 0:00\n")                  # 5: the subset's M/D/YYYY format
    s = ste.load_olist_stream(tmp_path)
    assert [r.index for r in s.rows] == [5, 1, 4, 0]
    assert [r.label for r in s.rows] == ["negative", "negative", "neutral", "positive"]
    assert s.rows[-1].text == "Ótimo. chegou rápido"
    assert (s.dropped_empty, s.language) == (2, "pt")


def test_olist_file_without_comment_text_yields_a_note(ste, tmp_path):
    _write(tmp_path / "olist_subset_5k" / "olist_order_reviews_dataset.csv",
           "review_pk,order_id,review_score,review_creation_date,review_answer_timestamp\n"
           "1,o1,5,4/8/2017 0:00,4/13/2017 16:42\n")
    s = ste.load_olist_stream(tmp_path)
    assert s.rows == [] and "review_comment_message" in s.note
    res = ste.evaluate_set(s, SelfTrainSettings(), None)
    assert "skipped" in res and "curve" not in res


@pytest.mark.skipif(not KOREAN.exists(), reason="shared data missing")
def test_korean_stream_is_file_order_with_the_eval_labels(ste):
    s = ste.load_korean_stream(DATA)
    items = {it.index: it for it in ste.load_korean(DATA)}
    assert [r.index for r in s.rows] == sorted(r.index for r in s.rows)
    assert all(r.label == items[r.index].sentiment for r in s.rows)
    assert len(s.rows) + s.dropped_duplicates + s.dropped_empty == 315


@pytest.mark.skipif(not ALEXA.exists(), reason="shared data missing")
def test_real_alexa_stream_counts(ste):
    s = ste.load_alexa_stream(DATA)
    assert (len(s.rows), s.dropped_empty, s.dropped_duplicates) == (1492, 38, 45)
    assert len({r.text for r in s.rows}) == len(s.rows)


# ----------------------------------------------------------------------------- the curve

def test_curve_points(ste):
    assert ste.curve_sizes(746) == [50, 100, 200, 400, 746]
    assert ste.curve_sizes(400) == [50, 100, 200, 400]
    assert ste.curve_sizes(157) == [50, 100, 157]
    assert ste.curve_sizes(30) == [30]
    assert ste.curve_sizes(0) == []
    seen, later = ste.split_halves(list(range(11)))
    assert seen == [0, 1, 2, 3, 4] and later == list(range(5, 11))


POS = ["love it, works great", "excellent sound and easy setup", "great value, very happy", "perfect, amazing"]
NEG = ["stopped working after a week", "terrible, returned it", "broken and useless", "awful support, refund"]
NEU = ["it is ok I guess", "average, nothing special", "fine for the price", "does the job mostly"]


def _examples(n: int, tag: str) -> list:
    texts = [(POS, "positive"), (NEG, "negative"), (NEU, "neutral")]
    return [sentiment_example(f"{texts[i % 3][0][i % 4]} {tag}{i}", texts[i % 3][1], language="en")
            for i in range(n)]


def test_the_later_half_is_never_trained_on(ste, monkeypatch):
    seen, later = _examples(60, "s"), _examples(45, "l")
    later_ids = {id(e) for e in later}
    seen_ids = {id(e) for e in seen}
    trained: list[list] = []
    real_train = learned.train

    def recording_train(examples, **kw):
        trained.append(list(examples))
        return real_train(examples, **kw)

    for mod in (ste, selftrain, learned):
        monkeypatch.setattr(mod, "train", recording_train)
    curve = ste.learning_curve(seen, later, "en", SelfTrainSettings(folds=3), first=20)
    tuned = ste.tuned_l2(seen, later, SelfTrainSettings(folds=3), [0.03, 0.1])
    assert [p["n"] for p in curve["points"]] == [20, 40, 60]
    assert tuned is not None and trained
    assert all(id(e) in seen_ids and id(e) not in later_ids for batch in trained for e in batch)
    # the points are prefixes of the seen half, measured on the whole later half
    assert max(len(b) for b in trained) == 60
    assert sum(curve["final"]["later_labels"].values()) == 45


def test_default_gate_waits_below_min_samples(ste):
    seen, later = _examples(60, "s"), _examples(30, "l")
    point, _, applied = ste.evaluate_point(seen, later, "en", SelfTrainSettings(folds=3))
    assert point.default_gate.startswith("waits") and point.applied == "lexicon"
    assert point.applied_ba_later == point.lexicon_ba_later and len(applied) == 30


# ----------------------------------------------------------------------------- end to end

@pytest.mark.skipif(not KOREAN.exists(), reason="shared data missing")
def test_main_json_on_korean(ste, capsys):
    assert ste.main(["--sets", "korean", "--json", "--limit", "140", "--l2-grid", "0.03,0.1"]) == 0
    rep = json.loads(capsys.readouterr().out)
    res = rep["sets"]["korean"]
    assert (res["seen"], res["later"]) == (70, 70)
    points = res["curve"]["points"]
    assert [p["n"] for p in points] == [50, 70]
    for p in points:
        for key in ("gate_model_cv_ba", "gate_lexicon_cv_ba", "model_ba_later", "lexicon_ba_later",
                    "applied_ba_later"):
            assert 0.0 <= p[key] <= 1.0, (key, p)
        assert p["default_gate"].startswith("waits") and p["applied"] == "lexicon"
    fin = res["curve"]["final"]
    assert all(0.0 <= v <= 1.0 for v in fin["recall_model"].values() if v is not None)
    assert 0.0 <= res["tuned_l2"]["model_ba_later"] <= 1.0


def test_main_rejects_an_unknown_set(ste, capsys):
    assert ste.main(["--sets", "nope"]) == 2


def test_evaluate_self_train_is_wired(monkeypatch):
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(classify_cli, "_run_bench_main", lambda name, argv, stdout: calls.append((name, argv)) or 0)
    p = classify_cli.add_eval_arguments(argparse.ArgumentParser())
    assert classify_cli.run_eval(p.parse_args(["--self-train", "--json", "--data-dir", "/d"])) == 0
    assert classify_cli.run_eval(p.parse_args(["--json"])) == 0
    assert classify_cli.run_eval(["--self-train", "--sets", "korean"], io.StringIO()) == 0
    assert calls[0] == ("self_train_eval", ["--json", "--data-dir", "/d"])
    assert calls[1][0] == "eval_classifier"
    assert calls[2] == ("self_train_eval", ["--sets", "korean"])


# ----------------------------------------------------------------------------- classify-bench with a model

@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("classify_speed", ROOT / "bench" / "classify_speed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_classify_speed_times_the_analysis_not_the_memory_of_recent_texts(speed, monkeypatch):
    from pipeline.classify import classifier
    from pipeline.classify.taxonomy import default_taxonomy

    tax = default_taxonomy()
    text = "배송이 너무 늦었어요"
    classifier.classify(text, taxonomy=tax)  # remembered now
    calls: list = []
    real = classifier._analyse
    monkeypatch.setattr(classifier, "_analyse", lambda *a: calls.append(a) or real(*a))
    with speed.analysis_memory_off(tax) as off:
        classifier.classify(text, taxonomy=tax)
        classifier.classify(text, taxonomy=tax)
    assert off and len(calls) == 2
    classifier.classify(text, taxonomy=tax)  # the memory is back, with the text still in it
    assert len(calls) == 2


def test_classify_speed_times_a_korean_model_on_korean(speed, tmp_path):
    if not KOREAN.exists():
        pytest.skip("shared data missing")
    ko = [sentiment_example(t, lab, language="ko") for t, lab in
          [("배송이 빨라요 좋아요", "positive"), ("품질이 별로예요 실망", "negative"), ("그냥 그래요", "neutral")] * 3]
    model = learned.train(ko, min_count=1)
    path = tmp_path / "ko.json"
    path.write_bytes(model.to_json())
    out = io.StringIO()
    assert classify_cli.run_classify_bench(["--seconds", "0.05", "--lang", "ko", "--json", "--sentiment-model",
                                            str(path)], out) == 0
    res = json.loads(out.getvalue())
    assert res["ko (with sentiment model)"]["texts_per_s"] > 0 and "en (with sentiment model)" not in res
