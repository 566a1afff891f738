"""The producer's partitioner picks exactly aiokafka's default partition for every key (issue 17)."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner

from pipeline.agents.partitioner import KeyHashPartitioner
from pipeline.app import make_faust_app
from pipeline.config import load_settings


def test_same_partition_as_the_default_for_every_key_and_count():
    default, cached = DefaultPartitioner(), KeyHashPartitioner(size=50)
    rnd = random.Random(3)
    keys = [f"cust-{i}".encode() for i in range(300)] + [b"", "고객-7".encode(), bytes(range(256))]
    for _ in range(2):  # the second pass reads remembered hashes (and starts over when full)
        for key in keys:
            for n in (1, 3, 4, 12):
                parts = list(range(n))
                assert cached(key, parts, parts) == default(key, parts, parts)
        rnd.shuffle(keys)
    assert len(cached.hashes) <= 50


def test_no_key_goes_to_a_random_available_partition():
    cached = KeyHashPartitioner()
    assert {cached(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert cached.hashes == {}


def test_the_app_uses_it():
    app = make_faust_app(load_settings({}))
    assert isinstance(app.conf.producer_partitioner, KeyHashPartitioner)
