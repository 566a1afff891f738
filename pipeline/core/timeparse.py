"""RFC 3339 timestamps ↔ epoch seconds (UTC)."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

CACHED = 4096  # recent distinct values remembered: an event's times are parsed and formatted several times


@lru_cache(maxsize=CACHED)
def parse_timestamp(value: str) -> float:
    """RFC 3339 with offset (``Z`` or ``±hh:mm``) → epoch seconds."""
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError("timestamp without offset")
    return dt.timestamp()


@lru_cache(maxsize=CACHED)
def format_timestamp(epoch: float) -> str:
    """Epoch seconds → RFC 3339 UTC with millisecond precision and ``Z``."""
    # isoformat truncates to milliseconds like the strftime form did, at a third of its cost
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"
