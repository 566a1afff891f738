"""Self-trained sentiment through Kafka (issue 20): scored feedback on two workers feeds the trainer,
the trainer's gate accepts a model and publishes it, and *both* workers apply it to later
complaints (enriched ``sentiment.source`` = ``model:en-1``); a restarted trainer reads its samples
back and publishes nothing new for them.

Feedback texts: real Amazon Alexa reviews with their stars (../shared/data; tests only)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from pipeline.classify import classify
from pipeline.core.timeparse import format_timestamp
from pipeline.producers.publish import publish
from pipeline.runtime import PROJECT_ROOT, settings_env, wait_for_group
from pipeline.summary import read_topic
from tests.integration.test_router import poll
from tests.unit.test_learned_sentiment import _alexa_rows

pytestmark = pytest.mark.integration

TRAINER_ENV = {"PIPELINE_SELF_TRAIN_MIN_SAMPLES": "300", "PIPELINE_SELF_TRAIN_MIN_NEW_SAMPLES": "100",
               "PIPELINE_SELF_TRAIN_INTERVAL_SECONDS": "1"}
LATER = ["The sound keeps cutting out and support never answered", "Setup was easy and the speaker sounds great",
         "It stopped working after two weeks", "Love it, my kids use it every day"]


def start_trainer(s, log: Path, **extra: str) -> subprocess.Popen:
    env = {**os.environ, **settings_env(s), **TRAINER_ENV, "PIPELINE_LOG_LEVEL": "info", **extra}
    return subprocess.Popen([sys.executable, "-m", "pipeline", "self-train"], cwd=str(PROJECT_ROOT), env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def stop(trainer: subprocess.Popen) -> None:
    trainer.send_signal(signal.SIGTERM)
    try:
        trainer.wait(timeout=30)
    except subprocess.TimeoutExpired:
        trainer.kill()


def models(s) -> dict[str, dict]:
    return {k.decode(): orjson.loads(v) for k, v in read_topic(s, s.sentiment_models_topic, timeout=10) if k and v}


def enriched(s) -> dict[str, dict]:
    return {d["event_id"]: d for d in (orjson.loads(v) for _, v in read_topic(s, s.topics.enriched))}


def test_a_model_learned_from_feedback_reaches_both_workers(settings, worker_factory, tmp_path):
    s = settings
    w1 = worker_factory(s, PIPELINE_LOG_LEVEL="info")
    w2 = worker_factory(s, PIPELINE_LOG_LEVEL="info")
    now = time.time()
    feedback = [("feedback", {
        "schema_version": 1, "event_id": f"fb-{i}", "feedback_id": f"f-{i}", "customer_id": f"cust-st-{i % 40}",
        "source": "review", "score": stars, "scale": {"min": 1, "max": 5}, "text": text, "language": "en",
        "occurred_at": format_timestamp(now - 3600 + i)}) for i, (text, stars) in enumerate(_alexa_rows())]
    publish(feedback, s, progress=False)
    wait_for_group(s, s.app_id, [*s.topics.inputs, s.topics.rekeyed], timeout=180)
    before = enriched(s)
    assert {d["classification"]["sentiment"]["source"] for d in before.values()} == {"lexicon"}
    assert {d["schema_version"] for d in before.values()} == {2}

    trainer = start_trainer(s, tmp_path / "trainer.log")
    try:
        assert poll(lambda: "en" in models(s), 180), (tmp_path / "trainer.log").read_text()[-3000:]
        model = models(s)["en"]
        gate = model["meta"]["gate"]
        print(f"\n[self-train] {model['meta']['version']}: {gate['samples']} samples, model "
              f"{gate['model_balanced_accuracy']} vs lexicon {gate['lexicon_balanced_accuracy']}")
        assert model["meta"]["version"] == "en-1" and model["languages"] == ["en"] and gate["accepted"]
        assert gate["samples"] == len(feedback)
        status = subprocess.run([sys.executable, "-m", "pipeline", "self-train", "--status"], cwd=str(PROJECT_ROOT),
                                env={**os.environ, **settings_env(s)}, capture_output=True, text=True, timeout=120)
        assert status.returncode == 0 and "en-1" in status.stdout and "(lexicon)" in status.stdout, status
        samples = {k for k, _ in read_topic(s, s.sentiment_samples_topic)}
        assert samples == {f"fb-{i}".encode() for i in range(len(feedback))}

        # later complaints, no score, on every partition: each worker classifies its own with the model
        complaints = [("complaint", {
            "schema_version": 1, "event_id": f"cl-{i}", "complaint_id": f"c-{i}", "customer_id": f"cust-st-{i}",
            "status": "opened", "channel": "app", "text": LATER[i % len(LATER)], "language": "en",
            "occurred_at": format_timestamp(time.time())}) for i in range(40)]
        ids = {e["event_id"] for _, e in complaints}

        def all_modelled() -> bool:
            docs = enriched(s)
            return ids <= set(docs) and all(docs[i]["classification"]["sentiment"]["source"] == "model:en-1"
                                            for i in ids)

        publish(complaints, s, progress=False)
        assert poll(all_modelled, 120)
        docs = enriched(s)
        assert {docs[i]["processing"]["partition"] for i in ids} == set(range(s.partitions))
        for w in (w1, w2):  # both workers applied the update while running, and say so on /metrics
            assert poll(lambda w=w: '"version":"en-1"' in w.log_path.read_text(), 30), w.log_path.read_text()[-2000:]
            body = urllib.request.urlopen(f"http://127.0.0.1:{w.web_port}/metrics", timeout=10).read().decode()
            assert 'pipeline_learned_model_sequence{kind="sentiment",language="en"} 1.0' in body
            assert 'pipeline_sentiment_sources_total{language="en",source="model"}' in body

        # a restarted trainer reads its samples and model back: nothing new to train, no en-2
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(timeout=30)
        trainer = start_trainer(s, tmp_path / "trainer.log")
        assert poll(lambda: (tmp_path / "trainer.log").read_text().count("self-train state read") == 2, 60)
        assert not poll(lambda: models(s)["en"]["meta"]["version"] != "en-1", 8)
    finally:
        stop(trainer)


BITEXT = PROJECT_ROOT.parent / "shared" / "data" / "bitext_customer_support" / "Bitext_Sample_Customer_Service_Training_Dataset.csv"
VALIDATION = BITEXT.with_name("Bitext_Sample_Customer_Service_Validation_Dataset.csv")
LABELS = PROJECT_ROOT / "deploy" / "self-train" / "ticket-labels.yaml"


def tickets(limit: int, path: Path = BITEXT) -> list[tuple[str, str]]:
    import yaml

    if not path.exists():
        pytest.skip("../shared/data not present")
    known = yaml.safe_load(LABELS.read_text())
    with path.open(encoding="utf-8", newline="") as fh:
        rows = [(r["utterance"].strip(), r["intent"]) for r in csv.DictReader(fh) if r["intent"] in known]
    return rows[::max(1, len(rows) // limit)][:limit]


def test_pain_points_learned_from_ticket_labels_reach_the_worker(settings, worker_factory, tmp_path):
    """Scope 2: complaints labelled by the ticketing system (Bitext intents as categories) teach the
    trainer that "where is my order" is a delivery pain point; the worker then adds it, with evidence
    naming the model, to a later unlabelled complaint the rules alone leave without one."""
    s = settings
    w = worker_factory(s, PIPELINE_LOG_LEVEL="info")
    now = time.time()
    labelled = [("complaint", {
        "schema_version": 1, "event_id": f"tk-{i}", "complaint_id": f"tk-{i}", "customer_id": f"cust-tk-{i % 20}",
        "status": "opened", "channel": "email", "text": text, "language": "en", "attributes": {"category": intent},
        "occurred_at": format_timestamp(now - 3600 + i)}) for i, (text, intent) in enumerate(tickets(3000))]
    publish(labelled, s, progress=False)
    wait_for_group(s, s.app_id, [*s.topics.inputs, s.topics.rekeyed], timeout=180)
    trainer = start_trainer(s, tmp_path / "trainer.log", PIPELINE_SELF_TRAIN_PAIN_LABEL_ATTRIBUTE="category",
                            PIPELINE_SELF_TRAIN_PAIN_LABEL_MAP=str(LABELS))
    try:
        assert poll(lambda: "pain:en" in models(s), 180), (tmp_path / "trainer.log").read_text()[-3000:]
        model = models(s)["pain:en"]
        assert model["meta"]["version"] == "pain-en-1" and "delivery" in model["categories"]
        assert poll(lambda: '"version":"pain-en-1"' in w.log_path.read_text(), 30)  # the worker follows it
        # held-out tickets (Bitext's validation file) of the delivery categories, sent unlabelled
        later = [t for t, intent in tickets(10_000, VALIDATION) if intent in ("track_order", "delivery_period")]
        publish([("complaint", {"schema_version": 1, "event_id": f"later-{i}", "complaint_id": f"later-{i}",
                                "customer_id": f"cust-later-{i}", "status": "opened", "channel": "app", "text": text,
                                "language": "en", "occurred_at": format_timestamp(time.time())})
                 for i, text in enumerate(later)], s, progress=False)
        ids = {f"later-{i}" for i in range(len(later))}
        assert poll(lambda: ids <= set(enriched(s)), 60)
        docs = enriched(s)
        learned = [i for i in ids if any(e.get("source") == "model:pain-en-1" for p in docs[i]["classification"]["pain_points"]
                                         if p["id"] == "delivery" for e in p["evidence"])]
        by_rules = [t for t in later if "delivery" in {p.id for p in classify(t, language="en").pain_points}]
        print(f"\n[pain] {len(learned)} of {len(later)} held-out delivery tickets get 'delivery' from the model "
              f"(the rules alone: {len(by_rules)})")
        assert len(learned) >= 0.7 * len(later) and len(by_rules) < 0.3 * len(later)
        assert enriched(s)["tk-0"]["classification"]["pain_points"] is not None  # labelled ones were classified too
    finally:
        stop(trainer)
