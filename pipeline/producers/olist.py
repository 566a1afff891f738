"""Olist adapter: turn the real Olist 5k-order subset into pipeline events.

:func:`iter_olist_events` reads ``olist_subset_5k`` with the :mod:`csv` module
and yields ``(kind, event)`` pairs, ``kind`` in ``{"customer_profile",
"order", "feedback"}``, in event-time order.  Nothing here touches Kafka.

Semantics
---------
* Olist timestamps (``M/D/YYYY H:MM``) are local wall-clock times without a
  zone; they get ``tz`` (default ``America/Sao_Paulo``) attached and are
  emitted as RFC 3339 with offset, e.g. ``2017-10-02T10:56:00-03:00``.
  Non-existent local times (DST start) resolve with ``fold=0``.
* Customer id is ``customer_unique_id`` (the person); Olist's ``customer_id``
  is one per order.  A customer's profile comes at their first purchase time,
  before that order's ``placed`` event, with the address of that first order.
* Per order: ``placed`` at purchase time (``promised_delivery_at`` = end of the
  estimated delivery day, 23:59:59 local; amount = sum of payments, else sum of
  item price + freight, else 0); ``shipped`` at the carrier hand-over and
  ``delivered`` at customer delivery when present; ``cancelled`` for status
  ``canceled``/``unavailable`` at approval (or purchase) time.
* Real-data anomalies are repaired, never dropped, and counted in
  :class:`OlistStats`: a lifecycle event or review dated before its order's
  purchase (or a delivery before its shipment) is moved to that time, with the
  original time kept in ``attributes.reported_at``; a cancellation of an order
  that had already shipped/delivered is moved after its last lifecycle event.
* An order without any order line (in the subset: 34 unpaid
  ``unavailable``/``canceled`` orders, whose reviews are mostly 1-star) keeps
  its events; its ``placed`` gets the single line :data:`UNKNOWN_ITEM` (sku and
  category ``"unknown"``, qty 1, price 0; ``placed`` needs >= 1 item), amount 0
  and ``attributes.items_missing = true``.
* Orders missing a mandatory date (purchase, estimated delivery) or with an
  unknown customer are skipped, as are reviews missing their date or whose
  order was skipped; the counts are in :class:`OlistStats`.
* Every event has ``schema_version`` 1 and a deterministic ``event_id``
  (``olist-profile-<customer_unique_id>``, ``olist-order-<order_id>-<type>``,
  ``olist-review-<review_pk>``), so replays are idempotent downstream.
* The output is sorted by instant with a stable sort; ties keep the order
  profile, placed, shipped, delivered, cancelled, review.
"""

from __future__ import annotations

import copy
import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

SCHEMA_VERSION = 1
SUBDIR = "olist_subset_5k"
CANCELLED_STATUSES = frozenset({"canceled", "unavailable"})
# stands in for the lines of an order the subset has none for (schema: placed needs >= 1 item)
UNKNOWN_ITEM: dict[str, Any] = {"sku": "unknown", "category": "unknown", "qty": 1, "unit_price": 0.0}

Event = dict[str, Any]


@dataclass
class OlistStats:
    """What the adapter read, emitted, skipped and repaired."""

    orders_read: int = 0
    orders_skipped: int = 0  # missing purchase/estimated date or unknown customer
    reviews_read: int = 0
    reviews_skipped: int = 0  # missing date or order skipped/unknown
    bad_optional_dates: int = 0  # unparseable approved/carrier/delivered date, treated as absent
    orders_without_items: int = 0  # no order lines: one UNKNOWN_ITEM line, attributes.items_missing
    amount_from_items: int = 0  # no payment rows, amount fell back to items
    clamped: int = 0  # events moved to not precede their order (see module doc)
    late_deliveries: int = 0  # delivered after promised_delivery_at
    on_time_deliveries: int = 0
    events: dict[str, int] = field(default_factory=dict)  # per kind
    order_types: dict[str, int] = field(default_factory=dict)  # per order type


def parse_olist_time(value: str, zone: ZoneInfo) -> datetime | None:
    """Parse ``M/D/YYYY H:MM`` (seconds optional) as local time in ``zone``.

    Returns ``None`` for an empty value; raises ``ValueError`` if malformed.
    """
    value = value.strip()
    if not value:
        return None
    date_part, _, time_part = value.partition(" ")
    month, day, year = (int(x) for x in date_part.split("/"))
    hms = [int(x) for x in time_part.split(":")] if time_part else [0, 0]
    if len(hms) == 2:
        hms.append(0)
    if len(hms) != 3:
        raise ValueError(f"bad Olist time: {value!r}")
    return datetime(year, month, day, hms[0], hms[1], hms[2], tzinfo=zone)


def end_of_day(moment: datetime) -> datetime:
    """23:59:59 local on the same calendar day as ``moment``."""
    return moment.replace(hour=23, minute=59, second=59, microsecond=0)


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        yield from csv.DictReader(fh)


def _categories(base: Path) -> dict[str, str]:
    """product_id -> English category (else Portuguese name, else "unknown")."""
    english = {
        r["product_category_namept"]: r["product_category_name_english"]
        for r in _rows(base / "product_category_name_translation.csv")
    }
    out: dict[str, str] = {}
    for r in _rows(base / "olist_products_dataset.csv"):
        pt = (r.get("product_category_name") or "").strip()
        out[r["product_id"]] = english.get(pt) or pt or "unknown"
    return out


def _items(base: Path, categories: dict[str, str]) -> dict[str, tuple[list[Event], str | None, float]]:
    """order_id -> (items, first item's seller_id, sum of price + freight)."""
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in _rows(base / "olist_order_items_dataset.csv"):
        rows[r["order_id"]].append(r)
    out: dict[str, tuple[list[Event], str | None, float]] = {}
    for order_id, lines in rows.items():
        lines.sort(key=lambda r: int(r["order_item_id"] or 0))
        by_product: dict[str, list[float]] = {}
        for r in lines:
            by_product.setdefault(r["product_id"], []).append(float(r["price"] or 0))
        items = [
            {
                "sku": sku,
                "category": categories.get(sku, "unknown"),
                "qty": len(prices),
                "unit_price": round(sum(prices) / len(prices), 2),
            }
            for sku, prices in by_product.items()
        ]
        total = sum(float(r["price"] or 0) + float(r["freight_value"] or 0) for r in lines)
        out[order_id] = (items, lines[0]["seller_id"] or None, round(total, 2))
    return out


def _payments(base: Path) -> dict[str, tuple[float, str | None]]:
    """order_id -> (sum of payment_value, payment type of the first payment)."""
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in _rows(base / "olist_order_payments_dataset.csv"):
        rows[r["order_id"]].append(r)
    out: dict[str, tuple[float, str | None]] = {}
    for order_id, pays in rows.items():
        pays.sort(key=lambda r: int(r["payment_sequential"] or 0))
        total = round(sum(float(r["payment_value"] or 0) for r in pays), 2)
        out[order_id] = (total, pays[0]["payment_type"] or None)
    return out


_Timed = tuple[datetime, str, Event]  # (instant, kind, event)


@dataclass
class _Order:
    """One usable order row, resolved against its customer, order lines and payments."""

    order_id: str
    status: str
    person: str  # customer_unique_id
    region: str
    city: str
    zip_prefix: str  # as stored in the CSV (the profile pads it)
    purchase: datetime
    promised: datetime
    items: list[Event]
    items_missing: bool
    seller_id: str | None
    amount: float
    payment_type: str | None

    def base_event(self, kind: str) -> Event:
        """The fields every order event of type ``kind`` shares (``occurred_at`` still empty)."""
        ev: Event = {
            "schema_version": SCHEMA_VERSION,
            "event_id": f"olist-order-{self.order_id}-{kind}",
            "order_id": self.order_id,
            "customer_id": self.person,
            "type": kind,
            "occurred_at": "",
            "channel": "marketplace",
            "region": self.region,
        }
        if self.seller_id:
            ev["seller_id"] = self.seller_id
        return ev


@dataclass
class _Sources:
    """The lookup tables the order rows are resolved against."""

    customers: dict[str, dict[str, str]]  # customer_id -> customer row
    items: dict[str, tuple[list[Event], str | None, float]]  # see _items
    payments: dict[str, tuple[float, str | None]]  # see _payments

    @classmethod
    def read(cls, base: Path) -> "_Sources":
        """Read customers, order lines and payments under ``base``."""
        customers = {r["customer_id"]: r for r in _rows(base / "olist_customers_dataset.csv")}
        items = _items(base, _categories(base))
        return cls(customers, items, _payments(base))


@dataclass
class _Build:
    """State of one :func:`_build` run: the zone, the counts and the events gathered so far."""

    zone: ZoneInfo
    stats: OlistStats = field(default_factory=OlistStats)
    profiles: dict[str, tuple[datetime, Event]] = field(default_factory=dict)  # person -> first purchase
    order_events: list[_Timed] = field(default_factory=list)  # built in tie-break order
    feedback: list[_Timed] = field(default_factory=list)
    placed: dict[str, _Order] = field(default_factory=dict)  # order_id -> its (last) usable order row

    def optional(self, value: str) -> datetime | None:
        """Parse an optional date; a malformed one is counted and treated as absent."""
        try:
            return parse_olist_time(value, self.zone)
        except ValueError:
            self.stats.bad_optional_dates += 1
            return None

    def stamp(self, event: Event, when: datetime, floor: datetime) -> datetime:
        """Set occurred_at, moving ``when`` up to ``floor`` if it precedes it."""
        if when < floor:
            self.stats.clamped += 1
            event.setdefault("attributes", {})["reported_at"] = when.isoformat()
            when = floor
        event["occurred_at"] = when.isoformat()
        return when

    def resolve_order(self, row: dict[str, str], sources: _Sources) -> _Order | None:
        """The order of ``row``, or ``None`` (counted as skipped) without its mandatory dates or customer."""
        self.stats.orders_read += 1
        order_id, status = row["order_id"], row["order_status"].strip()
        customer = sources.customers.get(row["customer_id"])
        try:
            purchase = parse_olist_time(row["order_purchase_timestamp"], self.zone)
            estimated = parse_olist_time(row["order_estimated_delivery_date"], self.zone)
        except ValueError:
            purchase = estimated = None
        if purchase is None or estimated is None or customer is None:
            self.stats.orders_skipped += 1
            return None
        items, seller_id, items_total = sources.items.get(order_id, ([], None, 0.0))
        items_missing = not items  # placed needs >= 1 line: keep the order with a marker line
        if items_missing:
            self.stats.orders_without_items += 1
            items = [dict(UNKNOWN_ITEM)]
        if order_id in sources.payments:
            amount, payment_type = sources.payments[order_id]
        else:
            amount, payment_type = items_total, None
            self.stats.amount_from_items += not items_missing
        return _Order(
            order_id=order_id,
            status=status,
            person=customer["customer_unique_id"],
            region=customer["customer_state"],
            city=customer["customer_city"],
            zip_prefix=customer["customer_zip_code_prefix"],
            purchase=purchase,
            promised=end_of_day(estimated),
            items=items,
            items_missing=items_missing,
            seller_id=seller_id,
            amount=amount,
            payment_type=payment_type,
        )

    def add_order(self, row: dict[str, str], order: _Order) -> None:
        """Add an order's placed event, its customer's profile if first, and its lifecycle events."""
        self.order_events.append((order.purchase, "order", _placed_event(order)))
        self.placed[order.order_id] = order
        first = self.profiles.get(order.person)
        if first is None or order.purchase < first[0]:
            self.profiles[order.person] = (order.purchase, _profile_event(order))
        self.add_lifecycle(row, order)

    def add_lifecycle(self, row: dict[str, str], order: _Order) -> None:
        """Add shipped, delivered and cancelled events, each kept after the ones before it."""
        last = order.purchase
        carrier = self.optional(row["order_delivered_carrier_date"])
        if carrier is not None:
            ev = order.base_event("shipped")
            last = self.stamp(ev, carrier, last)
            self.order_events.append((last, "order", ev))
        delivered = self.optional(row["order_delivered_customer_date"])
        if delivered is not None:
            ev = order.base_event("delivered")
            if delivered > order.promised:
                self.stats.late_deliveries += 1
            else:
                self.stats.on_time_deliveries += 1
            last = self.stamp(ev, delivered, last)
            self.order_events.append((last, "order", ev))
        if order.status in CANCELLED_STATUSES:
            ev = order.base_event("cancelled")
            ev["reason"] = order.status
            when = self.optional(row["order_approved_at"]) or order.purchase
            when = self.stamp(ev, when, last)
            self.order_events.append((when, "order", ev))

    def add_review(self, row: dict[str, str]) -> None:
        """Add the feedback event of a review row, or count it as skipped."""
        self.stats.reviews_read += 1
        order = self.placed.get(row["order_id"])
        try:
            created = parse_olist_time(row["review_creation_date"], self.zone)
            score = int(row["review_score"])
        except ValueError:
            created = None
            score = 0
        if order is None or created is None or not 1 <= score <= 5:
            self.stats.reviews_skipped += 1
            return
        pk = row["review_pk"]
        ev: Event = {
            "schema_version": SCHEMA_VERSION,
            "event_id": f"olist-review-{pk}",
            "feedback_id": f"olist-review-{pk}",
            "customer_id": order.person,
            "source": "review",
            "score": score,
            "scale": {"min": 1, "max": 5},
            "occurred_at": "",
            "order_id": row["order_id"],
            "channel": "marketplace",
        }
        answered = self.optional(row.get("review_answer_timestamp", ""))
        if answered is not None:
            ev["attributes"] = {"answered_at": answered.isoformat()}
        when = self.stamp(ev, created, order.purchase)
        self.feedback.append((when, "feedback", ev))

    def merged(self) -> list[tuple[str, Event]]:
        """All events, stably sorted by instant (profiles, orders, feedback on ties), counted in stats."""
        merged = [(at, "customer_profile", ev) for at, ev in self.profiles.values()]
        merged += self.order_events
        merged += self.feedback
        merged.sort(key=lambda t: t[0].astimezone(timezone.utc))
        out = [(kind, ev) for _, kind, ev in merged]
        for kind, ev in out:
            self.stats.events[kind] = self.stats.events.get(kind, 0) + 1
            if kind == "order":
                self.stats.order_types[ev["type"]] = self.stats.order_types.get(ev["type"], 0) + 1
        return out


def _placed_event(order: _Order) -> Event:
    """The ``placed`` event of an order, at its purchase time."""
    placed = order.base_event("placed")
    placed.update(
        occurred_at=order.purchase.isoformat(),
        promised_delivery_at=order.promised.isoformat(),
        amount=order.amount,
        currency="BRL",
        items=order.items,
        attributes={"olist_status": order.status, "city": order.city},
    )
    if order.items_missing:
        placed["attributes"]["items_missing"] = True
    if order.payment_type:
        placed["attributes"]["payment_type"] = order.payment_type
    return placed


def _profile_event(order: _Order) -> Event:
    """The customer profile as of ``order`` (with that order's address)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": f"olist-profile-{order.person}",
        "customer_id": order.person,
        "occurred_at": order.purchase.isoformat(),
        "region": order.region,
        "attributes": {
            "city": order.city,
            # the subset stored the 5-digit CEP prefix as a number
            "zip_prefix": order.zip_prefix.strip().zfill(5),
        },
    }


def _build(data_dir: Path, tz: str) -> tuple[list[tuple[str, Event]], OlistStats]:
    """Read the subset under ``data_dir`` into sorted ``(kind, event)`` pairs and their counts."""
    base = Path(data_dir)
    build = _Build(ZoneInfo(tz))
    sources = _Sources.read(base)
    for row in _rows(base / "olist_orders_dataset.csv"):
        order = build.resolve_order(row, sources)
        if order is not None:
            build.add_order(row, order)
    for row in _rows(base / "olist_order_reviews_dataset.csv"):
        build.add_review(row)
    return build.merged(), build.stats


@lru_cache(maxsize=2)
def _cached(data_dir: Path, tz: str) -> tuple[tuple[tuple[str, Event], ...], OlistStats]:
    events, stats = _build(data_dir, tz)
    return tuple(events), stats


def iter_olist_events(data_dir: Path, tz: str = "America/Sao_Paulo") -> Iterator[tuple[str, Event]]:
    """Yield ``(kind, event)`` for the Olist subset under ``data_dir`` in event-time order.

    ``data_dir`` is either the data root (``settings.data_dir``) or the
    ``olist_subset_5k`` folder itself.  Each call yields fresh event dicts
    (callers may mutate them).  Raises ``FileNotFoundError`` if the CSVs are
    missing.
    """
    events, _ = _cached(_resolve(data_dir), tz)
    for kind, ev in events:
        yield kind, _copy(ev)


def olist_stats(data_dir: Path, tz: str = "America/Sao_Paulo") -> OlistStats:
    """Counts of what :func:`iter_olist_events` reads, emits, skips and repairs."""
    _, stats = _cached(_resolve(data_dir), tz)
    return copy.deepcopy(stats)


def _resolve(data_dir: Path) -> Path:
    path = Path(data_dir)
    if (path / SUBDIR).is_dir():
        path = path / SUBDIR
    return path.resolve()


def _copy(event: Event) -> Event:
    """Copy an event deep enough that callers cannot alter the cached one."""
    out = dict(event)
    for key in ("attributes", "scale"):
        if key in out:
            out[key] = dict(out[key])
    if "items" in out:
        out["items"] = [dict(item) for item in out["items"]]
    return out


def last_due(data_dir: Path, tz: str = "America/Sao_Paulo") -> float:
    """The latest promised delivery time in the dataset (epoch seconds): where a replay's clock must go."""
    from ..core.timeparse import parse_timestamp

    return max(
        parse_timestamp(e["promised_delivery_at"])
        for k, e in iter_olist_events(data_dir, tz)
        if k == "order" and "promised_delivery_at" in e
    )
