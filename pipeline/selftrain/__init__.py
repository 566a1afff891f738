"""``python -m pipeline self-train``: sentiment that learns from the operator's own scored feedback (issue 20).

:mod:`.settings` reads ``PIPELINE_SELF_TRAIN_*``; :mod:`.trainer` is the Kafka edge around the pure
:mod:`pipeline.classify.selftrain`.
"""
