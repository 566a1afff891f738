"""Kafka client security against a real broker: SASL/SCRAM (SHA-256, SHA-512) and TLS.

A separate local broker (module scope) serves three listeners: PLAINTEXT (setup
only), SASL_PLAINTEXT with SCRAM users created at format time, and SSL with a
throw-away CA.  The session broker of the other tests stays plaintext.

* the real worker (``python -m pipeline worker``, configured only by
  ``KAFKA_SECURITY_PROTOCOL`` / ``KAFKA_SASL_*``) consumes and produces through
  the SCRAM listener: a valid order comes out enriched;
* the project's kafka-python helpers work over SCRAM-SHA-512 and TLS;
* a wrong password (helpers and worker) fails within seconds with a clear
  message naming the variables to check, and the password is not printed.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time

import orjson
import pytest

from pipeline.config import load_settings
from pipeline.kafka_security import KafkaAuthError, KafkaSecurity, admin_client, probe
from pipeline.producers.publish import publish, publish_raw
from pipeline.runtime import settings_env, wait_for_group
from pipeline.summary import read_topic
from pipeline.topics import ensure_topics

from tests.conftest import ROOT, fresh_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")),
                       reason="needs the project's local broker (SCRAM users are created at format time)"),
]

USER, PASSWORD = "alice", "alice-Secret-4711"
WRONG = "not-Alices-password-0815"


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory):
    from pipeline.kafka_local import LocalKafka, make_test_tls

    s = load_settings()
    tmp = tmp_path_factory.mktemp("secure-kafka")
    tls = make_test_tls(tmp / "tls")
    broker = LocalKafka(s.kafka_version, s.cache_dir, workdir=tmp / "kafka", heap="512m",
                        scram_users={USER: PASSWORD}, tls=tls)
    broker.start()
    print(f"\n[kafka] secure broker at SASL {broker.sasl_bootstrap}, SSL {broker.ssl_bootstrap}, "
          f"up in {broker.start_seconds:.1f}s")
    yield broker, tls
    broker.cleanup()


def _secured(bootstrap: str, **env: str):
    s = fresh_settings(bootstrap)
    return dataclasses.replace(s, security=KafkaSecurity.from_env(env))


def _order(event_id: str, customer: str = "c-sec-1") -> dict:
    return {
        "schema_version": 1, "event_id": event_id, "order_id": f"o-{event_id}", "customer_id": customer,
        "type": "placed", "occurred_at": "2026-11-20T10:00:00+09:00",
        "promised_delivery_at": "2026-11-22T23:59:59+09:00", "amount": 59000, "currency": "KRW",
        "channel": "app", "region": "Seoul",
        "items": [{"sku": "sku-1", "category": "kitchen", "qty": 1, "unit_price": 59000}],
    }


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_scram_worker_end_to_end(secure_kafka, worker_factory):
    broker, _ = secure_kafka
    s = _secured(broker.sasl_bootstrap, KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
                 KAFKA_SASL_MECHANISM="SCRAM-SHA-256", KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=PASSWORD)
    assert PASSWORD not in repr(s) and PASSWORD not in s.security.describe()
    t0 = time.monotonic()
    ensure_topics(s)  # kafka-python admin over SCRAM
    # faust/aiokafka over SCRAM, configured only by the environment; DEBUG logs must not show the password
    worker = worker_factory(s, PIPELINE_LOG_LEVEL="DEBUG")
    publish([("order", _order("sec-1"))], s, progress=False)
    wait_for_group(s, s.app_id, [*s.topics.inputs, s.topics.rekeyed], timeout=120)
    enriched = _wait_for(
        lambda: [orjson.loads(v) for _, v in read_topic(s, s.topics.enriched)], 60, "the enriched event")
    assert [d["event_id"] for d in enriched] == ["sec-1"]
    assert list(read_topic(s, s.topics.deadletter)) == []
    assert worker.proc.poll() is None
    log = worker.log_path.read_text(errors="replace")
    assert PASSWORD not in log
    print(f"SCRAM-SHA-256 worker: topics + worker + 1 order enriched in {time.monotonic() - t0:.1f}s")


def _join_leftover_probes(timeout: float = 60.0) -> None:
    """The worker test runs before the other wrong-password tests on purpose: their rejected
    clients keep retrying their bootstrap in daemon threads until the bootstrap timeout, and those
    failed logins can make this broker drop the next client's connection without an
    authentication error.  Any still running are waited for."""
    deadline = time.monotonic() + timeout
    for t in [t for t in threading.enumerate() if t.name == "kafka-auth-probe"]:
        t.join(max(0.0, deadline - time.monotonic()))


def test_worker_with_wrong_password_exits_with_clear_error(secure_kafka, tmp_path):
    broker, _ = secure_kafka
    _join_leftover_probes()
    s = _secured(broker.sasl_bootstrap, KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=WRONG)
    env = {**os.environ, **settings_env(s), "PIPELINE_WEB_PORT": "0"}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipeline", "worker"], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    print(f"worker with a wrong password: exit {proc.returncode} after {took:.1f}s: "
          f"{out.strip().splitlines()[-1]}")
    assert proc.returncode != 0
    assert ("Kafka authentication failed (SASL/SCRAM-SHA-256 as user 'alice'): "
            "check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD") in out
    assert WRONG not in out
    assert took < 60


def test_scram_sha512_helpers_produce_and_consume(secure_kafka):
    broker, _ = secure_kafka
    s = _secured(broker.sasl_bootstrap, KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
                 KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=PASSWORD)
    assert s.security.protocol == "SASL_PLAINTEXT"  # inferred from the user name
    ensure_topics(s)
    values = [f"record-{i}".encode() for i in range(50)]
    assert publish_raw(s.topics.orders, [(b"k", v) for v in values], s) == 50
    assert sorted(v for _, v in read_topic(s, s.topics.orders)) == sorted(values)


def test_tls_helpers_produce_and_consume(secure_kafka):
    broker, tls = secure_kafka
    s = _secured(broker.ssl_bootstrap, KAFKA_SSL_CAFILE=str(tls.ca_cert))
    assert s.security.protocol == "SSL"  # inferred from the CA file
    ensure_topics(s)
    assert publish_raw(s.topics.feedback, [(b"k", b"over tls")], s) == 1
    assert [v for _, v in read_topic(s, s.topics.feedback)] == [b"over tls"]
    # Without the test CA the broker's certificate is rejected: a clear error, not a hang.
    untrusted = _secured(broker.ssl_bootstrap, KAFKA_SECURITY_PROTOCOL="SSL")
    t0 = time.monotonic()
    with pytest.raises(KafkaAuthError, match="TLS handshake failed .*KAFKA_SSL_CAFILE"):
        admin_client(untrusted)
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_wrong_password_fails_clearly(secure_kafka, mechanism):
    broker, _ = secure_kafka
    s = _secured(broker.sasl_bootstrap, KAFKA_SASL_MECHANISM=mechanism,
                 KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=WRONG)
    for attempt in (lambda: probe(s), lambda: admin_client(s), lambda: ensure_topics(s),
                    lambda: publish_raw("whatever", [(None, b"x")], s)):
        t0 = time.monotonic()
        with pytest.raises(KafkaAuthError) as err:
            attempt()
        took = time.monotonic() - t0
        msg = str(err.value)
        assert "Kafka authentication failed" in msg and "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD" in msg
        assert mechanism in msg and WRONG not in msg
        assert took < 20, f"took {took:.1f}s"
