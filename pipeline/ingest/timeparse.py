"""RFC 3339 timestamps ↔ epoch seconds (UTC)."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_timestamp(value: str) -> float:
    """RFC 3339 with offset (``Z`` or ``±hh:mm``) → epoch seconds."""
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError("timestamp without offset")
    return dt.timestamp()


def format_timestamp(epoch: float) -> str:
    """Epoch seconds → RFC 3339 UTC with millisecond precision and ``Z``."""
    dt = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
