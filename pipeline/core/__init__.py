"""Foundations every stage uses, importing nothing else of the pipeline: time parsing
(``timeparse``), the bounds of numbers and times (``bounds``) and redaction of personal data
(``redact``)."""
