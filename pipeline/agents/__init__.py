"""Faust agents.  Each module registers its topics, tables and agent on an app:

* :mod:`.ingest` — per-customer agent (validate, classify, segment, commitments,
  churn, enriched output, stage-1 partial counts);
* :mod:`.aggregate` — per-segment agent (stage 2: windows, watermark, finals, surges).
"""
