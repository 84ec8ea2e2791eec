"""Which engine computes the per-user tables, and with what resources.

The rule for ``[data] engine = "auto"`` (``choose_engine``):

- a SQL URL (``--source``) → ``"source"``: the database computes, only per-user rows come out.
  SQLite is the exception: it is the embedded default for small companies and has no interval
  arithmetic worth pushing down to, so a ``sqlite://`` URL → ``"memory"``.
- a folder whose events table is large → ``"duckdb"``: more than ``AUTO_DUCKDB_EVENTS`` rows
  (Parquet: read from the file footer, no data read), or a CSV larger than
  ``AUTO_DUCKDB_CSV_BYTES``.
- any other folder → ``"memory"`` (today's numpy path: fastest on small data, no start-up).

- a lake URI (``s3a://``, ``gs://``, ``hdfs://``, ``abfss://``, ``file://``) → ``"spark"``.

Otherwise ``"spark"`` is never chosen automatically: a Spark cluster is something a user points
at on purpose. An explicit ``"memory"``, ``"duckdb"``, ``"source"`` or ``"spark"`` is taken as given,
checked against the kind of source (``"source"`` needs a URL; ``"duckdb"`` and ``"spark"`` a
folder).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from insightos_utils.errors import InputError

ENGINES: tuple[str, ...] = ("auto", "memory", "duckdb", "source", "spark")
AUTO_DUCKDB_EVENTS = 20_000_000  # above this many event rows a folder goes to DuckDB
AUTO_DUCKDB_CSV_BYTES = 2 * 10**9  # ~20,000,000 contract event rows of CSV text


@dataclass(frozen=True)
class EngineSettings:
    """Resources an engine may use. ``None`` means the engine's own default.

    ``memory_limit`` (e.g. ``"3GB"``): DuckDB spills to ``temp_directory`` beyond it (out of
    core); Spark gets it as driver memory. ``threads``: worker threads (DuckDB) or local cores
    (Spark, ``local[threads]``).
    """

    memory_limit: str | None = None
    temp_directory: str | None = None
    threads: int | None = None

    def spill_directory(self) -> str:
        """Where DuckDB spills: the given folder, else ``<system temp>/insightos-duckdb``."""
        folder = self.temp_directory or os.path.join(tempfile.gettempdir(), "insightos-duckdb")
        Path(folder).mkdir(parents=True, exist_ok=True)
        return folder


LAKE_SCHEMES: tuple[str, ...] = ("s3", "s3a", "gs", "hdfs", "abfs", "abfss", "file")


def is_lake_uri(location: str | Path) -> bool:
    """True for a lake folder URI (``s3a://bucket/company``, ``hdfs://...``): Spark reads it."""
    return isinstance(location, str) and location.split("://", 1)[0] in LAKE_SCHEMES


def is_url(location: str | Path) -> bool:
    """True for a SQLAlchemy-style database URL (``scheme://...``, not a lake URI)."""
    return isinstance(location, str) and "://" in location and not is_lake_uri(location)


def _events_size(folder: Path) -> tuple[int | None, int | None]:
    """(rows of events.parquet, bytes of events.csv); None where that file is absent."""
    parquet, csv = folder / "events.parquet", folder / "events.csv"
    rows = None
    if parquet.exists():
        try:
            rows = pq.ParquetFile(parquet).metadata.num_rows
        except (OSError, ValueError):  # ArrowInvalid: unreadable; ingest says so in its words
            rows = None
    size = csv.stat().st_size if csv.exists() else None
    return rows, size


def choose_engine(requested: str, location: str | Path) -> str:
    """The engine that will compute for ``location`` (a folder or a SQL URL); see the module
    docstring for the ``"auto"`` rule."""
    if requested not in ENGINES:
        raise InputError(f"[data] engine: {requested!r} is not one of {', '.join(ENGINES)}")
    url = is_url(location)
    if requested == "auto":
        if url:
            return "memory" if str(location).startswith("sqlite") else "source"
        if is_lake_uri(location):
            return "spark"
        rows, size = _events_size(Path(location))
        large = (rows or 0) > AUTO_DUCKDB_EVENTS or (size or 0) > AUTO_DUCKDB_CSV_BYTES
        return "duckdb" if large else "memory"
    if requested == "source" and not url:
        raise InputError(
            f"[data] engine = 'source' computes inside a database, but {location} is a folder; "
            "give --source URL, or choose engine 'duckdb' for a folder"
        )
    if requested == "duckdb" and is_lake_uri(location):
        raise InputError(
            f"[data] engine = 'duckdb' reads local folders; {location} is a lake URI: "
            "choose engine 'spark' (or 'auto')"
        )
    if requested in ("duckdb", "spark") and url:
        raise InputError(
            f"[data] engine = {requested!r} reads a folder of Parquet/CSV files, but the data is "
            "in a database; choose engine 'source' (or 'auto') for a database URL"
        )
    return requested
