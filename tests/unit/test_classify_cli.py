"""The classify CLI contract: JSON Lines in, exactly one JSON line out per line, in order.

Most tests call ``run_classify`` with in-memory streams; one runs the real
``python -m pipeline classify`` in a subprocess through a pipe (skipped until the
command is wired into pipeline/cli.py).
"""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.classify.taxonomy import DEFAULT_TAXONOMY_PATH
from pipeline.classify_cli import classify_record, run_classify, run_classify_bench
from pipeline.classify import default_taxonomy

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
RESULT_KEYS = {"id", "language", "sentiment", "pain_points"}


def run(lines: list[str] | str, taxonomy: str | None = None) -> tuple[int, list[dict]]:
    data = lines if isinstance(lines, str) else "".join(line + "\n" for line in lines)
    out = io.StringIO()
    rc = run_classify(io.StringIO(data), out, taxonomy)
    return rc, [json.loads(x) for x in out.getvalue().splitlines()]


def rec(ident: str, text: str, **kw) -> str:
    return json.dumps({"id": ident, "text": text, **kw}, ensure_ascii=False)


def test_valid_lines_give_the_contract_shape_in_order():
    rc, out = run([
        rec("a", "The delivery was late and the box arrived damaged."),
        rec("b", "배송이 너무 늦어요"),
        rec("c", "Great price, fast shipping, I love it!"),
        rec("d", "The price is not cheap at all.", language="en"),
    ])
    assert rc == 0
    assert [o["id"] for o in out] == ["a", "b", "c", "d"]
    for o in out:
        assert set(o) == RESULT_KEYS
        assert set(o["sentiment"]) == {"label", "score", "source"}
        assert o["sentiment"]["label"] in ("negative", "neutral", "positive")
        assert -1.0 <= o["sentiment"]["score"] <= 1.0
        for p in o["pain_points"]:
            assert set(p) == {"id", "confidence", "evidence"}
            assert 0 < p["confidence"] <= 1
    assert out[0]["language"] == "en" and out[0]["pain_points"][0]["id"] == "delivery"
    assert out[1]["language"] == "ko" and [p["id"] for p in out[1]["pain_points"]] == ["delivery"]
    assert out[2]["pain_points"] == [] and out[2]["sentiment"]["label"] == "positive"
    assert [p["id"] for p in out[3]["pain_points"]] == ["price_value"]


def test_evidence_offsets_index_the_input_text():
    text = "Customer service was rude and the screen cracked after a week."
    _, (o,) = run([rec("x", text)])
    assert {p["id"] for p in o["pain_points"]} == {"customer_service", "product_quality"}
    for p in o["pain_points"]:
        for e in p["evidence"]:
            assert text[e["start"] : e["end"]] == e["text"]


@pytest.mark.parametrize(
    "line,has_id",
    [
        ("", False),                                  # blank line
        ("   ", False),                               # whitespace only
        ("not json at all", False),
        ('{"id": "a", "text": "unterminated', False),
        ("[1, 2, 3]", False),                         # not an object
        ('"just a string"', False),
        ("null", False),
        ('{"text": "no id"}', False),
        ('{"id": 7, "text": "id is a number"}', True),
        ('{"id": "a"}', True),                        # text missing
        ('{"id": "a", "text": null}', True),
        ('{"id": "a", "text": ["list"]}', True),
        ('{"id": "a", "text": "ok", "language": 3}', True),
        ('{"id": "a", "text": "ok", "language": ""}', True),
        ("[" * 100000 + "]" * 100000, False),         # deeply nested JSON
    ],
)
def test_a_bad_line_yields_one_error_line(line, has_id):
    rc, out = run([line])
    assert rc == 0
    assert len(out) == 1
    assert "error" in out[0] and out[0]["error"]
    assert ("id" in out[0]) == has_id
    assert not RESULT_KEYS - {"id"} & set(out[0])  # no half result


def test_one_output_per_input_line_bad_lines_do_not_stop_the_stream():
    lines = [rec("1", "late delivery"), "", "garbage", rec("2", "works great"), '{"id": "3"}', rec("4", "😡😡😡")]
    rc, out = run(lines)
    assert rc == 0
    assert len(out) == len(lines)
    assert [o.get("id") for o in out] == ["1", None, None, "2", "3", "4"]
    assert ["error" in o for o in out] == [False, True, True, False, True, False]


def test_last_line_without_newline_and_crlf_line_ends():
    _, out = run('{"id": "a", "text": "slow shipping"}\r\n{"id": "b", "text": "fine"}')
    assert [o["id"] for o in out] == ["a", "b"]
    assert "error" not in out[0] and "error" not in out[1]


def test_invalid_utf8_bytes_yield_an_error_line():
    raw = io.BytesIO(b'{"id": "a", "text": "ok"}\n\xff\xfe bad bytes\n{"id": "b", "text": "ok"}\n')
    stdin = io.TextIOWrapper(raw, encoding="utf-8")
    out = io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8")
    assert run_classify(stdin, stdout, None) == 0
    stdout.flush()
    rows = [json.loads(x) for x in out.getvalue().decode("utf-8").splitlines()]
    assert [r.get("id") for r in rows] == ["a", None, "b"]
    assert "UTF-8" in rows[1]["error"]


def test_empty_emoji_only_and_huge_texts():
    big = "The battery died after a week and the screen flickers. " * 2000  # ~110 KB
    rc, out = run([rec("e", ""), rec("m", "🙂🙂🙂"), rec("big", big)])
    assert rc == 0
    assert out[0]["language"] == "und" and out[0]["pain_points"] == []
    assert out[0]["sentiment"]["label"] == "neutral"
    assert out[1]["pain_points"] == []
    assert "product_quality" in {p["id"] for p in out[2]["pain_points"]}


def test_custom_taxonomy_file_and_environment_variable(tmp_path, monkeypatch):
    data = copy.deepcopy(yaml.safe_load(DEFAULT_TAXONOMY_PATH.read_text(encoding="utf-8")))
    data["version"] = "cli-test-1"
    data["categories"].append({
        "id": "app_stability",
        "label": "App stability",
        "suggested_action": "Collect the crash log.",
        "aspects": {"en": ["app"], "ko": ["앱"]},
        "negative": {"en": {"force close": 1.2}, "ko": {"튕기다": 1.2}},
    })
    p = tmp_path / "tax.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    lines = [rec("a", "The app is so slow, and it force closes every day."), rec("b", "앱이 자꾸 튕겨요")]
    _, out = run(lines, str(p))
    assert all("app_stability" in {x["id"] for x in o["pain_points"]} for o in out)
    monkeypatch.setenv("PIPELINE_TAXONOMY_FILE", str(p))
    _, out = run(lines)
    assert all("app_stability" in {x["id"] for x in o["pain_points"]} for o in out)


def test_missing_taxonomy_file_exits_2(tmp_path):
    err = io.StringIO()
    rc = run_classify(io.StringIO(rec("a", "x") + "\n"), io.StringIO(), str(tmp_path / "nope.yaml"), stderr=err)
    assert rc == 2
    assert "taxonomy" in err.getvalue()


def test_classify_record_never_raises_on_odd_values():
    tax = default_taxonomy()
    for line in ['{"id": "a", "text": "\\u0000\\ud800 lone surrogate"}', '{"id": "a", "text": "x", "language": "xx"}',
                 '{"id": NaN, "text": 1}', '{"id": "a", "text": "' + "a" * 200_000 + '"}']:
        out = classify_record(line, tax)
        json.dumps(out)  # serialisable
        assert "error" in out or set(out) == RESULT_KEYS


@pytest.mark.skipif(not (DATA / "semeval2016_absa_en").exists(), reason="shared data missing")
def test_classify_bench_function_prints_texts_per_second():
    out = io.StringIO()
    assert run_classify_bench(["--seconds", "0.05", "--lang", "en", "--json"], stdout=out) == 0
    res = json.loads(out.getvalue())
    assert res["en"]["texts_per_s"] > 0


# ----------------------------------------------------------------------------- real subprocess

def _pipeline_classify_available() -> bool:
    try:
        r = subprocess.run([sys.executable, "-m", "pipeline", "classify", "--help"], cwd=ROOT,
                           capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@pytest.mark.skipif(not _pipeline_classify_available(), reason="`python -m pipeline classify` not wired in cli.py yet")
def test_real_subprocess_streams_line_by_line_through_a_pipe():
    env = dict(os.environ, PYTHONUNBUFFERED="0")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "classify"], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # one line in -> its line out before stdin is closed (flushed per line)
        proc.stdin.write((rec("first", "The package arrived damaged.") + "\n").encode())
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())
        assert first["id"] == "first" and first["pain_points"][0]["id"] == "delivery"
        proc.stdin.write(b"not json\n\n" + (rec("last", "배송이 빨라요 좋아요") + "\n").encode())
        proc.stdin.close()
        rest = [json.loads(x) for x in proc.stdout.read().splitlines()]
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(rest) == 3
    assert "error" in rest[0] and "error" in rest[1]
    assert rest[2]["id"] == "last" and rest[2]["language"] == "ko" and rest[2]["pain_points"] == []
