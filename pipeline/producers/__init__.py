"""Event producers: real-data adapters (Olist), a simulator and the Kafka publisher."""
