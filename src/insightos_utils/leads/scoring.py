"""Scoring open leads with a saved champion, without retraining (``insightos score``).

The bundle carries the feature spec it was trained with, so a lead scored today is described
exactly as the training users were. Output follows the contract (``scored_leads.csv``): user_id,
score, grade, rank, top_reasons, model_version, scored_at, plus ``trend`` (against the previous
scoring run, ``leads.trend``), ``window_complete`` (False when the lead signed up less than
one feature window ago, so its events are still being counted) and ``campaign`` (the lead's
acquisition campaign from the feature table, so the expected value needs no second look-up of
the users: ``leads.value``).
"""

from __future__ import annotations

from insightos_utils import _openmp  # noqa: F401  (before scikit-learn and xgboost load)

# isort: split

import tempfile
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

from insightos_utils.errors import InsightOSError
from insightos_utils.ingest import ingest, read_processed
from insightos_utils.io_utils import atomic_write, utc_stamp
from insightos_utils.leads import features
from insightos_utils.leads.bundle import ModelBundle, load_bundle
from insightos_utils.leads.explain import (
    LeadExplanations,
    distinct_rows,
    explain_leads,
    no_explanations,
    uses_distinct_rows,
)
from insightos_utils.leads.trend import with_trend

SCORED_COLUMNS: tuple[str, ...] = (
    "user_id",
    "score",
    "grade",
    "rank",
    "top_reasons",
    "model_version",
    "scored_at",
)
EXTRA_COLUMNS: tuple[str, ...] = ("trend", "window_complete", "campaign")
DB_TABLE = "scored_leads"

__all__ = [
    "DB_TABLE",
    "SCORED_COLUMNS",
    "load_bundle",
    "score_command",
    "score_leads",
    "scoring_summary",
    "upsert_scored_leads",
    "write_scored_leads",
]


@overload
def score_leads(
    bundle: ModelBundle,
    leads: pd.DataFrame,
    *,
    top_n: int | None = ...,
    scored_at: str | None = ...,
    with_explanations: Literal[False] = ...,
) -> pd.DataFrame: ...


@overload
def score_leads(
    bundle: ModelBundle,
    leads: pd.DataFrame,
    *,
    top_n: int | None = ...,
    scored_at: str | None = ...,
    with_explanations: Literal[True],
) -> tuple[pd.DataFrame, LeadExplanations]: ...


def score_leads(
    bundle: ModelBundle,
    leads: pd.DataFrame,
    *,
    top_n: int | None = None,
    scored_at: str | None = None,
    with_explanations: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, LeadExplanations]:
    """Score, grade, rank and explain every row of ``leads`` (feature-table rows, index user_id).

    Pass the open leads (``features.open_leads``). Rank 1 is the highest score (ties by user id);
    rows come back in rank order. ``top_n`` defaults to the bundle's ``top_reasons``. With
    ``with_explanations`` the per-lead contributions come back too (rows in ``leads``' order),
    so a report never explains the leads a second time.
    """
    missing = [f for f in bundle.features if f not in leads.columns]
    if missing:
        raise InsightOSError(
            f"the feature table lacks columns the model was trained on: {missing}; "
            "rebuild features with the bundle's feature spec"
        )
    scored_at = scored_at or utc_stamp()
    top_n = bundle.top_reasons if top_n is None else top_n
    if len(leads) == 0:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in SCORED_COLUMNS + EXTRA_COLUMNS})
        if with_explanations:
            return empty, no_explanations(bundle.features, top_n)
        return empty
    prepared = bundle.prepare(leads)  # once, for both the probability and the reasons
    distinct = None
    if uses_distinct_rows(bundle.pipeline):  # a tree model: score each distinct row once
        distinct = distinct_rows(prepared)
        unique_rows, inverse = distinct
        score = bundle.predict_prepared(unique_rows)[inverse]
    else:
        score = bundle.predict_prepared(prepared)
    explanations = explain_leads(
        bundle.pipeline,
        leads,
        bundle.features,
        window_days=bundle.window_days,
        top_n=top_n,
        reference=bundle.explain_reference,
        prepared=prepared,
        distinct=distinct,
    )
    user_ids = leads.index.astype(str).to_numpy()
    order = np.lexsort((user_ids, -score))  # highest score first, ties by user id
    window_complete = (
        leads["window_complete"].to_numpy(dtype=bool)
        if "window_complete" in leads.columns
        else np.ones(len(leads), dtype=bool)
    )
    score = score[order]  # every column is put in rank order before the frame is built
    scored = pd.DataFrame(
        {
            "user_id": user_ids[order],
            "score": np.round(score, 6),
            "grade": bundle.grade(score),
            "rank": np.arange(1, len(score) + 1, dtype=np.int64),
            "top_reasons": explanations.text.to_numpy()[order],
            "model_version": bundle.model_version,
            "scored_at": scored_at,
            "window_complete": window_complete[order],
        }
    )
    if "campaign" in leads.columns:
        scored["campaign"] = leads["campaign"].array.take(order)
    return (scored, explanations) if with_explanations else scored


def write_scored_leads(scored: pd.DataFrame, path: str | Path) -> Path:
    """Write ``scored_leads.csv`` atomically (contract columns first, then the extras)."""
    columns = [c for c in SCORED_COLUMNS + EXTRA_COLUMNS if c in scored.columns]
    absent = [c for c in SCORED_COLUMNS if c not in scored.columns]
    if absent:
        raise ValueError(f"scored leads lack contract columns {absent}")
    return atomic_write(path, lambda tmp: scored[columns].to_csv(tmp, index=False))


def scoring_summary(scored: pd.DataFrame, out_path: str | Path, db_url: str | None = None) -> str:
    """One line for logs: how many leads, per grade, with which model, written where."""
    grades = scored["grade"].value_counts().reindex(list("ABCD"), fill_value=0)
    per_grade = ", ".join(f"{grade} {count:,}" for grade, count in grades.items())
    version = scored["model_version"].iloc[0] if len(scored) else "no leads"
    where = f"{out_path}" + (f" and table {DB_TABLE}" if db_url else "")
    return f"{len(scored):,} open leads scored ({per_grade}) with {version} into {where}"


# --- database ------------------------------------------------------------------------------------


def _scored_table(metadata: Any) -> Any:
    from sqlalchemy import Boolean, Column, DateTime, Float, Integer, String, Table, Text

    return Table(
        DB_TABLE,
        metadata,
        Column("user_id", String(255), primary_key=True),
        Column("scored_at", DateTime, primary_key=True),
        Column("score", Float, nullable=False),
        Column("grade", String(1), nullable=False),
        Column("rank", Integer, nullable=False),
        Column("top_reasons", Text),
        Column("model_version", String(255), nullable=False),
        Column("window_complete", Boolean),
    )


def upsert_scored_leads(scored: pd.DataFrame, db_url: str, chunk_size: int = 5_000) -> int:
    """Insert or update the scores in table ``scored_leads`` (key: user_id + scored_at).

    Re-running the same scoring run updates its rows instead of duplicating them; each run
    (a new ``scored_at``) adds its own rows, so a CRM or BI tool can read the latest or the
    history. SQLite and PostgreSQL are supported. Returns the number of rows written.
    """
    from sqlalchemy import MetaData, create_engine
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(db_url)
    dialect = engine.dialect.name
    insert: Any
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        raise InsightOSError(
            f"--db {engine.url.render_as_string(hide_password=True)}: upsert supports SQLite "
            f"and PostgreSQL, not {dialect}"
        )
    metadata = MetaData()
    table = _scored_table(metadata)
    records = _db_records(scored)
    statement = insert(table)
    keys = {"user_id", "scored_at"}
    statement = statement.on_conflict_do_update(
        index_elements=["user_id", "scored_at"],
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
    )
    try:
        metadata.create_all(engine, checkfirst=True)
        with engine.begin() as connection:
            for start in range(0, len(records), chunk_size):
                connection.execute(statement, records[start : start + chunk_size])
    except SQLAlchemyError as error:
        raise InsightOSError(
            f"--db {engine.url.render_as_string(hide_password=True)}: could not write table "
            f"{DB_TABLE}: {error.__class__.__name__}: {getattr(error, 'orig', None) or error}"
        ) from error
    finally:
        engine.dispose()
    return len(records)


def _db_records(scored: pd.DataFrame) -> list[dict[str, Any]]:
    frame = pd.DataFrame(
        {
            "user_id": scored["user_id"].astype(str),
            "scored_at": pd.to_datetime(scored["scored_at"], utc=True).dt.tz_localize(None),
            "score": scored["score"].astype(float),
            "grade": scored["grade"].astype(str),
            "rank": scored["rank"].astype(int),
            "top_reasons": scored["top_reasons"].astype(str),
            "model_version": scored["model_version"].astype(str),
            "window_complete": (
                scored["window_complete"].astype(bool) if "window_complete" in scored else True
            ),
        }
    )
    records = frame.astype(object).to_dict(orient="records")
    for record in records:
        record["scored_at"] = record["scored_at"].to_pydatetime()
    return records


# --- the command ---------------------------------------------------------------------------------


def score_command(
    model_path: str | Path,
    out_path: str | Path,
    raw_dir: str | Path | None = None,
    source_url: str | None = None,
    as_of: str | None = None,
    db_url: str | None = None,
    show_progress: bool = True,
    previous_run_dir: str | Path | None = None,
    trend_threshold: float = 0.05,
) -> pd.DataFrame:
    """``insightos score``: ingest the raw source, rebuild features with the bundle's spec at
    as-of, score the open leads, add each lead's ``trend`` against ``previous_run_dir``'s
    scored leads (all ``new`` without one), write the CSV (and upsert into ``--db``)."""
    bundle = load_bundle(model_path)  # first: a wrong --model fails before any work
    with tempfile.TemporaryDirectory(prefix="insightos-score-") as processed_dir:
        ingest(processed_dir, raw_dir=raw_dir, source_url=source_url, show_progress=show_progress)
        processed = read_processed(processed_dir)
        # inside: with an engine other than memory the features are computed over this folder
        stand_at = features.resolve_as_of(processed.users, processed.events, as_of)
        spec = features.FeatureSpec.from_dict(bundle.feature_spec)
        table = features.build_feature_table(processed.users, processed.events, spec, stand_at)
    scored = score_leads(bundle, features.open_leads(table))
    scored, _ = with_trend(scored, previous_run_dir, trend_threshold)
    write_scored_leads(scored, out_path)
    if db_url:
        upsert_scored_leads(scored, db_url)
    return scored
