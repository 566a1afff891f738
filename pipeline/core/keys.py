"""Table keys and their partitions: which partition the default Kafka partitioner (murmur2) gives a
key, and the per-partition metadata keys the stage drivers keep next to their data keys."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_of(key: str, partitions: int) -> int:
    """The partition the default Kafka partitioner (murmur2) gives ``key``: as for producers and changelogs."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def partition_meta_key(partition: int, partitions: int) -> str:
    """A table key that the murmur2 partitioner maps to ``partition``: the partition's own metadata.

    Agents keep per-partition bookkeeping (clocks, watermarks) in their table under
    this key, so it is restored from the changelog with the partition's other keys.
    Keys start with ``"\\x00"``, never a customer id or a ``dimension=value`` key.
    """
    i = 0
    while True:
        key = f"\x00partition/{partition}/{i}"
        if partition_of(key, partitions) == partition:
            return key
        i += 1


def is_meta_key(key: str) -> bool:
    return key.startswith("\x00")
