"""deploy/: Prometheus config and rules, Grafana provisioning and dashboard — structure, offline.

(The PromQL itself is evaluated against a real Prometheus in tests/integration/test_prometheus.py.)
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline import metrics as m
from pipeline.observability import (
    GRAFANA_VALUES,
    dashboard_expressions,
    deploy_expressions,
    rule_expressions,
    substitute,
    thresholds_to_bool,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "feedback-pipeline.json"
RULES = DEPLOY / "prometheus" / "rules.yml"
JOB = "feedback-pipeline"


def metric_names() -> set[str]:
    """Every series name the worker can expose (histograms: _bucket/_sum/_count)."""
    names = set()
    for metric in m.Metrics().registry.collect():
        names.add(metric.name)
        if metric.type == "counter":
            names.add(metric.name + "_total")
        if metric.type == "histogram":
            names |= {metric.name + s for s in ("_bucket", "_sum", "_count")}
    return names | {"up"}


def test_dashboard_json_is_generated_from_dashboard_py():
    spec = importlib.util.spec_from_file_location("dashboard", DEPLOY / "grafana" / "dashboard.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert DASHBOARD.read_text() == mod.render(), "run: python deploy/grafana/dashboard.py > " + str(DASHBOARD)


def test_dashboard_has_the_required_panels_and_one_datasource():
    doc = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"] for p in doc["panels"]).lower()
    for needed in ("consumed", "produced", "pain points per segment", "top pain points", "alerts by type",
                   "open vs breached commitments", "churn-risk", "p50 / p99", "consumer lag", "dead letters"):
        assert needed in titles, needed
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    for p in doc["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == ds["uid"]
            assert p["targets"], p["title"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in doc["templating"]["list"]}
    assert names == {"job", "instance", "dimension"}
    dims = next(v for v in doc["templating"]["list"] if v["name"] == "dimension")
    assert set(dims["query"].split(",")) == set(m.SEGMENT_VALUES)


def test_every_expression_uses_known_metrics_and_substitutes_all_variables():
    exprs = deploy_expressions(DEPLOY)
    assert len(exprs) >= 30
    known = metric_names()
    functions = {"sum", "rate", "increase", "histogram_quantile", "topk", "clamp_min", "deriv", "by", "and",
                 "bool", "le", "job", "instance", "topic", "kind", "value", "pain_point", "language", "outcome",
                 "type", "severity", "status", "partition", "reason", "stage", "table", "dimension", "on", "vector"}
    for e in exprs:
        assert "$" not in e.promql and "[[" not in e.promql, e
        for ident in re.findall(r"\b(pipeline_\w+|up)\b", re.sub(r'"[^"]*"', '""', e.promql)):
            assert ident in known, (e.source, ident)
        assert f'job="{JOB}"' in e.promql, e.source  # every query is scoped to the pipeline's job
        words = set(re.findall(r"\b([a-z_]+)\s*\(", e.promql))
        assert words <= functions | known, (e.source, words - functions)


def test_substitute_variables():
    assert substitute('rate(x{i=~"$instance"}[$__rate_interval])') == 'rate(x{i=~".*"}[1m])'
    assert substitute('x{d="${dimension}", j="[[job]]"}') == 'x{d="tier", j="feedback-pipeline"}'
    assert substitute("x[$__range]") == "x[1h]" and substitute("$__range_s") == "3600"
    with pytest.raises(KeyError):
        substitute("x{a=\"$nope\"}")
    assert GRAFANA_VALUES["instance"] == ".*"


def test_thresholds_to_bool_keeps_label_matchers_and_strings():
    assert thresholds_to_bool('up{job="a"} == 0') == 'up{job="a"} == bool 0'
    assert thresholds_to_bool('x{s!="1", le="0.5"} > 0.05') == 'x{s!="1", le="0.5"} > bool 0.05'
    assert thresholds_to_bool("a > 1000 and b < 1") == "a > bool 1000 and b < bool 1"
    assert thresholds_to_bool("a > bool 1") == "a > bool 1"
    assert thresholds_to_bool("a >= -1e3") == "a >= bool -1e3"
    assert thresholds_to_bool("a > b") == "a > b"  # vector comparison: not a threshold


def test_alert_rules_cover_worker_down_lag_deadletters_no_events():
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"PipelineWorkerDown", "PipelineConsumerLagGrowing", "PipelineDeadLetterRateHigh",
            "PipelineNoEventsConsumed"} <= names
    for r in rules:
        assert r["labels"]["severity"] in ("critical", "warning", "info")
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        assert re.search(r"(==|!=|>=|<=|>|<)\s*[-+]?[0-9.]+\s*$", str(r["expr"]).strip()), r["alert"]
    assert all(" bool " in e.promql for e in rule_expressions(RULES))


def test_prometheus_config_scrapes_the_pipeline_job_and_loads_the_rules():
    doc = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert JOB in jobs and jobs[JOB].get("metrics_path", "/metrics") == "/metrics"
    sd = jobs[JOB]["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and sd["port"] == 6066
    for rf in doc["rule_files"]:
        assert (DEPLOY / "prometheus" / rf).is_file()


def test_grafana_provisioning_points_at_the_mounted_dashboards():
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/feedback-pipeline.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    assert dashboard_expressions(DASHBOARD)


def test_lag_the_rules_and_dashboard_read_is_the_committed_lag():
    """pipeline_consumer_lag_records = end offset - committed offset (a stuck agent shows its backlog)."""
    fam = next(f for f in m.Metrics().registry.collect() if f.name == "pipeline_consumer_lag_records")
    assert "committed offset" in fam.documentation and "end offset" in fam.documentation
    lag_exprs = [e for e in deploy_expressions(DEPLOY) if "pipeline_consumer_lag_records" in e.promql]
    assert any(e.source.startswith("rule ") for e in lag_exprs)  # PipelineConsumerLagGrowing
    assert any(e.source.startswith("dashboard ") for e in lag_exprs)
