"""Root causes of a pain point (issue 18, scope 3): which sellers, categories, carriers or regions
count it most in a window.  Pure: segment-window states in, ranked rows out.

``GET /root-causes/<pain_point>?dimension=seller&window=1d`` asks every worker for the keys
``<dimension>=*`` of the partitions it owns (:func:`rank`) and merges the answers (:func:`merge`).
A feedback or complaint counts under the seller, categories and carrier of the order it names
(stage 1 joins them from the customer's state: :func:`~pipeline.segment.customer.order_context`);
``region`` is the customer's region.

Rows are ranked by ``count`` (descending), then value; ``current`` is the latest open window of
that size and ``last_closed`` the latest closed one, per key, as in ``/segments/…/top``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .state import top_pain_points

ROOT_CAUSE_QUERY_DIMENSIONS = ("seller", "category", "carrier", "region", "channel", "tier", "lifecycle",
                               "relationship")
ROW_FIELDS = ("count", "rate_per_100_orders", "rate_per_100_events", "share_of_feedback")


def rank(items: Iterable[tuple[str, Mapping[str, Any], float | None]], pain_point: str,
         window: str) -> dict[str, list[dict[str, Any]]]:
    """``items``: ``(value, segment-window state, watermark)`` of one dimension's keys.  Rows of the
    values that counted ``pain_point`` in their current / last closed ``window``."""
    out: dict[str, list[dict[str, Any]]] = {"current": [], "last_closed": []}
    for value, state, wm in items:
        top = top_pain_points(state, window, wm)
        for label in out:
            for row in top.get(label) or ():
                if row.get("pain_point") == pain_point and row.get("count"):
                    totals = top.get(f"{label}_window") or {}
                    out[label].append({"value": value, **{k: row.get(k) for k in ROW_FIELDS},
                                       "orders": totals.get("orders"), "feedback": totals.get("feedback"),
                                       "window_start": totals.get("window_start"),
                                       "window_end": totals.get("window_end")})
    return out


def merge(answers: Iterable[Mapping[str, list[dict[str, Any]]]], limit: int) -> dict[str, list[dict[str, Any]]]:
    """The workers' answers as one ranking (a value answered twice, during a rebalance, counts once)."""
    answers = list(answers)
    out: dict[str, list[dict[str, Any]]] = {}
    for label in ("current", "last_closed"):
        by_value: dict[str, dict[str, Any]] = {}
        for answer in answers:
            for row in answer.get(label) or ():
                by_value.setdefault(row["value"], row)
        out[label] = sorted(by_value.values(), key=lambda r: (-(r.get("count") or 0), r["value"]))[:limit]
    return out
