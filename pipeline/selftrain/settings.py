"""The trainer's settings, from environment variables (documented in docs/configuration.md)."""

from __future__ import annotations

import os
from typing import Mapping

from ..classify.selftrain import SelfTrainSettings


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
    )
