"""The tables' changelogs are written and read with the same codecs: raw keys, the versioned state encoding of pipeline.codec (broker-free)."""

from pipeline.app import build
from pipeline.config import load_settings


def test_changelog_codecs_match_table_codecs():
    pipe = build(load_settings({}))
    for table in pipe.app.tables.values():
        topic = table.changelog_topic
        assert (table.key_serializer, table.value_serializer) == ("raw", "state")
        assert (topic.key_serializer, topic.value_serializer) == ("raw", "state")
        assert (topic.schema.key_serializer, topic.schema.value_serializer) == ("raw", "state")
        assert table.use_partitioner

