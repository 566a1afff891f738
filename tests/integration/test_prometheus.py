"""Every PromQL expression of deploy/ against a real Prometheus scraping a real worker.

Debian's ``prometheus`` package is installed if missing (``apt-get update`` then ``apt-get
install -y --no-install-recommends prometheus``, under a lock: other test sessions may run at
the same time; nothing is cached in the repository).  Without root or apt the test is skipped
and says why.  Prometheus runs on loopback only, with a temporary storage directory and a 1 s
scrape / evaluation interval, from the project's ``deploy/prometheus/prometheus.yml`` with only
these changes: the ``feedback-pipeline`` job's DNS service discovery becomes a static target
(the worker this test started on the session's real Kafka broker), the intervals are 1 s, and
the rule file path is absolute.  The worker consumes live simulator traffic
(``python -m pipeline simulate``) plus broken records while Prometheus scrapes it.

Then every expression is evaluated with ``/api/v1/query`` and must return at least one series:

* dashboard panel targets and the ``$instance`` variable's ``label_values`` selector, with the
  Grafana variables replaced by concrete values (``$job`` = feedback-pipeline, ``$instance`` =
  ``.*`` (All), ``$dimension`` = tier, ``$__rate_interval`` = 1m, ``$__range`` = 1h);
* alerting rules with every threshold comparison in its ``bool`` form (``x > 1000`` →
  ``x > bool 1000``).  A healthy pipeline fires no alert, so the plain expression would be
  empty and prove nothing; the ``bool`` form keeps the same selectors, functions, aggregation
  and ``and`` matching but returns each series with 0/1 — it proves the expression is wired
  to metrics the worker really exposes.  Prometheus also evaluates the rules themselves (the
  rule file is loaded): each must report health ``ok``.

``promtool check config`` (the project's file and the rewritten one) and ``promtool check
rules`` must pass.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pipeline.kafka_local import free_port
from pipeline.observability import deploy_expressions, evaluate_all, query
from pipeline.producers.broken import broken_records
from pipeline.producers.publish import publish_raw
from pipeline.runtime import settings_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
JOB = "feedback-pipeline"
APT_LOCK = Path("/tmp/feedback-pipeline-apt.lock")


def _prometheus_binaries() -> tuple[str, str] | None:
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    return (prom, tool) if prom and tool else None


@pytest.fixture(scope="session")
def prometheus_bin() -> tuple[str, str]:
    """``(prometheus, promtool)``; installs Debian's package if missing."""
    found = _prometheus_binaries()
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.skip("prometheus is not installed and apt-get is not available to install it")
    if os.geteuid() != 0:
        pytest.skip("prometheus is not installed and installing it with apt-get needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(APT_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be installing right now
        if not _prometheus_binaries():
            t0 = time.monotonic()
            for cmd in (["apt-get", "update"],
                        ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]):
                r = subprocess.run(cmd + ["-o", "DPkg::Lock::Timeout=600"], env=env, capture_output=True,
                                   text=True, timeout=900)
                assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
            print(f"\n[prometheus] installed with apt-get in {time.monotonic() - t0:.1f}s")
    found = _prometheus_binaries()
    assert found, "apt-get install prometheus succeeded but prometheus/promtool are not on PATH"
    return found


def promtool(tool: str, *args: str) -> str:
    r = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"promtool {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


def test_config_rewrite_for_a_static_target_keeps_the_job():
    cfg = rewritten_config("127.0.0.1:1234")
    job = cfg["scrape_configs"][0]
    assert job["job_name"] == JOB and job["static_configs"] == [{"targets": ["127.0.0.1:1234"]}]
    assert "dns_sd_configs" not in job and Path(cfg["rule_files"][0]).is_absolute()


def rewritten_config(target: str) -> dict:
    cfg = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    cfg["rule_files"] = [str((DEPLOY / "prometheus" / rf).resolve()) for rf in cfg["rule_files"]]
    jobs = [j for j in cfg["scrape_configs"] if j["job_name"] == JOB]
    assert len(jobs) == 1
    job = jobs[0]
    job.pop("dns_sd_configs")
    job["static_configs"] = [{"targets": [target]}]
    job["scrape_interval"] = job["scrape_timeout"] = "1s"
    return cfg


def _get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except Exception:
        return None


def _wait(what: str, check, timeout: float, poll: float = 0.5, on_timeout=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s. {on_timeout()}")


def _scalar(base: str, promql: str) -> float:
    try:
        res = query(base, promql)["result"]
    except Exception:
        return 0.0
    return float(res[0]["value"][1]) if res else 0.0


def _worker_metric(port: int, name: str, **labels: str) -> float:
    """Sum of the worker's samples ``name`` whose labels include ``labels`` (0 if unreachable)."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    except Exception:
        return 0.0
    return sum(smp.value for fam in text_string_to_metric_families(body) for smp in fam.samples
               if smp.name == name and labels.items() <= smp.labels.items())


def test_every_dashboard_and_rule_expression_returns_series(settings, worker_factory, tmp_path, prometheus_bin):
    prom_bin, tool = prometheus_bin
    t_start = time.monotonic()
    promtool(tool, "check", "config", str(DEPLOY / "prometheus/prometheus.yml"))
    promtool(tool, "check", "rules", str(DEPLOY / "prometheus/rules.yml"))

    s = settings
    worker = worker_factory(s)
    env = {**os.environ, **settings_env(s)}
    sim_log = open(tmp_path / "simulate.log", "wb")
    sim = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "simulate", "--rate", "80", "--duration", "900", "--customers", "400",
         "--seed", "71", "--quiet"], cwd=str(ROOT), env=env, stdout=sim_log, stderr=subprocess.STDOUT,
    )
    prom = None
    try:
        bad = broken_records(1, s.max_event_bytes)
        topic_of = {"order": s.topics.orders, "complaint": s.topics.complaints, "feedback": s.topics.feedback,
                    "customer_profile": s.topics.profiles}
        for b in bad:
            publish_raw(topic_of[b.kind], [(b.key, b.value)], s)
        _wait("worker produces enriched events",
              lambda: _worker_metric(worker.web_port, "pipeline_events_produced_total", topic=s.topics.enriched)
              > 50, timeout=240, on_timeout=lambda: f"worker log: {worker.log_path}")

        port = free_port()
        cfg_path = tmp_path / "prometheus.yml"
        cfg_path.write_text(yaml.safe_dump(rewritten_config(f"127.0.0.1:{worker.web_port}")))
        promtool(tool, "check", "config", str(cfg_path))
        prom_log = open(tmp_path / "prometheus.log", "wb")
        prom = subprocess.Popen(
            [prom_bin, f"--config.file={cfg_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=prom_log, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        log_tail = lambda: (tmp_path / "prometheus.log").read_text()[-2000:]  # noqa: E731
        _wait("prometheus ready", lambda: prom.poll() is None and _get_json(f"{base}/api/v1/status/buildinfo"),
              timeout=60, on_timeout=log_tail)
        version = _get_json(f"{base}/api/v1/status/buildinfo")["data"]["version"]
        # At least 15 successful scrapes, and the traffic visible through Prometheus.
        _wait("15 scrapes of the worker",
              lambda: _scalar(base, f'sum_over_time(up{{job="{JOB}"}}[5m])') >= 15, timeout=120,
              on_timeout=log_tail)
        _wait("consumption visible in Prometheus",
              lambda: _scalar(base, f'sum(rate(pipeline_events_consumed_total{{job="{JOB}"}}[1m]))') > 0,
              timeout=60, on_timeout=log_tail)

        def rules_evaluated():
            data = (_get_json(f"{base}/api/v1/rules") or {}).get("data", {})
            rules = [r for g in data.get("groups", []) for r in g["rules"]]
            return rules if rules and all(r.get("health") == "ok" for r in rules) else None

        rules = _wait("every alerting rule evaluated with health ok", rules_evaluated, timeout=60,
                      on_timeout=lambda: json.dumps(_get_json(f"{base}/api/v1/rules"))[:3000])

        exprs = deploy_expressions(DEPLOY)
        t_eval = time.monotonic()
        results = evaluate_all(base, exprs)
        eval_s = time.monotonic() - t_eval
        bad_results = {e.source: (r, e.promql) for e, r in results.items() if not isinstance(r, int) or r < 1}
        n_dash = sum(1 for e in exprs if e.source.startswith("dashboard"))
        n_rule = sum(1 for e in exprs if e.source.startswith("rule"))
        print(f"\n[prometheus {version}] {len(exprs)} expressions ({n_dash} dashboard, {n_rule} alert rules), "
              f"{sum(r for r in results.values() if isinstance(r, int))} series in total, evaluated in "
              f"{eval_s:.2f}s; {len(rules)} rules health ok; whole test {time.monotonic() - t_start:.0f}s")
        for e, r in results.items():
            print(f"  {r!s:>4}  {e.source}")
        assert not bad_results, json.dumps(bad_results, indent=1, ensure_ascii=False)
        assert n_dash >= 30 and n_rule >= 4

        # A few values that must be real, not just present.
        assert _scalar(base, f'sum(pipeline_assigned_partitions{{job="{JOB}"}})') > 0
        assert _scalar(base, f'sum(pipeline_deadletters_total{{job="{JOB}"}})') >= len(bad)
        assert _scalar(base, f'sum(pipeline_table_keys{{job="{JOB}", table="customers"}})') > 0
        assert _scalar(base, f'sum(pipeline_churn_risk_score_count{{job="{JOB}"}})') > 0
        assert _scalar(base, f'sum(pipeline_segment_pain_points_total{{job="{JOB}", dimension="tier"}})') > 0
        p99 = _scalar(base, f'histogram_quantile(0.99, sum(rate(pipeline_processing_latency_seconds_bucket'
                            f'{{job="{JOB}"}}[5m])) by (le))')
        assert 0 < p99 < float("inf"), p99
    finally:
        if prom is not None and prom.poll() is None:
            prom.terminate()
            prom.wait(30)
        if sim.poll() is None:
            sim.terminate()
            sim.wait(30)
        sim_log.close()
