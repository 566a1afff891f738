"""Read a YAML file whose top level must be a mapping (weights, playbooks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The file's mapping (empty file → ``{}``); ``ValueError`` naming ``what`` otherwise."""
    with Path(path).open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{what}: {path} is not a mapping")
    return data
