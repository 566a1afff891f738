"""A local, single-node Apache Kafka broker (KRaft) managed by the project.

The broker's jars come from Maven Central through the machine's ``mvn``
(``org.apache.kafka:kafka_2.13`` and its runtime dependencies), copied once to
``<cache_dir>/kafka-<version>/libs`` outside the repository; later starts need
no download.  :class:`LocalKafka` formats a fresh storage directory, starts
the broker on 127.0.0.1 on free ports, waits until it answers a metadata
request and stops it (SIGTERM, then SIGKILL) so no JVM outlives it.  On Linux
the JVM also gets ``PR_SET_PDEATHSIG`` so it dies with the Python process that
started it, even after ``kill -9``.
"""

from __future__ import annotations

import base64
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .kafka_python_fix import prepare as prepare_kafka_python

log = logging.getLogger(__name__)

POM_TEMPLATE = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.feedback-pipeline</groupId>
  <artifactId>kafka-fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
"""

LOG4J2_PROPERTIES = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class KafkaUnavailable(RuntimeError):
    """The broker could not be obtained or did not come up."""


@dataclass(frozen=True)
class TlsFiles:
    """A test CA, a broker key pair for ``localhost`` / 127.0.0.1 and a client key pair (mutual TLS)."""

    ca_cert: Path  # PEM: clients trust this (KAFKA_SSL_CAFILE); the mTLS listener trusts it for clients
    keystore: Path  # PKCS12: the broker's key and certificate chain
    store_password: str
    client_cert: Path | None = None  # PEM, signed by the test CA (KAFKA_SSL_CERTFILE)
    client_key: Path | None = None  # PEM, encrypted with ``store_password`` (KAFKA_SSL_KEYFILE / _KEY_PASSWORD)


def make_test_tls(directory: Path, days: int = 2) -> TlsFiles:
    """Generate a throw-away CA, a broker certificate and a client certificate with ``openssl`` (tests only)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise KafkaUnavailable("openssl is needed to generate test certificates")
    directory.mkdir(parents=True, exist_ok=True)
    d = directory
    password = uuid.uuid4().hex
    (d / "san.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    (d / "client.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
    )
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", str(days), "-subj", "/CN=feedback-pipeline test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
         "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "broker.pem", "-days", str(days), "-extfile", "san.ext"],
        ["pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
         "-name", "broker", "-out", "broker.p12", "-passout", f"pass:{password}"],
        # client certificate for mutual TLS, its key encrypted (exercises KAFKA_SSL_KEY_PASSWORD)
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client-plain.key", "-out", "client.csr",
         "-subj", "/CN=feedback-pipeline test client"],
        ["x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "client.pem", "-days", str(days), "-extfile", "client.ext"],
        ["pkey", "-in", "client-plain.key", "-out", "client.key", "-aes256", "-passout", f"pass:{password}"],
    ]
    for args in steps:
        proc = subprocess.run([openssl, *args], cwd=d, capture_output=True, text=True)
        if proc.returncode != 0:
            raise KafkaUnavailable(f"openssl {args[0]} failed: {proc.stderr[-1000:]}")
    (d / "client-plain.key").unlink()
    return TlsFiles(ca_cert=d / "ca.pem", keystore=d / "broker.p12", store_password=password,
                    client_cert=d / "client.pem", client_key=d / "client.key")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch_kafka(version: str, cache_dir: Path) -> Path:
    """Return the directory of Kafka's jars, downloading them with Maven once.

    Idempotent: a completed download is marked by ``libs/.complete``.
    """
    home = cache_dir / f"kafka-{version}"
    libs = home / "libs"
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable("Maven (mvn) is needed to fetch Apache Kafka from Maven Central")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(POM_TEMPLATE.format(version=version))
    tmp = home / "libs.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn, "-q", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
    ]
    log.info("fetching Apache Kafka %s from Maven Central", version)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KafkaUnavailable(f"mvn failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    (libs / ".complete").write_text(version)
    return libs


def _cluster_id() -> str:
    """A random KRaft cluster id (22 url-safe base64 characters).  Like Kafka's own
    ``Uuid.randomUuid`` it never starts with "-": ``kafka-storage format -t -abc...`` would
    read the id as an option and fail (about one broker start in 64)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setsid()


def broker_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when the broker answers a metadata request with at least one broker."""
    from kafka import KafkaAdminClient

    prepare_kafka_python()  # its message classes built once, before clients run in threads
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000),
        )
    except Exception:
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except Exception:
        return False
    finally:
        admin.close()


@dataclass
class LocalKafka:
    """One KRaft broker+controller on loopback.

    Use as a context manager or call :meth:`start` / :meth:`stop`.
    ``extra_config`` lines are appended to ``server.properties`` (e.g. a SCRAM
    listener for security tests).
    """

    version: str
    cache_dir: Path
    workdir: Path | None = None
    heap: str = "768m"
    extra_config: dict[str, str] | None = None
    die_with_parent: bool = True
    port: int = 0
    controller_port: int = 0
    # Security tests: users (name → password) created for SCRAM-SHA-256 and -512 at format
    # time, served on an extra SASL_PLAINTEXT listener on loopback (``sasl_bootstrap``).
    scram_users: dict[str, str] | None = None
    sasl_port: int = 0
    # TLS: a keystore/truststore (see :func:`make_test_tls`) served on an extra SSL listener.
    tls: "TlsFiles | None" = None
    ssl_port: int = 0
    # With ``scram_users`` and ``tls``: a SASL_SSL listener too (SCRAM over TLS, ``sasl_ssl_bootstrap``).
    sasl_ssl: bool = False
    sasl_ssl_port: int = 0
    # With ``tls`` (and its client certificate): an SSL listener with ``ssl.client.auth=required``
    # that trusts the test CA for client certificates (``mtls_bootstrap``).
    mtls: bool = False
    mtls_port: int = 0
    # A cluster's nodes share one KRaft cluster id (:class:`LocalKafkaCluster`); None = a random one.
    cluster_id: str | None = None
    process: subprocess.Popen | None = None
    start_seconds: float = 0.0
    _own_workdir: bool = False
    _t0: float = 0.0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_PLAINTEXT (SCRAM) listener; only with ``scram_users``."""
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        """The TLS listener; only with ``tls``."""
        return f"localhost:{self.ssl_port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """The SASL_SSL (SCRAM over TLS) listener; only with ``sasl_ssl``."""
        return f"localhost:{self.sasl_ssl_port}"

    @property
    def mtls_bootstrap(self) -> str:
        """The SSL listener that requires a client certificate; only with ``mtls``."""
        return f"localhost:{self.mtls_port}"

    def _keystore(self, listener: str) -> dict[str, str]:
        assert self.tls is not None
        prefix = f"listener.name.{listener}.ssl"
        return {
            f"{prefix}.keystore.type": "PKCS12",
            f"{prefix}.keystore.location": str(self.tls.keystore),
            f"{prefix}.keystore.password": self.tls.store_password,
            f"{prefix}.key.password": self.tls.store_password,
        }

    def _listeners(self) -> tuple[list[str], list[str], list[str], dict[str, str]]:
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}", f"CONTROLLER://127.0.0.1:{self.controller_port}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        proto = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        extra: dict[str, str] = {}
        if self.scram_users:
            listeners.append(f"SASL://127.0.0.1:{self.sasl_port}")
            advertised.append(f"SASL://127.0.0.1:{self.sasl_port}")
            proto.append("SASL:SASL_PLAINTEXT")
            extra["sasl.enabled.mechanisms"] = "SCRAM-SHA-256,SCRAM-SHA-512"
            for mech in ("scram-sha-256", "scram-sha-512"):
                extra[f"listener.name.sasl.{mech}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
        if self.tls is not None:
            listeners.append(f"SSL://localhost:{self.ssl_port}")
            advertised.append(f"SSL://localhost:{self.ssl_port}")
            proto.append("SSL:SSL")
            extra.update(self._keystore("ssl"))
            extra["listener.name.ssl.ssl.client.auth"] = "none"
        if self.sasl_ssl:
            if not (self.scram_users and self.tls is not None):
                raise ValueError("LocalKafka(sasl_ssl=True) needs scram_users and tls")
            listeners.append(f"SASLSSL://localhost:{self.sasl_ssl_port}")
            advertised.append(f"SASLSSL://localhost:{self.sasl_ssl_port}")
            proto.append("SASLSSL:SASL_SSL")
            extra.update(self._keystore("saslssl"))
            extra["listener.name.saslssl.ssl.client.auth"] = "none"
            for mech in ("scram-sha-256", "scram-sha-512"):
                extra[f"listener.name.saslssl.{mech}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
            extra["sasl.enabled.mechanisms"] = "SCRAM-SHA-256,SCRAM-SHA-512"
        if self.mtls:
            if self.tls is None:
                raise ValueError("LocalKafka(mtls=True) needs tls")
            listeners.append(f"MTLS://localhost:{self.mtls_port}")
            advertised.append(f"MTLS://localhost:{self.mtls_port}")
            proto.append("MTLS:SSL")
            extra.update(self._keystore("mtls"))
            extra.update({
                "listener.name.mtls.ssl.client.auth": "required",
                # PEM truststore (KIP-651): client certificates must be signed by the test CA
                "listener.name.mtls.ssl.truststore.type": "PEM",
                "listener.name.mtls.ssl.truststore.location": str(self.tls.ca_cert),
            })
        return listeners, advertised, proto, extra

    def _properties(self, log_dir: Path) -> str:
        listeners, advertised, proto, extra = self._listeners()
        cfg = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": ",".join(proto),
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(log_dir),
            "num.partitions": "4",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "group.min.session.timeout.ms": "1000",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.retention.check.interval.ms": "600000",
            "message.max.bytes": str(8 * 1024 * 1024),
            "replica.fetch.max.bytes": str(8 * 1024 * 1024),
        }
        cfg.update(extra)
        cfg.update(self.extra_config or {})
        return "".join(f"{k}={v}\n" for k, v in cfg.items())

    def start(self, timeout: float = 90.0, wait: bool = True) -> "LocalKafka":
        """Format (first start only), launch and, with ``wait``, wait until the broker answers.

        ``wait=False`` only launches the JVM: a cluster node cannot answer before a quorum of
        its controllers runs (:class:`LocalKafkaCluster` launches all, then :meth:`wait_ready`)."""
        self._t0 = time.monotonic()
        libs = fetch_kafka(self.version, self.cache_dir)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="local-kafka-"))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        if self.scram_users:
            self.sasl_port = self.sasl_port or free_port()
        if self.tls is not None:
            self.ssl_port = self.ssl_port or free_port()
        if self.sasl_ssl:
            self.sasl_ssl_port = self.sasl_ssl_port or free_port()
        if self.mtls:
            self.mtls_port = self.mtls_port or free_port()
        data = self.workdir / "data"
        logs = self.workdir / "logs"
        fresh = not (data / "meta.properties").exists()
        logs.mkdir(exist_ok=True)
        props = self.workdir / "server.properties"
        props.write_text(self._properties(data))
        (self.workdir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        java = shutil.which("java") or "java"
        cp = f"{libs}/*"
        jvm = [
            java, f"-Xmx{self.heap}", "-Xms256m", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={logs}",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp", cp,
        ]
        if fresh:
            scram: list[str] = []
            for name, password in (self.scram_users or {}).items():
                for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                    scram += ["--add-scram", f"{mech}=[name={name},password={password}]"]
            fmt = subprocess.run(
                jvm + ["kafka.tools.StorageTool", "format", "-t", self.cluster_id or _cluster_id(), "-c", str(props),
                       *scram],
                capture_output=True, text=True,
            )
            if fmt.returncode != 0:
                out = f"{fmt.stdout}{fmt.stderr}"
                for password in (self.scram_users or {}).values():
                    out = out.replace(password, "***")
                raise KafkaUnavailable(f"storage format failed: {out}")
        out = open(logs / "stdout.log", "ab")
        self.process = subprocess.Popen(
            jvm + ["kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if self.die_with_parent else os.setsid,
        )
        out.close()
        (self.workdir / "broker.pid").write_text(str(self.process.pid))
        (self.workdir / "bootstrap").write_text(self.bootstrap)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90.0) -> "LocalKafka":
        """Wait until the launched broker answers a metadata request; stop it and raise if it does not."""
        assert self.process is not None and self.workdir is not None, "start() first"
        logs = self.workdir / "logs"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise KafkaUnavailable(
                    f"broker exited with {self.process.returncode}; see {logs / 'stdout.log'}"
                )
            if broker_answers(self.bootstrap, timeout=1.0):
                self.start_seconds = time.monotonic() - self._t0
                return self
            time.sleep(0.2)
        self.stop()
        raise KafkaUnavailable(f"broker did not answer within {timeout}s")

    def stop(self, timeout: float = 30.0) -> None:
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the broker (fault tests); :meth:`start` restarts it on the same ports."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "LocalKafka":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def cluster_node_config(node_id: int, controller_ports: list[int], replication_factor: int = 3,
                        min_insync_replicas: int = 2) -> dict[str, str]:
    """``server.properties`` entries that make a :class:`LocalKafka` one node of a KRaft cluster.

    Every node is a combined broker+controller; ``controller_ports[i]`` is node ``i + 1``'s
    controller listener, and all of them are the static quorum (``controller.quorum.voters``).
    Topics default to ``replication_factor`` replicas, and a write with ``acks=all`` needs
    ``min_insync_replicas`` of them (broker-wide, so Faust's changelog topics get it too).  A
    killed node is fenced after 4 s without heartbeats (default 9 s), which shrinks the ISRs.
    """
    if not 1 <= node_id <= len(controller_ports):
        raise ValueError(f"node id {node_id} outside 1..{len(controller_ports)}")
    if not 1 <= min_insync_replicas <= replication_factor <= len(controller_ports):
        raise ValueError("need 1 <= min_insync_replicas <= replication_factor <= nodes")
    return {
        "node.id": str(node_id),
        "controller.quorum.voters": ",".join(
            f"{i}@127.0.0.1:{port}" for i, port in enumerate(controller_ports, start=1)
        ),
        "default.replication.factor": str(replication_factor),
        "min.insync.replicas": str(min_insync_replicas),
        "offsets.topic.replication.factor": str(replication_factor),
        "transaction.state.log.replication.factor": str(replication_factor),
        "transaction.state.log.min.isr": str(min_insync_replicas),
        "unclean.leader.election.enable": "false",
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "4000",
    }


def _distinct_free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _describe(bootstrap: str, timeout: float = 5.0) -> tuple[int, int]:
    """``(brokers registered, partitions whose ISR is smaller than their replica set)``; (0, -1) on error."""
    from kafka import KafkaAdminClient

    prepare_kafka_python()  # its message classes built once, before clients run in threads
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    except Exception:
        return 0, -1
    try:
        brokers = len(admin.describe_cluster().get("brokers") or [])
        under = 0
        topics = admin.list_topics()
        for t in admin.describe_topics(topics) if topics else []:
            for p in t.get("partitions", []):
                isr = p.get("isr_nodes", p.get("isr")) or []
                replicas = p.get("replica_nodes", p.get("replicas")) or []
                if len(isr) < len(replicas):
                    under += 1
        return brokers, under
    except Exception:
        return 0, -1
    finally:
        admin.close()


@dataclass
class LocalKafkaCluster:
    """``size`` KRaft nodes on loopback (each a broker and a controller voter), built from :class:`LocalKafka`.

    Fault tests only: replication ``replication_factor`` by default, ``min.insync.replicas``
    broker-wide, small heaps.  :meth:`kill` SIGKILLs one node and :meth:`restart` starts it
    again on the same ports and data (no re-format).  :attr:`bootstrap` lists every node.
    """

    version: str
    cache_dir: Path
    workdir: Path | None = None
    size: int = 3
    heap: str = "384m"
    replication_factor: int = 3
    min_insync_replicas: int = 2
    extra_config: dict[str, str] | None = None
    die_with_parent: bool = True
    nodes: list[LocalKafka] = field(default_factory=list)
    cluster_id: str = ""
    start_seconds: float = 0.0
    _own_workdir: bool = False

    def configure(self) -> list[LocalKafka]:
        """Pick the ports and build the nodes (no process started); idempotent."""
        if self.nodes:
            return self.nodes
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="local-kafka-cluster-"))
            self._own_workdir = True
        self.cluster_id = self.cluster_id or _cluster_id()
        ports = _distinct_free_ports(2 * self.size)
        broker_ports, controller_ports = ports[: self.size], ports[self.size:]
        for i in range(1, self.size + 1):
            cfg = cluster_node_config(i, controller_ports, self.replication_factor, self.min_insync_replicas)
            cfg.update(self.extra_config or {})
            self.nodes.append(LocalKafka(
                self.version, self.cache_dir, workdir=self.workdir / f"node-{i}", heap=self.heap,
                extra_config=cfg, die_with_parent=self.die_with_parent, port=broker_ports[i - 1],
                controller_port=controller_ports[i - 1], cluster_id=self.cluster_id,
            ))
        return self.nodes

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.configure())

    def node(self, node_id: int) -> LocalKafka:
        """The node with ``node.id`` = ``node_id`` (1-based)."""
        return self.configure()[node_id - 1]

    def start(self, timeout: float = 120.0) -> "LocalKafkaCluster":
        t0 = time.monotonic()
        nodes = self.configure()
        try:
            for n in nodes:  # all JVMs first: none answers before a quorum of controllers runs
                if n.process is None:
                    n.start(wait=False)
            for n in nodes:
                n.wait_ready(max(1.0, timeout - (time.monotonic() - t0)))
            self.wait_brokers(self.size, max(1.0, timeout - (time.monotonic() - t0)))
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def wait_brokers(self, count: int, timeout: float = 60.0) -> None:
        """Wait until ``count`` brokers are registered (and unfenced) in the cluster's metadata."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _describe(self.bootstrap)[0] >= count:
                return
            time.sleep(0.3)
        raise KafkaUnavailable(f"fewer than {count} brokers registered after {timeout}s")

    def wait_in_sync(self, timeout: float = 60.0) -> float:
        """Wait until no partition is under-replicated (ISR = replicas); return the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        under = -1
        while time.monotonic() < deadline:
            brokers, under = _describe(self.bootstrap)
            if brokers >= self.size and under == 0:
                return time.monotonic() - t0
            time.sleep(0.5)
        raise KafkaUnavailable(f"{under} partitions still under-replicated after {timeout}s")

    def kill(self, node_id: int) -> None:
        """SIGKILL one node (no controlled shutdown)."""
        self.node(node_id).kill()

    def restart(self, node_id: int, timeout: float = 90.0) -> None:
        """Start a stopped or killed node again on its ports and data; wait until it answers."""
        node = self.node(node_id)
        node.start(timeout=timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every node at once (one by one, the last would wait for a quorum that has
        gone), then SIGKILL whatever still runs after ``timeout`` seconds."""
        procs = [n.process for n in self.nodes if n.process is not None and n.process.poll() is None]
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for n in self.nodes:
            n.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "LocalKafkaCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
