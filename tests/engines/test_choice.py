"""The engine rule: which engine ``[data] engine = "auto"`` gives each kind of source."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from insightos_utils import engines
from insightos_utils.engines import choice
from insightos_utils.errors import InputError
from insightos_utils.leads import features

from .conftest import AS_OF, WINDOW_DAYS, edge_company, to_folder


def events_file(folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table({"user_id": pa.array(["u"] * rows), "event_name": pa.array(["x"] * rows)})
    pq.write_table(table, folder / "events.parquet")
    return folder


def test_auto_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(choice, "AUTO_DUCKDB_EVENTS", 100)
    assert engines.choose_engine("auto", events_file(tmp_path / "small", 100)) == "memory"
    assert engines.choose_engine("auto", events_file(tmp_path / "large", 101)) == "duckdb"
    csv_folder = tmp_path / "csv"
    csv_folder.mkdir()
    (csv_folder / "events.csv").write_text("user_id,event_name\n" + "u,x\n" * 10)
    monkeypatch.setattr(choice, "AUTO_DUCKDB_CSV_BYTES", 30)
    assert engines.choose_engine("auto", csv_folder) == "duckdb"
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert engines.choose_engine("auto", url) == "source"
    assert engines.choose_engine("auto", "sqlite:///company.sqlite") == "memory"
    assert engines.choose_engine("spark", tmp_path / "large") == "spark"
    assert engines.choose_engine("auto", "s3a://bucket/company") == "spark"
    with pytest.raises(InputError, match="lake URI"):
        engines.choose_engine("duckdb", "gs://bucket/company")


def test_explicit_engines_checked_against_the_source(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        engines.choose_engine("source", tmp_path)
    with pytest.raises(InputError, match="choose engine 'source'"):
        engines.choose_engine("duckdb", "postgresql://h/db")
    with pytest.raises(InputError, match="not one of"):
        engines.choose_engine("polars", tmp_path)
    with pytest.raises(InputError, match="in-memory"):
        engines.open_source(events_file(tmp_path / "f", 3), "memory")


def test_users_given_as_a_frame_keep_their_order(tmp_path: Path) -> None:
    tables = edge_company()
    spec = features.fit_feature_spec(tables["users"], tables["events"], AS_OF, WINDOW_DAYS, 3)
    folder = to_folder(tables, tmp_path / "lake")
    users = tables["users"].iloc[::-1]
    got = engines.event_aggregates(folder, spec, AS_OF, users=users, engine="duckdb")
    expected = features.build_feature_table(users, tables["events"], spec, AS_OF)
    assert list(got.index) == list(expected.index)
    pd.testing.assert_frame_equal(got, expected[list(got.columns)], check_index_type=False)
    vocabulary = engines.fit_vocabulary(folder, AS_OF, WINDOW_DAYS, users=users, engine="duckdb")
    assert vocabulary.n_users == len(expected)


def test_duckdb_resources_are_applied(tmp_path: Path) -> None:
    folder = to_folder(edge_company(), tmp_path / "lake")
    settings = engines.EngineSettings(
        memory_limit="300MB", temp_directory=str(tmp_path / "spill"), threads=1
    )
    with engines.open_source(folder, "duckdb", settings) as source:
        limit = source.backend.raw_sql("SELECT current_setting('memory_limit')").fetchone()[0]
        threads = source.backend.raw_sql("SELECT current_setting('threads')").fetchone()[0]
        spill = source.backend.raw_sql("SELECT current_setting('temp_directory')").fetchone()[0]
    assert limit.replace(" ", "") in ("286.1MiB", "300.0MB") and int(threads) == 1
    assert spill == str(tmp_path / "spill")


@pytest.mark.slow
@pytest.mark.extended  # `make test-slow`: a Spark session of its own reading a file:// lake
def test_spark_reads_a_lake_uri(tmp_path: Path, spark) -> None:
    """A lake given as a URI (here ``file://``; ``s3a://`` etc. on a cluster) goes to Spark."""
    tables = edge_company()
    spec = features.fit_feature_spec(tables["users"], tables["events"], AS_OF, WINDOW_DAYS, 3)
    folder = to_folder(tables, tmp_path / "lake")
    with engines.open_source(f"file://{folder}", "auto", spark=spark) as source:
        assert source.engine == "spark" and source.transactions is not None
        got = engines.event_aggregates(source, spec, AS_OF)
    expected = features.build_feature_table(tables["users"], tables["events"], spec, AS_OF)
    pd.testing.assert_frame_equal(
        got, expected[list(got.columns)].sort_index(), check_index_type=False
    )
