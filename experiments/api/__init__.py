"""HTTP APIs: the trainer's ingestion endpoints (``ingest.py``); the users' REST API lives beside it."""
