"""Generate the Grafana dashboard JSON (deploy/grafana/dashboards/feedback-pipeline.json).

    python deploy/grafana/dashboard.py > deploy/grafana/dashboards/feedback-pipeline.json

The JSON is committed (Grafana provisioning reads it as is); this script is its source, and
tests/unit/test_deploy.py checks that the two agree.  Every ``expr`` here is evaluated against
a real Prometheus scraping a real worker by tests/integration/test_prometheus.py.

Variables: ``$job`` (default ``feedback-pipeline``), ``$instance`` (workers, multi, All = ``.*``),
``$dimension`` (segment dimension of the pain-point panels: tier, lifecycle, channel, relationship).
"""

from __future__ import annotations

import json
import sys
from typing import Any

DS = {"type": "prometheus", "uid": "prometheus"}
SEL = 'job="$job", instance=~"$instance"'
UID = "feedback-pipeline"


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "refId": ref}
    if instant:
        t.update(instant=True, range=False)
    else:
        t.update(range=True)
    return t


class Layout:
    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1

    def row(self, title: str) -> None:
        self.newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "id": self.next_id,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.next_id += 1
        self.y += 1

    def newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x, self.row_h = 0, 0

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self.newline()
        panel["id"] = self.next_id
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        panel.setdefault("datasource", DS)
        self.next_id += 1
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def timeseries(title: str, targets: list[dict[str, Any]], unit: str = "short", desc: str = "",
               stack: bool = False) -> dict[str, Any]:
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
        custom["fillOpacity"] = 40
    return {"type": "timeseries", "title": title, "description": desc, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, expr: str, unit: str = "short", desc: str = "", thresholds: list | None = None) -> dict:
    steps = thresholds or [{"color": "green", "value": None}]
    return {"type": "stat", "title": title, "description": desc, "targets": [target(expr, instant=True)],
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto"}}


def bargauge(title: str, targets: list[dict[str, Any]], unit: str = "short", desc: str = "") -> dict[str, Any]:
    return {"type": "bargauge", "title": title, "description": desc, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "min": 0}, "overrides": []},
            "options": {"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True,
                        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}}


def heatmap(title: str, expr: str, desc: str = "") -> dict[str, Any]:
    return {"type": "heatmap", "title": title, "description": desc,
            "targets": [dict(target(expr, "{{le}}"), format="heatmap")],
            "options": {"calculate": False, "yAxis": {"unit": "short"}, "cellGap": 1,
                        "color": {"mode": "scheme", "scheme": "Oranges"}},
            "fieldConfig": {"defaults": {}, "overrides": []}}


def variables() -> list[dict[str, Any]]:
    return [
        {"name": "job", "label": "Job", "type": "custom", "query": "feedback-pipeline",
         "current": {"text": "feedback-pipeline", "value": "feedback-pipeline"}, "hide": 2,
         "options": [{"selected": True, "text": "feedback-pipeline", "value": "feedback-pipeline"}]},
        {"name": "instance", "label": "Worker", "type": "query", "datasource": DS,
         "definition": 'label_values(up{job="$job"}, instance)',
         "query": {"query": 'label_values(up{job="$job"}, instance)', "refId": "PrometheusVariableQueryEditor"},
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
         "current": {"text": ["All"], "value": ["$__all"]}},
        {"name": "dimension", "label": "Segment dimension", "type": "custom",
         "query": "tier,lifecycle,channel,relationship",
         "current": {"text": "tier", "value": "tier"},
         "options": [{"selected": d == "tier", "text": d, "value": d}
                     for d in ("tier", "lifecycle", "channel", "relationship")]},
    ]


def build() -> dict[str, Any]:
    L = Layout()
    ri = "$__rate_interval"

    L.row("Health")
    L.add(stat("Workers up", f'sum(up{{{SEL}}})', desc="Workers Prometheus scrapes successfully.",
               thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}]), 4, 4)
    L.add(stat("Assigned partitions", f'sum(pipeline_assigned_partitions{{{SEL}}})'), 4, 4)
    L.add(stat("Consumed / s", f'sum(rate(pipeline_events_consumed_total{{{SEL}}}[{ri}]))', "reqps"), 4, 4)
    L.add(stat("Dead-letter share", f'sum(rate(pipeline_deadletters_total{{{SEL}}}[{ri}])) '
                                    f'/ clamp_min(sum(rate(pipeline_events_consumed_total{{{SEL}}}[{ri}])), 1e-9)',
               "percentunit", thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.01},
                                          {"color": "red", "value": 0.05}]), 4, 4)
    L.add(stat("Consumer lag (records)", f'sum(pipeline_consumer_lag_records{{{SEL}}})',
               thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1000}]), 4, 4)
    L.add(stat("Rebalances (range)", f'sum(increase(pipeline_rebalances_total{{{SEL}}}[$__range]))'), 4, 4)

    L.row("Throughput")
    L.add(timeseries("Events consumed by topic and kind",
                     [target(f'sum by (topic, kind) (rate(pipeline_events_consumed_total{{{SEL}}}[{ri}]))',
                             "{{topic}} {{kind}}")], "reqps", stack=True), 12, 8)
    L.add(timeseries("Records produced by topic and kind",
                     [target(f'sum by (topic, kind) (rate(pipeline_events_produced_total{{{SEL}}}[{ri}]))',
                             "{{topic}} {{kind}}")], "reqps", stack=True), 12, 8)
    L.add(timeseries("Batch size p50 / p99",
                     [target(f'histogram_quantile({q}, sum by (le) '
                             f'(rate(pipeline_batch_records_bucket{{{SEL}}}[{ri}])))', f"p{round(q * 100)}", ref)
                      for q, ref in ((0.5, "A"), (0.99, "B"))], "short"), 12, 7)
    L.add(timeseries("Classified events by language",
                     [target(f'sum by (language) (rate(pipeline_classifications_total{{{SEL}}}[{ri}]))',
                             "{{language}}")], "reqps", stack=True), 12, 7)

    L.add(timeseries("Sentiment source: learned model share by language",
                     [target(f'sum by (language) (rate(pipeline_sentiment_sources_total{{{SEL}, source="model"}}[{ri}]))'
                             f' / sum by (language) (rate(pipeline_sentiment_sources_total{{{SEL}}}[{ri}]))',
                             "{{language}}")], "percentunit",
                     desc="Share of classified texts whose sentiment came from a learned model (self-trained "
                          "or PIPELINE_SENTIMENT_MODEL) instead of the lexicon."), 12, 7)
    L.add(timeseries("Self-trained model applied (sequence) by worker",
                     [target(f'max by (instance, language, kind) (pipeline_learned_model_sequence{{{SEL}}})'
                             f' or on() vector(0)', "{{instance}} {{kind}} {{language}}")], "short",
                     desc="The n of <language>-<n> / pain-<language>-<n> each worker applies: every worker "
                          "should show the same step (0: no self-trained model published yet)."), 12, 7)

    L.row("Pain points")
    L.add(timeseries("Pain points per segment ($dimension)",
                     [target(f'sum by (value, pain_point) (rate(pipeline_segment_pain_points_total'
                             f'{{{SEL}, dimension="$dimension"}}[{ri}]))', "{{value}} · {{pain_point}}")],
                     "reqps", desc="Pain points found in enriched events, by the bounded segment dimension "
                                   "chosen above (tier, lifecycle, channel, relationship).", stack=True), 12, 9)
    L.add(bargauge("Pain points per segment ($dimension), whole range",
                   [target(f'sum by (value) (increase(pipeline_segment_pain_points_total'
                           f'{{{SEL}, dimension="$dimension"}}[$__range]))', "{{value}}", instant=True)]), 6, 9)
    L.add(bargauge("Top pain points, whole range",
                   [target(f'topk(10, sum by (pain_point) (increase(pipeline_pain_points_total{{{SEL}}}[$__range])))',
                           "{{pain_point}}", instant=True)]), 6, 9)
    L.add(timeseries("Pain points by language",
                     [target(f'sum by (pain_point, language) (rate(pipeline_pain_points_total{{{SEL}}}[{ri}]))',
                             "{{pain_point}} ({{language}})")], "reqps"), 12, 8)
    L.add(timeseries("Late events (aggregation)",
                     [target(f'sum by (outcome) (rate(pipeline_late_events_total{{{SEL}}}[{ri}]))',
                             "{{outcome}}")], "reqps"), 12, 8)

    L.row("Alerts, commitments and churn risk")
    L.add(timeseries("Alerts by type and severity",
                     [target(f'sum by (type, severity) (increase(pipeline_alerts_total{{{SEL}}}[{ri}]))',
                             "{{type}} {{severity}}")], "short", stack=True), 12, 8)
    L.add(bargauge("Alerts by type, whole range",
                   [target(f'sum by (type) (increase(pipeline_alerts_total{{{SEL}}}[$__range]))', "{{type}}",
                           instant=True)]), 12, 8)
    L.add(timeseries("Open vs breached commitments",
                     [target(f'sum by (status) (pipeline_commitments{{{SEL}}})', "{{status}}")], "short",
                     desc="Active commitments (open, warned, breached) held by the workers."), 12, 8)
    L.add(timeseries("Commitments by kind and status",
                     [target(f'sum by (kind, status) (pipeline_commitments{{{SEL}, status=~"open|breached"}})',
                             "{{kind}} {{status}}")], "short"), 12, 8)
    L.add(heatmap("Churn-risk score distribution",
                  f'sum by (le) (increase(pipeline_churn_risk_score_bucket{{{SEL}}}[{ri}]))',
                  desc="Scores (0-100) of customers at each update; alert threshold 60 by default."), 12, 8)
    L.add(bargauge("Churn-risk scores, whole range (cumulative by upper bound)",
                   [target(f'sum by (le) (increase(pipeline_churn_risk_score_bucket{{{SEL}}}[$__range]))',
                           "≤ {{le}}", instant=True)]), 12, 8)

    L.row("Latency, lag, dead letters")
    L.add(timeseries("Ingest → output latency p50 / p99",
                     [target(f'histogram_quantile(0.5, sum by (le) (rate(pipeline_processing_latency_seconds_bucket'
                             f'{{{SEL}}}[{ri}])))', "p50"),
                      target(f'histogram_quantile(0.99, sum by (le) (rate(pipeline_processing_latency_seconds_bucket'
                             f'{{{SEL}}}[{ri}])))', "p99", "B")], "s",
                     desc="Kafka record time of the input record to enriched event produced."), 12, 8)
    L.add(timeseries("Event time → output latency p50 / p99",
                     [target(f'histogram_quantile(0.5, sum by (le) (rate(pipeline_event_latency_seconds_bucket'
                             f'{{{SEL}}}[{ri}])))', "p50"),
                      target(f'histogram_quantile(0.99, sum by (le) (rate(pipeline_event_latency_seconds_bucket'
                             f'{{{SEL}}}[{ri}])))', "p99", "B")], "s",
                     desc="occurred_at of the event to enriched event produced (includes producer delay and "
                          "the age of replayed history)."), 12, 8)
    L.add(timeseries("Consumer lag by topic and partition",
                     [target(f'sum by (topic, partition) (pipeline_consumer_lag_records{{{SEL}}})',
                             "{{topic}}[{{partition}}]")], "short"), 12, 8)
    L.add(timeseries("Dead letters by reason",
                     [target(f'sum by (reason) (rate(pipeline_deadletters_total{{{SEL}}}[{ri}]))', "{{reason}}")],
                     "reqps", stack=True), 12, 8)
    L.add(timeseries("Errors by stage",
                     [target(f'sum by (stage) (rate(pipeline_errors_total{{{SEL}}}[{ri}]))', "{{stage}}")],
                     "reqps"), 12, 7)
    L.add(timeseries("Table keys",
                     [target(f'sum by (table) (pipeline_table_keys{{{SEL}}})', "{{table}}")], "short"), 12, 7)

    return {
        "uid": UID, "title": "Feedback pipeline", "tags": ["feedback-pipeline", "kafka", "faust"],
        "timezone": "browser", "editable": False, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
        "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables()}, "annotations": {"list": []}, "links": [],
        "panels": L.panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
