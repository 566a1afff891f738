"""Issue 18, scope 5: a dead letter is listed by its reason and, re-sent after a fix, comes out
enriched exactly once, also when the re-send command runs twice."""

from __future__ import annotations

import time

import orjson
import pytest

from pipeline import cli
from pipeline.deadletters import read_dead_letters
from pipeline.producers.publish import publish_raw
from pipeline.runtime import settings_env, wait_for_group
from pipeline.summary import read_topic

pytestmark = pytest.mark.integration


def good_order(eid: str) -> dict:
    return {"schema_version": 1, "event_id": eid, "order_id": f"o-{eid}", "customer_id": "dl-c1", "type": "placed",
            "occurred_at": "2026-03-02T09:00:00Z", "promised_delivery_at": "2026-03-05T09:00:00Z", "amount": 12.5,
            "currency": "USD", "channel": "web", "region": "US-NY",
            "items": [{"sku": "s", "category": "books", "qty": 1, "unit_price": 12.5}]}


def enriched_ids(s) -> list[str]:
    return [orjson.loads(v)["event_id"] for _, v in read_topic(s, s.topics.enriched)]


def test_a_fixed_dead_letter_is_enriched_once(settings, worker_factory, tmp_path, monkeypatch, capsys):
    s = settings
    for k, v in settings_env(s).items():
        monkeypatch.setenv(k, v)
    worker_factory(s)
    broken = {k: v for k, v in good_order("dl-1").items() if k != "region"}  # a producer forgot a field
    publish_raw(s.topics.orders, [(b"dl-c1", orjson.dumps(broken)), (b"dl-c1", orjson.dumps(good_order("ok-1")))], s)
    inputs = [*s.topics.inputs, s.topics.rekeyed]
    wait_for_group(s, s.app_id, inputs, timeout=120)
    deadline = time.monotonic() + 60
    while not (letters := read_dead_letters(s)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [d.reasons for d in letters] == [("missing_field",)]
    dead_id = letters[0].dead_letter_id

    assert cli.main(["deadletters", "list"]) == 0
    out = capsys.readouterr().out
    assert "missing_field" in out and dead_id in out and '"region"' not in out  # no original without asking

    fix = tmp_path / "fix.jsonl"
    fix.write_text(orjson.dumps({"dead_letter_id": dead_id, "value": good_order("dl-1")}).decode() + "\n")
    assert cli.main(["deadletters", "resend", "--id", dead_id, "--edit", str(fix)]) == 0
    assert "re-sent 1 dead letter(s) (1 edited); 0 already re-sent" in capsys.readouterr().out
    wait_for_group(s, s.app_id, inputs, timeout=120)
    deadline = time.monotonic() + 60
    while "dl-1" not in enriched_ids(s) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert enriched_ids(s).count("dl-1") == 1

    # the same command again: nothing re-sent, still one enriched event
    assert cli.main(["deadletters", "resend", "--id", dead_id, "--edit", str(fix)]) == 0
    assert "re-sent 0 dead letter(s) (0 edited); 1 already re-sent, skipped" in capsys.readouterr().out
    assert cli.main(["deadletters", "resend", "--reason", "missing_field"]) == 0
    assert "re-sent 0" in capsys.readouterr().out
    wait_for_group(s, s.app_id, inputs, timeout=120)
    ids = enriched_ids(s)
    assert ids.count("dl-1") == 1 and ids.count("ok-1") == 1
    assert len(read_dead_letters(s)) == 1  # the fixed record was valid: no new dead letter


def test_a_resend_killed_between_its_markers_is_finished_once(settings, worker_factory, tmp_path, monkeypatch,
                                                              capsys):
    """A killed ``resend`` leaves ``sending`` markers: a re-send that landed is not sent again, one
    that did not land is sent."""
    from pipeline.deadletters import resent_topic
    from pipeline.runtime import end_offsets

    s = settings
    for k, v in settings_env(s).items():
        monkeypatch.setenv(k, v)
    worker_factory(s)
    broken = [{k: v for k, v in good_order(eid).items() if k != "region"} for eid in ("dl-2", "dl-3")]
    publish_raw(s.topics.orders, [(b"dl-c1", orjson.dumps(b)) for b in broken], s)
    inputs = [*s.topics.inputs, s.topics.rekeyed]
    wait_for_group(s, s.app_id, inputs, timeout=120)
    deadline = time.monotonic() + 60
    while len(letters := read_dead_letters(s)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    ids = {orjson.loads(d.original)["event_id"]: d.dead_letter_id for d in letters}
    since = {str(p): off for (t, p), off in end_offsets(s, [s.topics.orders]).items()}
    # the killed run: both marked "sending"; only dl-2's re-send reached Kafka
    from pipeline.deadletters import read_resent
    from pipeline.producers.publish import make_producer

    assert read_resent(s) == (set(), {})  # creates the marker topic
    producer = make_producer(s)
    for eid in ("dl-2", "dl-3"):
        marker = {"dead_letter_id": ids[eid], "state": "sending", "to": s.topics.orders, "since": since}
        producer.send(resent_topic(s), key=ids[eid].encode(), value=orjson.dumps(marker))
    producer.send(s.topics.orders, key=b"dl-c1", value=orjson.dumps(good_order("dl-2")),
                  headers=[("dead_letter_id", ids["dl-2"].encode())])
    producer.flush()
    producer.close()
    fix = tmp_path / "fix.jsonl"
    fix.write_text("".join(orjson.dumps({"dead_letter_id": ids[e], "value": good_order(e)}).decode() + "\n"
                           for e in ("dl-2", "dl-3")))
    assert cli.main(["deadletters", "resend", "--all", "--edit", str(fix)]) == 0
    assert "re-sent 1 dead letter(s) (1 edited); 1 already re-sent" in capsys.readouterr().out
    assert cli.main(["deadletters", "resend", "--all", "--edit", str(fix)]) == 0
    assert "re-sent 0" in capsys.readouterr().out
    wait_for_group(s, s.app_id, inputs, timeout=120)
    deadline = time.monotonic() + 60
    while len(set(enriched_ids(s)) & {"dl-2", "dl-3"}) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    got = enriched_ids(s)
    assert got.count("dl-2") == 1 and got.count("dl-3") == 1


def test_import_publishes_history_and_dead_letters_rejected_rows(settings, worker_factory, tmp_path, monkeypatch,
                                                                  capsys):
    s = settings
    for k, v in settings_env(s).items():
        monkeypatch.setenv(k, v)
    (tmp_path / "orders.csv").write_text(
        "no,who,at,eta,total\n"
        "1,imp-c1,2026-03-01 10:00,2026-03-04 10:00,10.5\n"
        "2,imp-c1,2026-03-02 10:00,2026-03-05 10:00,abc\n"
        "3,imp-c2,2026-03-03 10:00,2026-03-06 10:00,7\n", encoding="utf-8")
    (tmp_path / "m.yaml").write_text("""
sources:
  - file: orders.csv
    kind: order
    timezone: Asia/Seoul
    time_format: "%Y-%m-%d %H:%M"
    fields:
      event_id: {template: "imp-{no}"}
      order_id: {template: "o-{no}"}
      customer_id: who
      type: {const: placed}
      occurred_at: {time: at}
      promised_delivery_at: {time: eta}
      amount: {number: total}
      currency: {const: USD}
      channel: {const: web}
      region: {const: KR-Seoul}
      items: {const: [{sku: s, category: books, qty: 1, unit_price: 1}]}
""", encoding="utf-8")
    worker_factory(s)
    errors = tmp_path / "errors.csv"
    assert cli.main(["import", str(tmp_path / "m.yaml"), "--quiet", "--errors", str(errors)]) == 0
    out = capsys.readouterr().out
    assert "3 rows: 2 events, 1 rejected {'invalid_format': 1}" in out
    assert "orders.csv,3,order,invalid_format" in errors.read_text()
    wait_for_group(s, s.app_id, [*s.topics.inputs, s.topics.rekeyed], timeout=120)
    deadline = time.monotonic() + 60
    while len(enriched_ids(s)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sorted(enriched_ids(s)) == ["imp-1", "imp-3"]
    letters = read_dead_letters(s)
    assert [(d.dead_letter_id, d.reasons) for d in letters] == [(f"{s.topics.orders}:-1:3", ("invalid_format",))]
