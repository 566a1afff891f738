"""Pure, typed per-partition drivers of the two stages: records and state in; sends, table writes
and metric counts out.  The Faust edge (``pipeline/agents/``) only moves bytes between Kafka and
these (issue 16)."""
