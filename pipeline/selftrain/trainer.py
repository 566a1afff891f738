"""The self-training loop: enriched feedback in, per-language sentiment models out (issue 20).

Reads ``events.enriched`` in the consumer group ``<app_id>-self-train``. Every feedback event with a
text and a numeric score becomes a training sample (:func:`~pipeline.classify.selftrain.sample_from_enriched`)
written to the compacted topic ``<app_id>-sentiment-samples`` (key: event id) and acknowledged by
the broker *before* the enriched offsets are committed; so the samples survive a restart, a
kill -9 or the enriched topic's retention, and a replayed event replaces its own sample.

Every ``PIPELINE_SELF_TRAIN_INTERVAL_SECONDS``, once the trainer has caught up with the enriched
topic (:func:`round_due`), each language with enough new samples gets a candidate model and the
quality gate (:func:`~pipeline.classify.selftrain.candidate`, in a thread: the event loop stays
responsive; consumption resumes after the round). An accepted model is published, acknowledged, to the compacted topic
``<app_id>-sentiment-models`` (key: language) as version ``<language>-<sequence>``; every worker
follows that topic (:mod:`pipeline.agents.models`). A rejected candidate changes nothing: the
language keeps the lexicon or its previous model. At start the trainer reads both topics: the
samples back into memory, the models for the next sequence number.

Run exactly one trainer per app id (a second one would train the same samples twice and publish
equal-numbered versions, the workers keeping the first).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..classify.classifier import pain_example, sentiment_example
from ..classify.learned import Example
from ..classify.painlearn import PainExample, PainSample, pain_candidate, pain_sample_from_enriched
from ..classify.selftrain import (
    PAIN_KEY_PREFIX,
    GateResult,
    ModelRegistry,
    SampleStore,
    SelfTrainSettings,
    TrainingSample,
    candidate,
    sample_from_enriched,
)
from ..classify.taxonomy import Taxonomy, load_taxonomy
from ..config import Settings
from ..core.records import json_object
from ..kafka_security import aiokafka_kwargs
from ..summary import read_topic
from ..topics import MODEL_MAX_BYTES, ensure_topics, topic_specs

log = logging.getLogger("pipeline.selftrain")
POLL_RECORDS = 1000
BACKLOG_PATIENCE = 10  # intervals a backlog may postpone a round


def round_due(since_last: float, interval: float, caught_up: bool) -> bool:
    """A training round is due once the interval has passed and the last poll came back short (the
    trainer has caught up with the enriched topic: a restart or a replay trains once, on all it
    read, not on every part of it), or after :data:`BACKLOG_PATIENCE` intervals in any case."""
    return since_last >= interval and (caught_up or since_last >= BACKLOG_PATIENCE * interval)


class Trainer:
    def __init__(self, settings: Settings, config: SelfTrainSettings, taxonomy: Taxonomy | None = None) -> None:
        self.settings, self.config = settings, config
        self.taxonomy = taxonomy or load_taxonomy(settings.taxonomy_file)
        self.store = SampleStore(self.analyse, config.max_samples)
        self.pain_store = SampleStore(self.analyse_pain, config.max_samples)  # scope 2, when configured
        self.label_map = dict(config.pain_label_map)
        unknown = sorted({c for c in self.label_map.values() if c} - set(self.taxonomy.category_ids))
        if unknown:
            raise ValueError(f"PIPELINE_SELF_TRAIN_PAIN_LABEL_MAP maps to {', '.join(unknown)}: not categories of "
                             f"the taxonomy ({', '.join(self.taxonomy.category_ids)})")
        self.models = ModelRegistry()
        self._producer: Any = None

    def analyse(self, sample: TrainingSample) -> Example:
        return sentiment_example(sample.text, sample.label, language=sample.language, taxonomy=self.taxonomy)

    def analyse_pain(self, sample: PainSample) -> PainExample:
        return pain_example(sample.text, sample.categories, language=sample.language, taxonomy=self.taxonomy)

    def pain_sample(self, doc: dict[str, Any]) -> PainSample | None:
        if not self.config.pain_label_attribute:
            return None
        return pain_sample_from_enriched(doc, self.config.pain_label_attribute, self.label_map)

    def load(self) -> None:
        """Blocking, before the loop: the topics exist; samples and published models read back."""
        wanted = {self.settings.sentiment_samples_topic, self.settings.sentiment_models_topic}
        ensure_topics(self.settings, [s for s in topic_specs(self.settings) if s.name in wanted])
        for _, value in read_topic(self.settings, self.settings.sentiment_samples_topic):
            sample = TrainingSample.from_json(value) if value else None
            pain = PainSample.from_json(value) if value and sample is None else None
            if sample is not None:
                self.store.add(sample)
            elif pain is not None and self.config.pain_label_attribute:
                self.pain_store.add(pain)
        for key, value in read_topic(self.settings, self.settings.sentiment_models_topic):
            self.models.apply(key, value)
        for store, held in ((self.store, self.models.models), (self.pain_store, self.models.pain_models)):
            for language in held:  # samples already behind a published model are not new
                if language in store.languages:
                    store.languages[language].new = 0
        log.info("self-train state read", extra={"samples": sum(self.store.count(x) for x in self.store.languages),
                                                  "count": len(self.models.models)})

    async def run(self, stop: asyncio.Event | None = None) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        await asyncio.to_thread(self.load)
        self._producer = AIOKafkaProducer(**aiokafka_kwargs(self.settings), acks="all", enable_idempotence=True,
                                          compression_type="gzip", max_request_size=MODEL_MAX_BYTES)
        consumer = AIOKafkaConsumer(self.settings.topics.enriched, **aiokafka_kwargs(self.settings),
                                    enable_auto_commit=False, group_id=f"{self.settings.app_id}-self-train",
                                    auto_offset_reset="earliest")
        await self._producer.start()
        await consumer.start()
        last_round = time.monotonic()
        try:
            while stop is None or not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=POLL_RECORDS)
                n = sum(len(records) for records in batches.values())
                await self.take(rec.value for records in batches.values() for rec in records)
                if batches:
                    await consumer.commit()  # every sample of these records is acknowledged
                if round_due(time.monotonic() - last_round, self.config.interval_seconds, n < POLL_RECORDS):
                    await self.train_due()
                    last_round = time.monotonic()
        finally:
            await consumer.stop()
            await self._producer.stop()

    async def take(self, values: Any) -> int:
        """Samples of enriched records into the store and onto the samples topic (acknowledged)."""
        sends = []
        topic = self.settings.sentiment_samples_topic
        for value in values:
            doc = json_object(value)
            if doc is None:
                continue
            sample = sample_from_enriched(doc)
            if sample is not None and self.store.add(sample):
                sends.append(await self._producer.send(topic, sample.to_json(), key=sample.event_id.encode()))
            pain = self.pain_sample(doc)
            if pain is not None and self.pain_store.add(pain):
                key = (PAIN_KEY_PREFIX + pain.event_id).encode()
                sends.append(await self._producer.send(topic, pain.to_json(), key=key))
        for fut in sends:
            await fut
        return len(sends)

    async def train_due(self) -> list[GateResult]:
        """One candidate per due language; an accepted one is published (acknowledged) before returning."""
        out = []
        for language in self.store.due(self.config):
            examples = self.store.take(language)
            sequence = self.models.next_sequence(language)
            verdict, model = await asyncio.to_thread(candidate, examples, language, sequence, self.config)
            out.append(verdict)
            log.info("sentiment candidate", extra={
                "language": language, "samples": verdict.samples, "accepted": verdict.accepted,
                "model_balanced_accuracy": round(verdict.model_balanced_accuracy, 4),
                "lexicon_balanced_accuracy": round(verdict.lexicon_balanced_accuracy, 4), "reason": verdict.reason})
            if model is not None:
                await self.publish(language, model.to_json(compact=True), model.version)
        await self.train_pain_due()
        return out

    async def train_pain_due(self) -> None:
        """Operator-labelled pain points (scope 2): one candidate per due language, gated per category."""
        cfg = self.config
        for language in self.pain_store.due(cfg):
            examples = self.pain_store.take(language)
            sequence = self.models.next_sequence(PAIN_KEY_PREFIX + language)
            verdicts, model = await asyncio.to_thread(
                lambda: pain_candidate(examples, language, sequence, k=cfg.folds, min_positive=cfg.pain_min_positive,
                                       min_gain=cfg.min_gain, l2=cfg.l2))
            for v in verdicts:
                log.info("pain-point candidate", extra={"language": language, "category": v.category,
                                                        "samples": v.positives, "accepted": v.accepted,
                                                        "model_f1": round(v.model_f1, 4), "rules_f1": round(v.rules_f1, 4)})
            if model is not None:
                await self.publish(PAIN_KEY_PREFIX + language, model.to_json(), model.version)

    async def publish(self, name: str, body: bytes, version: str) -> None:
        """A model onto the models topic under ``name`` (its key: ``<language>`` or ``pain:<language>``),
        acknowledged, and held as this trainer's newest."""
        await (await self._producer.send(self.settings.sentiment_models_topic, body, key=name.encode()))
        self.models.apply(name.encode(), body)
        log.info("model published", extra={"language": name, "version": version})
