"""Bring your own history (issue 18, scope 5): CSV or JSON Lines exports mapped to pipeline events by
a mapping file, so tiers, cadences and surge baselines are not empty on day one.

A mapping (YAML) lists sources; each row of a source becomes one event of its ``kind``::

    sources:
      - file: orders.csv               # relative to the mapping file
        kind: order                    # order | complaint | feedback | customer_profile
        format: csv                    # csv | jsonl (default: from the file name)
        timezone: Europe/Berlin        # for times without an offset (default UTC)
        time_format: "%d.%m.%Y %H:%M"  # strptime, for times that are not ISO 8601 (optional)
        fields:                        # event field <- value
          event_id: {template: "shop-{order_no}-placed"}
          order_id: order_no           # a column (a key of a JSON Lines row)
          customer_id: client
          type: {const: placed}
          occurred_at: {time: created}
          promised_delivery_at: {time: eta}
          amount: {number: total}
          currency: {const: EUR}
          channel: {column: channel, default: web, map: {W: web, A: app}}
          items: {json: lines}         # a column holding JSON
          attributes.category: cat     # dotted names build nested objects

A value is a column name, or one of ``const``, ``column``, ``template`` (``str.format`` over the
row), ``time`` (to RFC 3339), ``number``, ``integer``, ``json``, with optional ``default`` (used when
the column is missing or empty) and ``map`` (value translation).  A field whose value is missing or
empty is left out.

Every event is checked like a record on the input topics (:func:`~pipeline.ingest.validate.validate_event`:
schema, bounds, times).  A row that fails — a column that does not parse, a value the schema
refuses — is reported with its file, line and reasons, and becomes a dead letter (its row as JSON,
source ``<target topic>`` partition -1, offset = line number: re-importing gives the same ids).
Valid events are published in event-time order across all sources (stable: a profile, then an
order, then complaints and feedback at the same instant), with the ids the mapping makes: give them
deterministic ids (a template over the row's own id), so a second import of the same rows counts no
order twice in a customer's spend or cadence (the state keeps its last 64 event ids); its enriched
events come out again, with the same event ids.

Pure: :func:`load_mapping` and :func:`import_rows` read files and return events and rejects; the
CLI publishes them (``python -m pipeline import``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping
from zoneinfo import ZoneInfo

from ..core.timeparse import parse_timestamp
from ..ingest.validate import Problem, validate_event

KINDS = ("customer_profile", "order", "complaint", "feedback")
KIND_RANK = {"customer_profile": 0, "order": 1, "complaint": 2, "feedback": 2}
OPS = ("const", "column", "template", "time", "number", "integer", "json")


class MappingError(ValueError):
    """The mapping file itself is wrong: one line saying where."""


@dataclass(frozen=True)
class Source:
    file: Path
    kind: str
    fmt: str
    tz: Any
    time_format: str | None
    fields: dict[str, Any]


@dataclass
class Reject:
    file: str
    line: int
    kind: str
    row: dict[str, Any]
    problems: list[Problem]


@dataclass
class Imported:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (kind, event), event-time order
    rejects: list[Reject] = field(default_factory=list)
    rows: int = 0


def load_mapping(path: Path) -> list[Source]:
    from ..yamlfile import read_mapping

    doc = read_mapping(path, "import mapping", MappingError)
    sources = doc.get("sources")
    if not isinstance(sources, list) or not sources:
        raise MappingError(f"{path}: expected 'sources:' with at least one source")
    out = []
    for i, src in enumerate(sources, 1):
        where = f"{path}: source {i}"
        if not isinstance(src, dict) or not src.get("file") or src.get("kind") not in KINDS:
            raise MappingError(f"{where}: needs 'file' and 'kind' (one of {', '.join(KINDS)})")
        if not isinstance(src.get("fields"), dict) or not src["fields"]:
            raise MappingError(f"{where}: needs 'fields'")
        for name, spec in src["fields"].items():
            if isinstance(spec, dict) and not any(op in spec for op in OPS):
                raise MappingError(f"{where}: field {name!r} needs one of {', '.join(OPS)}")
        file = Path(src["file"]) if Path(src["file"]).is_absolute() else path.parent / src["file"]
        fmt = src.get("format") or ("jsonl" if file.suffix in (".jsonl", ".ndjson", ".json") else "csv")
        if fmt not in ("csv", "jsonl"):
            raise MappingError(f"{where}: format must be csv or jsonl")
        try:
            tz = ZoneInfo(src.get("timezone") or "UTC")
        except Exception:
            raise MappingError(f"{where}: unknown timezone {src.get('timezone')!r}") from None
        out.append(Source(file, src["kind"], fmt, tz, src.get("time_format"), dict(src["fields"])))
    return out


def _rows(src: Source) -> Iterator[tuple[int, dict[str, Any]]]:
    with src.file.open(newline="", encoding="utf-8-sig") as f:
        if src.fmt == "csv":
            reader = csv.DictReader(f)
            for row in reader:
                yield reader.line_num, row
            return
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    row = {"_line": line.rstrip("\n"), "_error": f"invalid JSON: {exc}"}
                yield n, row if isinstance(row, dict) else {"_line": line.rstrip("\n"), "_error": "not an object"}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _time(value: Any, src: Source) -> str:
    text = str(value).strip()
    if src.time_format:
        dt = datetime.strptime(text, src.time_format)
    else:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=src.tz)
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _value(spec: Any, row: Mapping[str, Any], src: Source) -> Any:
    """The field's value for ``row`` (``None``: leave the field out); raises ValueError when a
    present value does not parse."""
    if not isinstance(spec, dict):
        spec = {"column": spec}
    if "const" in spec:
        return spec["const"]
    if "template" in spec:
        return spec["template"].format(**{k: ("" if v is None else v) for k, v in row.items()})
    op = next(op for op in ("column", "time", "number", "integer", "json") if op in spec)
    raw = row.get(spec[op])
    if _empty(raw):
        return spec.get("default")
    if "map" in spec:
        raw = spec["map"].get(raw, raw)
    if op == "time":
        return _time(raw, src)
    if op == "number":
        return float(str(raw).replace(",", "")) if isinstance(raw, str) else float(raw)
    if op == "integer":
        return int(float(raw))
    if op == "json":
        return json.loads(raw) if isinstance(raw, str) else raw
    return raw


def build_event(row: Mapping[str, Any], src: Source) -> tuple[dict[str, Any] | None, list[Problem]]:
    if "_error" in row:
        return None, [Problem("not_json", str(row["_error"]))]
    event: dict[str, Any] = {"schema_version": 1}
    problems = []
    for name, spec in src.fields.items():
        try:
            value = _value(spec, row, src)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            problems.append(Problem("invalid_format", f"{name}: {exc}"[:300], "/" + name.replace(".", "/")))
            continue
        if value is None:
            continue
        target = event
        *parents, leaf = name.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    return (None if problems else event), problems


def import_rows(sources: list[Source], limits: Any = None, now: float | None = None) -> Imported:
    """Every row of every source as a checked event, or a reject; events in event-time order."""
    out = Imported()
    keyed: list[tuple[str, int, int, tuple[str, dict[str, Any]]]] = []
    for src in sources:
        for line, row in _rows(src):
            out.rows += 1
            event, problems = build_event(row, src)
            if event is not None:
                checked = validate_event(event, src.kind, limits=limits, now=now)
                problems = checked.problems
            if problems:
                out.rejects.append(Reject(str(src.file), line, src.kind, dict(row), problems))
                continue
            keyed.append((event["occurred_at"], KIND_RANK[src.kind], len(keyed), (src.kind, event)))
    keyed.sort(key=lambda k: (parse_timestamp(k[0]), k[1], k[2]))
    out.events = [k[3] for k in keyed]
    return out
