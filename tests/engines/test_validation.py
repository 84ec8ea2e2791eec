"""Ingest's checks run inside PostgreSQL: the same reasons, counts and lines as the file path.

Every bad-input case of the file path (``test_ingest.BAD_ROWS``) is put into PostgreSQL as text
tables; the database checks must report what ``ingest`` reports for the same rows as CSV.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from insightos_utils import engines
from insightos_utils.config import DataConfig
from insightos_utils.engines.sources import open_source
from insightos_utils.engines.validation import validate_database
from insightos_utils.errors import InputError
from insightos_utils.ingest import ingest, read_processed
from insightos_utils.leads import features


def _file_path_cases():  # the file path's own bad-input cases (tests/ingest/test_ingest.py)
    path = Path(__file__).resolve().parents[1] / "ingest" / "test_ingest.py"
    spec = importlib.util.spec_from_file_location("file_path_ingest_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in it need their module registered
    spec.loader.exec_module(module)
    return module


cases = _file_path_cases()
BAD_ROWS, INSERT_AT, company = cases.BAD_ROWS, cases.INSERT_AT, cases.company
with_bad_row, write_raw, _typed_company = cases.with_bad_row, cases.write_raw, cases._typed_company
write_with_core = cases.write_with_core
ALL = DataConfig(max_reject_share=1.0)

pytestmark = pytest.mark.postgres
COMPARED = (
    "rows_read",
    "duplicates",
    "rejected",
    "rejected_rows",
    "user_rejected_rows",
    "reject_share",
    "rows_written",
    "date_range",
    "implausible_timestamps",
)


def to_text_tables(url: str, tables: dict[str, pd.DataFrame]) -> None:
    engine = sa.create_engine(url)
    try:
        for name, frame in tables.items():
            frame.to_sql(name, engine, index=False)
    finally:
        engine.dispose()


NOW = pd.Timestamp("2026-12-01 12:00:00")  # one clock for both paths: plausible_to compares


def file_path_report(tables: dict[str, pd.DataFrame], tmp_path: Path) -> tuple[dict, Path]:
    out = tmp_path / "files-out"
    raw = write_raw(tmp_path / "files-raw", tables)
    ingest(out, raw_dir=raw, config=ALL, show_progress=False, now=NOW)  # never over 100%
    return json.loads((out / "ingest_report.json").read_text()), out


def assert_same_as_files(database: dict, files: dict) -> None:
    for name, entry in files["tables"].items():
        got = database["tables"][name]
        assert got["present"] == entry["present"], name
        if not entry["present"]:
            continue
        for key in COMPARED:
            assert got.get(key) == entry.get(key), (name, key, got.get(key), entry.get(key))
        assert got["columns"] == entry["columns"] and got["extra_columns"] == entry["extra_columns"]


@pytest.mark.parametrize("name", list(BAD_ROWS))
def test_each_bad_row_case_same_as_file_path(
    name: str, postgres_schema_url: str, tmp_path: Path
) -> None:
    case = BAD_ROWS[name]
    tables = with_bad_row(case)
    to_text_tables(postgres_schema_url, tables)
    files, out = file_path_report(tables, tmp_path)

    checked = validate_database(postgres_schema_url, ALL, now=NOW)
    assert checked.report["status"] == "ok"
    assert_same_as_files(checked.report, files)
    rejected = checked.rejected[case.table]
    assert rejected["reason"].tolist() == [case.reason]
    assert rejected["line"].tolist() == [INSERT_AT + 2]
    file_rejects = pd.read_csv(out / f"rejected_{case.table}.csv", dtype=str, keep_default_na=False)
    for column, value in case.row.items():
        assert rejected.loc[0, column] == value == file_rejects.loc[0, column]

    failed = validate_database(postgres_schema_url)  # default max_reject_share 1%
    assert failed.report["status"] == "failed"
    message = failed.report["error"]
    assert f"table {case.table}" in message and f"line {INSERT_AT + 2}" in message
    assert case.reason in message and case.column in message


def test_redelivered_and_rejected_user_same_as_file_path(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    tables = company()
    events = tables["events"]
    tables["events"] = pd.concat([events, events.iloc[[3, 3, 7]]], ignore_index=True)
    tables["users"].loc[0, "created_at"] = "not a date"  # u01: its events and transactions go
    to_text_tables(postgres_schema_url, tables)
    files, _ = file_path_report(tables, tmp_path)
    checked = validate_database(postgres_schema_url, ALL, now=NOW)
    assert_same_as_files(checked.report, files)
    assert checked.report["tables"]["events"]["duplicates"] == 3
    assert checked.report["tables"]["events"]["rejected"] == {"user_rejected": 3}
    assert checked.drops_rows


def test_typed_timestamptz_tables_same_as_file_path(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    write_with_core(postgres_schema_url, _typed_company())
    files, _ = file_path_report(company(), tmp_path)
    checked = validate_database(postgres_schema_url)
    assert checked.report["status"] == "ok" and not checked.drops_rows
    assert_same_as_files(checked.report, files)


def test_reject_cap_keeps_counts_exact(postgres_schema_url: str) -> None:
    tables = company()
    tables["events"].loc[:9, "occurred_at"] = "soon"
    to_text_tables(postgres_schema_url, tables)
    checked = validate_database(postgres_schema_url, ALL, reject_cap=3)
    entry = checked.report["tables"]["events"]
    assert entry["rejected"] == {"bad_occurred_at": 10} and entry["rejected_rows_returned"] == 3
    assert checked.rejected["events"]["line"].tolist() == [2, 3, 4]


def test_missing_table_and_column_are_input_errors(postgres_schema_url: str) -> None:
    tables = company()
    to_text_tables(postgres_schema_url, {"users": tables["users"]})
    with pytest.raises(InputError, match="required table 'events' is missing"):
        validate_database(postgres_schema_url)
    to_text_tables(postgres_schema_url, {"events": tables["events"].drop(columns="occurred_at")})
    with pytest.raises(InputError, match="'occurred_at' missing"):
        validate_database(postgres_schema_url)


def test_engines_read_the_clean_rows(postgres_schema_url: str, tmp_path: Path) -> None:
    """Aggregates pushed down onto text tables with bad rows and redeliveries equal the file
    path's: ingest's Parquet, then the in-memory feature code."""
    tables = with_bad_row(BAD_ROWS["orphan_event"])
    events = tables["events"]
    tables["events"] = pd.concat([events, events.iloc[[3, 3]]], ignore_index=True)
    tables["users"].loc[4, "status"] = "customer"  # rejected user: its events go too
    to_text_tables(postgres_schema_url, tables)
    _, out = file_path_report(tables, tmp_path)
    data = read_processed(out)
    as_of = features.resolve_as_of(data.users, data.events, None)
    spec = features.fit_feature_spec(data.users, data.events, as_of, min_event_users=2)
    expected = features.build_feature_table(data.users, data.events, spec, as_of)
    columns = [*spec.event_feature_columns, *features.BEHAVIOURAL_COLUMNS, *spec.key_events]

    checked = validate_database(postgres_schema_url, ALL, now=NOW)
    with open_source(postgres_schema_url, "source", validation=checked) as source:
        got = engines.event_aggregates(source, spec, as_of)
        assert engines.latest_timestamp(source) == as_of
    pd.testing.assert_frame_equal(got, expected[columns].sort_index(), check_index_type=False)
