"""Event-driven customer-feedback pipeline on Apache Kafka and Faust.

Data flow (imports point one way, top to bottom):
``ingest`` (decode, validate, normalise) → ``classify`` → ``segment`` →
aggregates / commitments / churn → ``outputs`` (enriched events, dead
letters, alerts).  ``app``/``agents`` wire them to Faust; ``cli`` is the edge.
"""

__version__ = "0.1.0"
