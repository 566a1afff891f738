"""Kafka client security (TLS, SASL/PLAIN, SASL/SCRAM) from environment variables.

One place builds the security settings of every Kafka client the project
creates: the Faust app (``broker_credentials``), every kafka-python admin
client, consumer and producer (:func:`admin_client`, :func:`consumer`,
:func:`producer`, :func:`kafka_kwargs`) and aiokafka clients (:func:`aiokafka_kwargs`).

Variables (all optional; the default is ``PLAINTEXT`` with no credentials):

* ``KAFKA_SECURITY_PROTOCOL`` — ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``
  (default: ``SASL_SSL`` if a SASL user is set — with the system trust store when no CA file is
  given —, ``SSL`` if only TLS files are given, else ``PLAINTEXT``; SASL without TLS is only ever
  chosen explicitly with ``KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT``);
* ``KAFKA_SASL_MECHANISM`` — ``SCRAM-SHA-256`` (default with SASL), ``SCRAM-SHA-512`` or ``PLAIN``;
* ``KAFKA_SASL_USERNAME`` / ``KAFKA_SASL_PASSWORD`` (or ``KAFKA_SASL_PASSWORD_FILE``);
* ``KAFKA_SASL_ALLOW_PLAINTEXT`` — ``false`` (default): ``PLAIN`` over ``SASL_PLAINTEXT`` (the
  password in the clear on the network) is refused; ``true`` allows it;
* ``KAFKA_SSL_CAFILE`` — CA bundle (PEM) that signed the brokers' certificates
  (default: the system trust store);
* ``KAFKA_SSL_CERTFILE`` / ``KAFKA_SSL_KEYFILE`` / ``KAFKA_SSL_KEY_PASSWORD`` — client
  certificate for mutual TLS;
* ``KAFKA_SSL_CHECK_HOSTNAME`` — ``true`` (default) or ``false``.

Secrets never appear in ``repr``, :meth:`KafkaSecurity.describe` or log records.
An authentication failure is reported as :class:`KafkaAuthError` with a message
naming the variables to check, instead of a hang or a bare "no brokers"; so is a
connection the broker closes while the client is still authenticating ("authentication
failed or broker unreachable").
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Protocol, TypeVar

from . import kafka_python_fix


class Settings(Protocol):
    """What the client builders read of :class:`pipeline.config.Settings` (structural: this module
    sits below ``config``, which embeds :class:`KafkaSecurity`, and must not import it back)."""

    bootstrap_servers: str

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

T = TypeVar("T")


class KafkaSecurityError(ValueError):
    """The security variables are inconsistent (e.g. SASL without a user)."""


class KafkaAuthError(RuntimeError):
    """The broker rejected our credentials (or TLS handshake); the message says what to check."""


def _truthy(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def _strict_flag(name: str, value: str | None) -> bool:
    """An opt-in switch: only an explicit yes enables it; anything unrecognised is an error."""
    v = (value or "").strip().lower()
    if v in ("", "0", "false", "no", "off"):
        return False
    if v in ("1", "true", "yes", "on"):
        return True
    raise KafkaSecurityError(f"{name}={value!r} is not true or false")


@dataclass(frozen=True)
class KafkaSecurity:
    """Security settings shared by every Kafka client.  Secrets are excluded from ``repr``."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    ssl_check_hostname: bool = True
    sasl_allow_plaintext: bool = False  # KAFKA_SASL_ALLOW_PLAINTEXT: PLAIN without TLS

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "KafkaSecurity":
        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else None

        username = get("KAFKA_SASL_USERNAME")
        password = get("KAFKA_SASL_PASSWORD")
        password_file = get("KAFKA_SASL_PASSWORD_FILE")
        if password is None and password_file is not None:
            try:
                with open(password_file, encoding="utf-8") as fh:
                    password = fh.read().rstrip("\r\n")
            except OSError as exc:
                raise KafkaSecurityError(f"KAFKA_SASL_PASSWORD_FILE cannot be read: {exc.strerror}") from None
        cafile = get("KAFKA_SSL_CAFILE")
        certfile = get("KAFKA_SSL_CERTFILE")
        keyfile = get("KAFKA_SSL_KEYFILE")
        protocol = (get("KAFKA_SECURITY_PROTOCOL") or "").upper()
        if not protocol:
            # A SASL user always means TLS (the system trust store without a CA file): plaintext
            # SASL only by an explicit KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT.
            protocol = "SASL_SSL" if username else ("SSL" if cafile or certfile else "PLAINTEXT")
        mechanism = (get("KAFKA_SASL_MECHANISM") or "").upper() or None
        if protocol.startswith("SASL_") and mechanism is None:
            mechanism = "SCRAM-SHA-256"
        sec = cls(
            protocol=protocol,
            sasl_mechanism=mechanism if protocol.startswith("SASL_") else None,
            sasl_username=username,
            sasl_password=password,
            ssl_cafile=cafile,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            ssl_key_password=get("KAFKA_SSL_KEY_PASSWORD"),
            ssl_check_hostname=_truthy(get("KAFKA_SSL_CHECK_HOSTNAME"), True),
            sasl_allow_plaintext=_strict_flag("KAFKA_SASL_ALLOW_PLAINTEXT", get("KAFKA_SASL_ALLOW_PLAINTEXT")),
        )
        sec.validate()
        return sec

    def validate(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise KafkaSecurityError(
                f"KAFKA_SECURITY_PROTOCOL={self.protocol!r} is not one of {', '.join(PROTOCOLS)}"
            )
        if self.sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise KafkaSecurityError(
                    f"KAFKA_SASL_MECHANISM={self.sasl_mechanism!r} is not one of {', '.join(MECHANISMS)}"
                )
            if not self.sasl_username or self.sasl_password is None:
                raise KafkaSecurityError(
                    f"KAFKA_SECURITY_PROTOCOL={self.protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
                )
            if self.sasl_mechanism == "PLAIN" and not self.tls and not self.sasl_allow_plaintext:
                raise KafkaSecurityError(
                    "KAFKA_SASL_MECHANISM=PLAIN with KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT would send the password "
                    "unencrypted: use KAFKA_SECURITY_PROTOCOL=SASL_SSL (KAFKA_SSL_CAFILE) or set "
                    "KAFKA_SASL_ALLOW_PLAINTEXT=true"
                )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise KafkaSecurityError("KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE")

    # -- properties ------------------------------------------------------------------------------
    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """A log-safe one-liner (no password)."""
        parts = [self.protocol]
        if self.sasl:
            parts.append(f"{self.sasl_mechanism} user={self.sasl_username}")
        if self.tls:
            parts.append(f"ca={self.ssl_cafile or 'system'}")
            if self.ssl_certfile:
                parts.append("client-cert")
            if not self.ssl_check_hostname:
                parts.append("no-hostname-check")
        return " ".join(parts)

    # -- client configuration --------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (``None`` without TLS): CA file or the system store, optional client cert."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ssl_cafile)
        ctx.check_hostname = self.ssl_check_hostname
        if not self.ssl_check_hostname:
            # Without a hostname check the certificate is still verified against the CA.
            ctx.verify_mode = ssl.CERT_REQUIRED
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, self.ssl_key_password)
        return ctx

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's ``KafkaAdminClient`` / ``KafkaConsumer`` / ``KafkaProducer``."""
        kw: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl:
            kw.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.tls:
            kw["ssl_context"] = self.ssl_context()
        return kw

    def faust_credentials(self) -> Any:
        """``broker_credentials`` for the Faust app (``None`` for PLAINTEXT)."""
        import faust

        if self.sasl:
            return faust.SASLCredentials(
                username=self.sasl_username, password=self.sasl_password,
                mechanism=self.sasl_mechanism, ssl_context=self.ssl_context(),
            )
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None

    def env(self) -> dict[str, str]:
        """Environment variables that reproduce these settings in a child process."""
        out = {"KAFKA_SECURITY_PROTOCOL": self.protocol}
        pairs = {
            "KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.sasl_username,
            "KAFKA_SASL_PASSWORD": self.sasl_password,
            "KAFKA_SSL_CAFILE": self.ssl_cafile,
            "KAFKA_SSL_CERTFILE": self.ssl_certfile,
            "KAFKA_SSL_KEYFILE": self.ssl_keyfile,
            "KAFKA_SSL_KEY_PASSWORD": self.ssl_key_password,
        }
        out.update({k: v for k, v in pairs.items() if v is not None})
        if not self.ssl_check_hostname:
            out["KAFKA_SSL_CHECK_HOSTNAME"] = "false"
        if self.sasl_allow_plaintext:
            out["KAFKA_SASL_ALLOW_PLAINTEXT"] = "true"
        return out


# -- clients -------------------------------------------------------------------------------------

def _security(settings: "Settings") -> KafkaSecurity:
    return getattr(settings, "security", None) or KafkaSecurity()


def _client_kwargs(settings: "Settings") -> dict[str, Any]:
    servers = settings.bootstrap_servers or DEFAULT_BOOTSTRAP
    return {
        "bootstrap_servers": [s.strip() for s in servers.split(",") if s.strip()],
        **_security(settings).kafka_python(),
    }


def kafka_kwargs(settings: "Settings") -> dict[str, Any]:
    """``bootstrap_servers`` plus the security keyword arguments for any kafka-python client.

    Every kafka-python client of the project takes its arguments from here, so this is where
    kafka-python's message classes are built once, before any client runs in a thread
    (:mod:`pipeline.kafka_python_fix`)."""
    kafka_python_fix.prepare()
    return _client_kwargs(settings)


def aiokafka_kwargs(settings: "Settings") -> dict[str, Any]:
    """``bootstrap_servers`` plus the security keyword arguments for aiokafka's producer / consumer."""
    return _client_kwargs(settings)  # aiokafka takes the same names (security_protocol, sasl_*, ssl_context)


def auth_error_message(sec: KafkaSecurity, detail: str = "", dropped: bool = False) -> str:
    """The one-line error for a rejected login or TLS handshake.  ``dropped``: the broker closed the
    connection while the client was still authenticating, without saying why."""
    either = " or broker unreachable" if dropped else ""
    if sec.sasl and not detail.startswith("SSL"):  # SSLError, SSLCertVerificationError: the TLS layer failed
        msg = (
            f"Kafka authentication failed{either} (SASL/{sec.sasl_mechanism} as user {sec.sasl_username!r}): "
            "check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
        )
    else:
        msg = (
            f"Kafka TLS handshake failed{either} ({sec.protocol}): check KAFKA_SSL_CAFILE, "
            "KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE and KAFKA_SSL_CHECK_HOSTNAME"
        )
    if dropped:
        msg += " (and KAFKA_BOOTSTRAP_SERVERS)"
    return f"{msg} ({detail})" if detail else msg


DROPPED_DETAIL = "connection closed by the broker during authentication"

_AUTH_ERROR_NAMES = (
    "SaslAuthenticationFailedError", "UnsupportedSaslMechanismError", "IllegalSaslStateError",
    "AuthenticationFailedError", "SSLError", "SSLCertVerificationError",
)
# The peer closed the socket: not an authentication verdict by itself (see _AuthFailures).
_PEER_CLOSED = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes/contexts and exceptions wrapped as the first argument (kafka-python
    wraps socket errors as ``KafkaConnectionError(error)`` without chaining them)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(x for x in (e.__cause__, e.__context__, *(e.args[:1] if e.args else ()))
                    if isinstance(x, BaseException))


def _is_peer_closed(exc: BaseException) -> bool:
    """The broker closed an established connection (EOF, reset, TLS EOF) — not a TLS or SASL verdict."""
    for e in _chain(exc):
        if isinstance(e, _PEER_CLOSED) or e.args[:1] == ("socket disconnected",):
            return True
    return False


def _auth_failure_name(exc: BaseException) -> str | None:
    """The type name of a rejected SASL login or failed TLS handshake in ``exc``'s chain, else ``None``."""
    if _is_peer_closed(exc):
        return None
    for e in _chain(exc):
        if isinstance(e, ssl.SSLError) or any(c.__name__ in _AUTH_ERROR_NAMES for c in type(e).__mro__):
            return type(e).__name__
    return None


def _is_auth_failure(exc: BaseException) -> bool:
    """True for a rejected SASL login or a failed TLS handshake (anywhere in the cause chain)."""
    return _auth_failure_name(exc) is not None


def _record_exceptions(record: logging.LogRecord) -> list[BaseException]:
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    found = [a for a in args if isinstance(a, BaseException)]
    if record.exc_info and isinstance(record.exc_info[1], BaseException):
        found.append(record.exc_info[1])
    return found


def _dropped_while_initializing(record: logging.LogRecord, exc: BaseException) -> bool:
    """A connection closed by the broker before the client's handshake (ApiVersions, SASL) finished.

    kafka-python logs it as ``<transport>: Abort (error)`` while the connection is still
    initializing, and at bootstrap also as ``Bootstrap connection to N failed: error``.
    """
    if not _is_peer_closed(exc):
        return False
    msg = str(record.msg)
    if msg.startswith("Bootstrap connection to"):
        return True
    if "Abort" in msg and isinstance(record.args, tuple) and record.args:
        conn = getattr(record.args[0], "_protocol", None)
        return bool(getattr(conn, "initializing", False))
    return False


class _AuthFailures(logging.Handler):
    """Collects authentication failures that kafka-python logs (and retries) while bootstrapping.

    kafka-python keeps retrying a rejected login until its bootstrap timeout and
    then raises a generic "Unable to bootstrap"; the real cause is only in the
    exception it logs.  Only the exception *type* is kept, never the record text.
    The client may also see the broker just close the connection during the SASL
    exchange (after a failed login the broker sends its error response and closes;
    kafka-python 3.0 discards bytes that arrive together with the end of the stream);
    such drops are counted in ``drops`` (distinct connection errors).

    The logger is shared by every client in the process: records from threads that
    existed before this handler (e.g. an earlier rejected client still retrying in
    the background) are not ours and are ignored.  A new client logs from the
    thread that builds it or from the IO/sender threads it starts.
    """

    DROPS_TO_GIVE_UP = 2  # one drop may be a coincidence; the second ends the wait (≈ 0.7 s with backoff)

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.failures: list[str] = []
        self.drops: list[BaseException] = []
        self.event = threading.Event()
        me = threading.current_thread()
        self.foreign: weakref.WeakSet[threading.Thread] = weakref.WeakSet(
            t for t in threading.enumerate() if t is not me)

    @property
    def gave_up(self) -> bool:
        return bool(self.failures) or len(self.drops) >= self.DROPS_TO_GIVE_UP

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread() in self.foreign:
            return
        for exc in _record_exceptions(record):
            name = _auth_failure_name(exc)
            if name is not None:
                self.failures.append(name)
                self.event.set()
            elif _dropped_while_initializing(record, exc) and not any(exc is d for d in self.drops):
                self.drops.append(exc)
                self.event.set()

    def error(self, sec: KafkaSecurity) -> KafkaAuthError | None:
        if self.failures:
            return KafkaAuthError(auth_error_message(sec, self.failures[0]))
        if self.drops:
            return KafkaAuthError(auth_error_message(sec, DROPPED_DETAIL, dropped=True))
        return None


_capture_lock = threading.Lock()
_capture_users = 0
_saved_level = logging.NOTSET


@contextlib.contextmanager
def _capture_auth_failures() -> Iterator[_AuthFailures]:
    """Listen to kafka-python's connection logger; its level is lowered to WARNING meanwhile
    (reference-counted, so concurrent clients in several threads restore it correctly)."""
    global _capture_users, _saved_level
    handler = _AuthFailures()
    logger = logging.getLogger("kafka.net")
    with _capture_lock:
        if _capture_users == 0:
            _saved_level = logger.level
            if logger.getEffectiveLevel() > logging.WARNING:
                logger.setLevel(logging.WARNING)
        _capture_users += 1
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        with _capture_lock:
            _capture_users -= 1
            if _capture_users == 0:
                logger.setLevel(_saved_level)


def guarded(settings: "Settings", build: Callable[[], T], fail_fast: bool = False) -> T:
    """Run ``build()`` (a client constructor); turn an authentication failure into :class:`KafkaAuthError`.

    With ``fail_fast`` the constructor runs in a helper thread and the first
    rejected login raises at once instead of after kafka-python's bootstrap timeout.
    """
    sec = _security(settings)
    if not (sec.sasl or sec.tls):
        return build()
    with _capture_auth_failures() as seen:
        if not fail_fast:
            try:
                return build()
            except Exception as exc:
                if _is_auth_failure(exc):
                    raise KafkaAuthError(auth_error_message(sec, _auth_failure_name(exc) or "")) from None
                error = seen.error(sec)
                if error is not None:
                    raise error from None
                raise
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["client"] = build()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box["error"] = exc
            seen.event.set()

        thread = threading.Thread(target=run, name="kafka-auth-probe", daemon=True)
        thread.start()
        while thread.is_alive() and not seen.gave_up:
            seen.event.wait(0.5)
            seen.event.clear()
        if seen.gave_up:
            raise seen.error(sec)  # type: ignore[misc]
        thread.join()
        if "error" in box:
            exc = box["error"]
            if _is_auth_failure(exc):
                raise KafkaAuthError(auth_error_message(sec, _auth_failure_name(exc) or "")) from None
            error = seen.error(sec)
            if error is not None:
                raise error from None
            raise exc
        return box["client"]


def probe(settings: "Settings", timeout: float = 30.0) -> None:
    """Connect to the cluster once and authenticate; raise :class:`KafkaAuthError` at the first rejection.

    A no-op for PLAINTEXT.  Used before a worker starts so that a wrong
    password is a one-line error, not a worker retrying forever.
    """
    sec = _security(settings)
    if not (sec.sasl or sec.tls):
        return
    from kafka import KafkaAdminClient

    admin = guarded(
        settings,
        lambda: KafkaAdminClient(**kafka_kwargs(settings), bootstrap_timeout_ms=int(timeout * 1000)),
        fail_fast=True,
    )
    admin.close()


def admin_client(settings: "Settings", **kw: Any) -> Any:
    from kafka import KafkaAdminClient

    return guarded(settings, lambda: KafkaAdminClient(**kafka_kwargs(settings), **kw), fail_fast=True)


def consumer(settings: "Settings", *topics: str, **kw: Any) -> Any:
    from kafka import KafkaConsumer

    return guarded(settings, lambda: KafkaConsumer(*topics, **kafka_kwargs(settings), **kw), fail_fast=True)


def producer(settings: "Settings", **kw: Any) -> Any:
    from kafka import KafkaProducer

    return guarded(settings, lambda: KafkaProducer(**kafka_kwargs(settings), **kw), fail_fast=True)
