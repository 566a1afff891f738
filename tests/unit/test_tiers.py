"""Value tiers by rank (issue 18, scope 1) and the won_back lifecycle stage (scope 2): pure logic."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from pipeline.config import SegmentThresholds, TierConfig, load_settings
from pipeline.ingest.normalise import normalise
from pipeline.segment.customer import apply_event, new_state
from pipeline.segment.segments import derive_segment, lifecycle
from pipeline.segment.tiers import (LANDMARK, SpendSketch, assign_tier, decay_weight, rank_tier, tier_value)

OLIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "olist_subset_5k"
DAY = 86400.0


def exact_mid_rank(values: list[float], v: float) -> float:
    below = sum(1 for x in values if x < v)
    same = sum(1 for x in values if x == v)
    return (below + 0.5 * same) / len(values)


def olist_spends() -> list[float]:
    path = OLIST / "olist_order_payments_dataset.csv"
    if not path.exists():
        pytest.skip("Olist data missing")
    per_order: dict[str, float] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            per_order[row["order_id"]] = per_order.get(row["order_id"], 0.0) + float(row["payment_value"])
    customers: dict[str, float] = {}
    with (OLIST / "olist_orders_dataset.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            cid = row["customer_id"]
            customers[cid] = customers.get(cid, 0.0) + per_order.get(row["order_id"], 0.0)
    return list(customers.values())


def test_sketch_ranks_match_exact_ranks_on_olist_spends() -> None:
    spends = olist_spends()
    sketch = SpendSketch.of(spends, relative_accuracy=0.01)
    worst = 0.0
    for v in spends:
        # the sketch counts every value; ``own=v`` leaves the customer out and puts it back at v
        worst = max(worst, abs(sketch.rank(v, own=v) - exact_mid_rank(spends, v)))
    share_of_ties = max(sum(1 for x in spends if abs(x - v) <= 0.02 * v) for v in spends[:200]) / len(spends)
    print(f"\n{len(spends)} Olist customers: worst rank error {worst:.4f} (customers within 2 % of one "
          f"value: at most {share_of_ties:.4f} of the base)")
    assert worst <= share_of_ties + 1e-9  # a rank is off only by customers in the same 1 % bucket
    assert worst < 0.02


def test_key_tier_is_a_fifth_and_holds_most_of_the_spend_on_olist() -> None:
    spends = sorted(olist_spends())
    sketch = SpendSketch.of(spends)
    cfg = TierConfig()
    tiers = [rank_tier(sketch.rank(v, own=v), None, cfg) for v in spends]
    key = [v for v, t in zip(spends, tiers) if t == "key"]
    share, spend_share = len(key) / len(spends), sum(key) / sum(spends)
    print(f"\nkey: {share:.3f} of customers, {spend_share:.3f} of spend")
    assert 0.15 <= share <= 0.25 and spend_share >= 0.5


def test_one_partition_estimates_the_whole_base() -> None:
    spends = olist_spends()
    rng = random.Random(4)
    part = [v for v in spends if rng.random() < 0.25]  # customers hash evenly over four partitions
    sketch = SpendSketch.of(part)
    errors = [abs(sketch.rank(v) - exact_mid_rank(spends, v)) for v in spends[:500]]
    print(f"\npartition of {len(part)}: mean rank error {sum(errors) / len(errors):.4f}, max {max(errors):.4f}")
    assert max(errors) < 0.05


def test_move_replaces_a_customers_value() -> None:
    s = SpendSketch.of([1.0, 2.0, 3.0])
    s.move(1.0, 10.0)
    assert s.n == 3 and s.rank(10.0, own=10.0) == pytest.approx(2.5 / 3)
    s.move(10.0, None)
    assert s.n == 2
    s.move(None, 0.0)  # zero spend: counted below everything
    assert s.n == 3 and s.rank(0.0, own=0.0) == pytest.approx(0.5 / 3)


def test_too_few_customers_gives_no_rank() -> None:
    s = SpendSketch.of([5.0] * 3, min_customers=5)
    assert s.rank(5.0) is None  # 4 with the newcomer
    s.add(6.0)
    assert s.rank(7.0) is not None


@pytest.mark.parametrize("rank,previous,expected", [
    (0.85, None, "key"), (0.6, None, "regular"), (0.3, None, "general"),
    (0.77, "key", "key"),          # within the band below 0.8
    (0.74, "key", "regular"),
    (0.46, "key", "regular"),      # dropped two cut-offs, but within the band below 0.5
    (0.40, "key", "general"),
    (0.47, "regular", "regular"), (0.44, "regular", "general"),
    (0.79, "general", "regular"),  # going up: no band
    (0.81, "regular", "key"),
])
def test_rank_tier_hysteresis(rank: float, previous: str | None, expected: str) -> None:
    assert rank_tier(rank, previous, TierConfig()) == expected


def test_assign_tier_keeps_state_when_not_ranked() -> None:
    seg = {**new_state(), "orders": 0}
    assert assign_tier(seg, None, SpendSketch.of([1.0] * 100), TierConfig()) is seg
    seg = {**new_state(), "orders": 1, "dspend": 5.0}
    assert assign_tier(seg, None, None, TierConfig()) is seg
    out = assign_tier(seg, None, SpendSketch.of([1.0] * 100), TierConfig())
    assert out["rank_tier"] == "key" and seg["rank_tier"] is None


def test_decay_is_forward_and_rank_preserving() -> None:
    year = 365 * DAY
    assert decay_weight(LANDMARK, 365) == 1.0
    assert decay_weight(LANDMARK + year, 365) == pytest.approx(2.0)
    assert decay_weight(LANDMARK + year, 0) == 1.0
    # 100 spent a year ago ranks like 50 spent now
    assert 100 * decay_weight(LANDMARK, 365) == pytest.approx(50 * decay_weight(LANDMARK + year, 365))


def _order(cid: str, at: float, amount: float, n: int):
    from datetime import datetime, timezone

    iso = datetime.fromtimestamp(at, timezone.utc).isoformat()
    event = {"schema_version": 1, "event_id": f"e{n}", "type": "placed", "occurred_at": iso, "order_id": f"o{n}",
             "customer_id": cid, "amount": amount, "currency": "USD", "items": [{"sku": "s", "qty": 1}]}
    return normalise("order", event)


def test_decayed_spend_in_the_customer_state() -> None:
    t0 = LANDMARK + 400 * DAY
    s, _ = apply_event(None, _order("c", t0, 100.0, 1), {}, 365.0)
    s, _ = apply_event(s, _order("c", t0 + 365 * DAY, 100.0, 2), {}, 365.0)
    assert s["spend"] == 200.0
    assert tier_value(s) == pytest.approx(100 * decay_weight(t0, 365) * 3)
    assert tier_value(new_state()) is None


def test_won_back_after_a_long_gap_until_the_next_regular_order() -> None:
    t = SegmentThresholds()
    t0 = LANDMARK
    s, _ = apply_event(None, _order("c", t0, 10.0, 1), {})
    s, _ = apply_event(s, _order("c", t0 + 30 * DAY, 10.0, 2), {})
    s, _ = apply_event(s, _order("c", t0 + 60 * DAY, 10.0, 3), {})  # cadence 30 days
    assert lifecycle(s, t0 + 61 * DAY, t)[0] == "active"
    assert lifecycle(s, t0 + 60 * DAY + 50 * DAY, t)[0] == "at_risk"
    s, _ = apply_event(s, _order("c", t0 + 200 * DAY, 10.0, 4), {})  # back after 140 days (> 1.5 x 30)
    assert lifecycle(s, t0 + 201 * DAY, t)[0] == "won_back"
    assert derive_segment(s, t0 + 201 * DAY, t)["lifecycle"] == "won_back"
    s, _ = apply_event(s, _order("c", t0 + 230 * DAY, 10.0, 5), {})  # the next regular order
    assert lifecycle(s, t0 + 231 * DAY, t)[0] == "active"


def test_a_second_order_within_the_default_cadence_is_not_won_back() -> None:
    t = SegmentThresholds()
    s, _ = apply_event(None, _order("c", LANDMARK, 10.0, 1), {})
    s, _ = apply_event(s, _order("c", LANDMARK + 100 * DAY, 10.0, 2), {})  # 100 < 1.5 x 90
    assert lifecycle(s, LANDMARK + 101 * DAY, t)[0] == "active"
    s, _ = apply_event(s, _order("c", LANDMARK + 300 * DAY, 10.0, 3), {})  # 200 > 1.5 x 100
    assert lifecycle(s, LANDMARK + 301 * DAY, t)[0] == "won_back"


def test_rank_tier_wins_over_spend_thresholds_but_not_over_the_profile() -> None:
    t = SegmentThresholds()
    s, _ = apply_event(None, _order("c", LANDMARK, 10.0, 1), {})
    assert derive_segment(s, LANDMARK, t)["tier_source"] == "spend"
    s = {**s, "rank_tier": "key"}
    seg = derive_segment(s, LANDMARK, t)
    assert (seg["value_tier"], seg["tier_source"]) == ("key", "rank")
    s = {**s, "profile": {"tier": "general"}}
    assert derive_segment(s, LANDMARK, t)["tier_source"] == "profile"


def test_tier_settings_from_env_and_validation() -> None:
    tiers = load_settings({"PIPELINE_TIER_KEY_SHARE": "0.1", "PIPELINE_TIER_HALF_LIFE_DAYS": "0"}).segment.tiers
    assert tiers.key_share == 0.1 and tiers.half_life_days == 0.0
    with pytest.raises(ValueError):
        TierConfig(key_share=0.8, regular_share=0.3)
    with pytest.raises(ValueError):
        TierConfig(hysteresis=0.6)
