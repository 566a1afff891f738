"""Kafka client security against a real broker: SASL/SCRAM (SHA-256, SHA-512), TLS, SASL_SSL, mutual TLS.

A separate local broker (module scope) serves five listeners: PLAINTEXT (setup
only), SASL_PLAINTEXT with SCRAM users created at format time, SSL with a
throw-away CA, SASL_SSL (SCRAM over TLS) and SSL requiring a client certificate
signed by that CA.  The session broker of the other tests stays plaintext.

* the real worker (``python -m pipeline worker``, configured only by
  ``KAFKA_SECURITY_PROTOCOL`` / ``KAFKA_SASL_*`` / ``KAFKA_SSL_CAFILE``) consumes and
  produces through the SCRAM listener and through the SASL_SSL listener: a valid
  order comes out enriched;
* the project's kafka-python helpers work over SCRAM-SHA-512, TLS, SASL_SSL and mutual TLS;
* a wrong password (helpers and worker), a missing client certificate and a
  connection dropped during the SASL exchange fail within seconds with a clear
  message naming the variables to check, and the password is not printed.

The broker may close the connection after a failed login before the client has read
its error response (kafka-python 3.0 discards bytes received together with the EOF);
the helpers then report "authentication failed or broker unreachable", which the
wrong-password tests accept as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
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
# a rejected login, or the broker closing the connection during the SASL exchange (see the module doc)
AUTH_FAILED = re.compile(r"Kafka authentication failed( or broker unreachable)? \(SASL/(?P<mech>SCRAM-SHA-\d+) "
                         r"as user 'alice'\): check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD")


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory):
    from pipeline.kafka_local import LocalKafka, make_test_tls

    s = load_settings()
    tmp = tmp_path_factory.mktemp("secure-kafka")
    tls = make_test_tls(tmp / "tls")
    broker = LocalKafka(s.kafka_version, s.cache_dir, workdir=tmp / "kafka", heap="512m",
                        scram_users={USER: PASSWORD}, tls=tls, sasl_ssl=True, mtls=True)
    broker.start()
    print(f"\n[kafka] secure broker at SASL {broker.sasl_bootstrap}, SSL {broker.ssl_bootstrap}, "
          f"SASL_SSL {broker.sasl_ssl_bootstrap}, mTLS {broker.mtls_bootstrap}, up in {broker.start_seconds:.1f}s")
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


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_scram_worker_end_to_end(secure_kafka, worker_factory, protocol):
    broker, tls = secure_kafka
    if protocol == "SASL_PLAINTEXT":  # plaintext SASL only when asked for explicitly
        s = _secured(broker.sasl_bootstrap, KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
                     KAFKA_SASL_MECHANISM="SCRAM-SHA-256", KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=PASSWORD)
    else:  # SASL_SSL inferred from the SASL user; the CA file is the test CA
        s = _secured(broker.sasl_ssl_bootstrap, KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=PASSWORD,
                     KAFKA_SSL_CAFILE=str(tls.ca_cert))
    assert s.security.protocol == protocol
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
    print(f"SCRAM-SHA-256 worker over {protocol}: topics + worker + 1 order enriched in "
          f"{time.monotonic() - t0:.1f}s")


def _join_leftover_probes(timeout: float = 60.0) -> None:
    """The worker test runs before the other wrong-password tests on purpose: their rejected
    clients keep retrying their bootstrap in daemon threads until the bootstrap timeout.  Their
    logged failures no longer leak into a later client's error (the helpers ignore records from
    threads older than the client), but the worker's probe should still meet a quiet broker.
    Any still running are waited for."""
    deadline = time.monotonic() + timeout
    for t in [t for t in threading.enumerate() if t.name == "kafka-auth-probe"]:
        t.join(max(0.0, deadline - time.monotonic()))


def test_worker_with_wrong_password_exits_with_clear_error(secure_kafka, tmp_path):
    broker, _ = secure_kafka
    _join_leftover_probes()
    s = _secured(broker.sasl_bootstrap, KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
                 KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=WRONG)
    env = {**os.environ, **settings_env(s), "PIPELINE_WEB_PORT": "0"}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipeline", "worker"], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    print(f"worker with a wrong password: exit {proc.returncode} after {took:.1f}s: "
          f"{out.strip().splitlines()[-1]}")
    assert proc.returncode != 0
    found = AUTH_FAILED.search(out)
    assert found and found["mech"] == "SCRAM-SHA-256", out[-2000:]
    assert WRONG not in out
    assert took < 60


def test_scram_sha512_helpers_produce_and_consume(secure_kafka):
    broker, _ = secure_kafka
    s = _secured(broker.sasl_bootstrap, KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
                 KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=PASSWORD)
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


def test_sasl_ssl_helpers_produce_and_consume(secure_kafka):
    broker, tls = secure_kafka
    s = _secured(broker.sasl_ssl_bootstrap, KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
                 KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=PASSWORD, KAFKA_SSL_CAFILE=str(tls.ca_cert))
    assert s.security.protocol == "SASL_SSL"  # inferred from the user name
    t0 = time.monotonic()
    ensure_topics(s)
    values = [f"sasl-ssl-{i}".encode() for i in range(50)]
    assert publish_raw(s.topics.orders, [(b"k", v) for v in values], s) == 50
    assert sorted(v for _, v in read_topic(s, s.topics.orders)) == sorted(values)
    print(f"SASL_SSL SCRAM-SHA-512: topics + 50 records produced and read back in {time.monotonic() - t0:.1f}s")
    # Without the test CA (system trust store) the broker's certificate is rejected: the TLS message.
    untrusted = _secured(broker.sasl_ssl_bootstrap, KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=PASSWORD)
    t0 = time.monotonic()
    with pytest.raises(KafkaAuthError, match=r"TLS handshake failed \(SASL_SSL\): check KAFKA_SSL_CAFILE"):
        admin_client(untrusted)
    assert time.monotonic() - t0 < 20


def test_mutual_tls_helpers_produce_and_consume(secure_kafka):
    broker, tls = secure_kafka
    s = _secured(broker.mtls_bootstrap, KAFKA_SSL_CAFILE=str(tls.ca_cert), KAFKA_SSL_CERTFILE=str(tls.client_cert),
                 KAFKA_SSL_KEYFILE=str(tls.client_key), KAFKA_SSL_KEY_PASSWORD=tls.store_password)
    assert s.security.protocol == "SSL" and "client-cert" in s.security.describe()
    assert tls.store_password not in repr(s)
    t0 = time.monotonic()
    ensure_topics(s)
    values = [f"mtls-{i}".encode() for i in range(50)]
    assert publish_raw(s.topics.feedback, [(b"k", v) for v in values], s) == 50
    assert sorted(v for _, v in read_topic(s, s.topics.feedback)) == sorted(values)
    print(f"mutual TLS: topics + 50 records produced and read back in {time.monotonic() - t0:.1f}s")
    # The listener requires a client certificate: without one, the clear TLS error, not a hang.
    no_cert = _secured(broker.mtls_bootstrap, KAFKA_SSL_CAFILE=str(tls.ca_cert))
    for attempt in (lambda: probe(no_cert), lambda: admin_client(no_cert), lambda: ensure_topics(no_cert),
                    lambda: publish_raw("whatever", [(None, b"x")], no_cert)):
        t0 = time.monotonic()
        with pytest.raises(KafkaAuthError, match=r"^Kafka TLS handshake failed \(SSL\): check KAFKA_SSL_CAFILE, "
                                                 r"KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE"):
            attempt()
        assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_wrong_password_fails_clearly(secure_kafka, mechanism, protocol):
    broker, tls = secure_kafka
    if protocol == "SASL_PLAINTEXT":
        s = _secured(broker.sasl_bootstrap, KAFKA_SECURITY_PROTOCOL=protocol, KAFKA_SASL_MECHANISM=mechanism,
                     KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=WRONG)
    else:
        s = _secured(broker.sasl_ssl_bootstrap, KAFKA_SASL_MECHANISM=mechanism, KAFKA_SSL_CAFILE=str(tls.ca_cert),
                     KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=WRONG)
    for attempt in (lambda: probe(s), lambda: admin_client(s), lambda: ensure_topics(s),
                    lambda: publish_raw("whatever", [(None, b"x")], s)):
        t0 = time.monotonic()
        with pytest.raises(KafkaAuthError) as err:
            attempt()
        took = time.monotonic() - t0
        msg = str(err.value)
        found = AUTH_FAILED.search(msg)  # a rejection, or the connection dropped during the SASL exchange
        assert found and found["mech"] == mechanism, msg
        assert WRONG not in msg
        assert took < 20, f"took {took:.1f}s"
        print(f"wrong password over {protocol} ({mechanism}): {took:.2f}s: {msg[msg.rindex('('):]}")


class _DropDuringSasl:
    """A TCP proxy to the SASL_PLAINTEXT listener that forwards the client's ApiVersions and
    SaslHandshake requests but closes the connection when the client sends its first
    SaslAuthenticate request (API key 36): a broker dropping the connection during
    authentication, on every attempt and without an error response."""

    SASL_AUTHENTICATE = 36

    def __init__(self, target: str):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.bootstrap = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.drops = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)

        def back() -> None:  # broker -> client, unchanged
            with contextlib.suppress(OSError):
                while data := upstream.recv(65536):
                    client.sendall(data)

        threading.Thread(target=back, daemon=True).start()
        buf = b""
        try:
            while data := client.recv(65536):
                buf += data
                while len(buf) >= 6 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                    size = int.from_bytes(buf[:4], "big")
                    frame, buf = buf[:4 + size], buf[4 + size:]
                    if int.from_bytes(frame[4:6], "big") == self.SASL_AUTHENTICATE:
                        self.drops += 1
                        return
                    upstream.sendall(frame)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.server.close()


def test_connection_dropped_during_sasl_is_reported(secure_kafka):
    broker, _ = secure_kafka
    proxy = _DropDuringSasl(broker.sasl_bootstrap)
    try:
        s = _secured(proxy.bootstrap, KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
                     KAFKA_SASL_USERNAME=USER, KAFKA_SASL_PASSWORD=PASSWORD)
        for attempt in (lambda: probe(s), lambda: admin_client(s), lambda: ensure_topics(s),
                        lambda: publish_raw("whatever", [(None, b"x")], s)):
            t0 = time.monotonic()
            with pytest.raises(KafkaAuthError) as err:
                attempt()
            took = time.monotonic() - t0
            msg = str(err.value)
            assert msg.startswith("Kafka authentication failed or broker unreachable (SASL/SCRAM-SHA-256 as user "
                                  "'alice'): check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"), msg
            assert "connection closed by the broker during authentication" in msg and PASSWORD not in msg
            assert took < 20, f"took {took:.1f}s"
        assert proxy.drops >= 8  # two dropped connections per attempt, then the error
        print(f"connection dropped during SASL: KafkaAuthError in {took:.2f}s ({proxy.drops} drops in all)")
    finally:
        proxy.close()
