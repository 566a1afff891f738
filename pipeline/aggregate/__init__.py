"""Per-segment pain-point aggregation in event-time windows, surge detection, alerts (pure logic).

Two stages, wired to Faust elsewhere:

1. per-customer agent: :func:`~pipeline.aggregate.partials.partials_from` turns a
   batch of enriched events into one partial per ``"dimension=value"``
   (:mod:`~pipeline.aggregate.dimensions`), sent to a repartition topic keyed by it;
2. aggregate agent (table keyed by ``"dimension=value"``):
   :func:`~pipeline.aggregate.state.merge_partial`, a per-partition
   :class:`~pipeline.aggregate.state.Watermark`,
   :func:`~pipeline.aggregate.state.close_windows` (exactly one final record per
   window, dimension, value and pain point),
   :func:`~pipeline.aggregate.surge.process_finals` and
   :func:`~pipeline.aggregate.alerts.surge_alert`.

Nothing here imports Faust or touches Kafka.
"""

from .alerts import Playbook, load_playbook, surge_alert
from .dimensions import DIMENSIONS, dimensions_of, group_key, split_group_key
from .partials import PartialsBuilder, partials_from
from .state import Late, Watermark, close_windows, merge_partial, new_state, next_close_time, top_pain_points
from .surge import Baseline, Surge, SurgeConfig, SurgeResult, detect, process_finals
from .windows import DEFAULT_WINDOWS, WindowSpec, parse_windows, window_start, windows_from_env

__all__ = [
    "DEFAULT_WINDOWS", "DIMENSIONS", "Baseline", "Late", "PartialsBuilder", "Playbook", "Surge",
    "SurgeConfig", "SurgeResult", "Watermark", "WindowSpec", "close_windows", "detect",
    "dimensions_of", "group_key", "load_playbook", "merge_partial", "new_state", "next_close_time",
    "parse_windows", "partials_from", "process_finals", "split_group_key", "surge_alert",
    "top_pain_points", "window_start", "windows_from_env",
]
