"""Suggested-action playbooks: the bundled YAML files and the one loader every stage uses.

Three playbooks, one per alert family: ``default.yaml`` (commitment alerts,
:mod:`pipeline.commitments.playbook`), ``churn.yaml`` (:mod:`pipeline.churn.alerts`) and
``pain_points.yaml`` (:mod:`pipeline.aggregate.alerts`).  Each stage parses its own shape; finding
the file (an explicit path, else the stage's environment variable, else the bundled file), reading
it and checking action lists happen here, so every playbook fails the same way: a
:class:`PlaybookError` (a ``ValueError``) naming the file and the place, at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..yamlfile import read_mapping

PLAYBOOK_DIR = Path(__file__).resolve().parent


class PlaybookError(ValueError):
    """A playbook file that is missing, is not YAML, or has the wrong shape."""


def playbook_path(path: str | Path | None, env: Mapping[str, str], env_var: str, bundled: str) -> Path:
    """``path`` if given, else ``env[env_var]`` if set and non-empty, else the bundled file ``bundled``."""
    if path is not None:
        return Path(path)
    return Path(env.get(env_var) or PLAYBOOK_DIR / bundled)


def read_playbook(path: Path) -> dict[str, Any]:
    """The file's top-level mapping (an empty file is ``{}``); :class:`PlaybookError` naming ``path``
    when it cannot be read, is not YAML or is not a mapping."""
    return read_mapping(path, "playbook", PlaybookError)


def action_lines(value: Any, where: str) -> tuple[str, ...]:
    """A list of action lines (``None`` is none), each whitespace-normalised; :class:`PlaybookError`
    naming ``where`` unless it is a list of non-empty strings."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
        raise PlaybookError(f"{where}: expected a list of non-empty strings")
    return tuple(" ".join(x.split()) for x in value)


__all__ = ["PLAYBOOK_DIR", "PlaybookError", "action_lines", "playbook_path", "read_playbook"]
