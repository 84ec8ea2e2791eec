"""The run's metadata helpers: the data window from Parquet statistics, without reading rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from insightos_utils.runner import meta


def test_data_window_comes_from_row_group_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamps = pd.to_datetime(["2024-03-05", "2024-01-02", "2024-07-09", None, "2024-02-01"])
    events = pd.DataFrame({"occurred_at": stamps.astype("datetime64[us]")})
    events.to_parquet(tmp_path / "events.parquet", row_group_size=2)
    assert pq.ParquetFile(tmp_path / "events.parquet").metadata.num_row_groups == 3
    users = pd.DataFrame(
        {"created_at": pd.to_datetime(["2023-12-31 10:00"]).astype("datetime64[us]")}
    )
    users.to_parquet(tmp_path / "users.parquet")
    expected = {"start": "2023-12-31T10:00:00", "end": "2024-07-09T00:00:00"}

    def no_rows(*args: object, **kwargs: object) -> None:
        raise AssertionError("the rows were read")

    monkeypatch.setattr(pq, "read_table", no_rows)
    assert meta.data_window(tmp_path) == expected
    monkeypatch.undo()
    pq.write_table(  # no statistics: the column is read instead, same answer
        pq.read_table(tmp_path / "events.parquet"),
        tmp_path / "events.parquet",
        write_statistics=False,
    )
    assert meta.data_window(tmp_path) == expected
