"""Public JSON Schemas (schemas/*.schema.json) and their examples.

* every schema is a valid draft 2020-12 schema and follows the project conventions;
* every example in schemas/examples/<name>/ validates, with both ``jsonschema``
  (format checking on) and ``jsonschema_rs`` (``validate_formats=True``);
* for every example, a list of broken copies (dropped required field, wrong type,
  unknown enum value, bad date-time, unknown property, wrong schema_version, plus
  schema-specific rules) is rejected by both validators;
* a few deliberately loose spots (free objects, optional fields) stay accepted.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jsonschema
import jsonschema_rs
import pytest
from jsonschema import Draft202012Validator, FormatChecker

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES_DIR = SCHEMA_DIR / "examples"

SCHEMA_NAMES = [
    "order_event",
    "complaint_event",
    "feedback_event",
    "customer_profile",
    "enriched_event",
    "alert",
    "dead_letter",
    "alert_action",
]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
CHANNELS = ["phone", "web", "app", "store", "marketplace", "email", "chat", "social", "other"]
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
ID_FIELDS = {"event_id", "order_id", "customer_id", "complaint_id", "feedback_id", "sku", "seller_id", "owner"}
KIND_TO_SCHEMA = {"order": "order_event", "complaint": "complaint_event", "feedback": "feedback_event"}


# --------------------------------------------------------------------------- loading


@functools.cache
def load_schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def example_paths(name: str) -> list[Path]:
    return sorted((EXAMPLES_DIR / name).glob("*.json"))


def load_example(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


ALL_EXAMPLES = [(name, path) for name in SCHEMA_NAMES for path in example_paths(name)]


def _example_id(name: str, path: Path) -> str:
    return f"{name}/{path.stem}"


# ------------------------------------------------------------------------ validators

# jsonschema only checks "date-time" when the optional rfc3339-validator package is
# installed. Without it the format would silently pass, so register a strict fallback.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def _is_rfc3339_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    m = _RFC3339.fullmatch(value)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    if hour > 23 or minute > 59 or second > 59:
        return False
    if m.group(8) is not None and (int(m.group(9)) > 23 or int(m.group(10)) > 59):
        return False
    return True


def _format_checker() -> FormatChecker:
    checker = FormatChecker()
    if "date-time" not in checker.checkers:
        checker.checks("date-time")(_is_rfc3339_datetime)
    return checker


FORMAT_CHECKER = _format_checker()


@functools.cache
def py_validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name), format_checker=FORMAT_CHECKER)


@functools.cache
def rs_validator(name: str):
    return jsonschema_rs.validator_for(load_schema(name), validate_formats=True)


def py_errors(name: str, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in py_validator(name).iter_errors(doc)]


def rs_errors(name: str, doc: Any) -> list[str]:
    return [f"{e.instance_path}: {e.message}" for e in rs_validator(name).iter_errors(doc)]


# --------------------------------------------------------------- JSON pointer helpers


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    assert pointer.startswith("/"), pointer
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _step(node: Any, token: str) -> Any:
    return node[int(token)] if isinstance(node, list) else node[token]


def _parent(doc: Any, pointer: str) -> tuple[Any, str] | None:
    tokens = _tokens(pointer)
    node = doc
    try:
        for token in tokens[:-1]:
            node = _step(node, token)
    except (KeyError, IndexError, ValueError, TypeError):
        return None
    if not isinstance(node, (dict, list)):
        return None
    return node, tokens[-1]


def has(pointer: str) -> Callable[[Any], bool]:
    def check(doc: Any) -> bool:
        found = _parent(doc, pointer)
        if found is None:
            return False
        node, last = found
        if isinstance(node, list):
            return last.isdigit() and int(last) < len(node)
        return last in node

    return check


def parent_exists(pointer: str) -> Callable[[Any], bool]:
    """True when the value at ``pointer`` could be set (its container exists and is an object)."""

    def check(doc: Any) -> bool:
        found = _parent(doc, pointer)
        return found is not None and isinstance(found[0], dict)

    return check


def get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _tokens(pointer):
        node = _step(node, token)
    return node


def set_(pointer: str, value: Any) -> Callable[[Any], None]:
    def mutate(doc: Any) -> None:
        node, last = _parent(doc, pointer)
        if isinstance(node, list):
            node[int(last)] = copy.deepcopy(value)
        else:
            node[last] = copy.deepcopy(value)

    return mutate


def drop(pointer: str) -> Callable[[Any], None]:
    def mutate(doc: Any) -> None:
        node, last = _parent(doc, pointer)
        del node[int(last) if isinstance(node, list) else last]

    return mutate


def both(*checks: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda doc: all(c(doc) for c in checks)


def value_is(pointer: str, *values: Any) -> Callable[[Any], bool]:
    return lambda doc: has(pointer)(doc) and get(doc, pointer) in values


def value_not(pointer: str, *values: Any) -> Callable[[Any], bool]:
    return lambda doc: not (has(pointer)(doc) and get(doc, pointer) in values)


def always(_doc: Any) -> bool:
    return True


# --------------------------------------------------------------------- broken cases


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    applies: Callable[[Any], bool]
    mutate: Callable[[Any], None]


def _wrong_type_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return 12345
    if isinstance(value, dict):
        return ["not", "an", "object"]
    if isinstance(value, list):
        return {"not": "an array"}
    return 0  # null


def _wrong_type(pointer: str) -> Callable[[Any], None]:
    def mutate(doc: Any) -> None:
        set_(pointer, _wrong_type_value(get(doc, pointer)))(doc)

    return mutate


ENUM_POINTERS = {
    "order_event": ["/type", "/channel"],
    "complaint_event": ["/status", "/channel"],
    "feedback_event": ["/source", "/channel"],
    "customer_profile": ["/tier", "/relationship_level", "/preferred_channel"],
    "enriched_event": ["/kind", "/segment/value_tier", "/segment/tier_source", "/segment/lifecycle"],
    "alert": ["/severity", "/subject/kind"],
    "dead_letter": [],  # no enums: error codes are an open, pattern-checked vocabulary
    "alert_action": ["/action/action", "/case/status"],
}

# The first pointer of each list gets the full set of bad values, the others a few.
TIMESTAMP_POINTERS = {
    "order_event": ["/occurred_at", "/promised_delivery_at"],
    "complaint_event": [
        "/occurred_at",
        "/promised_response_by",
        "/promised_resolution_by",
        "/promised_callback_at",
        "/promised_refund_by",
    ],
    "feedback_event": ["/occurred_at"],
    "customer_profile": ["/occurred_at", "/signup_at"],
    "enriched_event": ["/occurred_at", "/processing/processed_at", "/processing/ingested_at"],
    "alert": ["/event_time", "/emitted_at"],
    "dead_letter": ["/received_at"],
    "alert_action": ["/action/at", "/case/acknowledged_at", "/case/resolved_at"],
}

BAD_TIMESTAMPS_FULL = {
    "feb30": "2024-02-30T10:00:00Z",  # matches the pattern; only format checking rejects it
    "hour25": "2024-03-01T25:00:00+09:00",
    "month13": "2024-13-01T10:00:00Z",
    "no_offset": "2024-03-01T10:00:00",
    "space_separator": "2024-03-01 10:00:00Z",
    "no_seconds": "2024-03-01T10:00Z",
    "compact_offset": "2024-03-01T10:00:00+0900",
    "lowercase": "2024-03-01t10:00:00z",
    "fraction_10_digits": "2024-03-01T10:00:00.1234567890Z",
    "date_only": "2024-03-01",
    "epoch_string": "1710230400",
    "empty": "",
    "fullwidth_digits": "\uff12\uff10\uff12\uff14-03-01T10:00:00Z",
    "epoch_number": 1710230400,
}
BAD_TIMESTAMPS_SHORT = {k: BAD_TIMESTAMPS_FULL[k] for k in ("feb30", "no_offset", "space_separator")}

# Closed objects (additionalProperties: false) inside each document.
CLOSED_OBJECTS = {
    "order_event": ["", "/items/0"],
    "complaint_event": [""],
    "feedback_event": ["", "/scale"],
    "customer_profile": [""],
    "enriched_event": ["", "/segment", "/processing"],
    "alert": ["", "/subject"],
    "dead_letter": ["", "/source", "/errors/0"],
    "alert_action": ["", "/action", "/case", "/history/0"],
}

BAD_SCHEMA_VERSIONS = [2, 0, -1, "1", 1.5, True, None, [1]]
# contracts past version 1 (issue 20: enriched events 2, sentiment.source); the bad versions then
# include 1 instead of 2
SCHEMA_VERSIONS = {"enriched_event": 2}


def bad_schema_versions(name: str) -> list[Any]:
    version = SCHEMA_VERSIONS.get(name, 1)
    return [v for v in BAD_SCHEMA_VERSIONS if v != version] + ([1] if version != 1 else [])


def _add_unknown(pointer: str) -> Callable[[Any], None]:
    def mutate(doc: Any) -> None:
        target = get(doc, pointer)
        target["unexpected_field"] = "surprise"

    return mutate


def _is_object_at(pointer: str) -> Callable[[Any], bool]:
    def check(doc: Any) -> bool:
        if pointer == "":
            return isinstance(doc, dict)
        return has(pointer)(doc) and isinstance(get(doc, pointer), dict)

    return check


def generic_rules(name: str) -> list[Rule]:
    schema = load_schema(name)
    rules: list[Rule] = []
    for field in schema["required"]:
        ptr = f"/{field}"
        rules.append(Rule(f"drop_required:{field}", "drop_required", has(ptr), drop(ptr)))
        rules.append(Rule(f"wrong_type:{field}", "wrong_type", has(ptr), _wrong_type(ptr)))
    for ptr in ENUM_POINTERS[name]:
        rules.append(Rule(f"bad_enum:{ptr}", "bad_enum", parent_exists(ptr), set_(ptr, "__not_in_enum__")))
        rules.append(Rule(f"bad_enum_case:{ptr}", "bad_enum", has(ptr), lambda d, p=ptr: set_(p, str(get(d, p)).upper())(d)))
    for i, ptr in enumerate(TIMESTAMP_POINTERS[name]):
        bad = BAD_TIMESTAMPS_FULL if i == 0 else BAD_TIMESTAMPS_SHORT
        for label, value in bad.items():
            rules.append(Rule(f"bad_datetime:{ptr}={label}", "bad_datetime", parent_exists(ptr), set_(ptr, value)))
    for ptr in CLOSED_OBJECTS[name]:
        rules.append(Rule(f"unknown_property:{ptr or '/'}", "unknown_property", _is_object_at(ptr), _add_unknown(ptr)))
    for version in bad_schema_versions(name):
        rules.append(
            Rule(f"schema_version={json.dumps(version)}", "schema_version", always, set_("/schema_version", version))
        )
    return rules


def _specific(rule_id: str, applies: Callable[[Any], bool], mutate: Callable[[Any], None]) -> Rule:
    return Rule(rule_id, "specific", applies, mutate)


def _common_specific(name: str) -> list[Rule]:
    """Constraints shared by several schemas (ids, text, language, attributes)."""
    props = load_schema(name)["properties"]
    rules = []
    for field in sorted(ID_FIELDS & props.keys()):
        ptr = f"/{field}"
        rules.append(_specific(f"{field}_empty", parent_exists(ptr), set_(ptr, "")))
        rules.append(_specific(f"{field}_too_long", parent_exists(ptr), set_(ptr, "x" * 129)))
    if "text" in props:
        rules.append(_specific("text_too_long", always, set_("/text", "가" * 20001)))
    if "language" in props:
        for bad in ("KO", "ko_KR", "korean", "e", "pt-"):
            rules.append(_specific(f"language={bad}", always, set_("/language", bad)))
    if "attributes" in props:
        rules.append(_specific("attributes_nested_object", always, set_("/attributes", {"a": {"b": 1}})))
        rules.append(_specific("attributes_list_value", always, set_("/attributes", {"tags": ["x"]})))
        rules.append(_specific("attributes_not_object", always, set_("/attributes", "k=v")))
    if "channel" in props and name != "enriched_event":
        rules.append(_specific("channel_phone_call", always, set_("/channel", "phone_call")))
    return rules


def _order_rules() -> list[Rule]:
    placed = value_is("/type", "placed")
    promised = value_is("/type", "placed", "delivery_rescheduled")
    rules = [
        _specific("placed_without_promised_delivery_at", both(promised, has("/promised_delivery_at")),
                  drop("/promised_delivery_at")),
        _specific("amount_without_currency", has("/currency"), drop("/currency")),
        _specific("currency_without_amount", has("/amount"), drop("/amount")),
        _specific("amount_negative", has("/amount"), set_("/amount", -0.01)),
        _specific("amount_string", has("/amount"), set_("/amount", "38.71")),
        _specific("currency_lowercase", has("/currency"), set_("/currency", "brl")),
        _specific("currency_symbol", has("/currency"), set_("/currency", "R$")),
        _specific("currency_4_letters", has("/currency"), set_("/currency", "BRLX")),
        _specific("items_empty", has("/items"), set_("/items", [])),
        _specific("items_too_many", has("/items/0"), lambda d: set_("/items", [d["items"][0]] * 501)(d)),
        _specific("items_not_array", has("/items"), set_("/items", {"sku": "x"})),
        _specific("item_qty_zero", has("/items/0"), set_("/items/0/qty", 0)),
        _specific("item_qty_fraction", has("/items/0"), set_("/items/0/qty", 1.5)),
        _specific("item_qty_string", has("/items/0"), set_("/items/0/qty", "1")),
        _specific("item_unit_price_negative", has("/items/0"), set_("/items/0/unit_price", -1)),
        _specific("item_sku_empty", has("/items/0"), set_("/items/0/sku", "")),
        _specific("item_category_empty", has("/items/0"), set_("/items/0/category", "")),
        _specific("item_category_too_long", has("/items/0"), set_("/items/0/category", "c" * 129)),
        _specific("region_empty", always, set_("/region", "")),
        _specific("region_too_long", always, set_("/region", "r" * 65)),
        _specific("carrier_empty", always, set_("/carrier", "")),
        _specific("reason_too_long", always, set_("/reason", "r" * 2001)),
        _specific("promised_delivery_at_null", always, set_("/promised_delivery_at", None)),
        # Turning another event into "placed" must fail unless it carries the full order.
        _specific("retyped_as_placed", both(value_not("/type", "placed"), lambda d: "items" not in d),
                  set_("/type", "placed")),
        _specific("retyped_as_rescheduled", lambda d: "promised_delivery_at" not in d,
                  set_("/type", "delivery_rescheduled")),
    ]
    for field in ("amount", "currency", "channel", "region", "items"):
        rules.append(_specific(f"placed_without_{field}", both(placed, has(f"/{field}")), drop(f"/{field}")))
    for field in ("sku", "category", "qty", "unit_price"):
        rules.append(_specific(f"item_without_{field}", has(f"/items/0/{field}"), drop(f"/items/0/{field}")))
    return rules


def _complaint_rules() -> list[Rule]:
    return [
        _specific("opened_without_text", both(value_is("/status", "opened"), has("/text")), drop("/text")),
        _specific("reopened_as_opened_without_text", lambda d: "text" not in d, set_("/status", "opened")),
        _specific("text_null", always, set_("/text", None)),
        _specific("promised_refund_by_null", always, set_("/promised_refund_by", None)),
    ]


def _feedback_rules() -> list[Rule]:
    return [
        _specific("scale_without_min", always, drop("/scale/min")),
        _specific("scale_without_max", always, drop("/scale/max")),
        _specific("scale_min_string", always, set_("/scale/min", "1")),
        _specific("scale_max_null", always, set_("/scale/max", None)),
        _specific("scale_as_string", always, set_("/scale", "1-5")),
        _specific("score_null", always, set_("/score", None)),
        _specific("expectation_score_string", always, set_("/expectation_score", "4")),
    ]


def _profile_rules() -> list[Rule]:
    return [
        _specific("region_empty", always, set_("/region", "")),
        _specific("tier_vip", always, set_("/tier", "vip")),
        _specific("relationship_level_partnership", always, set_("/relationship_level", "partnership")),
    ]


SEGMENT_REQUIRED = ["value_tier", "tier_source", "lifecycle", "region", "relationship_level", "channel", "profile_known"]
PROCESSING_REQUIRED = ["source_topic", "partition", "offset", "processed_at"]


def _enriched_rules() -> list[Rule]:
    rules = [
        _specific("occurred_at_not_utc_z", always, set_("/occurred_at", "2024-03-19T01:05:00+00:00")),
        _specific("occurred_at_local_offset", always, set_("/occurred_at", "2024-03-19T10:05:00+09:00")),
        _specific("kind_customer_profile", always, set_("/kind", "customer_profile")),
        _specific("event_null", always, set_("/event", None)),
        _specific("segment_profile_known_string", always, set_("/segment/profile_known", "false")),
        _specific("segment_region_null", always, set_("/segment/region", None)),
        _specific("segment_orders_count_fraction", always, set_("/segment/orders_count", 1.5)),
        _specific("segment_orders_count_negative", always, set_("/segment/orders_count", -1)),
        _specific("segment_cadence_days_string", always, set_("/segment/cadence_days", "n/a")),
        _specific("segment_spend_null", always, set_("/segment/spend", None)),
        _specific("processing_partition_negative", always, set_("/processing/partition", -1)),
        _specific("processing_offset_negative", always, set_("/processing/offset", -1)),
        _specific("processing_offset_string", always, set_("/processing/offset", "18233")),
        _specific("processing_source_topic_empty", always, set_("/processing/source_topic", "")),
        _specific("processing_rekeyed_string", always, set_("/processing/rekeyed", "yes")),
        _specific("classification_string", always, set_("/classification", "negative")),
        _specific("classification_array", always, set_("/classification", [])),
        _specific("risk_number", always, set_("/risk", 0.78)),
        _specific("pain_point_without_id", has("/classification/pain_points/0"),
                  drop("/classification/pain_points/0/id")),
        _specific("pain_point_confidence_above_1", has("/classification/pain_points/0"),
                  set_("/classification/pain_points/0/confidence", 1.5)),
        _specific("sentiment_score_string", has("/classification/sentiment"),
                  set_("/classification/sentiment/score", "-0.8")),
    ]
    for field in SEGMENT_REQUIRED:
        rules.append(_specific(f"segment_without_{field}", always, drop(f"/segment/{field}")))
    for field in PROCESSING_REQUIRED:
        rules.append(_specific(f"processing_without_{field}", always, drop(f"/processing/{field}")))
    return rules


def _alert_rules() -> list[Rule]:
    customer = value_is("/subject/kind", "customer")
    segment = value_is("/subject/kind", "segment")
    return [
        _specific("customer_subject_without_customer_id", customer, drop("/subject/customer_id")),
        _specific("customer_subject_with_dimension", customer, set_("/subject/dimension", "region")),
        _specific("customer_subject_segment_string", customer, set_("/subject/segment", "key")),
        _specific("segment_subject_without_value", segment, drop("/subject/value")),
        _specific("segment_subject_without_dimension", segment, drop("/subject/dimension")),
        _specific("segment_subject_value_empty", segment, set_("/subject/value", "")),
        _specific("segment_subject_with_customer_id", segment, set_("/subject/customer_id", "c-1")),
        _specific("subject_without_kind", always, drop("/subject/kind")),
        _specific("alert_id_empty", always, set_("/alert_id", "")),
        _specific("alert_id_too_long", always, set_("/alert_id", "a" * 257)),
        _specific("type_camel_case", always, set_("/type", "PainPointSurge")),
        _specific("type_leading_digit", always, set_("/type", "1_surge")),
        _specific("type_with_dash", always, set_("/type", "churn-risk")),
        _specific("reason_empty", always, set_("/reason", "")),
        _specific("reason_too_long", always, set_("/reason", "r" * 2001)),
        _specific("evidence_too_many", always, set_("/evidence", [f"evt-{i}" for i in range(101)])),
        _specific("evidence_number", always, set_("/evidence", [123])),
        _specific("evidence_empty_string", always, set_("/evidence", [""])),
        _specific("suggested_actions_string", always, set_("/suggested_actions", "call the customer")),
        _specific("suggested_actions_number_item", always, set_("/suggested_actions", [1])),
        _specific("details_string", always, set_("/details", "n/a")),
        _specific("commitment_array", always, set_("/commitment", [])),
        _specific("pain_point_empty", always, set_("/pain_point", "")),
    ]


def _alert_action_rules() -> list[Rule]:
    return [
        _specific("case_version_zero", always, set_("/case/version", 0)),
        _specific("resolution_code_with_space", has("/case/resolution_code"), set_("/case/resolution_code", "called back")),
        _specific("actor_empty", always, set_("/action/actor", "")),
        _specific("note_too_long", always, set_("/action/note", "x" * 2001)),
        _specific("history_too_long", always, lambda d: d["history"].extend([d["history"][0]] * 50)),
        _specific("owner_null", always, set_("/case/owner", None)),
    ]


def _dead_letter_rules() -> list[Rule]:
    rules = [
        _specific("dead_letter_id_dashes", always, set_("/dead_letter_id", "events.orders-3-88412")),
        _specific("dead_letter_id_missing_offset", always, set_("/dead_letter_id", "events.orders:3:")),
        _specific("dead_letter_id_negative_offset", always, set_("/dead_letter_id", "events.orders:3:-1")),
        _specific("source_partition_negative", always, set_("/source/partition", -1)),
        _specific("source_offset_string", always, set_("/source/offset", "88412")),
        _specific("source_topic_empty", always, set_("/source/topic", "")),
        _specific("source_topic_with_space", always, set_("/source/topic", "events orders")),
        _specific("source_timestamp_string", always, set_("/source/timestamp", "1710230400123")),
        _specific("source_timestamp_fraction", always, set_("/source/timestamp", 1710230400.5)),
        _specific("source_key_b64_not_base64", always, set_("/source/key_b64", "cust kr 20811!")),
        _specific("source_expected_kind_number", always, set_("/source/expected_kind", 1)),
        _specific("source_not_object", always, set_("/source", "events.orders:3:88412")),
        _specific("errors_empty", always, set_("/errors", [])),
        _specific("errors_string_item", always, set_("/errors", ["not_json"])),
        _specific("error_code_camel_case", always, set_("/errors/0/code", "NotJson")),
        _specific("error_code_empty", always, set_("/errors/0/code", "")),
        _specific("error_path_not_pointer", always, set_("/errors/0/path", "items/0/qty")),
        _specific("error_path_bad_escape", always, set_("/errors/0/path", "/a~2b")),
        _specific("error_path_null", always, set_("/errors/0/path", None)),
        _specific("error_message_number", always, set_("/errors/0/message", 42)),
        _specific("original_b64_not_base64", always, set_("/original_b64", "{\"not\": \"base64\"}")),
        _specific("original_b64_bad_padding", always, set_("/original_b64", "QUJD=")),
        _specific("original_b64_urlsafe", always, set_("/original_b64", "-_-_")),
        _specific("original_b64_null", always, set_("/original_b64", None)),
        _specific("original_size_negative", always, set_("/original_size", -1)),
        _specific("original_size_fraction", always, set_("/original_size", 1.5)),
    ]
    for field in ("topic", "partition", "offset"):
        rules.append(_specific(f"source_without_{field}", always, drop(f"/source/{field}")))
    for field in ("code", "message", "path"):
        rules.append(_specific(f"error_without_{field}", always, drop(f"/errors/0/{field}")))
    return rules


SPECIFIC_RULES = {
    "order_event": _order_rules,
    "complaint_event": _complaint_rules,
    "feedback_event": _feedback_rules,
    "customer_profile": _profile_rules,
    "enriched_event": _enriched_rules,
    "alert": _alert_rules,
    "dead_letter": _dead_letter_rules,
    "alert_action": lambda: _alert_action_rules(),
}


def rules_for(name: str) -> list[Rule]:
    rules = generic_rules(name) + _common_specific(name) + SPECIFIC_RULES[name]()
    ids = [r.id for r in rules]
    assert len(ids) == len(set(ids)), f"duplicate rule ids for {name}"
    return rules


def applicable_rules(name: str, doc: Any) -> list[Rule]:
    return [r for r in rules_for(name) if r.applies(doc)]


BROKEN_CASES = [
    pytest.param(name, path, rule, id=f"{_example_id(name, path)}:{rule.id}")
    for name, path in ALL_EXAMPLES
    for rule in applicable_rules(name, load_example(path))
]


# ---------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert jsonschema.validators.validator_for(schema) is Draft202012Validator
    assert isinstance(rs_validator(name), jsonschema_rs.Draft202012Validator)
    # The schema also validates against the 2020-12 meta-schema in jsonschema_rs.
    assert jsonschema_rs.meta.is_valid(schema)


def _walk_properties(schema: Any, path: str = ""):
    """Yield (path, property name, property schema) for every `properties` entry, recursively."""
    if isinstance(schema, dict):
        for key, sub in schema.get("properties", {}).items():
            yield f"{path}/{key}", key, sub
            yield from _walk_properties(sub, f"{path}/{key}")
        for keyword in ("items", "additionalProperties", "if", "then", "else"):
            if isinstance(schema.get(keyword), dict):
                yield from _walk_properties(schema[keyword], path)
        for keyword in ("allOf", "anyOf", "oneOf"):
            for sub in schema.get(keyword, []):
                yield from _walk_properties(sub, path)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_follows_conventions(name: str) -> None:
    schema = load_schema(name)
    assert schema["$schema"] == DRAFT_2020_12
    expected_version = SCHEMA_VERSIONS.get(name, 1)
    assert schema["$id"] == f"https://feedback-pipeline.dev/schemas/{name}/v{expected_version}"
    assert isinstance(schema["title"], str) and schema["title"]
    assert isinstance(schema["description"], str) and schema["description"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert "schema_version" in schema["required"]
    version = schema["properties"]["schema_version"]
    assert version["type"] == "integer" and version["const"] == expected_version and type(version["const"]) is int

    timestamp = schema["$defs"]["timestamp"]
    assert timestamp["type"] == "string"
    assert timestamp["format"] == "date-time"
    assert timestamp["pattern"] == TIMESTAMP_PATTERN

    # Self-contained: every $ref is local.
    refs = re.findall(r'"\$ref":\s*"([^"]*)"', json.dumps(schema))
    assert all(ref.startswith("#/$defs/") for ref in refs), refs

    for path, key, sub in _walk_properties(schema):
        if path.startswith("/event/") or path.startswith("/classification/"):
            continue
        if key.endswith("_at") or key.endswith("_by") or key == "event_time":
            assert sub.get("$ref") in ("#/$defs/timestamp", "#/$defs/utc_timestamp"), path
        if key in ID_FIELDS:
            assert (sub["type"], sub["minLength"], sub["maxLength"]) == ("string", 1, 128), path
        if key in ("channel", "preferred_channel") and not path.startswith("/segment/"):
            assert sub["enum"] == CHANNELS, path
        if key == "language":
            assert sub["pattern"] == LANGUAGE_PATTERN, path
        if key == "text":
            assert (sub["type"], sub["maxLength"]) == ("string", 20000), path


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_has_examples(name: str) -> None:
    assert len(example_paths(name)) >= 2


def test_no_examples_for_unknown_schemas() -> None:
    dirs = {p.name for p in EXAMPLES_DIR.iterdir() if p.is_dir()}
    assert dirs <= set(SCHEMA_NAMES), dirs - set(SCHEMA_NAMES)
    files = {p.name for p in SCHEMA_DIR.glob("*.schema.json")}
    assert {f"{n}.schema.json" for n in SCHEMA_NAMES} <= files


@pytest.mark.parametrize(
    ("name", "path"), [pytest.param(n, p, id=_example_id(n, p)) for n, p in ALL_EXAMPLES]
)
def test_example_is_valid(name: str, path: Path) -> None:
    doc = load_example(path)
    assert py_errors(name, doc) == []
    assert rs_errors(name, doc) == []
    assert rs_validator(name).is_valid(doc)


def _v1_validator() -> Any:
    import jsonschema

    schema = json.loads((SCHEMA_DIR / "v1" / "enriched_event.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("path", example_paths("enriched_event"), ids=lambda p: p.stem)
def test_enriched_version_1_is_version_2_without_the_sentiment_source(path: Path) -> None:
    """Issue 20's contract change: a consumer dispatching on ``schema_version`` reads both versions;
    the archived version-1 schema accepts a version-2 event with the source removed, not as it is."""
    doc = load_example(path)
    v1 = _v1_validator()
    assert not v1.is_valid(doc)
    assert doc["classification"]["sentiment"]["source"]
    old = json.loads(json.dumps(doc))
    old["schema_version"] = 1
    del old["classification"]["sentiment"]["source"]
    assert list(v1.iter_errors(old)) == []
    new = load_schema("enriched_event")
    assert {k: v for k, v in new["properties"].items() if k != "classification" and k != "schema_version"} == {
        k: v for k, v in v1.schema["properties"].items() if k != "classification" and k != "schema_version"}


@pytest.mark.parametrize(
    ("name", "path"),
    [pytest.param(n, p, id=_example_id(n, p)) for n, p in ALL_EXAMPLES if n == "enriched_event"],
)
def test_enriched_example_wraps_a_valid_source_event(name: str, path: Path) -> None:
    doc = load_example(path)
    source_schema = KIND_TO_SCHEMA[doc["kind"]]
    event = doc["event"]
    assert py_errors(source_schema, event) == []
    assert rs_errors(source_schema, event) == []
    assert doc["event_id"] == event["event_id"]
    assert doc["customer_id"] == event["customer_id"]
    original = dt.datetime.fromisoformat(event["occurred_at"])
    normalised = dt.datetime.fromisoformat(doc["occurred_at"])
    assert doc["occurred_at"].endswith("Z")
    assert original == normalised


@pytest.mark.parametrize(
    ("name", "path"), [pytest.param(n, p, id=_example_id(n, p)) for n, p in ALL_EXAMPLES]
)
def test_example_has_every_kind_of_broken_case(name: str, path: Path) -> None:
    categories = {r.category for r in applicable_rules(name, load_example(path))}
    expected = {"drop_required", "wrong_type", "bad_datetime", "unknown_property", "schema_version", "specific"}
    if ENUM_POINTERS[name]:
        expected.add("bad_enum")
    assert expected <= categories, expected - categories


@pytest.mark.parametrize(("name", "path", "rule"), BROKEN_CASES)
def test_broken_example_is_rejected(name: str, path: Path, rule: Rule) -> None:
    original = load_example(path)
    doc = copy.deepcopy(original)
    rule.mutate(doc)
    assert doc != original or json.dumps(doc, sort_keys=True) != json.dumps(original, sort_keys=True), (
        "mutation did not change the document"
    )
    assert py_errors(name, doc), "jsonschema accepted the broken document"
    assert not rs_validator(name).is_valid(doc), "jsonschema_rs accepted the broken document"


# Deliberately permissive spots: these variants of an example must stay valid.
def _variant(name: str, example: str, variant_id: str, mutate: Callable[[Any], None]):
    return pytest.param(name, example, mutate, id=f"{name}/{example}:{variant_id}")


def _many(*mutations: Callable[[Any], None]) -> Callable[[Any], None]:
    def mutate(doc: Any) -> None:
        for m in mutations:
            m(doc)

    return mutate


VALID_VARIANTS = [
    _variant("order_event", "placed", "fraction_9_digits", set_("/occurred_at", "2017-10-02T10:56:33.123456789-03:00")),
    _variant("order_event", "placed", "lowercase_text_in_category", set_("/items/0/category", "Cama Mesa Banho")),
    _variant("order_event", "placed", "zero_price_gift", _many(set_("/items/0/unit_price", 0), set_("/amount", 0))),
    _variant("order_event", "placed", "attributes_scalars",
             set_("/attributes", {"s": "x", "n": 1.5, "b": False, "z": None})),
    _variant("order_event", "delivered", "items_on_non_placed", set_("/items", [
        {"sku": "87285b34884572647811a353c7ac498a", "category": "utilidades_domesticas", "qty": 1, "unit_price": 29.99}
    ])),
    _variant("order_event", "refunded", "no_channel", drop("/channel")),
    _variant("order_event", "refunded", "no_amount_no_currency", _many(drop("/amount"), drop("/currency"))),
    _variant("order_event", "refunded", "empty_reason", set_("/reason", "")),
    _variant("complaint_event", "resolved_en", "empty_text_allowed_when_not_opened", set_("/text", "")),
    _variant("complaint_event", "opened_ko", "language_with_region", set_("/language", "ko-KR")),
    _variant("complaint_event", "opened_ko", "three_letter_language", set_("/language", "kor")),
    _variant("feedback_event", "nps_en", "score_outside_scale_is_checked_in_python", set_("/score", 11)),
    _variant("feedback_event", "nps_en", "fractional_score", set_("/score", 7.5)),
    _variant("feedback_event", "nps_en", "minimal", _many(drop("/text"), drop("/language"), drop("/channel"),
                                                         drop("/attributes"))),
    _variant("customer_profile", "minimal", "attributes_null_value", set_("/attributes", {"legacy_id": None})),
    _variant("enriched_event", "order_placed_new_customer", "classification_null", set_("/classification", None)),
    _variant("enriched_event", "complaint_ko_classified", "no_classification_no_risk",
             _many(drop("/classification"), drop("/risk"))),
    _variant("enriched_event", "complaint_ko_classified", "event_is_free_object",
             set_("/event", {"anything": ["goes"], "here": 1})),
    _variant("enriched_event", "complaint_ko_classified", "minimal_segment_and_processing", _many(
        *(drop(f"/segment/{f}") for f in ("orders_count", "spend", "cadence_days", "days_since_last_order")),
        drop("/processing/ingested_at"), drop("/processing/rekeyed"),
    )),
    _variant("enriched_event", "feedback_nps_at_risk", "risk_extra_keys", set_("/risk/model_version", "v3")),
    _variant("alert", "pain_point_surge_segment", "no_evidence_no_actions",
             _many(set_("/evidence", []), set_("/suggested_actions", []))),
    _variant("alert", "commitment_at_risk_refund", "free_commitment", set_("/commitment", {"anything": [1, {}]})),
    _variant("alert", "churn_risk_customer", "new_alert_type", set_("/type", "churn_risk_cleared")),
    _variant("alert", "churn_risk_customer", "customer_subject_with_any_segment",
             set_("/subject/segment", {"value_tier": "key", "custom": 1})),
    _variant("dead_letter", "not_json", "empty_original", _many(set_("/original_b64", ""), set_("/original_size", 0))),
    _variant("dead_letter", "not_json", "nulls_in_source", _many(
        set_("/source/key_b64", None), set_("/source/timestamp", None), set_("/source/expected_kind", None))),
    _variant("dead_letter", "not_json", "minimal_source", _many(
        drop("/source/key_b64"), drop("/source/timestamp"), drop("/source/expected_kind"))),
    _variant("dead_letter", "not_json", "escaped_pointer", set_("/errors/0/path", "/attributes/a~1b~0c")),
    _variant("dead_letter", "not_json", "new_error_code", set_("/errors/0/code", "rate_limited")),
]


@pytest.mark.parametrize(("name", "example", "mutate"), VALID_VARIANTS)
def test_permissive_variant_is_accepted(name: str, example: str, mutate: Callable[[Any], None]) -> None:
    doc = load_example(EXAMPLES_DIR / name / f"{example}.json")
    mutate(doc)
    assert py_errors(name, doc) == []
    assert rs_errors(name, doc) == []


def test_date_time_format_is_enforced_by_both_validators() -> None:
    """Guard against a silently disabled format check (e.g. missing optional packages)."""
    schema = {"$schema": DRAFT_2020_12, "type": "string", "format": "date-time"}
    py = Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    rs = jsonschema_rs.validator_for(schema, validate_formats=True)
    for bad in ("2024-02-30T10:00:00Z", "2024-03-01T10:00:00", "2024-03-01T24:00:00Z"):
        assert not py.is_valid(bad), bad
        assert not rs.is_valid(bad), bad
    for good in ("2024-02-29T10:00:00Z", "2024-03-01T10:00:00.5+09:00", "2017-10-02T10:56:33-03:00"):
        assert py.is_valid(good), good
        assert rs.is_valid(good), good
