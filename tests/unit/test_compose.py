"""docker-compose.yml, checked without a Docker engine: services, images, mounts, ports, order."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# The only mount from outside the repository: the simulator's real texts (optional; without them
# it falls back to built-in sentences).
OPTIONAL_EXTERNAL = {("simulator", "/data")}


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with the defaults (the environment is not consulted)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def bind_mounts(name: str) -> list[tuple[str, str]]:
    out = []
    for v in SERVICES[name].get("volumes", []):
        src, target = _interpolate(v).split(":")[:2]
        if src.startswith((".", "/")):
            out.append((src, target))
    return out


def test_services_present():
    assert {"kafka", "topics", "worker", "simulator", "prometheus", "grafana"} <= set(SERVICES)


def test_kafka_is_the_official_image_in_kraft_mode():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and "KAFKA_CONTROLLER_QUORUM_VOTERS" in env
    assert "healthcheck" in kafka


def test_pipeline_services_build_the_repo_dockerfile():
    assert (ROOT / "Dockerfile").is_file()
    for name in ("topics", "worker", "simulator"):
        assert SERVICES[name]["build"] == "."
    assert SERVICES["topics"]["command"] == ["topics"]
    assert SERVICES["worker"]["command"] == ["worker"]
    assert SERVICES["simulator"]["command"][0] == "simulate"
    for name in ("topics", "worker", "simulator"):
        assert SERVICES[name]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_start_order():
    dep = {name: s.get("depends_on", {}) for name, s in SERVICES.items()}
    assert dep["topics"]["kafka"]["condition"] == "service_healthy"
    assert dep["worker"]["topics"]["condition"] == "service_completed_successfully"
    assert dep["simulator"]["topics"]["condition"] == "service_completed_successfully"
    assert "worker" in dep["prometheus"] and "prometheus" in dep["grafana"]
    for name, d in dep.items():
        assert set(d) <= set(SERVICES), name


def test_mounted_paths_exist_in_the_repo():
    mounts = {name: bind_mounts(name) for name in SERVICES}
    assert ("./deploy/prometheus", "/etc/prometheus") in mounts["prometheus"]
    assert ("./deploy/grafana/provisioning", "/etc/grafana/provisioning") in mounts["grafana"]
    assert ("./deploy/grafana/dashboards", "/var/lib/grafana/dashboards") in mounts["grafana"]
    for name, ms in mounts.items():
        for src, target in ms:
            if (name, target) in OPTIONAL_EXTERNAL:
                continue
            assert src.startswith("./"), (name, src)
            assert (ROOT / src).exists(), (name, src)
    # Prometheus reads the mounted config; the rule file it names is in the same mount.
    cmd = SERVICES["prometheus"]["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in cmd
    assert (ROOT / "deploy/prometheus/prometheus.yml").is_file() and (ROOT / "deploy/prometheus/rules.yml").is_file()
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "deploy/grafana/dashboards" / Path(home).name).is_file()
    for vol in ("prometheus-data", "grafana-data"):
        assert vol in COMPOSE["volumes"]


def _ports(name: str) -> list[tuple[str, str, str]]:
    out = []
    for p in SERVICES[name].get("ports", []):
        host_ip, host, container = str(p).split(":")
        out.append((host_ip, host, container))
    return out


def test_ports_are_loopback_and_match_the_configs():
    assert ("127.0.0.1", "9090", "9090") in _ports("prometheus")
    assert ("127.0.0.1", "3000", "3000") in _ports("grafana")
    assert ("127.0.0.1", "9092", "9092") in _ports("kafka")
    ip, host, container = _ports("worker")[0]
    assert ip == "127.0.0.1" and host.startswith("6066") and container == "6066"
    assert SERVICES["worker"]["environment"]["PIPELINE_WEB_PORT"] == container
    for name in SERVICES:
        for ip, _, _ in _ports(name):
            assert ip == "127.0.0.1", name  # nothing listens on the host's public interfaces
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    sd = prom["scrape_configs"][0]["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and str(sd["port"]) == container
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"


def test_dockerfile_listens_on_all_interfaces_inside_the_container():
    text = (ROOT / "Dockerfile").read_text()
    assert "PIPELINE_WEB_HOST=0.0.0.0" in text and "EXPOSE 6066" in text


def test_kubernetes_worker_manifest():
    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy/k8s/worker.yaml").read_text())}
    assert set(docs) == {"ConfigMap", "Deployment", "Service"}
    env = docs["ConfigMap"]["data"]
    pod = docs["Deployment"]["spec"]["template"]
    c = pod["spec"]["containers"][0]
    assert c["args"] == ["worker"] and c["envFrom"][0]["configMapRef"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    port = c["ports"][0]["containerPort"]
    assert port == int(env["PIPELINE_WEB_PORT"]) == int(pod["metadata"]["annotations"]["prometheus.io/port"])
    assert c["readinessProbe"]["httpGet"]["path"] == "/health" and env["PIPELINE_WEB_HOST"] == "0.0.0.0"
    assert docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert docs["Service"]["spec"]["clusterIP"] == "None"


def test_kubernetes_probes_and_advertised_pod_ip():
    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy/k8s/worker.yaml").read_text())}
    c = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "web"}, probe
        assert c[probe].get("timeoutSeconds", 1) >= 2, probe
    # liveness restarts a worker /health calls stuck (PIPELINE_STUCK_SECONDS) within about a minute more
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] <= 60
    assert float(docs["ConfigMap"]["data"]["PIPELINE_STUCK_SECONDS"]) > 0
    env = {e["name"]: e for e in c["env"]}
    # bind on every interface, advertise the pod IP: Faust's table_route must tell the workers apart
    assert docs["ConfigMap"]["data"]["PIPELINE_WEB_HOST"] == "0.0.0.0"
    assert env["PIPELINE_WEB_ADVERTISED_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    token = env["PIPELINE_WEB_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token["optional"] is True and token["key"] == "token"
    assert "PIPELINE_WEB_TOKEN" not in docs["ConfigMap"]["data"]  # a secret, not configuration
    # a stuck (not ready) worker is still scraped through the headless service
    assert docs["Service"]["spec"]["publishNotReadyAddresses"] is True


def test_compose_worker_healthcheck_uses_health():
    test = " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert "/health" in test and "urlopen" in test  # urlopen raises on 503: unhealthy when stuck
    assert "PIPELINE_WEB_ADVERTISED_HOST" not in SERVICES["worker"]["environment"]  # each replica: its host name


def test_console_in_compose_and_kubernetes_needs_credentials_beyond_loopback():
    svc = SERVICES["console"]
    assert svc["command"] == ["console", "--host", "0.0.0.0"]
    assert "PIPELINE_CONSOLE_TOKEN" in svc["environment"] and svc["environment"]["PIPELINE_CONSOLE_WORKER_URL"]
    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy/k8s/console.yaml").read_text())}
    c = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert c["args"] == ["console", "--host", "0.0.0.0"]
    assert env["PIPELINE_CONSOLE_TOKEN"]["valueFrom"]["secretKeyRef"].get("optional") is not True
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]


def test_one_self_trainer_in_compose_and_kubernetes():
    svc = SERVICES["self-train"]
    assert svc["command"] == ["self-train"] and svc["build"] == "."
    assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert svc["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert "deploy" not in svc or svc["deploy"].get("replicas", 1) == 1
    dep = yaml.safe_load((ROOT / "deploy/k8s/self-train.yaml").read_text())
    assert dep["kind"] == "Deployment" and dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"]["type"] == "Recreate"  # never two trainers, also during a rollout
    assert dep["spec"]["template"]["spec"]["containers"][0]["args"] == ["self-train"]
