"""Which ``(dimension, value)`` pairs an enriched event is counted under.

Every enriched event contributes to:

* ``all=all`` — the global view;
* the segment dimensions, read from ``segment`` (missing/empty → ``"unknown"``):
  ``tier`` (``value_tier``), ``lifecycle``, ``region``, ``channel``,
  ``relationship`` (``relationship_level``);
* the root-cause dimensions, only where the event carries them:

  - ``category`` — the distinct ``items[].category`` of an order (an order with
    lines in two categories counts once in each); a feedback or complaint takes
    ``event.attributes.category`` (or ``attributes.product_category``), else the
    categories of the order it names (the enriched event's ``order``, joined
    from the customer's state in stage 1: issue 18); an order without items may
    use the same attributes;
  - ``seller`` — ``event.seller_id`` (else ``attributes.seller_id``, else the
    named order's);
  - ``carrier`` — ``event.carrier`` (else ``attributes.carrier``, else the named
    order's).

Values are bounded: stripped, and a value longer than :data:`MAX_VALUE_LEN`
(64) characters becomes its first 55 characters + ``"~"`` + 8 hex digits of
its SHA-1, so distinct long values stay distinct and keys stay short.

Cardinality: ``tier``, ``lifecycle``, ``relationship`` and ``channel`` have a
handful of values, ``region`` and ``category`` tens to hundreds.  ``seller``
(and, in large marketplaces, ``carrier``) can have thousands of values: they
are for the aggregate tables, the final records and live queries (root-cause
drill-down) only — never use them as metric labels (Prometheus/Grafana).
:data:`HIGH_CARDINALITY` names them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

MAX_VALUE_LEN = 64
ALL = "all"
UNKNOWN = "unknown"

# dimension name -> field of the enriched event's ``segment``
SEGMENT_DIMENSIONS: dict[str, str] = {
    "tier": "value_tier",
    "lifecycle": "lifecycle",
    "region": "region",
    "channel": "channel",
    "relationship": "relationship_level",
}
ROOT_CAUSE_DIMENSIONS: tuple[str, ...] = ("category", "seller", "carrier")
DIMENSIONS: tuple[str, ...] = (ALL, *SEGMENT_DIMENSIONS, *ROOT_CAUSE_DIMENSIONS)
HIGH_CARDINALITY: frozenset[str] = frozenset({"seller", "carrier"})


def bound_value(value: Any) -> str | None:
    """Normalise a dimension value: ``str``, stripped, at most 64 characters.

    ``None``, booleans, containers and blank strings give ``None`` (not counted).
    """
    if type(value) is str and len(value) <= _BOUND_STR_LEN:  # the common case, recurring: remembered
        known = _BOUND_STR.get(value, _MISSING)
        if known is not _MISSING:
            return known  # type: ignore[return-value]
        if len(_BOUND_STR) >= _BOUND_STR_MAX:
            _BOUND_STR.clear()
        known = _BOUND_STR[value] = _bound_text(value.strip())
        return known
    if value is None or isinstance(value, (bool, dict, list, tuple, set)):
        return None
    return _bound_text(str(value).strip())


_MISSING = object()
_BOUND_STR: dict[str, str | None] = {}  # str value -> bound_value(value); cleared when full
_BOUND_STR_MAX = 8192
_BOUND_STR_LEN = 256  # longer values are not remembered (the memory stays small)


def _bound_text(text: str) -> str | None:
    """:func:`bound_value` of a stripped text."""
    if not text:
        return None
    if len(text) > MAX_VALUE_LEN:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
        text = f"{text[:MAX_VALUE_LEN - 9]}~{digest}"
    return text


def group_key(dimension: str, value: str) -> str:
    """The table / repartition key ``"dimension=value"``."""
    return f"{dimension}={value}"


def split_group_key(key: str) -> tuple[str, str]:
    """Inverse of :func:`group_key` (dimension names never contain ``=``)."""
    dimension, sep, value = key.partition("=")
    if not sep:
        raise ValueError(f"not a dimension=value key: {key!r}")
    return dimension, value


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one.  A plain dict (the usual case) and ``None``
    are answered first: ``isinstance(..., Mapping)`` is an ABC check, several times slower."""
    if type(value) is dict:
        return value
    return value if value is not None and isinstance(value, Mapping) else {}


def _attr(event: Mapping[str, Any], *names: str) -> Any:
    attrs = event.get("attributes")
    if attrs is not None and isinstance(attrs, Mapping):
        for name in names:
            if attrs.get(name) not in (None, ""):
                return attrs[name]
    return None


def dimensions_of(enriched: Mapping[str, Any]) -> list[tuple[str, str]]:
    """All ``(dimension, value)`` pairs the enriched event counts under, without duplicates.

    Order: ``all``, the segment dimensions, then categories (sorted), seller,
    carrier.  Never raises on missing or malformed fields.
    """
    out = [(ALL, ALL), *_segment_pairs(_mapping(enriched.get("segment")))]
    event = _mapping(enriched.get("event"))
    order = _mapping(enriched.get("order"))
    for value in sorted(_categories(event, order)):
        out.append(("category", value))
    for dim, field in (("seller", "seller_id"), ("carrier", "carrier")):
        value = _root_value(event, order, field)
        if value:
            out.append((dim, value))
    return out


def _root_value(event: Mapping[str, Any], order: Mapping[str, Any], field: str) -> str | None:
    """The bound value of the event's own ``field``, else of its attribute, else of the named order's.

    (``bound_value(None)`` is ``None``: a missing value is passed over without the call.)"""
    value = event.get(field)
    if value is not None:
        # bound_value(value), its remembered str answered without the call (None: not remembered or blank)
        known = _BOUND_STR.get(value) if type(value) is str else None
        value = known if known is not None else bound_value(value)
        if value:
            return value
    value = _attr(event, field)
    if value is not None:
        value = bound_value(value)
        if value:
            return value
    value = order.get(field)
    return None if value is None else bound_value(value)


_SEGMENT_FIELDS: tuple[tuple[str, str], ...] = tuple(SEGMENT_DIMENSIONS.items())


def _segment_pairs(segment: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The segment dimensions' ``(dimension, value)`` pairs, in :data:`SEGMENT_DIMENSIONS` order.

    A segment whose fields are all strings (or missing) recurs: its pairs are remembered by those values.
    """
    values = tuple(map(segment.get, _SEGMENT_FIELD_NAMES))
    try:
        known = _SEGMENT_PAIRS.get(values)
    except TypeError:  # an unhashable value (a list or dict): not remembered
        return _bound_pairs(values)
    if known is None:
        known = _bound_pairs(values)
        # only str / None values are remembered: a str equals no other JSON type (as 1 == 1.0 == True do),
        # so a key equal to a remembered one has the same values
        if all(type(value) is str or value is None for value in values):
            if len(_SEGMENT_PAIRS) >= _SEGMENT_PAIRS_MAX:
                _SEGMENT_PAIRS.clear()
            _SEGMENT_PAIRS[values] = known
    return known


def _bound_pairs(values: tuple[Any, ...]) -> tuple[tuple[str, str], ...]:
    """``(dimension, bound value or "unknown")`` for the segment fields' ``values``."""
    return tuple((dim, bound_value(value) or UNKNOWN) for (dim, _), value in zip(_SEGMENT_FIELDS, values))


_SEGMENT_FIELD_NAMES: tuple[str, ...] = tuple(SEGMENT_DIMENSIONS.values())
_SEGMENT_PAIRS: dict[tuple[Any, ...], tuple[tuple[str, str], ...]] = {}  # segment values -> pairs; cleared when full
_SEGMENT_PAIRS_MAX = 4096


def _categories(event: Mapping[str, Any], order: Mapping[str, Any]) -> set[str]:
    """The bounded categories of the event's items, else of its attributes, else of the named order."""
    categories: set[str] = set()
    items = event.get("items")
    if isinstance(items, list):
        for item in items:
            if type(item) is dict or isinstance(item, Mapping):
                raw = item.get("category")
                # bound_value(raw), its remembered str answered without the call (None: not remembered or blank)
                value = _BOUND_STR.get(raw) if type(raw) is str else None
                if value is None:
                    value = bound_value(raw)
                if value:
                    categories.add(value)
    if not categories:
        value = bound_value(_attr(event, "category", "product_category"))
        if value:
            categories.add(value)
    if not categories and isinstance(order.get("categories"), list):
        categories.update(v for v in map(bound_value, order["categories"]) if v)
    return categories
