"""Quick throughput probe: preload N simulated events, start one worker, time until caught up."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import Topics, load_settings  # noqa: E402
from pipeline.kafka_local import LocalKafka, free_port  # noqa: E402
from pipeline.producers.publish import publish  # noqa: E402
from pipeline.producers.simulator import iter_simulated_events  # noqa: E402
from pipeline.runtime import WorkerProcess, wait_for_group  # noqa: E402
from pipeline.topics import ensure_topics  # noqa: E402


def main(n: int = 30000) -> None:
    s = load_settings()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    broker = None
    if not s.bootstrap_servers:
        broker = LocalKafka(s.kafka_version, s.cache_dir, workdir=work / "kafka").start()
        s = dataclasses.replace(s, bootstrap_servers=broker.bootstrap)
    sfx = uuid.uuid4().hex[:6]
    topics = Topics(**{f.name: f"b-{sfx}.{f.default}" for f in dataclasses.fields(Topics)})
    s = dataclasses.replace(s, topics=topics, app_id=f"bench-{sfx}")
    try:
        ensure_topics(s)
        publish(iter_simulated_events(n, seed=3, data_dir=s.data_dir, customers=2000), s, total=n, progress=False)
        w = WorkerProcess(s, free_port(), work / "worker.log").start()
        t0 = time.monotonic()
        w.wait_ready(120)
        t1 = time.monotonic()
        wait_for_group(s, s.app_id, [*topics.inputs, topics.rekeyed], timeout=900, poll=0.2)
        t2 = time.monotonic()
        print(f"events={n} ready={t1 - t0:.1f}s consume={t2 - t1:.1f}s eps={n / (t2 - t1):.0f} log={w.log_path}")
        w.stop()
    finally:
        if broker:
            broker.cleanup()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30000)
