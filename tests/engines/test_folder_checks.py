"""The DuckDB checks' column rules against the file path's (``ingest.fastpath``), value by value."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from insightos_utils.engines.folder_checks import DuckColumn
from insightos_utils.ingest import fastpath

STAMPS = [
    "2024-01-05",
    " 2024-01-01 10:00 ",
    "2024-01-01T10:00:00 +02:00",
    "2024-01-01T10:00:00+02",
    "2024-01-01T10:00:00+0530",
    "2024-01-01 10:00 Z",
    "2024-01-01T10:00:00-03:00",
    "2024-01-01T10:00:00.123456789+00:00",
    "\t2024-01-01T10:00:00Z\n",
    "2024-01-01T10:00:00z",
    "2024-01-01T10:00:00,5Z",
    "2024-13-01",
    "2024-01-01T25:00:00",
    "03/05/2024",
    "yesterday",
    "",
]
JSON_TEXTS = [
    "",
    "  ",
    "null",
    " null ",
    "{}",
    '{"a": 1}',
    '{"a": {"b": [1, 2]}}',
    '{"a": }',
    '"text"',
    "[1, 2]",
    "1",
    "{'a': 1}",
    '{"a": 1} x',
]


def duck_values(column: DuckColumn, values: list[str], what: str) -> list:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.register("raw", pd.DataFrame({column.name: values}))
    rows = connection.execute(f"SELECT {what} FROM raw AS src").fetchall()
    connection.close()
    return [row[0] for row in rows]


@pytest.mark.parametrize("order", ["as_listed", "reversed"])
def test_text_timestamps_parse_as_the_file_path_parses(order: str) -> None:
    values = STAMPS if order == "as_listed" else STAMPS[::-1]
    column = DuckColumn("occurred_at", "timestamp", "VARCHAR")
    got = pd.Series(
        pd.to_datetime(duck_values(column, values, column.value)), dtype="datetime64[us]"
    )
    expected = fastpath.parse_timestamps(pd.Series(values, dtype="str"))
    pd.testing.assert_series_equal(got, expected, check_names=False)
    assert got.notna().sum() == 9  # the readable ones above, none invented


def test_json_objects_are_recognised_as_the_file_path_does() -> None:
    column = DuckColumn("properties", "json", "VARCHAR")
    got = duck_values(column, JSON_TEXTS, column.json_ok)
    expected = fastpath.json_object_mask(pd.Series(JSON_TEXTS, dtype="str")).tolist()
    assert got == expected and got.count(True) == 7
    empty = duck_values(column, JSON_TEXTS, column.json_empty)
    assert empty == fastpath.json_empty_mask(pd.Series(JSON_TEXTS, dtype="str")).tolist()
