"""Health rules end to end (issue 19, scope 3): a rule of ``deploy/prometheus/rules.yml`` firing in a
real Prometheus reaches a local webhook through a real Alertmanager configured from
``deploy/alertmanager/alertmanager.yml``.

Debian's ``prometheus`` and ``prometheus-alertmanager`` (``make test`` installs them; without them
and without root the test is skipped and says why).  Everything on loopback.  Changes to the
project's files, and only these: the scrape target is a port where no worker listens (so
``PipelineWorkerDown`` fires: ``up == 0``), the intervals are 1 s, the rules' ``for:`` is 0 s, the
Alertmanager address is the local one, and the receiver's URL (and group waits of 1 s) point at the
test's webhook.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pipeline.kafka_local import free_port
from tests.integration.test_prometheus import DEPLOY, JOB, _get_json, _wait, rewritten_config
from tests.integration.test_router import Receiver

pytestmark = pytest.mark.integration


def binaries() -> tuple[str, str]:
    prom, am = shutil.which("prometheus"), shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not (prom and am):
        pytest.skip("needs Debian's prometheus and prometheus-alertmanager: make system-deps")
    return prom, am


def am_config(url: str) -> dict:
    cfg = yaml.safe_load((DEPLOY / "alertmanager/alertmanager.yml").read_text())
    cfg["route"].update(group_wait="1s", group_interval="1s")
    for r in cfg["route"].get("routes", []):
        r.update(group_wait="1s", group_interval="1s")
    for receiver in cfg["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = url
    return cfg


def test_a_health_rule_reaches_the_webhook_through_alertmanager(tmp_path: Path) -> None:
    prom_bin, am_bin = binaries()
    hook = Receiver()
    procs: list[subprocess.Popen] = []
    try:
        am_port, prom_port, dead = free_port(), free_port(), free_port()
        am_cfg = tmp_path / "alertmanager.yml"
        am_cfg.write_text(yaml.safe_dump(am_config(hook.url)))
        procs.append(subprocess.Popen(
            [am_bin, f"--config.file={am_cfg}", f"--storage.path={tmp_path / 'am'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=", "--log.level=warn"],
            stdout=open(tmp_path / "alertmanager.log", "wb"), stderr=subprocess.STDOUT))
        rules = yaml.safe_load((DEPLOY / "prometheus/rules.yml").read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule["for"] = "0s"
        (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
        cfg = rewritten_config(f"127.0.0.1:{dead}")
        cfg["rule_files"] = [str(tmp_path / "rules.yml")]
        cfg["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{am_port}"]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        procs.append(subprocess.Popen(
            [prom_bin, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            stdout=open(tmp_path / "prometheus.log", "wb"), stderr=subprocess.STDOUT))
        logs = lambda: "\n".join((tmp_path / f).read_text()[-1500:] for f in ("prometheus.log", "alertmanager.log"))  # noqa: E731
        _wait("alertmanager ready", lambda: _get_json(f"http://127.0.0.1:{am_port}/api/v2/status"), 60, on_timeout=logs)
        t0 = time.monotonic()
        posts = _wait("the webhook gets PipelineWorkerDown", lambda: [
            b for _, b in hook.posts if any(a["labels"].get("alertname") == "PipelineWorkerDown" for a in b["alerts"])],
            120, on_timeout=logs)
        body = posts[0]
        alert = next(a for a in body["alerts"] if a["labels"]["alertname"] == "PipelineWorkerDown")
        assert body["receiver"] == "on-call" and body["status"] == "firing"
        assert alert["labels"]["job"] == JOB and alert["labels"]["severity"] == "critical"
        assert alert["annotations"]  # the rule's summary / description travel along
        print(f"\n[alertmanager] PipelineWorkerDown reached the webhook {time.monotonic() - t0:.1f}s after start")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        hook.stop()
