"""The one reader of configuration YAML files (weights, playbooks, taxonomies): a mapping or a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_mapping(path: str | Path, what: str, error: type[ValueError] = ValueError) -> dict[str, Any]:
    """The file's top-level mapping (an empty file is ``{}``).  Raises ``error`` (a ``ValueError``
    subclass) naming ``what`` and the file when it cannot be read, is not YAML or is not a mapping."""
    try:
        with Path(path).open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{what} {path}: not valid YAML: {exc}") from exc
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise error(f"{what}: {path} is not a mapping")
    return data
