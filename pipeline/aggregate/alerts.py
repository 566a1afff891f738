"""``pain_point_surge`` alerts (schemas/alert.schema.json) and the playbook they quote.

:func:`surge_alert` turns a final record and its :class:`~pipeline.aggregate.surge.Surge`
into an alert for the ``alerts.pain-points`` topic (key: the alert's subject,
``"dimension=value"``):

* ``alert_id`` = ``pain_point_surge:<window>:<window start epoch>:<dimension>=<value>:<pain point>``
  — deterministic, so a re-emitted alert (e.g. after a restart) has the same id;
* ``subject`` = ``{"kind": "segment", "dimension", "value"}``;
* ``event_time`` = the window's end (the event time at which the surge became
  known), ``emitted_at`` = wall-clock time given by the caller;
* ``evidence`` = the window's evidence event ids for the pain point (up to 5);
* ``suggested_actions`` = the playbook lines for the pain point (else the
  playbook default) plus those for the subject's segment, placeholders filled;
* ``details`` = current rate and baseline figures, counts and window bounds.

Playbook file: ``pipeline/playbooks/pain_points.yaml`` (format documented in
the file), or ``PIPELINE_PAIN_PLAYBOOK_FILE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from pipeline.core.timeparse import format_timestamp, parse_timestamp
from pipeline.core.redact import Redactor, redact_alert

from ..playbooks import PLAYBOOK_DIR, PlaybookError, action_lines, playbook_path, read_playbook
from .surge import Surge

ALERT_TYPE = "pain_point_surge"
DEFAULT_PLAYBOOK_FILE = PLAYBOOK_DIR / "pain_points.yaml"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Playbook:
    """Suggested actions per pain point id, a default, and extras per ``dimension=value``."""

    default: tuple[str, ...]
    pain_points: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    segments: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    version: str = ""
    source: str = ""

    def actions(self, pain_point: str, dimension: str, value: str, **context: Any) -> list[str]:
        """Filled-in action lines for a surge of ``pain_point`` in ``dimension=value``."""
        lines = list(self.pain_points.get(pain_point) or self.default)
        lines += self.segments.get(f"{dimension}={value}", ())
        ctx = {"pain_point": pain_point, "dimension": dimension, "value": value, **context}
        return [_PLACEHOLDER.sub(lambda m: str(ctx.get(m.group(1), m.group(0))), line) for line in lines]


def load_playbook(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Playbook:
    """Load a playbook: ``path``, else ``PIPELINE_PAIN_PLAYBOOK_FILE``, else the bundled file.

    Raises :class:`~pipeline.playbooks.PlaybookError` (a ``ValueError`` naming the file) when it is
    missing or malformed.  Lines are whitespace-normalised.
    """
    chosen = playbook_path(path, {} if env is None else env, "PIPELINE_PAIN_PLAYBOOK_FILE", DEFAULT_PLAYBOOK_FILE.name)
    data = read_playbook(chosen)
    where = str(chosen)
    default = action_lines(data.get("default"), f"{where}: default")
    if not default:
        raise PlaybookError(f"{where}: default: at least one action is required")
    pains = data.get("pain_points") or {}
    segments = data.get("segments") or {}
    if not isinstance(pains, dict) or not isinstance(segments, dict):
        raise PlaybookError(f"{where}: pain_points and segments must be mappings")
    return Playbook(
        default=default,
        pain_points={str(k): action_lines(v or [], f"{where}: pain_points.{k}") for k, v in pains.items()},
        segments={str(k): action_lines(v or [], f"{where}: segments.{k}") for k, v in segments.items()},
        version=str(data.get("version", "")),
        source=where,
    )


def alert_id(final_record: Mapping[str, Any]) -> str:
    """``pain_point_surge:<window>:<start epoch>:<dimension>=<value>:<pain point>``."""
    start = int(parse_timestamp(final_record["window_start"]))
    return (
        f"{ALERT_TYPE}:{final_record['window']}:{start}:"
        f"{final_record['dimension']}={final_record['value']}:{final_record['pain_point']}"
    )


def _period(final_record: Mapping[str, Any]) -> str:
    start = datetime.fromtimestamp(parse_timestamp(final_record["window_start"]), tz=timezone.utc)
    size = int(final_record.get("window_size_seconds") or 0)
    if size == 3600:
        return f"the hour from {start:%Y-%m-%d %H:%M}Z"
    if size == 86400 and start.hour == start.minute == 0:
        return f"the day {start:%Y-%m-%d} (UTC)"
    return f"the {final_record['window']} window from {start:%Y-%m-%d %H:%M}Z"


def reason_text(final_record: Mapping[str, Any], surge: Surge) -> str:
    """One human sentence: what rose, where, to what, against which baseline."""
    return (
        f"{final_record['pain_point']} pain points among {final_record['dimension']}={final_record['value']} "
        f"rose to {surge.rate:.1f} per 100 events in {_period(final_record)} "
        f"({surge.count} of {surge.volume} orders and feedback events; baseline {surge.mean:.1f} "
        f"± {surge.std:.1f}, {surge.windows_observed} window{'s' if surge.windows_observed != 1 else ''})."
    )


def _timestamp(value: float | str | datetime) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("emitted_at datetime must be timezone-aware")
        return format_timestamp(value.timestamp())
    if isinstance(value, str):
        return format_timestamp(parse_timestamp(value))
    return format_timestamp(float(value))


def surge_alert(
    final_record: Mapping[str, Any],
    surge: Surge,
    playbook: Playbook,
    emitted_at: float | str | datetime,
    redactor: Redactor | None = None,
) -> dict[str, Any]:
    """The ``pain_point_surge`` alert for a surging final record (valid against alert.schema.json).

    ``emitted_at``: epoch seconds, an RFC 3339 string or an aware datetime.
    """
    dimension, value, pid = final_record["dimension"], final_record["value"], final_record["pain_point"]
    details = {
        **surge.details(),
        "window": final_record["window"],
        "window_start": final_record["window_start"],
        "window_end": final_record["window_end"],
        "count": surge.count,
        "orders": int(final_record.get("orders") or 0),
        "feedback": int(final_record.get("feedback") or 0),
        "negative_feedback": int(final_record.get("negative_feedback") or 0),
        "rate_per_100_orders": final_record.get("rate_per_100_orders"),
        "share_of_feedback": final_record.get("share_of_feedback"),
    }
    return redact_alert({
        "schema_version": 1,
        "alert_id": alert_id(final_record),
        "type": ALERT_TYPE,
        "severity": surge.severity,
        "subject": {"kind": "segment", "dimension": dimension, "value": value},
        "reason": reason_text(final_record, surge),
        "evidence": [str(e) for e in (final_record.get("evidence") or [])][:100],
        "event_time": final_record["window_end"],
        "emitted_at": _timestamp(emitted_at),
        "suggested_actions": playbook.actions(
            pid, dimension, value, window=final_record["window"], window_start=final_record["window_start"]
        ),
        "pain_point": pid,
        "details": details,
    }, redactor)
