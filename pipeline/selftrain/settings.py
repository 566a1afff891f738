"""The trainer's settings, from environment variables (documented in docs/configuration.md)."""

from __future__ import annotations

import os
from typing import Mapping

from ..classify.selftrain import SelfTrainSettings
from ..yamlfile import read_mapping


def _number(env: Mapping[str, str], name: str, default: float, minimum: float, integer: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'}, not {raw!r}") from None
    if value != value or value < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, not {raw!r}")
    return value


def self_train_settings(env: Mapping[str, str] | None = None) -> SelfTrainSettings:
    """``PIPELINE_SELF_TRAIN_*``; a bad value is a ``ValueError`` naming the variable."""
    env = os.environ if env is None else env
    d = SelfTrainSettings()
    return SelfTrainSettings(
        min_samples=int(_number(env, "PIPELINE_SELF_TRAIN_MIN_SAMPLES", d.min_samples, 10, True)),
        min_new_samples=int(_number(env, "PIPELINE_SELF_TRAIN_MIN_NEW_SAMPLES", d.min_new_samples, 1, True)),
        max_samples=int(_number(env, "PIPELINE_SELF_TRAIN_MAX_SAMPLES", d.max_samples, 10, True)),
        folds=int(_number(env, "PIPELINE_SELF_TRAIN_FOLDS", d.folds, 2, True)),
        min_gain=_number(env, "PIPELINE_SELF_TRAIN_MIN_GAIN", d.min_gain, -1.0),
        interval_seconds=_number(env, "PIPELINE_SELF_TRAIN_INTERVAL_SECONDS", d.interval_seconds, 0.1),
        l2=_number(env, "PIPELINE_SELF_TRAIN_L2", d.l2, 0.0),
        pain_label_attribute=(env.get("PIPELINE_SELF_TRAIN_PAIN_LABEL_ATTRIBUTE") or "").strip(),
        pain_label_map=label_map(env.get("PIPELINE_SELF_TRAIN_PAIN_LABEL_MAP") or ""),
        pain_min_positive=int(_number(env, "PIPELINE_SELF_TRAIN_PAIN_MIN_POSITIVE", d.pain_min_positive, 2, True)),
    )


def label_map(path: str, category_ids: tuple[str, ...] | None = None) -> tuple[tuple[str, str | None], ...]:
    """``PIPELINE_SELF_TRAIN_PAIN_LABEL_MAP``: a YAML mapping, ticket label -> taxonomy category id or
    null ("no pain point"). ``category_ids``: when given, every mapped id must be one of them."""
    if not path:
        return ()
    doc = read_mapping(path, "pain label map")
    out = []
    for label, cat in doc.items():
        if cat is not None and (not isinstance(cat, str) or not cat):
            raise ValueError(f"pain label map {path}: {label!r} must map to a category id or null")
        if cat is not None and category_ids is not None and cat not in category_ids:
            raise ValueError(f"pain label map {path}: {label!r} maps to {cat!r}, not a category of the taxonomy "
                             f"({', '.join(category_ids)})")
        out.append((str(label), cat))
    return tuple(out)
