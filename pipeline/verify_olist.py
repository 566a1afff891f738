"""Check the commitment alerts of an Olist replay against the truth computed from the CSV files.

Truth, straight from ``olist_orders_dataset.csv`` (dates are local, no zone):

* **unmet** (delivery): delivered on a calendar day after the estimated delivery
  date, plus orders never delivered whose status is not ``canceled`` / ``unavailable``;
* **at risk**: delivered after ``end of the estimated day − warning offset``, plus
  the never-delivered ones above (the warning time passed while still open).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from .config import Settings
from .summary import read_topic

NOT_DELIVERABLE = {"canceled", "unavailable"}


def _parse(value: str) -> datetime | None:
    value = (value or "").strip()
    return datetime.strptime(value, "%m/%d/%Y %H:%M") if value else None


@dataclass
class Truth:
    unmet: set[str]
    at_risk: set[str]
    orders: set[str]


def truth_from_csv(olist_dir: Path, warn_seconds: float) -> Truth:
    unmet: set[str] = set()
    at_risk: set[str] = set()
    orders: set[str] = set()
    with open(olist_dir / "olist_orders_dataset.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            oid = row["order_id"]
            orders.add(oid)
            estimated = _parse(row["order_estimated_delivery_date"])
            delivered = _parse(row["order_delivered_customer_date"])
            if estimated is None:
                continue
            end_of_day = datetime.combine(estimated.date(), datetime.max.time()).replace(microsecond=0)
            if delivered is None:
                if row["order_status"] not in NOT_DELIVERABLE:
                    unmet.add(oid)
                    at_risk.add(oid)
                continue
            if delivered.date() > estimated.date():
                unmet.add(oid)
            if delivered > end_of_day - timedelta(seconds=warn_seconds):
                at_risk.add(oid)
    return Truth(unmet, at_risk, orders)


def alerted_orders(settings: Settings) -> tuple[dict[str, set[str]], int, int]:
    """({alert type: order ids} for delivery commitments, alerts read, duplicate alert ids)."""
    by_type: dict[str, set[str]] = {}
    seen: set[str] = set()
    total = dupes = 0
    for _, value in read_topic(settings, settings.topics.alerts_commitments):
        a = orjson.loads(value)
        total += 1
        if a["alert_id"] in seen:
            dupes += 1
        seen.add(a["alert_id"])
        c = a.get("commitment") or {}
        if c.get("kind") == "delivery":
            by_type.setdefault(a["type"], set()).add(str(c["id"]).split(":", 1)[1])
    return by_type, total, dupes


def verify(settings: Settings, warn_seconds: float) -> tuple[bool, str]:
    truth = truth_from_csv(settings.data_dir / "olist_subset_5k", warn_seconds)
    by_type, total, dupes = alerted_orders(settings)
    lines = [f"commitment alerts read: {total} (duplicate alert ids: {dupes})"]
    ok = dupes == 0
    for label, typ, expected in (("unmet delivery", "unmet_commitment", truth.unmet),
                                 ("at-risk delivery", "commitment_at_risk", truth.at_risk)):
        got = by_type.get(typ, set()) & truth.orders  # other traffic (simulated orders) is not judged here
        missing, extra = sorted(expected - got), sorted(got - expected)
        ok = ok and not missing and not extra
        lines.append(f"{label:17s}: from CSV {len(expected):5d} | alerted {len(got):5d} | "
                     f"missing {len(missing)} {missing[:3]} | extra {len(extra)} {extra[:3]}")
    return ok, "\n".join(lines)


def churn_table(settings: Settings) -> tuple[str, dict[str, dict[str, float]]]:
    """Customers with a ``churn_risk`` alert vs everyone else: late-delivery share and mean review score.

    Late deliveries and review scores come straight from the CSV files (customers are
    Olist's ``customer_unique_id``, as in the adapter).
    """
    olist = settings.data_dir / "olist_subset_5k"
    crossed = set()
    for _, value in read_topic(settings, settings.topics.alerts_churn):
        a = orjson.loads(value)
        if a["type"] == "churn_risk":
            crossed.add(a["subject"]["customer_id"])
    with open(olist / "olist_customers_dataset.csv", newline="", encoding="utf-8") as f:
        person = {r["customer_id"]: r["customer_unique_id"] for r in csv.DictReader(f)}
    owner: dict[str, str] = {}
    late: dict[str, list[int]] = {}
    with open(olist / "olist_orders_dataset.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            cid = person.get(row["customer_id"], row["customer_id"])
            owner[row["order_id"]] = cid
            est, got = _parse(row["order_estimated_delivery_date"]), _parse(row["order_delivered_customer_date"])
            if est is not None and got is not None:
                late.setdefault(cid, []).append(int(got.date() > est.date()))
    scores: dict[str, list[int]] = {}
    with open(olist / "olist_order_reviews_dataset.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            cid = owner.get(row["order_id"])
            if cid is not None and row["review_score"]:
                scores.setdefault(cid, []).append(int(row["review_score"]))
    everyone = set(owner.values())
    rows: dict[str, dict[str, float]] = {}
    for label, group in (("crossed threshold", everyone & crossed), ("everyone else", everyone - crossed)):
        deliveries = [x for c in group for x in late.get(c, [])]
        reviews = [x for c in group for x in scores.get(c, [])]
        rows[label] = {
            "customers": len(group),
            "late_share": sum(deliveries) / len(deliveries) if deliveries else 0.0,
            "mean_review": sum(reviews) / len(reviews) if reviews else 0.0,
        }
    lines = [f"{'group':18s} {'customers':>9s} {'late deliveries':>16s} {'mean review':>12s}"]
    for label, r in rows.items():
        lines.append(f"{label:18s} {int(r['customers']):9d} {r['late_share']:16.1%} {r['mean_review']:12.2f}")
    return "\n".join(lines), rows


@dataclass
class TierFigures:
    customers: int  # customers with orders
    by_tier: dict[str, int]  # value tier at each customer's latest enriched event
    spend_by_tier: dict[str, float]  # their cumulative spend (reference currency)
    by_source: dict[str, int]  # tier_source at that event

    def share(self, tier: str) -> float:
        return self.by_tier.get(tier, 0) / self.customers if self.customers else 0.0

    def spend_share(self, tier: str) -> float:
        total = sum(self.spend_by_tier.values())
        return self.spend_by_tier.get(tier, 0.0) / total if total else 0.0

    def table(self) -> str:
        lines = [f"{'tier':8s} {'customers':>9s} {'share':>7s} {'spend share':>12s}"]
        for tier in ("key", "regular", "general"):
            lines.append(f"{tier:8s} {self.by_tier.get(tier, 0):9d} {self.share(tier):7.1%} "
                         f"{self.spend_share(tier):12.1%}")
        lines.append(f"customers with orders: {self.customers}; tier source {dict(sorted(self.by_source.items()))}")
        return "\n".join(lines)


def tier_figures(settings: Settings) -> TierFigures:
    """Issue 18: each customer's value tier at its latest enriched event (by event time), for the
    customers with at least one order: how many are ``key`` and how much of the spend they hold."""
    latest: dict[str, tuple[str, int, dict]] = {}
    for _, value in read_topic(settings, settings.topics.enriched):
        doc = orjson.loads(value)
        seg = doc["segment"]
        order = (doc["occurred_at"], seg.get("orders_count", 0))
        cid = doc["customer_id"]
        if cid not in latest or order >= latest[cid][:2]:
            latest[cid] = (*order, seg)
    by_tier: dict[str, int] = {}
    spend: dict[str, float] = {}
    source: dict[str, int] = {}
    for _, _, seg in latest.values():
        if not seg.get("orders_count"):
            continue
        tier = seg["value_tier"]
        by_tier[tier] = by_tier.get(tier, 0) + 1
        spend[tier] = spend.get(tier, 0.0) + float(seg.get("spend") or 0.0)
        source[seg["tier_source"]] = source.get(seg["tier_source"], 0) + 1
    return TierFigures(sum(by_tier.values()), by_tier, spend, source)


def late_one_star_reviews(olist: Path) -> dict[str, tuple[str, str, set[str]]]:
    """Reviews scored 1 of orders delivered after their estimated day: review event id ->
    (order id, the order's first seller, its categories), straight from the CSV files."""
    late = set()
    with open(olist / "olist_orders_dataset.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            est, got = _parse(row["order_estimated_delivery_date"]), _parse(row["order_delivered_customer_date"])
            if est is not None and got is not None and got.date() > est.date():
                late.add(row["order_id"])
    products: dict[str, str] = {}
    with open(olist / "olist_products_dataset.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            products[row["product_id"]] = row["product_category_name"]
    seller: dict[str, str] = {}
    categories: dict[str, set[str]] = {}
    with open(olist / "olist_order_items_dataset.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            seller.setdefault(row["order_id"], row["seller_id"])
            categories.setdefault(row["order_id"], set()).add(products.get(row["product_id"]) or "")
    out = {}
    with open(olist / "olist_order_reviews_dataset.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            oid = row["order_id"]
            if row["review_score"] == "1" and oid in late and oid in seller:
                out[f"olist-review-{row['review_pk']}"] = (oid, seller[oid], categories[oid])
    return out
