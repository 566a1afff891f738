"""Bring your own history (issue 18, scope 5): CSV or JSON Lines exports mapped to pipeline events by
a mapping file, so tiers, cadences and surge baselines are not empty on day one.

A mapping (YAML) lists sources; each row of a source becomes one event of its ``kind``::

    sources:
      - file: orders.csv               # relative to the mapping file (or to --base)
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

**Joins.** ``tables:`` names side files read once and looked up by a column (``many: true`` keeps
every row of a key)::

    tables:
      customers: {file: customers.csv, key: customer_id}
      items: {file: order_items.csv, key: order_id, many: true}

and four more value kinds use them: ``lookup: {table, key, column}`` (the first row's column;
``key`` is itself a value, so lookups chain), ``sum: {table, key, column | columns}`` (over every row
of the key), ``rows: {table, key, fields}`` (a list of objects, ``fields`` mapped on each side row),
and ``first: [value, value, ...]`` (the first that is present); a ``template`` may name looked-up
values with ``with: {name: value}``.  A ``time`` may add
``end_of_day: true`` (23:59:59 local on its day) and ``not_before: [value, ...]`` (moved up to the
latest of those times that are present: a delivery reported before its shipment happens at the
shipment).  ``time_format`` may be a list (tried in order).  A source may keep only some rows:
``when: [{present: column}, {column: status, in: [canceled]}]`` (all must hold), and keep one event
per customer: ``once_per: customer_id`` (the earliest; a profile as of the first order).  The Olist
subset through such a mapping: ``deploy/import/olist.yaml``.

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
OPS = ("const", "column", "template", "time", "number", "integer", "json", "lookup", "sum", "rows", "first")


class MappingError(ValueError):
    """The mapping file itself is wrong: one line saying where."""


@dataclass(frozen=True)
class Source:
    file: Path
    kind: str
    fmt: str
    tz: Any
    time_format: tuple[str, ...]
    fields: dict[str, Any]
    when: tuple[dict[str, Any], ...] = ()
    once_per: str | None = None  # keep only the earliest event per value of this event field


@dataclass(frozen=True)
class ImportMapping:
    sources: list[Source]
    tables: dict[str, dict[str, list[dict[str, Any]]]]  # name -> key -> rows (file order)


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


def _file(base: Path, name: str) -> Path:
    return Path(name) if Path(name).is_absolute() else base / name


def _read_tables(path: Path, base: Path, tables: Any) -> dict[str, dict[str, list[dict[str, Any]]]]:
    if tables is None:
        return {}
    if not isinstance(tables, dict):
        raise MappingError(f"{path}: 'tables' must map names to {{file, key}}")
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name, t in tables.items():
        if not isinstance(t, dict) or not t.get("file") or not t.get("key"):
            raise MappingError(f"{path}: table {name!r} needs 'file' and 'key'")
        src = Source(_file(base, t["file"]), "table", t.get("format") or _format(_file(base, t["file"])),
                     ZoneInfo("UTC"), (), {})
        rows: dict[str, list[dict[str, Any]]] = {}
        for _, row in _rows(src):
            key = row.get(t["key"])
            if not _empty(key):
                bucket = rows.setdefault(str(key), [])
                if t.get("many") or not bucket:
                    bucket.append(row)
        out[str(name)] = rows
    return out


def _format(file: Path) -> str:
    return "jsonl" if file.suffix in (".jsonl", ".ndjson", ".json") else "csv"


def _check_spec(spec: Any, where: str, tables: Mapping[str, Any]) -> None:
    if not isinstance(spec, dict):
        return
    ops = [op for op in OPS if op in spec]
    if not ops:
        raise MappingError(f"{where} needs one of {', '.join(OPS)}")
    for op in ("lookup", "sum", "rows"):
        if op in spec and (not isinstance(spec[op], dict) or spec[op].get("table") not in tables):
            raise MappingError(f"{where}: {op} needs a 'table' declared under 'tables'")
    if "first" in spec:
        for alt in spec["first"] if isinstance(spec["first"], list) else [None]:
            if alt is None:
                raise MappingError(f"{where}: first needs a list")
            _check_spec(alt, where, tables)


def load_mapping(path: Path, base: Path | None = None) -> ImportMapping:
    """``base``: the folder relative file names are read from (default: the mapping file's)."""
    from ..yamlfile import read_mapping

    base = path.parent if base is None else base
    doc = read_mapping(path, "import mapping", MappingError)
    sources = doc.get("sources")
    if not isinstance(sources, list) or not sources:
        raise MappingError(f"{path}: expected 'sources:' with at least one source")
    tables = _read_tables(path, base, doc.get("tables"))
    out = []
    for i, src in enumerate(sources, 1):
        where = f"{path}: source {i}"
        if not isinstance(src, dict) or not src.get("file") or src.get("kind") not in KINDS:
            raise MappingError(f"{where}: needs 'file' and 'kind' (one of {', '.join(KINDS)})")
        if not isinstance(src.get("fields"), dict) or not src["fields"]:
            raise MappingError(f"{where}: needs 'fields'")
        for name, spec in src["fields"].items():
            _check_spec(spec, f"{where}: field {name!r}", tables)
        file = _file(base, src["file"])
        fmt = src.get("format") or _format(file)
        if fmt not in ("csv", "jsonl"):
            raise MappingError(f"{where}: format must be csv or jsonl")
        try:
            tz = ZoneInfo(src.get("timezone") or "UTC")
        except Exception:
            raise MappingError(f"{where}: unknown timezone {src.get('timezone')!r}") from None
        formats = src.get("time_format") or ()
        when = src.get("when") or ()
        out.append(Source(file, src["kind"], fmt, tz, tuple([formats] if isinstance(formats, str) else formats),
                          dict(src["fields"]), tuple([when] if isinstance(when, dict) else when), src.get("once_per")))
    return ImportMapping(out, tables)


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


def _parse_time(value: Any, src: Source) -> datetime:
    text = str(value).strip()
    for fmt in src.time_format:
        try:
            dt = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    else:
        if src.time_format and not text[:4].isdigit():
            raise ValueError(f"time {text!r} does not match {' or '.join(src.time_format)}")
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=src.tz)


def _utc(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class _Ctx:
    row: Mapping[str, Any]
    src: Source
    tables: Mapping[str, dict[str, list[dict[str, Any]]]]

    def on(self, row: Mapping[str, Any]) -> "_Ctx":
        return _Ctx(row, self.src, self.tables)

    def side(self, spec: Mapping[str, Any]) -> list[dict[str, Any]]:
        key = _value(spec.get("key"), self)
        return [] if key is None else self.tables[spec["table"]].get(str(key), [])


def _time_value(spec: Mapping[str, Any], raw: Any, ctx: _Ctx) -> str:
    dt = _parse_time(raw, ctx.src)
    if spec.get("end_of_day"):
        dt = dt.replace(hour=23, minute=59, second=59, microsecond=0)
    return _utc(dt)


def _not_before(value: Any, floors: Any, ctx: _Ctx) -> Any:
    """``value`` (an RFC 3339 time) moved up to the latest of ``floors`` that are present."""
    if value is None:
        return None
    at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    for floor_spec in floors or ():
        try:
            floor = _value(floor_spec, ctx)
            floor_at = None if floor is None else datetime.fromisoformat(str(floor).replace("Z", "+00:00"))
        except (ValueError, TypeError):
            continue  # a floor that does not parse is no floor
        if floor_at is not None and floor_at > at:
            at = floor_at
    return _utc(at)


def _joined(spec: Mapping[str, Any], ctx: _Ctx) -> Any:
    """``lookup``, ``sum``, ``rows``, ``first``."""
    if "first" in spec:
        return next((v for v in (_value(alt, ctx) for alt in spec["first"]) if v is not None), None)
    op = next(op for op in ("lookup", "sum", "rows") if op in spec)
    rows = ctx.side(spec[op])
    if not rows:
        return None
    if op == "lookup":
        value = rows[0].get(spec[op]["column"])
        return None if _empty(value) else value
    if op == "sum":
        columns = spec[op].get("columns") or [spec[op]["column"]]
        return round(sum(float(r.get(c) or 0) for r in rows for c in columns), 2)
    return [_mapped(spec[op]["fields"], ctx.on(r)) for r in rows]


def _mapped(fields: Mapping[str, Any], ctx: _Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in fields.items():
        value = _value(spec, ctx)
        if value is not None:
            out[name] = value
    return out


def _value(spec: Any, ctx: _Ctx) -> Any:
    """The field's value (``None``: leave the field out); raises ValueError when a present value does
    not parse."""
    if isinstance(spec, dict) and "not_before" in spec:
        return _not_before(_value({k: v for k, v in spec.items() if k != "not_before"}, ctx), spec["not_before"],
                           ctx)
    if not isinstance(spec, dict):
        spec = {"column": spec}
    if "const" in spec:
        return spec["const"]
    if "template" in spec:
        names = {k: ("" if v is None else v) for k, v in ctx.row.items()}
        names.update({k: ("" if v is None else v) for k, v in _mapped(spec.get("with") or {}, ctx).items()})
        return spec["template"].format(**names)
    if any(op in spec for op in ("lookup", "sum", "rows", "first")):
        value = _joined(spec, ctx)
        return spec.get("default") if value is None else value
    op = next(op for op in ("column", "time", "number", "integer", "json") if op in spec)
    raw = _value(spec[op], ctx) if isinstance(spec[op], dict) else ctx.row.get(spec[op])
    if _empty(raw):
        return spec.get("default")
    if "map" in spec:
        raw = spec["map"].get(raw, raw)
    if op == "time":
        return _time_value(spec, raw, ctx)
    if op == "number":
        return float(str(raw).replace(",", "")) if isinstance(raw, str) else float(raw)
    if op == "integer":
        return int(float(raw))
    if op == "json":
        return json.loads(raw) if isinstance(raw, str) else raw
    return raw


def _keep(row: Mapping[str, Any], when: tuple[dict[str, Any], ...]) -> bool:
    for cond in when:
        if "present" in cond and _empty(row.get(cond["present"])):
            return False
        if "in" in cond and row.get(cond.get("column")) not in cond["in"]:
            return False
    return True


def build_event(row: Mapping[str, Any], src: Source,
                tables: Mapping[str, dict[str, list[dict[str, Any]]]] | None = None,
                ) -> tuple[dict[str, Any] | None, list[Problem]]:
    if "_error" in row:
        return None, [Problem("not_json", str(row["_error"]))]
    ctx = _Ctx(row, src, tables or {})
    event: dict[str, Any] = {"schema_version": 1}
    problems = []
    for name, spec in src.fields.items():
        try:
            value = _value(spec, ctx)
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


def import_rows(mapping: ImportMapping, limits: Any = None, now: float | None = None) -> Imported:
    """Every kept row of every source as a checked event, or a reject; events in event-time order
    (ties: profiles, orders, then the rest; then mapping order, then file order)."""
    out = Imported()
    keyed: list[tuple[str, int, int, tuple[str, dict[str, Any]]]] = []
    for src in mapping.sources:
        first: dict[Any, int] = {}  # once_per value -> index in keyed
        for line, row in _rows(src):
            if "_error" not in row and not _keep(row, src.when):
                continue
            out.rows += 1
            event, problems = build_event(row, src, mapping.tables)
            if event is not None:
                checked = validate_event(event, src.kind, limits=limits, now=now)
                problems = checked.problems
            if problems:
                out.rejects.append(Reject(str(src.file), line, src.kind, dict(row), problems))
                continue
            item = (event["occurred_at"], KIND_RANK[src.kind], len(keyed), (src.kind, event))
            if src.once_per is not None:
                at, seen = parse_timestamp(event["occurred_at"]), first.get(event.get(src.once_per))
                if seen is not None:
                    if parse_timestamp(keyed[seen][0]) <= at:
                        continue
                    keyed[seen] = (*item[:2], keyed[seen][2], item[3])
                    continue
                first[event.get(src.once_per)] = len(keyed)
            keyed.append(item)
    keyed.sort(key=lambda k: (parse_timestamp(k[0]), k[1], k[2]))
    out.events = [k[3] for k in keyed]
    return out
