"""The event collector (``insightos serve``): browser and back-end events into the raw tables.

``app`` (the FastAPI application and ``serve``), ``models`` (the payloads), ``security`` (keys,
throttling, origins), ``store`` (the raw contract's ``users`` and ``events`` in SQL, events of
unknown users held apart), ``openapi`` (the published document). What the collector writes is
the raw contract, so ``insightos ingest --source URL`` reads captured events like files.
"""

from insightos_utils.collector.app import create_app, serve

__all__ = ["create_app", "serve"]
