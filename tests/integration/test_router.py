"""Alert routing through Kafka to a local webhook (issue 19, scope 3): each notification once, also
across a kill -9 of the router; retries; undeliverable notifications dead-lettered with the reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest

from pipeline.kafka_local import free_port
from pipeline.producers.publish import publish_raw
from pipeline.runtime import PROJECT_ROOT, settings_env
from pipeline.summary import read_topic

pytestmark = pytest.mark.integration


class Receiver:
    """A local webhook: records every POST; answers ``fail_with`` for alert ids in ``failing``."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []  # (Idempotency-Key, body)
        self.failing: set[str] = set()
        self.fail_with = 503
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                alert_id = (body.get("alert") or {}).get("alert_id")
                if alert_id in receiver.failing:
                    receiver.refused += 1
                    self.send_response(receiver.fail_with)
                else:
                    receiver.posts.append((self.headers.get("Idempotency-Key", ""), body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self) -> list[str]:
        return [b["alert"]["alert_id"] for _, b in self.posts]

    def stop(self) -> None:
        self.server.shutdown()


def alert(n: int, severity: str) -> dict:
    return {"schema_version": 1, "alert_id": f"churn_risk:cust-r{n}:2027-01-15", "type": "churn_risk",
            "severity": severity, "subject": {"kind": "customer", "customer_id": f"cust-r{n}"},
            "reason": f"Churn risk for cust-r{n}", "evidence": ["e1"], "event_time": "2027-01-15T10:00:00Z",
            "emitted_at": "2027-01-15T10:00:01Z", "suggested_actions": ["Call the customer"]}


def poll(cond, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


def start_router(s, rules: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, **settings_env(s)}
    return subprocess.Popen([sys.executable, "-m", "pipeline", "route", "--rules", str(rules)], cwd=str(PROJECT_ROOT),
                            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def test_each_notification_once_across_a_kill9_with_retries_and_dead_letters(settings, tmp_path):
    s = settings
    hook = Receiver()
    dead_port = free_port()  # nothing listens there
    rules = tmp_path / "routes.yaml"
    rules.write_text(f"""
retries: 3
backoff_seconds: 1.0
console_url: http://127.0.0.1:6070
routes:
  - name: on-call
    match: {{severity: high}}
    webhook: {{url: "{hook.url}"}}
  - name: broken
    match: {{severity: critical, type: churn_risk}}
    webhook: {{url: "http://127.0.0.1:{dead_port}/nowhere"}}
""")
    router = start_router(s, rules, tmp_path / "router.log")
    try:
        publish_raw(s.topics.alerts_churn, [(f"cust-r{n}".encode(), orjson.dumps(alert(n, sev)))
                                            for n, sev in ((1, "critical"), (2, "high"), (3, "low"))], s)
        assert poll(lambda: sorted(hook.ids()) == ["churn_risk:cust-r1:2027-01-15", "churn_risk:cust-r2:2027-01-15"])
        # a failing receiver for the next critical alert: the router retries; kill -9 it meanwhile
        hook.failing.add("churn_risk:cust-r4:2027-01-15")
        publish_raw(s.topics.alerts_churn, [(b"cust-r4", orjson.dumps(alert(4, "critical")))], s)
        assert poll(lambda: hook.refused >= 1)  # the first attempt failed; the next comes 1 s later
        router.send_signal(signal.SIGKILL)
        router.wait(10)
        hook.failing.clear()
        router = start_router(s, rules, tmp_path / "router.log")
        assert poll(lambda: "churn_risk:cust-r4:2027-01-15" in hook.ids())
        dead = lambda: [orjson.loads(v) for _, v in read_topic(s, s.topics.notifications_deadletter)]  # noqa: E731
        assert poll(lambda: {d["alert_id"] for d in dead()} == {"churn_risk:cust-r1:2027-01-15",
                                                                "churn_risk:cust-r4:2027-01-15"}, timeout=90)
        time.sleep(2)  # anything sent twice would have arrived by now (the restart re-read the alerts)
        ids = hook.ids()
        assert sorted(ids) == ["churn_risk:cust-r1:2027-01-15", "churn_risk:cust-r2:2027-01-15",
                               "churn_risk:cust-r4:2027-01-15"], ids  # each exactly once, the low one never
        keys = [k for k, _ in hook.posts]
        assert keys == [f"on-call:{i}" for i in ids]  # the Idempotency-Key is the notification id
        body = hook.posts[0][1]
        assert body["text"].startswith("[") and body["blocks"][0]["type"] == "header"
        assert "http://127.0.0.1:6070/alerts/" in body["text"]
        d = dead()[0]
        assert d["route"] == "broken" and d["channel"] == "webhook" and d["attempts"] == 3
        assert d["reason"] in ("ClientConnectorError", "ClientOSError", "ServerDisconnectedError"), d["reason"]
        assert len(dead()) == 2  # not dead-lettered twice after the restart
    finally:
        router.kill()
        hook.stop()
