"""Tumbling event-time windows, aligned to the Unix epoch (UTC).

A window of size ``s`` seconds covers the half-open interval
``[start, start + s)`` where ``start = floor(t / s) * s``: an event at exactly
``start + s`` belongs to the *next* window.  Because windows are aligned to
1970-01-01T00:00:00Z, a ``1h`` window starts on the hour and a ``1d`` window at
midnight **UTC** (not local midnight).  Sizes are whole seconds; event times
may be fractional.

A window is identified by ``"<name>:<start>"`` (start in integer epoch seconds),
e.g. ``"1h:1710842400"`` — the key used in partials and in aggregate state.

Configuration: ``PIPELINE_WINDOWS`` = comma-separated ``name=seconds`` pairs,
default ``"1h=3600,1d=86400"``.  Names must match ``[A-Za-z0-9_]+`` (they appear
in window keys and alert ids); sizes must be positive.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

DEFAULT_WINDOWS_SPEC = "1h=3600,1d=86400"
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class WindowSpec:
    """A tumbling window definition: ``name`` (e.g. ``"1h"``) and ``size_seconds``."""

    name: str
    size_seconds: int

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"window name must match [A-Za-z0-9_]+: {self.name!r}")
        if int(self.size_seconds) != self.size_seconds or self.size_seconds <= 0:
            raise ValueError(f"window size must be a positive whole number of seconds: {self.size_seconds!r}")

    def start_of(self, t: float) -> int:
        """Start of the window containing event time ``t`` (epoch seconds)."""
        return window_start(t, self.size_seconds)

    def key_of(self, t: float) -> str:
        """``"<name>:<start>"`` of the window containing ``t``."""
        return window_key(self.name, self.start_of(t))


DEFAULT_WINDOWS: tuple[WindowSpec, ...] = (WindowSpec("1h", 3600), WindowSpec("1d", 86400))


def window_start(t: float, size: int) -> int:
    """Start (epoch seconds) of the size-``size`` tumbling window containing ``t``.

    ``floor(t / size) * size``: the window is ``[start, start + size)``, so
    ``window_start(start + size, size) == start + size``.  Negative times (before
    1970) floor towards minus infinity as well.
    """
    if size <= 0:
        raise ValueError("size must be positive")
    return int(math.floor(t / size)) * int(size)


def window_end(start: int, size: int) -> int:
    """Exclusive end of the window ``[start, start + size)``."""
    return int(start) + int(size)


def window_key(name: str, start: int) -> str:
    """``"<name>:<start>"``, the identifier of one window instance."""
    return f"{name}:{int(start)}"


def parse_window_key(key: str) -> tuple[str, int]:
    """Inverse of :func:`window_key`: ``"1h:3600"`` → ``("1h", 3600)``."""
    name, _, start = key.rpartition(":")
    if not name:
        raise ValueError(f"not a window key: {key!r}")
    return name, int(start)


def parse_windows(spec: str) -> list[WindowSpec]:
    """``"1h=3600,1d=86400"`` → ``[WindowSpec("1h", 3600), WindowSpec("1d", 86400)]``.

    Blank parts are ignored; duplicate names, malformed parts or an empty result
    raise ``ValueError``.
    """
    out: list[WindowSpec] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, size = part.partition("=")
        if not sep:
            raise ValueError(f"window spec part must be name=seconds: {part!r}")
        try:
            seconds = int(size.strip())
        except ValueError:
            raise ValueError(f"window size must be an integer number of seconds: {part!r}") from None
        out.append(WindowSpec(name.strip(), seconds))
    if not out:
        raise ValueError("no windows configured")
    names = [w.name for w in out]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate window names in {spec!r}")
    return out


def windows_from_env(env: Mapping[str, str] | None = None) -> list[WindowSpec]:
    """Windows from ``PIPELINE_WINDOWS`` (default ``1h=3600,1d=86400``)."""
    env = {} if env is None else env  # the environment only when given (pipeline.stage_settings)
    return parse_windows(env.get("PIPELINE_WINDOWS") or DEFAULT_WINDOWS_SPEC)
