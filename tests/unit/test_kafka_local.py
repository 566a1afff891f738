"""LocalKafka helpers that need no broker."""

from __future__ import annotations


def test_local_kafka_cluster_ids_never_start_with_a_dash():
    from pipeline.kafka_local import _cluster_id

    ids = [_cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)
