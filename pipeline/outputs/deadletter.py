"""Dead-letter records: the original bytes (base64), where they came from, why."""

from __future__ import annotations

import base64
from typing import Any, Iterable

from ..core.timeparse import format_timestamp
from ..ingest.validate import Problem

SCHEMA_VERSION = 1


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    timestamp_ms: int | None,
    raw: bytes | None,
    problems: Iterable[Problem],
    expected_kind: str | None,
    now: float,
) -> dict[str, Any]:
    raw = raw or b""
    return {
        "schema_version": SCHEMA_VERSION,
        "dead_letter_id": f"{topic}:{partition}:{offset}",
        "source": {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "key_b64": base64.b64encode(key).decode() if key is not None else None,
            "timestamp": timestamp_ms,
            "expected_kind": expected_kind,
        },
        "errors": [p.to_dict() for p in problems],
        "original_b64": base64.b64encode(raw).decode(),
        "original_size": len(raw),
        "received_at": format_timestamp(now),
    }
