"""Pure parts of the benchmark harness (bench/pipeline_bench.py): no broker, no worker."""

from __future__ import annotations

import json
import math

import pytest

from bench import pipeline_bench as pb


def test_percentile_matches_linear_interpolation():
    xs = list(range(1, 101))  # 1..100
    assert pb.percentile(xs, 0) == 1
    assert pb.percentile(xs, 100) == 100
    assert pb.percentile(xs, 50) == pytest.approx(50.5)
    assert pb.percentile(xs, 99) == pytest.approx(99.01)
    assert pb.percentile([5.0], 99) == 5.0
    assert pb.percentile([3, 1, 2], 50) == 2  # order does not matter
    assert math.isnan(pb.percentile([], 50))
    with pytest.raises(ValueError):
        pb.percentile([1], 101)


def test_latency_matching_and_summary():
    produced = {"a": 1000, "b": 1000, "c": 1000, "lost": 1000}
    written = {"a": 1010, "b": 1020, "c": 1300, "other": 5000}
    lat = pb.match_latencies(produced, written)
    assert sorted(lat) == [10.0, 20.0, 300.0]
    s = pb.latency_summary(lat)
    assert s["matched"] == 3 and s["p50_ms"] == 20.0 and s["max_ms"] == 300.0
    assert s["p99_ms"] == pytest.approx(294.4)


def test_sustained_rate_counts_intervals_from_the_window_start():
    ts = [0, 500, 1000, 1500, 2000]
    assert pb.sustained_rate(ts) == (2.0, 5, 2.0)
    rate, n, span = pb.sustained_rate(ts, since_ms=1000)
    assert (rate, n, span) == (2.0, 3, 1.0)
    assert math.isnan(pb.sustained_rate([7])[0])
    assert math.isnan(pb.sustained_rate([7, 7])[0])


def test_result_line_is_one_json_line_with_fixed_keys():
    line = pb.result_line(pipeline_eps=400.04, baseline_eps=20000.0, p50_ms=12.34, p95_ms=50.0, p99_ms=float("nan"),
                          workers=1, events=20000, cpu_s=51.234, peak_rss_mb=321.06)
    assert "\n" not in line
    out = json.loads(line)
    assert tuple(out)[: len(pb.RESULT_KEYS)] == pb.RESULT_KEYS
    assert out["ratio"] == pytest.approx(0.02, abs=1e-4)
    assert out["p99_ms"] is None  # NaN is not JSON
    assert out["pipeline_eps"] == 400.0 and out["cpu_s"] == 51.23 and out["workers"] == 1
    extra = json.loads(pb.result_line(pipeline_eps=1, baseline_eps=0, p50_ms=1, p95_ms=1, p99_ms=1, workers=2,
                                      events=1, cpu_s=1, peak_rss_mb=1, eps_by_workers={"1": 1.0, "2": 1.5}))
    assert extra["ratio"] is None and extra["eps_by_workers"] == {"1": 1.0, "2": 1.5}
    assert list(extra)[-1] == "eps_by_workers"


def test_proc_parsing():
    stat = "1234 (python -m x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0"
    assert pb.parse_proc_stat_cpu(stat, 100) == pytest.approx(3.0)
    status = "Name:\tpython\nVmPeak:\t 900000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t 100000 kB\n"
    assert pb.parse_vm_hwm_mb(status) == 200.0
    assert math.isnan(pb.parse_vm_hwm_mb("Name:\tx\n"))


def test_top_frames_own_and_inclusive():
    raw = [
        "main (a.py:1);loop (a.py:5);decode (c.py:3) 6",
        "main (a.py:1);loop (a.py:5);classify (k.py:9) 3",
        "main (a.py:1);rec (r.py:1);rec (r.py:1) 1",
        "",
        "garbage line",
    ]
    own, incl, total = pb.top_frames(raw, n=2)
    assert total == 10
    assert own == [("decode (c.py:3)", 6, 60.0), ("classify (k.py:9)", 3, 30.0)]
    assert incl[0] == ("main (a.py:1)", 10, 100.0)  # recursion counted once per stack
    assert incl[1] == ("loop (a.py:5)", 9, 90.0)


def test_top_frames_project_filter():
    raw = [
        "_run_code (<frozen runpy>:88);main (pipeline/cli.py:269);ingest (pipeline/agents/ingest.py:224);"
        "_tokenize (/x/site-packages/kiwipiepy/_wrap.py:1706) 4",
        "_run_code (<frozen runpy>:88);main (pipeline/cli.py:269);select (selectors.py:468) 1",
    ]
    _, incl, total = pb.top_frames(raw, keep=pb.is_project_frame)
    assert total == 5
    assert incl == [("ingest (pipeline/agents/ingest.py:224)", 4, 80.0)]


def test_batch_histogram_parsing_sums_count_and_records():
    text = "\n".join([
        "# HELP pipeline_batch_records Records per processed batch.",
        'pipeline_batch_records_bucket{le="1.0"} 3.0',
        "pipeline_batch_records_count 51.0",
        "pipeline_batch_records_sum 19992.0",
        "pipeline_batch_records_created 1.7e9",
    ])
    assert pb.parse_batch_histogram(text) == (51, 19992.0)
    assert pb.parse_batch_histogram("") == (0, 0.0)


def test_same_work_fields_give_the_framework_share_and_its_cost_per_event():
    f = pb.same_work_fields(500.0, 1000.0)
    assert f == {"same_work_eps": 1000.0, "same_work_ratio": 0.5, "overhead_us_per_event": 1000.0}
    assert pb.same_work_fields(math.nan, 1000.0)["same_work_ratio"] is None


def test_live_times_move_every_timestamp_of_an_event_by_the_same_shift():
    from datetime import datetime, timedelta, timezone

    from bench.pipeline_bench import history_span, live_times

    now = datetime(2026, 12, 4, 12, 0, 0, 700_000, tzinfo=timezone.utc)
    events = [("complaint", {"event_id": "e1", "occurred_at": "2026-11-20T08:00:00+00:00",
                             "promised_response_by": "2026-11-21T08:00:00+00:00", "text": "late_at night",
                             "signup_at": "not a time"}),
              ("order", {"event_id": "e2", "occurred_at": "2026-11-20T09:30:00+00:00"}),
              ("customer_profile", {"event_id": "e3"})]
    out = list(live_times(events, now=lambda: now))
    assert out[0][1]["occurred_at"] == "2026-12-04T12:00:00+00:00"  # whole seconds, the wall clock
    assert out[0][1]["promised_response_by"] == "2026-12-05T12:00:00+00:00"  # a day after, as before
    assert out[0][1]["text"] == "late_at night" and out[0][1]["signup_at"] == "not a time"
    assert out[1][1]["occurred_at"] == "2026-12-04T12:00:00+00:00"
    assert out[2][1] == {"event_id": "e3"} and events[0][1]["occurred_at"] == "2026-11-20T08:00:00+00:00"
    assert history_span(ev for _, ev in events) == timedelta(hours=1, minutes=30)
    assert history_span([]) == timedelta(0)
