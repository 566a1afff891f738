"""Playbook: suggested actions for commitment alerts, from a YAML file.

:func:`load_playbook` reads ``path``; with ``path=None`` the file named by the
environment variable ``PIPELINE_PLAYBOOK_FILE``; without it
``pipeline/playbooks/default.yaml``.  The format is documented at the top of
that file: ``alerts.<alert type>.<commitment kind or "*">`` with ``actions``
(a list of lines) and optional ``segments`` (``"<dimension>=<value>"``: a list
of extra lines, or ``{replace: true, actions: [...]}``).  A malformed file
raises :class:`PlaybookError` at load time, never while alerting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..playbooks import PLAYBOOK_DIR, PlaybookError, action_lines, playbook_path, read_playbook

DEFAULT_PLAYBOOK_PATH = PLAYBOOK_DIR / "default.yaml"
ENV_VAR = "PIPELINE_PLAYBOOK_FILE"
ANY_KIND = "*"


@dataclass(frozen=True)
class SegmentRule:
    dimension: str
    value: str
    actions: tuple[str, ...]
    replace: bool = False


@dataclass(frozen=True)
class Entry:
    actions: tuple[str, ...] = ()
    segments: tuple[SegmentRule, ...] = ()


@dataclass(frozen=True)
class Playbook:
    version: str
    source: str
    entries: Mapping[tuple[str, str], Entry] = field(default_factory=dict)

    def actions(self, alert_type: str, kind: str, segment: Mapping[str, Any] | None = None) -> list[str]:
        """Lines for ``(alert_type, kind)`` (else ``(alert_type, "*")``), with segment rules applied."""
        entry = self.entries.get((alert_type, kind)) or self.entries.get((alert_type, ANY_KIND))
        if entry is None:
            return []
        lines = list(entry.actions)
        segment = segment or {}
        for rule in entry.segments:
            if str(segment.get(rule.dimension)) != rule.value:
                continue
            lines = list(rule.actions) if rule.replace else lines + list(rule.actions)
        out: list[str] = []
        for line in lines:  # de-duplicate, keep order
            if line not in out:
                out.append(line)
        return out


def parse_playbook(data: Any, source: str = "<memory>") -> Playbook:
    if not isinstance(data, dict) or not isinstance(data.get("alerts"), dict):
        raise PlaybookError(f"{source}: expected a mapping with an 'alerts' mapping")
    entries: dict[tuple[str, str], Entry] = {}
    for alert_type, kinds in data["alerts"].items():
        if not isinstance(kinds, dict):
            raise PlaybookError(f"{source}: alerts.{alert_type}: expected a mapping of kinds")
        for kind, spec in kinds.items():
            where = f"{source}: alerts.{alert_type}.{kind}"
            if not isinstance(spec, dict):
                raise PlaybookError(f"{where}: expected a mapping with 'actions'")
            unknown = set(spec) - {"actions", "segments"}
            if unknown:
                raise PlaybookError(f"{where}: unknown keys {sorted(unknown)}")
            rules: list[SegmentRule] = []
            for key, rule in (spec.get("segments") or {}).items():
                dim, sep, value = str(key).partition("=")
                if not sep or not dim.strip() or not value.strip():
                    raise PlaybookError(f"{where}.segments: key {key!r} is not '<dimension>=<value>'")
                if isinstance(rule, dict):
                    replace = rule.get("replace", False)
                    if not isinstance(replace, bool) or set(rule) - {"replace", "actions"}:
                        raise PlaybookError(f"{where}.segments.{key}: expected {{replace: bool, actions: [...]}}")
                    lines = action_lines(rule.get("actions"), f"{where}.segments.{key}.actions")
                else:
                    replace, lines = False, action_lines(rule, f"{where}.segments.{key}")
                rules.append(SegmentRule(dim.strip(), value.strip(), lines, replace))
            entries[(str(alert_type), str(kind))] = Entry(action_lines(spec.get("actions"), f"{where}.actions"),
                                                         tuple(rules))
    return Playbook(version=str(data.get("version", "")), source=source, entries=entries)


def load_playbook(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Playbook:
    """Load ``path``, else ``$PIPELINE_PLAYBOOK_FILE``, else the default playbook."""
    p = playbook_path(path, {} if env is None else env, ENV_VAR, DEFAULT_PLAYBOOK_PATH.name)
    return parse_playbook(read_playbook(p), str(p))
