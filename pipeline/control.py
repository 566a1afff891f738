"""Control records: move the pipeline's event-time clock (end of a replay).

``advance_clock(settings, t)`` writes ``{"advance_to": t}`` to every partition
of the tick topic (commitment deadlines) and ``{"control": "advance", "to": t}``
to every partition of the stage-2 partials topic (window closing).  Both agents
only ever move their clocks forward, so sending it twice is harmless.
"""

from __future__ import annotations

import orjson

from .config import Settings


def advance_clock(settings: Settings, to: float) -> int:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    sent = 0
    try:
        for topic, body in (
            (settings.topics.ticks, {"advance_to": to}),
            (settings.partials_topic, {"control": "advance", "to": to}),
        ):
            for p in sorted(producer.partitions_for(topic)):
                producer.send(topic, key=b"clock", value=orjson.dumps(body), partition=p)
                sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent
