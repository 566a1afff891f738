"""The worker's garbage-collector settings (pipeline.runtime.tune_gc)."""

import gc

from pipeline.config import load_settings
from pipeline.runtime import tune_gc


def _restore(threshold: tuple[int, int, int]) -> None:
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_default_threshold_and_env() -> None:
    assert load_settings({}).gc_young_threshold == 50_000
    assert load_settings({"PIPELINE_GC_YOUNG_THRESHOLD": "0"}).gc_young_threshold == 0


def test_tune_gc_freezes_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_gc(12_345)
        assert gc.get_threshold() == (12_345, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        _restore(before)


def test_zero_keeps_python_defaults() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    try:
        tune_gc(0)
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == frozen
    finally:
        _restore(before)
