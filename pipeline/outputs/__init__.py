"""Output records: enriched events, dead letters (and, later, alerts)."""
