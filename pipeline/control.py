"""Control records: move the pipeline's event-time clock (end of a replay).

``advance_clock(settings, t)`` writes ``{"advance_to": t, "after": {topic: offset}}``
to every partition *p* of the tick topic, where ``after`` holds the current end
offsets of partition *p* of every input topic.  The per-customer agent applies
it only once it has processed those records (so the clock never overtakes data
sent before it), sweeps the deadlines, then forwards ``{"control": "advance"}``
to every partition of the stage-2 partials topic; stage 2 moves its watermark
when every stage-1 partition has forwarded it.  Clocks only move forward, so
sending it twice is harmless.
"""

from __future__ import annotations

import orjson

from .config import Settings


def advance_clock(settings: Settings, to: float) -> int:
    from .kafka_security import producer as make_producer
    from .runtime import end_offsets

    t = settings.topics
    ends = end_offsets(settings, [*t.inputs, t.rekeyed])
    producer = make_producer(settings, acks="all")
    sent = 0
    try:
        for p in sorted(producer.partitions_for(t.ticks)):
            after = {topic: off for (topic, part), off in ends.items() if part == p and off > 0}
            producer.send(t.ticks, key=b"clock", value=orjson.dumps({"advance_to": to, "after": after}), partition=p)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent
