"""Seeded simulator of a realistic customer event stream (orders, feedback, complaints).

:func:`iter_simulated_events` yields ``(kind, event)`` pairs with the same
field contracts as the Olist adapter.  Semantics:

* First one ``customer_profile`` per customer, all at ``start``: tiers about
  10% key / 30% regular / 60% general, regions in Korea, the US and Brazil
  (currency KRW / USD / BRL), relationship levels that follow the tier,
  preferred channels and signup dates up to four years before ``start``.
* Then activity, about 60% order, 25% feedback and 15% complaint events (the
  choice of new activities is steered by the mix emitted so far, so the mix
  holds for short and long streams although lifecycles have several events):

  - orders: ``placed`` with ``promised_delivery_at`` = end of a local day 2-5
    days later, ``shipped``, ``delivered`` (about 12% after the promise), and
    some ``cancelled`` (+``refunded``), ``delivery_rescheduled`` (new promise),
    never delivered (lost), ``returned`` (+``refunded``);
  - feedback: reviews 1-5 (real Korean or Amazon texts matched to the score,
    lower scores after late deliveries), NPS 0-10 and CSAT 1-5, some with an
    ``expectation_score`` on the same scale;
  - complaints: ``opened`` with a real Korean or English text and
    ``promised_response_by`` / ``promised_resolution_by`` (tier-dependent),
    sometimes ``promised_callback_at`` / ``promised_refund_by``; then
    ``updated``, ``resolved`` and sometimes ``reopened`` - about 20% miss a
    promise, some are never resolved.

* ``occurred_at`` (UTC, whole seconds) never decreases: it starts at ``start``
  (default: ``n`` × 180 s before now, or 30 days before now for an endless
  stream, so that the stream, about 90 s of event time per event, stays
  behind the wall clock: the pipeline dead-letters an event more than
  ``PIPELINE_MAX_FUTURE_SECONDS`` ahead of it, issue 15) and advances by random steps of about three minutes, or jumps
  to the next scheduled lifecycle event.  Promises are in the customer's local
  offset.
* ``n`` is the total number of events yielded, profiles included (``None``:
  endless).  The same ``(seed, start, data_dir contents, customers)`` gives
  the same stream; ids embed the seed and ``start`` so separate runs do not
  collide, except customer ids (``sim<seed>-c00001``), shared by runs with
  the same seed.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar
from zoneinfo import ZoneInfo

from pipeline.producers import texts
from pipeline.producers.texts import Text

SCHEMA_VERSION = 1
MEAN_STEP_S = 180.0
ENDLESS_BACKDATE = timedelta(days=30)  # default start of an endless stream, before now
MAX_TEXT = 20_000  # schema maxLength of text
T = TypeVar("T")
Event = dict[str, Any]

# region, currency, time zone, weight, locale
REGIONS: tuple[tuple[str, str, str, float, str], ...] = (
    ("KR-Seoul", "KRW", "Asia/Seoul", 0.22, "ko-KR"),
    ("KR-Gyeonggi", "KRW", "Asia/Seoul", 0.15, "ko-KR"),
    ("KR-Busan", "KRW", "Asia/Seoul", 0.08, "ko-KR"),
    ("US-CA", "USD", "America/Los_Angeles", 0.13, "en-US"),
    ("US-NY", "USD", "America/New_York", 0.12, "en-US"),
    ("US-TX", "USD", "America/Chicago", 0.10, "en-US"),
    ("BR-SP", "BRL", "America/Sao_Paulo", 0.12, "pt-BR"),
    ("BR-RJ", "BRL", "America/Sao_Paulo", 0.08, "pt-BR"),
)
CURRENCY_PER_USD = {"USD": 1.0, "KRW": 1350.0, "BRL": 5.0}
TIERS = (("key", 0.10), ("regular", 0.30), ("general", 0.60))
TIER_ACTIVITY = {"key": 4.0, "regular": 2.0, "general": 1.0}
RELATIONSHIPS = {  # tier -> (level, weight)
    "key": (("strategic_alliance", 0.4), ("partner", 0.4), ("preferred_supplier", 0.2)),
    "regular": (("preferred_supplier", 0.5), ("partner", 0.1), ("transactional", 0.4)),
    "general": (("transactional", 0.9), ("preferred_supplier", 0.1)),
}
CHANNELS = (
    ("web", 0.3), ("app", 0.3), ("marketplace", 0.15), ("store", 0.1), ("phone", 0.1), ("email", 0.05),
)
COMPLAINT_CHANNELS = (
    ("phone", 0.3), ("chat", 0.25), ("email", 0.2), ("web", 0.1), ("app", 0.1), ("social", 0.05),
)
# category -> (min, max) unit price in USD
CATEGORIES = {
    "electronics": (20, 800),
    "home": (10, 200),
    "fashion": (10, 150),
    "beauty": (5, 80),
    "grocery": (2, 40),
    "toys": (5, 100),
    "sports": (10, 300),
}
CARRIERS = ("CJ Logistics", "Hanjin", "UPS", "FedEx", "USPS", "Correios", "Loggi")
# tier -> hours until promised response, days until promised resolution
COMPLAINT_SLA = {"key": (2, 1), "regular": (8, 3), "general": (24, 5)}
TARGET = {"order": 0.60, "feedback": 0.25, "complaint": 0.15}
EVENTS_PER_ACTION = {"order": 3.0, "feedback": 1.0, "complaint": 2.7}
FALLBACK = {
    ("ko", True): ("배송이 너무 늦어요.", "제품이 불량이에요. 환불해 주세요.", "고객센터 연결이 안 됩니다."),
    ("ko", False): ("배송이 빠르고 좋아요.", "가격 대비 품질이 좋습니다."),
    ("en", True): (
        "My order is late and nobody answers.",
        "The item arrived damaged, I want a refund.",
        "I was charged twice for the same order.",
    ),
    ("en", False): ("Great product, fast delivery.", "Works as expected, happy with it."),
}


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    tier: str
    region: str
    currency: str
    zone: ZoneInfo
    language: str  # "ko" or "en": language of the texts this customer writes
    channel: str


@dataclass(frozen=True, slots=True)
class _Texts:
    ko_neg: Sequence[Text]
    ko_pos: Sequence[Text]
    en_complaints: Sequence[Text]
    en_by_rating: dict[int, Sequence[Text]]


def _weighted(rng: random.Random, pairs: Sequence[tuple[T, float]]) -> T:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _end_of_day(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(hour=23, minute=59, second=59, microsecond=0)


def _load_texts(data_dir: Path) -> _Texts:
    ko = texts.korean_reviews(data_dir)
    alexa = texts.alexa_reviews(data_dir)
    return _Texts(
        ko_neg=[t for t in ko if t.negative],
        ko_pos=[t for t in ko if not t.negative],
        en_complaints=texts.english_complaints(data_dir),
        en_by_rating={r: [t for t in alexa if t.rating == r] for r in range(1, 6)},
    )


class _Simulation:
    """State of one simulated stream; :meth:`run` is the generator."""

    def __init__(self, seed: int, data_dir: Path, customers: int, start: datetime) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.start = start
        self.now = start
        self.run_id = f"{seed}-{int(start.timestamp()):x}"
        self.texts = _load_texts(data_dir)
        self.seq = itertools.count(1)
        self.ids = {k: itertools.count(1) for k in ("order", "feedback", "complaint")}
        self.pending: list[tuple[datetime, int, str, Event]] = []  # heap of lifecycle events
        self.emitted = {k: 0 for k in TARGET}
        self.late_orders: set[str] = set()
        self.delivered: deque[tuple[str, str]] = deque(maxlen=300)  # (order_id, customer_id)
        self.orders_of: dict[str, deque[str]] = {}
        self.population = [self._customer(i) for i in range(1, customers + 1)]
        self.by_id = {c.customer_id: c for c in self.population}
        self.activity = list(itertools.accumulate(TIER_ACTIVITY[c.tier] for c in self.population))

    # -- helpers -------------------------------------------------------------------
    def _event_id(self) -> str:
        return f"sim-{self.run_id}-{next(self.seq):08d}"

    def _new_id(self, kind: str) -> str:
        prefix = {"order": "SO", "feedback": "SF", "complaint": "SC"}[kind]
        return f"{prefix}-{self.run_id}-{next(self.ids[kind]):06d}"

    def _customer(self, index: int) -> Customer:
        rng = self.rng
        region, currency, tz, _, locale = rng.choices(REGIONS, weights=[r[3] for r in REGIONS])[0]
        return Customer(
            customer_id=f"sim{self.seed}-c{index:05d}",
            tier=_weighted(rng, TIERS),
            region=region,
            currency=currency,
            zone=ZoneInfo(tz),
            language="ko" if locale.startswith("ko") else "en",
            channel=_weighted(rng, CHANNELS),
        )

    def _pick_customer(self) -> Customer:
        return self.rng.choices(self.population, cum_weights=self.activity)[0]

    def _schedule(self, due: datetime, kind: str, event: Event) -> None:
        due = due.astimezone(timezone.utc).replace(microsecond=0)
        heapq.heappush(self.pending, (due, next(self.seq), kind, event))

    def _text(self, language: str, negative: bool, rating: int | None = None) -> Text:
        rng, t = self.rng, self.texts
        if language == "ko":
            pool: Sequence[Text] = t.ko_neg if negative else t.ko_pos
        elif rating is not None:
            pool = t.en_by_rating.get(rating, ())
        else:
            pool = t.en_complaints if negative else t.en_by_rating.get(5, ())
        if pool:
            chosen = rng.choice(pool)
            if len(chosen.text) > MAX_TEXT:
                chosen = replace(chosen, text=chosen.text[:MAX_TEXT])
            return chosen
        return Text(rng.choice(FALLBACK[(language, negative)]), language, rating, negative)

    def _price(self, usd: float, currency: str) -> float:
        value = usd * CURRENCY_PER_USD[currency]
        return float(round(value, -1)) if currency == "KRW" else round(value, 2)

    # -- profiles --------------------------------------------------------------------
    def profile(self, c: Customer) -> Event:
        rng = self.rng
        signup = self.start - timedelta(days=rng.uniform(1, 1460))
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self._event_id(),
            "customer_id": c.customer_id,
            "occurred_at": _iso(self.start),
            "tier": c.tier,
            "region": c.region,
            "relationship_level": _weighted(rng, RELATIONSHIPS[c.tier]),
            "signup_at": _iso(signup.replace(microsecond=0)),
            "preferred_channel": c.channel,
            "attributes": {"currency": c.currency, "language": c.language},
        }

    # -- orders ----------------------------------------------------------------------
    def place_order(self) -> Event:
        rng, c, t = self.rng, self._pick_customer(), self.now
        order_id = self._new_id("order")
        items = []
        for _ in range(rng.choices((1, 2, 3, 4), weights=(0.55, 0.25, 0.13, 0.07))[0]):
            category = rng.choice(list(CATEGORIES))
            low, high = CATEGORIES[category]
            usd = rng.uniform(low, high) * (1.5 if c.tier == "key" else 1.0)
            items.append(
                {
                    "sku": f"SKU-{category[:3].upper()}-{rng.randint(1, 250):04d}",
                    "category": category,
                    "qty": rng.choices((1, 2, 3), weights=(0.8, 0.15, 0.05))[0],
                    "unit_price": self._price(usd, c.currency),
                }
            )
        shipping = self._price(rng.choice((0, 0, 3, 5, 8)), c.currency)
        amount = round(sum(i["qty"] * i["unit_price"] for i in items) + shipping, 2)
        promised = _end_of_day(t + timedelta(days=rng.randint(2, 5)), c.zone)
        channel = c.channel if rng.random() < 0.8 else _weighted(rng, CHANNELS)
        seller = f"seller-{rng.randint(1, 40):03d}"
        common = {"order_id": order_id, "customer_id": c.customer_id, "channel": channel,
                  "region": c.region, "seller_id": seller}

        def follow(due: datetime, kind: str, **extra: Any) -> None:
            ev = {"schema_version": SCHEMA_VERSION, "event_id": "", "type": kind,
                  "occurred_at": "", **common, **extra}
            self._schedule(due, "order", ev)

        hours = lambda lo, hi: timedelta(hours=rng.uniform(lo, hi))  # noqa: E731
        money = {"amount": amount, "currency": c.currency}
        if rng.random() < 0.04:
            cancelled = t + hours(0.2, 12)
            reason = rng.choice(("customer_request", "out_of_stock", "payment_failed"))
            follow(cancelled, "cancelled", reason=reason)
            if rng.random() < 0.5:
                follow(cancelled + hours(24, 72), "refunded", **money, reason="cancelled")
        else:
            carrier = rng.choice(CARRIERS)
            shipped = t + hours(2, 30)
            follow(shipped, "shipped", carrier=carrier)
            promise = promised
            if rng.random() < 0.06:
                promise = _end_of_day(promised + timedelta(days=rng.randint(1, 3)), c.zone)
                follow(shipped + hours(6, 40), "delivery_rescheduled", carrier=carrier,
                       promised_delivery_at=_iso(promise),
                       reason=rng.choice(("carrier_delay", "weather", "address_issue", "stock_shortage")))
                late = rng.random() < 0.3
            else:
                late = rng.random() < 0.12
            lost = rng.random() < 0.01
            if late:
                self.late_orders.add(order_id)
                delivered = promise + hours(1, 72)
            else:
                earliest = shipped + timedelta(hours=12)
                latest = max(earliest, promise - timedelta(hours=2))
                delivered = earliest + (latest - earliest) * rng.random()
            if not lost:
                follow(delivered, "delivered", carrier=carrier)
                if rng.random() < 0.05:
                    returned = delivered + hours(24, 240)
                    follow(returned, "returned", reason=rng.choice(
                        ("damaged", "wrong_item", "not_as_described", "changed_mind")))
                    if rng.random() < 0.85:
                        follow(returned + hours(24, 120), "refunded", **money, reason="returned")
        self.orders_of.setdefault(c.customer_id, deque(maxlen=5)).append(order_id)
        return {"schema_version": SCHEMA_VERSION, "event_id": self._event_id(), "type": "placed",
                "occurred_at": _iso(t), **common, "promised_delivery_at": _iso(promised),
                **money, "items": items}

    # -- feedback --------------------------------------------------------------------
    def feedback(self) -> Event:
        rng = self.rng
        source = _weighted(rng, (("review", 0.6), ("nps", 0.2), ("csat", 0.2)))
        order_id: str | None = None
        if source == "review" and self.delivered and rng.random() < 0.8:
            order_id, customer_id = self.delivered[rng.randrange(len(self.delivered))]
            c = self.by_id[customer_id]
        else:
            c = self._pick_customer()
        late = order_id in self.late_orders
        ev: Event = {"schema_version": SCHEMA_VERSION, "event_id": self._event_id(),
                     "feedback_id": self._new_id("feedback"), "customer_id": c.customer_id,
                     "source": source}
        if source == "nps":
            score = rng.choices(range(11), weights=(2, 1, 1, 2, 2, 4, 5, 10, 20, 25, 28))[0]
            ev.update(score=score, scale={"min": 0, "max": 10})
            negative, rating = score <= 6, max(1, round(score / 2))
        else:
            weights = (35, 25, 20, 12, 8) if late else (5, 5, 10, 25, 55)
            score = rng.choices(range(1, 6), weights=weights)[0]
            ev.update(score=score, scale={"min": 1, "max": 5})
            negative, rating = score <= 2, score
            if rng.random() < 0.3:
                ev["expectation_score"] = min(5, max(1, score + rng.choice((-1, 0, 1, 1, 2))))
        ev["occurred_at"] = _iso(self.now)
        if rng.random() < (0.8 if source == "review" else 0.3):
            text = self._text(c.language, negative, rating if c.language == "en" else None)
            ev.update(text=text.text, language=text.language)
        if order_id:
            ev["order_id"] = order_id
        ev["channel"] = c.channel if source != "nps" else rng.choice(("email", "app"))
        return ev

    # -- complaints ------------------------------------------------------------------
    def open_complaint(self) -> Event:
        rng, c, t = self.rng, self._pick_customer(), self.now
        complaint_id = self._new_id("complaint")
        channel = _weighted(rng, COMPLAINT_CHANNELS)
        text = self._text(c.language, True)
        response_h, resolution_d = COMPLAINT_SLA[c.tier]
        respond_by = t + timedelta(hours=response_h)
        resolve_by = _end_of_day(t + timedelta(days=resolution_d), c.zone)
        owner = f"agent-{rng.randint(1, 25):02d}"
        ev: Event = {"schema_version": SCHEMA_VERSION, "event_id": self._event_id(),
                     "complaint_id": complaint_id, "customer_id": c.customer_id, "status": "opened",
                     "channel": channel, "occurred_at": _iso(t), "text": text.text,
                     "language": text.language, "promised_response_by": _iso(respond_by.astimezone(c.zone)),
                     "promised_resolution_by": _iso(resolve_by)}
        orders = self.orders_of.get(c.customer_id)
        if orders and rng.random() < 0.6:
            ev["order_id"] = orders[-1]
            if rng.random() < 0.3:
                ev["promised_refund_by"] = _iso(_end_of_day(t + timedelta(days=rng.randint(3, 10)), c.zone))
        if channel == "phone" or rng.random() < 0.15:
            callback = t + timedelta(hours=rng.uniform(1, 6))
            ev["promised_callback_at"] = _iso(callback.astimezone(c.zone))
        common = {"complaint_id": complaint_id, "customer_id": c.customer_id,
                  "channel": channel, "owner": owner}
        if "order_id" in ev:
            common["order_id"] = ev["order_id"]

        def follow(due: datetime, status: str, **extra: Any) -> None:
            self._schedule(due, "complaint", {"schema_version": SCHEMA_VERSION, "event_id": "",
                                              "status": status, "occurred_at": "", **common, **extra})

        window = respond_by - t
        responded = t + window * (rng.uniform(0.1, 0.95) if rng.random() < 0.8 else rng.uniform(1.1, 3.0))
        if rng.random() < 0.8:
            follow(responded, "updated")
        if rng.random() < 0.92:
            span = resolve_by - t
            resolved = t + span * (rng.uniform(0.2, 0.95) if rng.random() < 0.78 else rng.uniform(1.05, 2.0))
            resolved = max(resolved, responded + timedelta(minutes=5))
            follow(resolved, "resolved")
            if rng.random() < 0.12:
                reopened = resolved + timedelta(days=rng.uniform(0.5, 4))
                again = self._text(c.language, True)
                follow(reopened, "reopened", text=again.text, language=again.language)
                follow(reopened + timedelta(days=rng.uniform(0.5, 3)), "resolved")
        return ev

    # -- stream ----------------------------------------------------------------------
    def _new_kind(self) -> str:
        total = sum(self.emitted.values())
        weights = []
        for kind, target in TARGET.items():
            share = self.emitted[kind] / total if total else target
            steer = max(0.05, 1.0 + 4.0 * (target - share) / target)
            weights.append(target / EVENTS_PER_ACTION[kind] * steer)
        return self.rng.choices(list(TARGET), weights=weights)[0]

    def run(self) -> Iterator[tuple[str, Event]]:
        for c in self.population:
            yield "customer_profile", self.profile(c)
        while True:
            step = timedelta(seconds=max(1, round(self.rng.expovariate(1 / MEAN_STEP_S))))
            candidate = self.now + step
            if self.pending and self.pending[0][0] <= candidate:
                due, _, kind, ev = heapq.heappop(self.pending)
                self.now = max(self.now, due)
                ev["event_id"] = self._event_id()
                ev["occurred_at"] = _iso(self.now)
                if kind == "order" and ev["type"] == "delivered":
                    self.delivered.append((ev["order_id"], ev["customer_id"]))
            else:
                self.now = candidate
                kind = self._new_kind()
                ev = {"order": self.place_order, "feedback": self.feedback,
                      "complaint": self.open_complaint}[kind]()
            self.emitted[kind] += 1
            yield kind, ev


def iter_simulated_events(
    n: int | None,
    seed: int,
    data_dir: Path,
    customers: int = 500,
    start: datetime | None = None,
) -> Iterator[tuple[str, dict]]:
    """Yield ``n`` simulated ``(kind, event)`` pairs (endless if ``n`` is None).

    ``start`` (default: ``n`` × MEAN_STEP_S before now, or ENDLESS_BACKDATE before now for an
    endless stream, so the events do not run ahead of the wall clock; a naive value is taken as UTC) is truncated
    to whole seconds.  Texts come from ``data_dir`` via :mod:`texts`; a missing
    folder falls back to built-in sentences.  See the module doc for semantics.
    """
    if n is not None and n < 0:
        raise ValueError("n must be >= 0")
    if customers < 1:
        raise ValueError("customers must be >= 1")
    if start is None:
        backdate = ENDLESS_BACKDATE if n is None else timedelta(seconds=n * MEAN_STEP_S)
        start = datetime.now(timezone.utc) - backdate
    begin = start
    if begin.tzinfo is None:
        begin = begin.replace(tzinfo=timezone.utc)
    begin = begin.astimezone(timezone.utc).replace(microsecond=0)
    stream = _Simulation(seed, Path(data_dir), customers, begin).run()
    return stream if n is None else itertools.islice(stream, n)
