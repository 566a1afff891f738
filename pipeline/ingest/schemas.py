"""Load the JSON Schemas in ``schemas/`` (the public contract) once, compiled.

Schemas are found by file name ``<name>.schema.json`` and their ``schema_version``
const; :func:`validator` returns a compiled ``jsonschema_rs`` validator for a
(kind, version) pair, or ``None`` when that version is not supported.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from ..config import PROJECT_ROOT

SCHEMA_NAMES = {
    "order": "order_event",
    "complaint": "complaint_event",
    "feedback": "feedback_event",
    "customer_profile": "customer_profile",
    "enriched": "enriched_event",
    "alert": "alert",
    "dead_letter": "dead_letter",
}


def schema_dir() -> Path:
    return Path(os.environ.get("PIPELINE_SCHEMA_DIR") or PROJECT_ROOT / "schemas")


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    return orjson.loads((schema_dir() / f"{name}.schema.json").read_bytes())


def schema_version_of(schema: dict[str, Any]) -> int:
    return int(schema["properties"]["schema_version"]["const"])


@lru_cache(maxsize=None)
def _validators(kind: str) -> dict[int, Any]:
    schema = load_schema(SCHEMA_NAMES[kind])
    return {schema_version_of(schema): jsonschema_rs.validator_for(schema, validate_formats=True)}


def supported_versions(kind: str) -> tuple[int, ...]:
    return tuple(sorted(_validators(kind)))


def validator(kind: str, version: Any) -> Any | None:
    if isinstance(version, bool) or not isinstance(version, int):
        return None
    return _validators(kind).get(version)
