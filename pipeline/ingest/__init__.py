"""Ingest: raw Kafka bytes → validated, normalised events or dead-letter reasons."""
