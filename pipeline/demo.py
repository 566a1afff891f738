"""The quickstart's main job, end to end on one machine.

Starts the project's local Kafka (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set),
creates the topics, starts one worker, replays the Olist data and some
simulated Korean/English traffic plus a few deliberately broken records, waits
until the worker has consumed everything, prints a summary and stops what it
started.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

from .config import load_settings
from .kafka_local import LocalKafka, free_port


def run_demo(simulated: int = 2000, quiet: bool = False) -> int:
    from .producers.broken import broken_records
    from .commitments.model import CommitmentConfig
    from .control import advance_clock
    from .producers.olist import iter_olist_events, last_due
    from .verify_olist import verify
    from .producers.publish import publish, publish_raw
    from .producers.simulator import iter_simulated_events
    from .runtime import WorkerProcess, wait_for_group
    from .summary import summarise
    from .topics import ensure_topics

    settings = load_settings()
    broker = None
    workdir = Path(tempfile.mkdtemp(prefix="pipeline-demo-"))
    t0 = time.monotonic()
    if not settings.bootstrap_servers:
        broker = LocalKafka(settings.kafka_version, settings.cache_dir, workdir=workdir / "kafka").start()
        settings = dataclasses.replace(settings, bootstrap_servers=broker.bootstrap)
        print(f"local Kafka {settings.kafka_version} at {broker.bootstrap} (up in {broker.start_seconds:.1f}s)")
    worker = None
    try:
        ensure_topics(settings)
        worker = WorkerProcess(settings, free_port(), workdir / "worker.log").start()
        worker.wait_ready()
        print(f"worker ready (log: {worker.log_path})")
        t1 = time.monotonic()
        olist = publish(iter_olist_events(settings.data_dir / "olist_subset_5k"), settings,
                        progress=not quiet, desc="olist replay")
        sim = publish(iter_simulated_events(simulated, seed=11, data_dir=settings.data_dir), settings,
                      total=simulated, progress=not quiet, desc="simulated")
        topic_of = {"order": settings.topics.orders, "complaint": settings.topics.complaints,
                    "feedback": settings.topics.feedback, "customer_profile": settings.topics.profiles}
        bad = broken_records(1, settings.max_event_bytes)
        for b in bad:
            publish_raw(topic_of[b.kind], [(b.key, b.value)], settings)
        sent = sum(olist.values()) + sum(sim.values()) + len(bad)
        t = settings.topics
        wait_for_group(settings, settings.app_id, [*t.inputs, t.rekeyed], timeout=600)
        elapsed = time.monotonic() - t1
        # End of the Olist replay: move the event-time clock past its last promised date.
        advance_clock(settings, last_due(settings.data_dir / "olist_subset_5k") + 7 * 86400)
        wait_for_group(settings, settings.app_id, [*t.inputs, t.rekeyed, t.ticks, settings.partials_topic],
                       timeout=600)
        print(f"\nsent {sent} records (olist {olist}, simulated {sim}, broken {len(bad)}); "
              f"processed in {elapsed:.1f}s ({sent / elapsed:.0f} records/s end to end)\n")
        print(summarise(settings).render())
        ok, report = verify(settings, CommitmentConfig.from_env(os.environ).warn_delivery_seconds)
        print("\nOlist delivery commitments vs the CSV truth:\n" + report)
        from .verify_olist import churn_table

        print("\nCustomers with a churn_risk alert vs everyone else (Olist CSV figures):\n" + churn_table(settings)[0])
        print(f"\ntotal {time.monotonic() - t0:.1f}s")
        return 0
    finally:
        if worker is not None:
            worker.stop()
        if broker is not None:
            broker.cleanup()
