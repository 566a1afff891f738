"""The PromQL of ``deploy/``: collect it from the Grafana dashboard and the alerting rules, make it
evaluable outside Grafana, and evaluate it against a Prometheus HTTP API.

Used by the tests (every expression must return at least one series against a Prometheus that
scrapes a real worker) and usable against any Prometheus that scrapes the pipeline::

    from pipeline.observability import deploy_expressions, evaluate_all
    failures = evaluate_all("http://127.0.0.1:9090", deploy_expressions(Path("deploy")))

* Grafana variables (``$job``, ``${instance}``, ``[[dimension]]``, ``$__rate_interval``,
  ``$__range`` …) are replaced by concrete values (:data:`GRAFANA_VALUES`); an unknown variable
  is an error, not silently left in.
* ``label_values(<selector>, label)`` variable queries are Grafana functions, not PromQL; their
  selector is evaluated.
* Alert expressions compare a signal with thresholds; in a healthy system the comparison
  filters every series away, which would prove nothing.  :func:`thresholds_to_bool` turns every
  comparison with a number into its ``bool`` form (``x > 5`` → ``x > bool 5``): same selectors,
  functions, aggregation and vector matching (``and``/``on``), but each series is kept with
  value 0 or 1 — so "returns a series" checks the expression is wired to real metrics.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

# Values for the dashboard variables and Grafana's built-ins (a 1 s scrape interval in tests).
GRAFANA_VALUES: dict[str, str] = {
    "job": "feedback-pipeline",
    "instance": ".*",  # the variable's allValue
    "dimension": "tier",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

_VAR = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\[\[(\w+)(?::[\w]+)?\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", re.S)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?(?:e[-+]?\d+)?|\.\d+|Inf|NaN)"
_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(?!\s*bool\b)\s*(?=" + _NUMBER + r"(?![\w.]))")


@dataclass(frozen=True)
class Expression:
    source: str  # e.g. "dashboard feedback-pipeline.json panel 'Workers up' A" or "rule PipelineWorkerDown"
    original: str  # as written in the file
    promql: str  # what is sent to Prometheus


def substitute(expr: str, values: Mapping[str, str] = GRAFANA_VALUES) -> str:
    """Replace Grafana variables; raise ``KeyError`` for a variable without a value."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VAR.sub(repl, expr)


def thresholds_to_bool(expr: str) -> str:
    """Every comparison with a number literal in its ``bool`` form (string literals untouched)."""
    parts = re.split(r'("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')', expr)
    return "".join(p if i % 2 else _COMPARISON.sub(r"\1 bool ", p) for i, p in enumerate(parts))


def _walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _walk_panels(p.get("panels") or [])


def dashboard_expressions(path: Path, values: Mapping[str, str] = GRAFANA_VALUES) -> list[Expression]:
    doc = json.loads(path.read_text())
    out: list[Expression] = []
    for panel in _walk_panels(doc.get("panels") or []):
        for t in panel.get("targets") or []:
            if t.get("expr"):
                src = f"dashboard {path.name} panel {panel.get('title')!r} {t.get('refId', '')}".strip()
                out.append(Expression(src, t["expr"], substitute(t["expr"], values)))
    for var in (doc.get("templating") or {}).get("list") or []:
        if var.get("type") != "query":
            continue
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = _LABEL_VALUES.match(q or "")
        promql = m.group(1) if m else q
        out.append(Expression(f"dashboard {path.name} variable ${var['name']}", q, substitute(promql, values)))
    return out


def rule_expressions(path: Path) -> list[Expression]:
    doc = yaml.safe_load(path.read_text())
    out: list[Expression] = []
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record")
            expr = str(rule["expr"]).strip()
            promql = thresholds_to_bool(expr) if "alert" in rule else expr
            out.append(Expression(f"rule {name}", expr, promql))
    return out


def deploy_expressions(deploy_dir: Path, values: Mapping[str, str] = GRAFANA_VALUES) -> list[Expression]:
    """Every PromQL expression of the dashboards and alerting rules under ``deploy_dir``."""
    out: list[Expression] = []
    for dash in sorted((deploy_dir / "grafana" / "dashboards").glob("*.json")):
        out += dashboard_expressions(dash, values)
    for rules in sorted((deploy_dir / "prometheus").glob("rules*.yml")):
        out += rule_expressions(rules)
    return out


def query(base_url: str, promql: str, timeout: float = 10.0) -> dict[str, Any]:
    """``GET /api/v1/query`` (instant query, now); returns the ``data`` object or raises."""
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as exc:  # 400/422: a bad expression; the body says why
        body = json.loads(exc.read() or b"{}")
    if body.get("status") != "success":
        raise ValueError(f"{body.get('errorType')}: {body.get('error')} in {promql!r}")
    return body["data"]


def series_count(data: Mapping[str, Any]) -> int:
    if data.get("resultType") in ("vector", "matrix"):
        return len(data.get("result") or [])
    return 1  # scalar / string


def evaluate_all(base_url: str, expressions: list[Expression]) -> dict[Expression, int | str]:
    """Series count (or the error message) per expression."""
    out: dict[Expression, int | str] = {}
    for e in expressions:
        try:
            out[e] = series_count(query(base_url, e.promql))
        except ValueError as exc:
            out[e] = str(exc)
    return out
