"""Pain-point trends per segment for the console's segment page (pure; issue 19).

Fed with the final window records of ``aggregates.pain-points`` (one record per key, window and
pain point; a window without pain points has one record with ``pain_point`` null).  Keeps, per
``dimension=value`` and window size, the latest :data:`KEEP_WINDOWS` windows.  A final record re-sent
after a restart has the same ``record_id`` and simply overwrites its count.

:func:`svg_chart` draws one series as a small server-side SVG line chart (one line per pain point,
the top ``top`` by total count; no JavaScript, no chart library to ship).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from ..core.timeparse import format_timestamp, parse_timestamp

KEEP_WINDOWS = 48
PALETTE = ("#c0392b", "#2471a3", "#229954", "#b9770e", "#7d3c98", "#566573")


@dataclass
class Window:
    start: float
    events: int = 0
    pain: dict[str, int] = field(default_factory=dict)


class Trends:
    def __init__(self, keep: int = KEEP_WINDOWS) -> None:
        self.keep = keep
        self._series: dict[tuple[str, str], dict[float, Window]] = {}

    def add_final(self, rec: dict[str, Any]) -> None:
        try:
            key = (f"{rec['dimension']}={rec['value']}", str(rec["window"]))
            start = parse_timestamp(rec["window_start"])
        except (KeyError, TypeError, ValueError):
            return
        windows = self._series.setdefault(key, {})
        w = windows.get(start)
        if w is None:
            if len(windows) >= self.keep and start < min(windows):
                return  # older than everything kept
            w = windows[start] = Window(start)
            if len(windows) > self.keep:
                del windows[min(windows)]
        w.events = int(rec.get("events") or 0)
        if rec.get("pain_point"):
            w.pain[str(rec["pain_point"])] = int(rec.get("count") or 0)

    def segments(self) -> list[str]:
        return sorted({seg for seg, _ in self._series})

    def windows_of(self, segment: str) -> list[str]:
        return sorted(w for seg, w in self._series if seg == segment)

    def series(self, segment: str, window: str) -> list[Window]:
        return sorted(self._series.get((segment, window), {}).values(), key=lambda w: w.start)


def top_pain_points(series: list[Window], top: int) -> list[str]:
    totals: dict[str, int] = {}
    for w in series:
        for pid, n in w.pain.items():
            totals[pid] = totals.get(pid, 0) + n
    return [pid for pid, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def svg_chart(series: list[Window], top: int = 5, width: int = 720, height: int = 260) -> str:
    """An SVG line chart of the top pain points' counts per window (empty series: a note)."""
    if not series:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40" role="img">' \
               '<text x="8" y="24">No closed windows yet.</text></svg>'
    pids = top_pain_points(series, top)
    left, right, top_pad, bottom = 40, 150, 10, 30
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    peak = max([1, *(w.pain.get(p, 0) for w in series for p in pids)])
    n = len(series)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: int) -> float:
        return top_pad + plot_h - plot_h * v / peak

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="pain points per window">',
             f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" y2="{top_pad + plot_h}" stroke="#888"/>',
             f'<text x="{left - 6}" y="{top_pad + 10}" text-anchor="end" font-size="11">{peak}</text>',
             f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end" font-size="11">0</text>']
    for i in (0, n - 1) if n > 1 else (0,):
        label = format_timestamp(series[i].start)[:16].replace("T", " ")
        parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle" font-size="11">{label}</text>')
    for k, pid in enumerate(pids):
        color = PALETTE[k % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(w.pain.get(pid, 0)):.1f}" for i, w in enumerate(series))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"><title>'
                     f'{escape(pid)}</title></polyline>')
        parts.extend(f'<circle cx="{x(i):.1f}" cy="{y(w.pain.get(pid, 0)):.1f}" r="3" fill="{color}"><title>'
                     f'{escape(pid)}: {w.pain.get(pid, 0)}</title></circle>' for i, w in enumerate(series))
        parts.append(f'<text x="{left + plot_w + 8}" y="{top_pad + 14 + 16 * k}" font-size="12" fill="{color}">'
                     f'{escape(pid)}</text>')
    parts.append("</svg>")
    return "".join(parts)
