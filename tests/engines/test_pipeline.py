"""The engines inside the pipeline: ingest records ``[data] engine``, and the feature build, the
as-of and the RFM summary the notebooks call give the in-memory results on every engine.

A small synthetic company (400 users, seed 7) is ingested from CSV with each engine, or loaded
into PostgreSQL as text tables (COPY, so the rows keep the file's order) and ingested from
there; the callers are the pipeline's own (``features.*``, ``ltv.rfm_summary``), unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from insightos_utils.config import DataConfig, PipelineConfig
from insightos_utils.engines import pipeline
from insightos_utils.ingest import events_per_week, ingest, read_processed
from insightos_utils.leads import features
from insightos_utils.ltv.rfm import rfm_summary
from insightos_utils.product.stage import (
    CAMPAIGN_FILE,
    DRIVERS_FILE,
    FRICTION_FILE,
    FUNNEL_FILE,
    run_product,
)

from .conftest import _copy_rows

N_USERS = 400


@pytest.fixture(scope="module")
def small_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from insightos_utils.synth import write_company

    out = tmp_path_factory.mktemp("small_raw")
    write_company(out, n_users=N_USERS, seed=7)
    return out


def to_postgres_text(raw: Path, url: str) -> str:
    """The raw CSV tables as text tables in the schema of ``url``, rows in the file's order."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        for path in sorted(raw.glob("*.csv")):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame.to_sql(path.stem, engine, index=False, method=_copy_rows)
    finally:
        engine.dispose()
    return url


def pipeline_results(processed: Path) -> dict[str, Any]:
    """What 02/03/04 compute from the processed folder, through the pipeline's own calls."""
    data = read_processed(processed)
    events = features.encode_events(data.events)
    as_of = features.resolve_as_of(data.users, events, None)
    spec = features.fit_feature_spec(data.users, events, as_of)
    keyed = features.fit_feature_spec(data.users, events, as_of, 7, 5, n_key_events=3)
    earlier = as_of - pd.Timedelta(days=60)  # the backtest's as-of
    assert data.transactions is not None
    return {
        "engine": pipeline.engine_of(data.users),
        "as_of": as_of,
        "spec": spec,
        "keyed": keyed,
        "table": features.build_feature_table(data.users, events, spec, as_of),
        "keyed_table": features.build_feature_table(data.users, events, keyed, as_of),
        "earlier": features.build_feature_table(data.users, events, spec, earlier),
        "rfm": rfm_summary(data.transactions, as_of - pd.Timedelta(days=90), as_of, "W"),
        "rfm_days": rfm_summary(data.transactions, as_of, None, "D"),
    }


def assert_same_results(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert got["as_of"] == expected["as_of"]
    assert got["spec"] == expected["spec"] and got["keyed"] == expected["keyed"]
    for name in ("table", "keyed_table", "earlier"):
        pd.testing.assert_frame_equal(got[name], expected[name], rtol=0, atol=0)
    for name in ("rfm", "rfm_days"):  # sums in the engine's order: to rounding
        pd.testing.assert_frame_equal(got[name], expected[name], rtol=1e-12)


@pytest.fixture(scope="module")
def memory_results(small_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("memory")
    report = ingest(out, raw_dir=small_raw, config=DataConfig(), show_progress=False)
    assert report["engine"]["name"] == "memory"  # auto, a small folder
    results = pipeline_results(out)
    results["data"] = read_processed(out)
    results["processed"] = out
    assert results["engine"] is None  # the numpy path: no engine reference at all
    assert results["spec"].excluded_events and len(results["table"]) == N_USERS
    assert results["table"]["events_other"].sum() > 0 and len(results["rfm"]) > 20
    return results


def test_duckdb_engine_gives_the_memory_tables(
    small_raw: Path, memory_results: dict[str, Any], tmp_path: Path
) -> None:
    report = ingest(
        tmp_path / "p", raw_dir=small_raw, config=DataConfig(engine="duckdb"), show_progress=False
    )
    assert report["engine"]["name"] == "duckdb" and report["engine"]["events_copied"]
    assert report["tables"]["events"]["validated_in"] == "duckdb"
    got = pipeline_results(tmp_path / "p")
    assert got["engine"] is not None and got["engine"].engine == "duckdb"
    assert_same_results(got, memory_results)
    # no event row is loaded: an empty placeholder carries the engine to every consumer
    data, expected = read_processed(tmp_path / "p"), memory_results["data"]
    assert data.events.empty and list(data.events.columns) == list(expected.events.columns)
    assert features.encode_events(data.events) is data.events
    pd.testing.assert_frame_equal(data.users, expected.users)
    weekly = events_per_week(data.events)  # 01_ingest's chart, counted by DuckDB
    pd.testing.assert_series_equal(weekly, events_per_week(expected.events), check_index_type=False)
    assert pipeline.engine_of(data.events) == pipeline.engine_of(data.users)


def test_data_hash_on_an_engine_covers_the_events_where_they_are(
    small_raw: Path, memory_results: dict[str, Any], tmp_path: Path
) -> None:
    from insightos_utils.leads.card import DATA_HASH_RULE, data_hash, data_hash_rule

    expected = memory_results["data"]
    assert data_hash_rule(expected.events) == DATA_HASH_RULE  # the in-memory rule, unchanged
    hashes = {}
    for name, drop in (("same", None), ("one_event_less", 5)):
        raw = tmp_path / f"raw-{name}"
        raw.mkdir()
        for path in small_raw.glob("*.csv"):
            lines = path.read_text().splitlines(keepends=True)
            if drop is not None and path.stem == "events":
                del lines[drop]
            (raw / path.name).write_text("".join(lines))
        ingest(
            tmp_path / name, raw_dir=raw, config=DataConfig(engine="duckdb"), show_progress=False
        )
        data = read_processed(tmp_path / name)
        assert "duckdb engine" in data_hash_rule(data.events)
        hashes[name] = data_hash(data.users, data.events)
    again = read_processed(tmp_path / "same")
    assert data_hash(again.users, again.events) == hashes["same"]  # stable
    assert hashes["one_event_less"] != hashes["same"]  # only an event changed: a new hash
    assert hashes["same"] != data_hash(expected.users, expected.events)  # another rule


def test_a_moved_processed_folder_is_read_where_it_is(small_raw: Path, tmp_path: Path) -> None:
    """A run's folder is renamed when published: the engine reads the folder it is given."""
    ingest(
        tmp_path / "a", raw_dir=small_raw, config=DataConfig(engine="duckdb"), show_progress=False
    )
    (tmp_path / "a").rename(tmp_path / "b")
    data = read_processed(tmp_path / "b")
    ref = pipeline.engine_of(data.users)
    assert ref is not None and ref.location == str((tmp_path / "b").resolve())
    events = pd.read_parquet(tmp_path / "b" / "events.parquet")  # what the engine reads
    assert features.resolve_as_of(data.users, data.events, None) == features.resolve_as_of(
        pipeline.plain(data.users), events, None
    )


@pytest.mark.postgres
def test_source_engine_computes_in_postgres_and_keeps_the_events_there(
    small_raw: Path, memory_results: dict[str, Any], postgres_schema_url: str, tmp_path: Path
) -> None:
    url = to_postgres_text(small_raw, postgres_schema_url)
    out = tmp_path / "p"
    report = ingest(out, source_url=url, config=DataConfig(), show_progress=False)
    assert report["engine"]["name"] == "source" and not report["engine"]["events_copied"]
    assert report["validated_in"] == "database"
    assert report["tables"]["events"]["validated_in"] == "database"
    assert not (out / "events.parquet").exists()
    got = pipeline_results(out)
    assert got["engine"] is not None and got["engine"].engine == "source"
    data = read_processed(out)
    assert data.events.empty and data.transactions is not None
    expected = memory_results["data"]
    for name in ("users", "transactions", "campaign_spend"):  # copied out, typed alike
        pd.testing.assert_frame_equal(getattr(data, name), getattr(expected, name))
    assert_same_results(got, memory_results)
    weekly = events_per_week(data.events)  # 01_ingest's chart, counted in the database
    expected_weekly = events_per_week(expected.events)
    pd.testing.assert_series_equal(weekly, expected_weekly, check_index_type=False)
    assert weekly.sum() == report["tables"]["events"]["rows_written"]
    # 05_product: the funnel counted in the database, the same outputs as from the files
    memory_run = run_product(tmp_path / "files_run", _product_config(memory_results["processed"]))
    database_run = run_product(tmp_path / "database_run", _product_config(out))
    assert memory_run.ok and database_run.ok, database_run.record
    for name in (FUNNEL_FILE, DRIVERS_FILE, FRICTION_FILE, CAMPAIGN_FILE):
        expected_table = pd.read_csv(tmp_path / "files_run" / name)
        assert len(expected_table) >= 2, name
        got_table = pd.read_csv(tmp_path / "database_run" / name)
        pd.testing.assert_frame_equal(got_table, expected_table, rtol=1e-12)

    from insightos_utils.leads.card import data_hash, data_hash_rule

    # the events are in the model's data_hash, fingerprinted in the database
    assert "source engine" in data_hash_rule(data.events)
    fingerprint = pipeline.events_fingerprint(pipeline.engine_of(data.events))
    assert fingerprint.startswith(f"source:{report['tables']['events']['rows_written']}:")
    assert data_hash(data.users, data.events) == data_hash(data.users, data.events)


def _product_config(processed: Path) -> PipelineConfig:
    return PipelineConfig().with_overrides(processed_dir=str(processed))


# --- insightos run --source: the whole pipeline ------------------------------------------------


NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _run(workspace: Path, config: PipelineConfig, name: str) -> Path:
    from insightos_utils import runner

    return runner.run_pipeline(
        config,
        out_dir=workspace / name,
        notebooks_dir=NOTEBOOKS,
        reports_dir=workspace / "reports",
        cwd=workspace,
        show_progress=False,
        lock_timeout=60,
    )


def _numbers(document: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a JSON document by its path (timestamps and run ids are leaves too)."""
    if isinstance(document, dict):
        return {
            k: v
            for key, value in document.items()
            for k, v in _numbers(value, f"{path}/{key}").items()
        }
    if isinstance(document, list):
        return {
            k: v
            for i, value in enumerate(document)
            for k, v in _numbers(value, f"{path}/{i}").items()
        }
    return {path: document}


@pytest.mark.postgres
@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.extended  # two whole runs; `make test-slow` (the engine calls are compared above)
def test_insightos_run_source_gives_the_file_paths_scored_leads_and_ltv(
    small_raw: Path, postgres_schema_url: str, tmp_path: Path
) -> None:
    url = to_postgres_text(small_raw, postgres_schema_url)
    small = dict(bootstrap_samples=50)  # the LTV intervals' refits: the run's longest step
    from_files = _run(
        tmp_path, PipelineConfig().with_overrides(raw_dir=str(small_raw), **small), "files"
    )
    in_database = _run(
        tmp_path, PipelineConfig().with_overrides(raw_dir="", source_url=url, **small), "database"
    )
    report = json.loads((in_database / "processed" / "ingest_report.json").read_text())
    assert report["engine"]["name"] == "source"
    assert not (in_database / "processed" / "events.parquet").exists()
    run = json.loads((in_database / "run.json").read_text())
    assert run["engine"]["name"] == "source" and "@" in run["engine"]["location"]
    assert json.loads((from_files / "run.json").read_text())["engine"]["name"] == "memory"
    leads = pd.read_csv(in_database / "scored_leads.csv")
    expected = pd.read_csv(from_files / "scored_leads.csv")
    assert len(expected) > 10
    # the same leads, scores, grades, ranks and reasons; model_version carries the data hash,
    # which covers the events only where they were copied out (docs/ENGINES.md)
    same = [c for c in expected.columns if c not in ("model_version", "scored_at")]
    pd.testing.assert_frame_equal(leads[same], expected[same])
    assert (
        leads["model_version"].str.split("@").str[0]
        == expected["model_version"].str.split("@").str[0]
    ).all()
    got = _numbers(json.loads((in_database / "ltv_params.json").read_text()))
    want = _numbers(json.loads((from_files / "ltv_params.json").read_text()))
    assert got.keys() == want.keys()
    for key, value in want.items():
        if "/convergence/" in key or any(word in key for word in ("_at", "seconds", "run_id")):
            continue  # the optimiser's path (evaluations, gradient) and clocks
        if isinstance(value, float):  # monetary sums in the database's order: 1e-12 apart,
            assert math.isclose(got[key], value, rel_tol=1e-6, abs_tol=1e-9), key  # fits 1e-7
        else:
            assert got[key] == value, key
    # `insightos score` with the champion: features rebuilt in the database, same scores
    from insightos_utils.leads.scoring import score_command

    model = from_files / "models" / "champion.joblib"
    args = dict(model_path=model, as_of=None, show_progress=False)
    pushed = score_command(out_path=tmp_path / "s1.csv", source_url=url, **args)
    pulled = score_command(out_path=tmp_path / "s2.csv", raw_dir=small_raw, **args)
    same_scores = [c for c in pulled.columns if c not in ("scored_at",)]
    pd.testing.assert_frame_equal(pushed[same_scores], pulled[same_scores])
    stages = json.loads((in_database / "stages.json").read_text())
    assert stages["product"] == {"state": "ok"}  # the funnel counted in the database
    pd.testing.assert_frame_equal(
        pd.read_csv(in_database / FUNNEL_FILE), pd.read_csv(from_files / FUNNEL_FILE), rtol=1e-12
    )
