"""Per-user tables computed where the data lives: DuckDB over files, the source database, Spark.

One set of expressions (Ibis) for the event aggregates of the feature table, the event
vocabulary the feature spec learns, and the RFM summary; each engine executes them and only
per-user (or per-name) rows come back. The in-memory pandas path stays in the feature and RFM
modules (engine ``"memory"``); ``choose_engine`` says which engine a source gets.

Modules: ``choice`` (the engine rule, resources), ``sources`` (tables opened on an engine),
``aggregates`` (event columns, vocabulary), ``rfm`` (RFM summary), ``activity`` (the product
stage's early activity), ``validation`` (ingest's contract checks as SQL in the database).
"""

from insightos_utils.engines.aggregates import (
    EventSpec,
    Vocabulary,
    event_aggregates,
    fit_vocabulary,
    latest_timestamp,
)
from insightos_utils.engines.choice import ENGINES, EngineSettings, choose_engine
from insightos_utils.engines.rfm import rfm
from insightos_utils.engines.sources import EngineTables, open_source
from insightos_utils.engines.validation import DatabaseValidation, validate_database

__all__ = [
    "ENGINES",
    "DatabaseValidation",
    "EngineSettings",
    "EngineTables",
    "EventSpec",
    "Vocabulary",
    "choose_engine",
    "event_aggregates",
    "fit_vocabulary",
    "latest_timestamp",
    "open_source",
    "rfm",
    "validate_database",
]
