"""Writing a synthetic company's tables as raw-contract files (CSV or Parquet), atomically."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from insightos_utils.contract import TABLES
from insightos_utils.errors import InputError
from insightos_utils.io_utils import atomic_write
from insightos_utils.synth.text import fixed_width, iso_chars, iso_chars_with_offsets

FILE_FORMATS = ("csv", "parquet")


def _csv_timestamps(
    column: pa.Array, offsets: Sequence[int] | None, rng: np.random.Generator | None
) -> pa.Array:
    """ISO 8601 text: ``...Z`` (UTC), or each row in a UTC offset drawn from ``offsets``."""
    seconds = column.cast(pa.timestamp("s"), safe=False).cast(pa.int64())
    seconds = seconds.fill_null(0).to_numpy()
    if offsets:
        assert rng is not None
        minutes = np.asarray(offsets, dtype=np.int64)[rng.integers(0, len(offsets), seconds.size)]
        text = fixed_width(iso_chars_with_offsets(seconds, minutes))
    else:
        text = fixed_width(iso_chars(seconds))
    if column.null_count:
        text = pc.if_else(column.is_null(), pa.scalar(None, text.type), text)
    return text


def _file_table(
    frame: pd.DataFrame,
    columns: list[str],
    file_format: str,
    offsets: Sequence[int] | None = None,
    rng: np.random.Generator | None = None,
) -> pa.Table:
    """The frame as an Arrow table for the file: ISO 8601 text timestamps for CSV; typed UTC
    timestamps and plain strings for Parquet."""
    table = pa.Table.from_pandas(frame[columns], preserve_index=False).replace_schema_metadata()
    for i, field in enumerate(table.schema):
        column = table.column(i).combine_chunks()
        if pa.types.is_timestamp(field.type):
            if file_format == "csv":
                column = _csv_timestamps(column, offsets, rng)
            else:
                column = column.cast(pa.timestamp("us", tz="UTC"))
        elif file_format == "parquet" and not (
            pa.types.is_floating(field.type) or pa.types.is_integer(field.type)
        ):
            column = column.cast(pa.string())
        table = table.set_column(i, field.name, column)
    return table


def write_table(
    frame: pd.DataFrame,
    path: Path,
    columns: list[str],
    file_format: str,
    offsets: Sequence[int] | None = None,
    rng: np.random.Generator | None = None,
) -> None:
    """Write one raw table as CSV (ISO 8601 text) or Parquet, atomically."""
    table = _file_table(frame, columns, file_format, offsets, rng)
    if file_format == "csv":
        textual = all(
            pa.types.is_large_string(f.type) or pa.types.is_dictionary(f.type) for f in table.schema
        )
        # all-text tables: quoting every valid value gives the same bytes, without scanning
        quoting = "all_valid" if textual else "needed"
        options = pa_csv.WriteOptions(quoting_style=quoting)
        atomic_write(path, lambda temp: pa_csv.write_csv(table, temp, options))
    else:
        atomic_write(path, lambda temp: pq.write_table(table, temp, compression="zstd"))


def write_tables(
    tables: Mapping[str, pd.DataFrame],
    out_dir: str | Path,
    file_format: str = "csv",
    offsets: Sequence[int] | None = None,
    seed: int = 0,
) -> dict[str, Path]:
    """Write each contract table present in ``tables`` (contract columns first, then extras).

    ``offsets`` (minutes east of UTC): CSV timestamps are written in a UTC offset drawn per row
    from these (the same instants). A table missing from ``tables`` is not written, and a stale
    file of it in ``out_dir`` is removed.
    """
    if file_format not in FILE_FORMATS:
        raise InputError(f"unknown synth format {file_format!r}; choose one of {FILE_FORMATS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7]) if offsets else None
    written: dict[str, Path] = {}
    for spec in TABLES:
        for stale in FILE_FORMATS:
            if stale != file_format or spec.name not in tables:
                (out_dir / f"{spec.name}.{stale}").unlink(missing_ok=True)
        if spec.name not in tables:
            continue
        frame = tables[spec.name]
        known = [c for c in spec.column_names if c in frame.columns]  # optional ones if made
        columns = known + [c for c in frame.columns if c not in spec.column_names]
        path = out_dir / f"{spec.name}.{file_format}"
        write_table(frame, path, columns, file_format, offsets, rng)
        written[spec.name] = path
    return written
