"""Issue 18, scope 4: the customer view (pure) and the query CLI (``customer``, ``top``) without a
broker: a local HTTP server stands in for a worker."""

from __future__ import annotations

import dataclasses
import http.server
import socket
import threading
from datetime import datetime, timezone

import orjson
import pytest

from pipeline import cli
from pipeline.config import load_settings
from pipeline.outputs.customer_view import RECENT_ALERTS, ViewConfig, customer_view, remember_alerts
from pipeline.process import Processor, Record
from pipeline.stage_settings import load_stage_settings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc).timestamp()
DAY = 86400.0


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def processor():
    return Processor(dataclasses.replace(load_settings({}), partitions=1), env={})


def run(processor, docs: list[tuple[str, dict]]) -> dict:
    states: dict[str, dict] = {}
    t = processor.topics
    for i, (kind, doc) in enumerate(docs):
        topic = {"order": t.orders, "complaint": t.complaints, "feedback": t.feedback}[kind]
        step = processor.process(Record(topic, 0, i, b"c1", orjson.dumps(doc), T0), states.get, now=T0 + 30 * DAY)
        if step.state is not None:
            states[step.state_key] = step.state
    return states["c1"]


def order(oid: str, at: float, promise_days: float) -> tuple[str, dict]:
    return "order", {"schema_version": 1, "event_id": f"{oid}-p", "order_id": oid, "customer_id": "c1",
                     "type": "placed", "occurred_at": iso(at), "promised_delivery_at": iso(at + promise_days * DAY),
                     "amount": 40.0, "currency": "USD", "channel": "web", "region": "US-NY",
                     "items": [{"sku": "s", "category": "books", "qty": 1, "unit_price": 40.0}]}


def complaint(cid: str, at: float) -> tuple[str, dict]:
    return "complaint", {"schema_version": 1, "event_id": cid, "complaint_id": cid, "customer_id": "c1",
                         "status": "opened", "channel": "email", "occurred_at": iso(at),
                         "text": "The parcel never arrived and nobody answers.",
                         "promised_response_by": iso(at + DAY)}


def test_customer_view_from_a_state(processor):
    state = run(processor, [order("o1", T0, 2), order("o2", T0 + DAY, 30), complaint("k1", T0 + 5 * DAY),
                            complaint("k2", T0 + 5.5 * DAY)])
    cfg = ViewConfig(processor.settings.segment, load_stage_settings({}).churn.weights)
    view = customer_view("c1", state, T0 + 6 * DAY, cfg)
    assert view["customer_id"] == "c1" and view["clock"] == iso(T0 + 6 * DAY)
    assert view["segment"]["orders_count"] == 2
    open_ = {c["commitment_id"]: c for c in view["commitments"]}
    # o1 was due after 2 days and never delivered: breached; o2 open; each complaint's response promise
    assert open_["delivery:o1"]["status"] == "breached" and open_["delivery:o2"]["status"] == "open"
    assert sum(c["kind"] == "response" for c in view["commitments"]) == 2
    assert [c["due_at"] for c in view["commitments"]] == sorted(c["due_at"] for c in view["commitments"])
    factors = view["churn"]["factors"]
    assert factors and factors == sorted(factors, key=lambda f: -f["contribution"])
    assert any("k2" in f["evidence"] for f in factors)
    # the breach of o1 was alerted (warning, then unmet): the view lists the alerts, newest first
    assert [a["type"] for a in view["alerts"]][:1] and view["alerts"][0]["alert_id"]
    assert all(set(a) == {"alert_id", "type", "severity", "event_time"} for a in view["alerts"])
    # without a partition clock: the customer's latest event
    assert customer_view("c1", state, None, cfg)["clock"] == iso(T0 + 5.5 * DAY)


def test_recent_alerts_are_bounded_and_in_order():
    alerts = [{"alert_id": f"a{i}", "type": "t", "severity": "low", "event_time": str(i), "big": "x" * 100}
              for i in range(RECENT_ALERTS + 3)]
    kept = remember_alerts(None, alerts)
    assert [a["alert_id"] for a in kept] == [f"a{i}" for i in range(3, RECENT_ALERTS + 3)]
    assert "big" not in kept[0]


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict]] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.headers.get("Authorization") != "Bearer s3cret":
            code, body = 401, {"error": "unauthorized"}
        else:
            code, body = self.routes.get(self.path, (404, {"error": "customer not found"}))
        raw = orjson.dumps(body)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def worker_stub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Handler.routes
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_without_a_worker_prints_one_line(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["customer", "c1", "--url", url]) == 2
    assert cli.main(["top", "--dimension", "tier", "--value", "key", "--url", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith(f"error: no worker answered at {url}") for line in err)


def test_cli_customer_tables_json_401_and_404(worker_stub, capsys):
    url, routes = worker_stub
    doc = {"customer_id": "c 1", "clock": "2026-03-02T09:00:00Z",
           "segment": {"value_tier": "key", "tier_source": "rank", "lifecycle": "won_back", "orders_count": 3},
           "churn": {"score": 51.5, "factors": [{"name": "late_deliveries", "value": 2, "contribution": 30.0,
                                                 "evidence": ["e1", "e2"]}]},
           "commitments": [{"commitment_id": "delivery:o9", "kind": "delivery", "status": "open",
                            "due_at": "2026-03-05T00:00:00Z"}],
           "alerts": [{"alert_id": "a1", "type": "churn_risk", "severity": "high", "event_time": "x"}]}
    routes["/customers/c%201"] = (200, doc)
    assert cli.main(["customer", "c 1", "--url", url, "--token", "s3cret"]) == 0
    out = capsys.readouterr().out
    assert "tier key (rank), lifecycle won_back" in out and "late_deliveries" in out and "delivery:o9" in out
    assert cli.main(["customer", "c 1", "--url", url, "--token", "s3cret", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out) == doc
    assert cli.main(["customer", "c 1", "--url", url, "--token", "wrong"]) == 2
    assert "401" in capsys.readouterr().err
    assert cli.main(["customer", "nobody", "--url", url, "--token", "s3cret"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {url} answered 404: customer not found"


def test_cli_top_prints_the_window_not_a_dict(worker_stub, capsys):
    url, routes = worker_stub
    window = {"window": "1h", "window_start": "2026-03-02T09:00:00Z", "window_end": "2026-03-02T10:00:00Z",
              "events": 7, "orders": 3, "feedback": 2, "complaints": 2}
    routes["/segments/tier=key/top?window=1h"] = (200, {
        "current": [{"pain_point": "delivery", "count": 2, "rate_per_100_orders": 66.7, "share_of_feedback": 0.5}],
        "current_window": window, "last_closed": [], "last_closed_window": None})
    assert cli.main(["top", "--dimension", "tier", "--value", "key", "--url", url, "--token", "s3cret"]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "2026-03-02T09:00:00Z .. 2026-03-02T10:00:00Z" in out and "delivery" in out
    assert "last closed 1h window: (none)" in out


def test_commitment_by_id(processor):
    from pipeline.outputs.customer_view import commitment_view

    state = run(processor, [order("o1", T0, 2), complaint("k1", T0 + 5 * DAY)])
    doc = commitment_view("c1", state, "delivery:o1")
    assert doc["commitment_id"] == "delivery:o1" and doc["customer_id"] == "c1" and doc["purged"] is False
    assert doc["status"] == "breached" and doc["due_at"] == iso(T0 + 2 * DAY)
    assert commitment_view("c1", state, "delivery:nope") is None
    tomb = {"cm": {"commitments": {}, "tombstones": {"delivery:o9": {"generation": 1, "due_at": T0,
                                                                     "status": "fulfilled", "closed_at": T0}}}}
    assert commitment_view("c1", tomb, "delivery:o9") == {
        "customer_id": "c1", "commitment_id": "delivery:o9", "purged": True, "generation": 1, "due_at": iso(T0),
        "status": "fulfilled", "closed_at": iso(T0)}
