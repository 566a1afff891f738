"""Kafka client security from environment variables (no broker needed)."""

from __future__ import annotations

import logging
import ssl
import subprocess

import faust
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from pipeline.config import load_settings
from pipeline.kafka_security import (
    KafkaAuthError,
    KafkaSecurity,
    KafkaSecurityError,
    auth_error_message,
    guarded,
    kafka_kwargs,
)
from pipeline.runtime import settings_env

SECRET = "s3cr3t-Pa55word"


def test_default_is_plaintext_without_credentials():
    sec = KafkaSecurity.from_env({})
    assert (sec.protocol, sec.sasl_mechanism, sec.sasl, sec.tls) == ("PLAINTEXT", None, False, False)
    assert sec.kafka_python() == {"security_protocol": "PLAINTEXT"}
    assert sec.faust_credentials() is None
    assert load_settings({}).security == sec


def test_scram_from_env_and_inferred_protocol():
    sec = KafkaSecurity.from_env({"KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET})
    # a SASL user without a CA file is SASL over TLS with the system trust store, never plaintext
    assert (sec.protocol, sec.sasl_mechanism, sec.ssl_cafile) == ("SASL_SSL", "SCRAM-SHA-256", None)
    kw = sec.kafka_python()
    assert isinstance(kw.pop("ssl_context"), ssl.SSLContext)
    assert kw == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                  "sasl_plain_username": "alice", "sasl_plain_password": SECRET}
    plain = KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                                    "KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET})
    assert plain.kafka_python() == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                                    "sasl_plain_username": "alice", "sasl_plain_password": SECRET}
    sec512 = KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KAFKA_SASL_MECHANISM": "scram-sha-512",
                                     "KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET})
    assert (sec512.protocol, sec512.sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")


def test_password_file(tmp_path):
    f = tmp_path / "pw"
    f.write_text(SECRET + "\n")
    sec = KafkaSecurity.from_env({"KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD_FILE": str(f)})
    assert sec.sasl_password == SECRET
    with pytest.raises(KafkaSecurityError, match="KAFKA_SASL_PASSWORD_FILE"):
        KafkaSecurity.from_env({"KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "nope")})


@pytest.mark.parametrize("env, match", [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "a"}, "KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS' is not one of"),
    ({"KAFKA_SASL_USERNAME": "a", "KAFKA_SASL_PASSWORD": "b", "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": "k.pem"}, "without KAFKA_SSL_CERTFILE"),
])
def test_inconsistent_settings_are_refused(env, match):
    with pytest.raises(KafkaSecurityError, match=match):
        load_settings(env)


def test_secrets_never_in_repr_or_description():
    env = {"KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET, "KAFKA_SSL_KEY_PASSWORD": SECRET + "k"}
    s = load_settings(env)
    assert SECRET not in repr(s) and SECRET not in str(s)
    assert SECRET not in s.security.describe()
    assert s.security.describe() == "SASL_SSL SCRAM-SHA-256 user=alice ca=system"
    creds = s.security.faust_credentials()
    assert isinstance(creds, faust.SASLCredentials) and SECRET not in repr(creds)
    msg = auth_error_message(s.security, "SaslAuthenticationFailedError")
    assert "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD" in msg and SECRET not in msg


@pytest.mark.parametrize("cls", [KafkaAdminClient, KafkaConsumer, KafkaProducer])
def test_kafka_python_kwargs_are_known_to_every_client(cls, tls_files):
    for env in ({}, {"KAFKA_SASL_USERNAME": "a", "KAFKA_SASL_PASSWORD": "b"},
                {"KAFKA_SSL_CAFILE": str(tls_files)},
                {"KAFKA_SASL_USERNAME": "a", "KAFKA_SASL_PASSWORD": "b", "KAFKA_SSL_CAFILE": str(tls_files)}):
        s = load_settings({"KAFKA_BOOTSTRAP_SERVERS": "h1:9092, h2:9093", **env})
        kw = kafka_kwargs(s)
        assert set(kw) <= set(cls.DEFAULT_CONFIG)
        assert kw["bootstrap_servers"] == ["h1:9092", "h2:9093"]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ca")
    proc = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "1", "-subj", "/CN=unit test CA"], cwd=d, capture_output=True)
    if proc.returncode != 0:
        pytest.skip("openssl not available")
    return d / "ca.pem"


def test_tls_context_and_faust_credentials(tls_files):
    sec = KafkaSecurity.from_env({"KAFKA_SSL_CAFILE": str(tls_files)})
    assert sec.protocol == "SSL" and sec.tls and not sec.sasl
    ctx = sec.ssl_context()
    assert isinstance(ctx, ssl.SSLContext) and ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert isinstance(sec.faust_credentials(), faust.SSLCredentials)
    assert sec.kafka_python()["security_protocol"] == "SSL"
    loose = KafkaSecurity.from_env({"KAFKA_SSL_CAFILE": str(tls_files), "KAFKA_SSL_CHECK_HOSTNAME": "false"})
    assert not loose.ssl_context().check_hostname and loose.ssl_context().verify_mode == ssl.CERT_REQUIRED
    both = KafkaSecurity.from_env({"KAFKA_SSL_CAFILE": str(tls_files), "KAFKA_SASL_USERNAME": "a",
                                   "KAFKA_SASL_PASSWORD": "b", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"})
    assert both.protocol == "SASL_SSL"
    creds = both.faust_credentials()
    assert isinstance(creds, faust.SASLCredentials) and creds.ssl_context is not None
    assert creds.mechanism.value == "SCRAM-SHA-512" and creds.protocol.value == "SASL_SSL"


def test_faust_app_gets_the_credentials():
    from pipeline.app import make_faust_app

    s = load_settings({"KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET,
                       "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"})
    app = make_faust_app(s)
    creds = app.conf.broker_credentials
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == ("alice", SECRET, "SCRAM-SHA-512")


def test_settings_env_reproduces_security_in_a_child():
    env = {"KAFKA_BOOTSTRAP_SERVERS": "h:1", "KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET,
           "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SSL_CHECK_HOSTNAME": "no"}
    s = load_settings(env)
    again = load_settings(settings_env(s))
    assert again.security == s.security


def test_guarded_turns_a_logged_rejection_into_a_clear_error():
    """kafka-python logs the SASL rejection and retries; ``guarded`` reports it at once."""
    from kafka.errors import KafkaTimeoutError, SaslAuthenticationFailedError

    s = load_settings({"KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET})

    def build():
        logging.getLogger("kafka.net.manager").error(
            "Connection failed: %s", SaslAuthenticationFailedError("Authentication failed: invalid credentials"))
        raise KafkaTimeoutError("Unable to bootstrap from h:1")

    for fail_fast in (False, True):
        with pytest.raises(KafkaAuthError, match=r"SASL/SCRAM-SHA-256 as user 'alice'.*KAFKA_SASL_USERNAME") as err:
            guarded(s, build, fail_fast=fail_fast)
        assert SECRET not in str(err.value)

    def unreachable():
        raise KafkaTimeoutError("Unable to bootstrap from h:1")

    with pytest.raises(KafkaTimeoutError):
        guarded(s, unreachable, fail_fast=True)
    assert guarded(s, lambda: "client", fail_fast=True) == "client"


def test_aiokafka_kwargs_are_accepted(tls_files):
    import inspect

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from pipeline.kafka_security import aiokafka_kwargs

    s = load_settings({"KAFKA_BOOTSTRAP_SERVERS": "h1:9092", "KAFKA_SASL_USERNAME": "a", "KAFKA_SASL_PASSWORD": "b",
                       "KAFKA_SSL_CAFILE": str(tls_files)})
    kw = aiokafka_kwargs(s)
    assert kw["security_protocol"] == "SASL_SSL" and isinstance(kw["ssl_context"], ssl.SSLContext)
    for cls in (AIOKafkaConsumer, AIOKafkaProducer):
        assert set(kw) <= set(inspect.signature(cls.__init__).parameters)


def test_capture_restores_the_kafka_logger_level_with_concurrent_users():
    import threading

    from pipeline.kafka_security import _capture_auth_failures

    logger = logging.getLogger("kafka.net")
    old = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        barrier = threading.Barrier(4)

        def use():
            with _capture_auth_failures():
                assert logger.getEffectiveLevel() <= logging.WARNING
                barrier.wait(5)

        threads = [threading.Thread(target=use) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert logger.level == logging.CRITICAL
    finally:
        logger.setLevel(old)


# -- protocol inference and the refusal of PLAIN without TLS -------------------------------------

@pytest.mark.parametrize("env, protocol", [
    ({}, "PLAINTEXT"),
    ({"KAFKA_SASL_USERNAME": "a", "KAFKA_SASL_PASSWORD": "b"}, "SASL_SSL"),
    ({"KAFKA_SASL_USERNAME": "a", "KAFKA_SASL_PASSWORD": "b", "KAFKA_SSL_CAFILE": "ca.pem"}, "SASL_SSL"),
    ({"KAFKA_SASL_USERNAME": "a", "KAFKA_SASL_PASSWORD": "b", "KAFKA_SASL_MECHANISM": "PLAIN"}, "SASL_SSL"),
    ({"KAFKA_SASL_USERNAME": "a", "KAFKA_SASL_PASSWORD": "b", "KAFKA_SECURITY_PROTOCOL": "sasl_plaintext"},
     "SASL_PLAINTEXT"),
    ({"KAFKA_SSL_CAFILE": "ca.pem"}, "SSL"),
    ({"KAFKA_SSL_CERTFILE": "c.pem", "KAFKA_SSL_KEYFILE": "k.pem"}, "SSL"),
    ({"KAFKA_SASL_PASSWORD": "b"}, "PLAINTEXT"),  # a password alone is no SASL user
])
def test_inferred_protocol(env, protocol):
    sec = KafkaSecurity.from_env(env)
    assert sec.protocol == protocol
    assert sec.tls == (protocol in ("SSL", "SASL_SSL"))


def test_plain_without_tls_is_refused_unless_allowed():
    env = {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
           "KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET}
    with pytest.raises(KafkaSecurityError) as err:
        load_settings(env)
    msg = str(err.value)
    assert "\n" not in msg and SECRET not in msg
    for name in ("KAFKA_SASL_MECHANISM=PLAIN", "KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT",
                 "KAFKA_SECURITY_PROTOCOL=SASL_SSL", "KAFKA_SASL_ALLOW_PLAINTEXT=true"):
        assert name in msg
    for no in ("false", "0", "no", ""):
        with pytest.raises(KafkaSecurityError, match="KAFKA_SASL_ALLOW_PLAINTEXT=true"):
            KafkaSecurity.from_env({**env, "KAFKA_SASL_ALLOW_PLAINTEXT": no})
    with pytest.raises(KafkaSecurityError, match="KAFKA_SASL_ALLOW_PLAINTEXT='maybe' is not true or false"):
        KafkaSecurity.from_env({**env, "KAFKA_SASL_ALLOW_PLAINTEXT": "maybe"})
    allowed = load_settings({**env, "KAFKA_SASL_ALLOW_PLAINTEXT": "true"})
    assert (allowed.security.protocol, allowed.security.sasl_mechanism) == ("SASL_PLAINTEXT", "PLAIN")
    assert allowed.security.sasl_allow_plaintext
    assert load_settings(settings_env(allowed)).security == allowed.security  # a child inherits the opt-in
    # PLAIN over TLS (inferred or explicit) and SCRAM over SASL_PLAINTEXT need no opt-in
    assert KafkaSecurity.from_env({k: v for k, v in env.items() if k != "KAFKA_SECURITY_PROTOCOL"}).protocol == "SASL_SSL"
    assert KafkaSecurity.from_env({**env, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}).sasl_mechanism == "PLAIN"
    assert KafkaSecurity.from_env({**env, "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}).protocol == "SASL_PLAINTEXT"


def test_cli_prints_the_refusal_on_one_line(capsys, monkeypatch):
    from pipeline.cli import main

    for name, value in {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
                        "KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET}.items():
        monkeypatch.setenv(name, value)
    assert main(["topics"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: KAFKA_SASL_MECHANISM=PLAIN")
    assert SECRET not in err


# -- a connection the broker drops during authentication ------------------------------------------

def _log_dropped_bootstrap_connection():
    from kafka.errors import KafkaConnectionError

    logging.getLogger("kafka.net.manager").warning(
        "Bootstrap connection to %s failed: %s (backoff %.2f secs)",
        "bootstrap-0", KafkaConnectionError("socket disconnected"), 0.05)


def test_guarded_reports_a_connection_dropped_during_authentication():
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    s = load_settings({"KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET})

    def dropped_twice():
        _log_dropped_bootstrap_connection()
        _log_dropped_bootstrap_connection()
        raise KafkaTimeoutError("Unable to bootstrap from h:1")

    for fail_fast in (False, True):
        with pytest.raises(KafkaAuthError) as err:
            guarded(s, dropped_twice, fail_fast=fail_fast)
        msg = str(err.value)
        assert msg.startswith("Kafka authentication failed or broker unreachable (SASL/SCRAM-SHA-256 as user 'alice')")
        assert "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD" in msg and "KAFKA_BOOTSTRAP_SERVERS" in msg
        assert "connection closed by the broker during authentication" in msg and SECRET not in msg

    def dropped_once_then_connected():
        _log_dropped_bootstrap_connection()
        return "client"

    assert guarded(s, dropped_once_then_connected, fail_fast=True) == "client"

    def refused():  # nothing listening: not an authentication problem, the usual "cannot reach" path
        logging.getLogger("kafka.net.manager").warning(
            "Bootstrap connection to %s failed: %s (backoff %.2f secs)",
            "bootstrap-0", KafkaConnectionError("111 ECONNREFUSED"), 0.05)
        raise KafkaTimeoutError("Unable to bootstrap from h:1")

    with pytest.raises(KafkaTimeoutError):
        guarded(s, refused, fail_fast=True)
    tls_only = load_settings({"KAFKA_SECURITY_PROTOCOL": "SSL"})
    with pytest.raises(KafkaAuthError, match=r"^Kafka TLS handshake failed or broker unreachable \(SSL\)"):
        guarded(tls_only, dropped_twice, fail_fast=True)


def test_a_peer_closing_during_the_handshake_is_not_a_tls_verdict():
    from kafka.errors import KafkaConnectionError

    from pipeline.kafka_security import _is_auth_failure

    assert not _is_auth_failure(KafkaConnectionError(ssl.SSLEOFError(8, "EOF occurred in violation of protocol")))
    assert not _is_auth_failure(KafkaConnectionError(ConnectionResetError(104, "reset")))
    assert _is_auth_failure(KafkaConnectionError(ssl.SSLError(1, "[SSL: SSLV3_ALERT_BAD_CERTIFICATE]")))


def test_a_server_closing_the_socket_during_the_handshake_is_reported(tmp_path):
    """A real kafka-python client against a socket that accepts, reads the first request and closes
    (what a broker does when it drops a connection during authentication): a KafkaAuthError
    within seconds instead of retrying until the bootstrap timeout."""
    import socket
    import threading
    import time

    from pipeline.kafka_security import admin_client

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        s = load_settings({"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{server.getsockname()[1]}",
                           "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                           "KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": SECRET})
        t0 = time.monotonic()
        with pytest.raises(KafkaAuthError, match="authentication failed or broker unreachable"):
            admin_client(s, bootstrap_timeout_ms=20000)
        assert time.monotonic() - t0 < 10
    finally:
        stop.set()
        t.join(5)
        server.close()
