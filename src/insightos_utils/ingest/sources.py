"""Where raw tables come from: a folder of CSV/Parquet files, or a SQL database by URL.

Each source locates a table, reads its header (so missing columns stop ingest before any row is
read) and reads its rows as they were: CSV as text (a rejected row keeps its original
characters), Parquet and SQL with their native types. Each row carries its ``line``: the record's
line in a CSV file (header = line 1; a value spanning several lines counts them all), or for
Parquet and SQL its position counted the same way (first row = line 2).

A database URL may come without its password: the password is then taken from
``SOURCE_PASSWORD_VARIABLE`` in the environment the caller passes (``connection_url``), so that
the URL a notebook or a log shows never holds a secret.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from insightos_utils.contract import HELD_EVENTS, TableSpec
from insightos_utils.errors import InputError, InsightOSError

SOURCE_PASSWORD_VARIABLE = "INSIGHTOS_SOURCE_PASSWORD"


def redact_url(url: str) -> str:
    """A database URL with its password hidden, fit for logs, reports and run.json."""
    if not url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: say nothing about it
        return "<unparsed URL>"


def split_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password (what may be shown) and the password (None when none)."""
    if not url:
        return url, None
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        return url, None
    if parsed.password is None:
        return url, None
    return parsed._replace(password=None).render_as_string(hide_password=False), str(
        parsed.password
    )


def connection_url(url: str, environ: Mapping[str, str]) -> str:
    """``url`` with the password from ``environ[SOURCE_PASSWORD_VARIABLE]`` when it has none."""
    password = environ.get(SOURCE_PASSWORD_VARIABLE)
    if not url or not password:
        return url
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        return url
    if parsed.password is not None or parsed.get_backend_name() == "sqlite":
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


@dataclass
class RawTable:
    """One table as read: original values, the source line of each row, where it came from."""

    label: str
    kind: str  # csv | parquet | sql
    frame: pd.DataFrame
    lines: np.ndarray


class FolderSource:
    """A raw folder: one ``<table>.csv`` or ``<table>.parquet`` per table."""

    def __init__(self, raw_dir: Path) -> None:
        if not raw_dir.is_dir():
            raise InputError(f"{raw_dir}: raw folder not found (expected users.csv, events.csv…)")
        self.raw_dir = raw_dir
        self.description = str(raw_dir)

    def locate(self, spec: TableSpec) -> Path | None:
        csv_path = self.raw_dir / f"{spec.name}.csv"
        parquet_path = self.raw_dir / f"{spec.name}.parquet"
        if csv_path.exists() and parquet_path.exists():
            raise InputError(
                f"{csv_path} and {parquet_path} both exist: keep exactly one file per table"
            )
        found = next((p for p in (csv_path, parquet_path) if p.exists()), None)
        if found is None and spec.required:
            raise InputError(
                f"{csv_path}: required table '{spec.name}' is missing from {self.raw_dir} "
                f"(put {spec.name}.csv or {spec.name}.parquet there with columns "
                f"{', '.join(spec.required_names)})"
            )
        return found

    def header(self, spec: TableSpec, path: Path) -> list[str]:
        if path.suffix == ".parquet":
            try:
                return list(pq.read_schema(path).names)
            except (pa.ArrowException, OSError) as error:
                raise InputError(f"{path}: cannot be read as Parquet ({error})") from None
        with path.open("rb") as handle:
            first_line = handle.readline()
        try:
            header = next(csv.reader([first_line.decode("utf-8-sig")]), None)
        except (UnicodeDecodeError, csv.Error) as error:
            raise InputError(
                f"{path}: cannot read line 1 (the header) as UTF-8 CSV ({error})"
            ) from None
        if not header:
            raise InputError(f"{path}: the file is empty; a CSV needs a header row")
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise InputError(f"{path}: column(s) {', '.join(map(repr, repeated))} appear twice")
        return header

    def read(self, spec: TableSpec, path: Path) -> RawTable:
        if path.suffix == ".parquet":
            return _read_parquet(path)
        return _read_csv(path, self.header(spec, path))

    def held_events(self) -> int | None:
        return None

    def close(self) -> None:
        pass


class DatabaseSource:
    """A SQL database (SQLAlchemy URL) holding tables with the contract's names."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise InputError(
                "--source is not a SQLAlchemy URL (e.g. sqlite:///data/raw/insightos.sqlite "
                "or postgresql+psycopg://user@host/db); the value is not repeated here, as it "
                "may hold a password"
            ) from None
        self.description = parsed.render_as_string(hide_password=True)
        database = parsed.database or ""
        is_file = parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
        if is_file and not database.startswith("file:") and not Path(database).is_file():
            raise InputError(f"{self.description}: SQLite database file {database} not found")
        try:
            self.engine = sa.create_engine(parsed)
            self.connection = self.engine.connect()
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as error:
            raise InputError(
                f"{self.description}: cannot use this database URL ({error})"
            ) from None
        except sa.exc.SQLAlchemyError as error:
            raise InsightOSError(f"{self.description}: cannot connect ({error})") from None
        self.inspector = sa.inspect(self.connection)

    def locate(self, spec: TableSpec) -> str | None:
        if self.inspector.has_table(spec.name):
            return f"table {spec.name} in {self.description}"
        if spec.required:
            raise InputError(
                f"{self.description}: required table '{spec.name}' is missing "
                f"(it needs columns {', '.join(spec.required_names)})"
            )
        return None

    def header(self, spec: TableSpec, label: str) -> list[str]:
        return [column["name"] for column in self.inspector.get_columns(spec.name)]

    def read(self, spec: TableSpec, label: str) -> RawTable:
        import sqlalchemy as sa

        quoted = self.connection.dialect.identifier_preparer.quote(spec.name)
        try:
            frame = pd.read_sql_query(sa.text(f"SELECT * FROM {quoted}"), self.connection)
        except sa.exc.SQLAlchemyError as error:
            raise InsightOSError(f"{label}: cannot be read ({error})") from None
        return RawTable(label, "sql", frame, positional_lines(len(frame)))

    def held_events(self) -> int | None:
        """Events the collector holds for users it has never seen (None: no such table)."""
        import sqlalchemy as sa

        if not self.inspector.has_table(HELD_EVENTS):
            return None
        quoted = self.connection.dialect.identifier_preparer.quote(HELD_EVENTS)
        return int(self.connection.execute(sa.text(f"SELECT count(*) FROM {quoted}")).scalar_one())

    def close(self) -> None:
        self.connection.close()
        self.engine.dispose()


def open_source(
    raw_dir: str | Path | None, source_url: str | None
) -> FolderSource | DatabaseSource:
    raw_dir = raw_dir or None  # "" (an unset configuration value) means "not given"
    source_url = source_url or None
    if (raw_dir is None) == (source_url is None):
        raise InputError("give exactly one of a raw folder (--raw) or a database URL (--source)")
    if source_url is not None:
        return DatabaseSource(source_url)
    assert raw_dir is not None
    return FolderSource(Path(raw_dir))


def require_columns(spec: TableSpec, label: str, header: list[str]) -> None:
    missing = [name for name in spec.required_names if name not in header]
    if missing:
        raise InputError(
            f"{label}: required column(s) {', '.join(repr(m) for m in missing)} missing "
            f"(found {', '.join(header) or 'no columns'}; the '{spec.name}' table needs "
            f"{', '.join(spec.required_names)})"
        )


def positional_lines(n_rows: int) -> np.ndarray:
    return np.arange(2, n_rows + 2, dtype=np.int64)


def _read_parquet(path: Path) -> RawTable:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{path}: cannot be read as Parquet ({error})") from None
    for index, column in enumerate(table.schema):
        if pa.types.is_dictionary(column.type):  # categoricals → plain values
            table = table.set_column(index, column.name, table[index].cast(column.type.value_type))
    frame = table.to_pandas()
    return RawTable(str(path), "parquet", frame, positional_lines(len(frame)))


def _read_csv(path: Path, header: list[str]) -> RawTable:
    """Every column as text (so a rejected row keeps its original characters)."""
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError) as error:
        raise unparseable_csv(path, header, error) from None
    frame = table.to_pandas()
    lines = positional_lines(len(frame))
    extra_lines = np.zeros(len(frame), dtype=np.int64)
    for name in frame.columns:
        if frame[name].str.contains("\n", regex=False).any():
            extra_lines += frame[name].str.count("\n").to_numpy(dtype=np.int64)
    if extra_lines.any():  # a record spanning lines pushes every later record down
        lines += np.concatenate([[0], np.cumsum(extra_lines)[:-1]])
    return RawTable(str(path), "csv", frame, lines)


def unparseable_csv(path: Path, header: list[str], error: Exception) -> InputError:
    """The error for a CSV file a reader refused: the first line (and column) that is not
    UTF-8, else the first record whose field count differs from the header's."""
    bad_text = _first_non_utf8(path, header)
    if bad_text is not None:
        line, column = bad_text
        return InputError(
            f"{path}: line {line}, column '{column}' is not UTF-8 text (the file looks like "
            "Latin-1 or Windows-1252); save the file as UTF-8 and run again"
        )
    bad_line = _first_bad_csv_line(path, len(header))
    where = f" at line {bad_line}" if bad_line else ""
    return InputError(
        f"{path}: cannot be parsed as CSV{where} ({error}); every row needs the header's "
        f"{len(header)} fields, UTF-8 text and closed quotes"
    )


def _first_bad_csv_line(path: Path, n_fields: int) -> int | None:
    """The line where a CSV stops being readable (error path only; plain Python is fine)."""
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            try:
                raw_line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            start = 1
            for record in reader:
                if record and len(record) != n_fields:
                    return start
                start = reader.line_num + 1
    except csv.Error:
        return None
    return None


def _first_non_utf8(path: Path, header: list[str]) -> tuple[int, str] | None:
    """The first (line, column name) whose bytes are not UTF-8 (error path only).

    The file is split into records as Latin-1 text (every byte is a character there, and the
    delimiters and quotes are ASCII), so each field's original bytes can be tried as UTF-8.
    """
    with path.open("rb") as handle:
        data = handle.read()
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    reader = csv.reader(data.decode("latin-1").splitlines(keepends=True))
    start = 1
    for record in reader:
        for index, value in enumerate(record):
            try:
                value.encode("latin-1").decode("utf-8")
            except UnicodeDecodeError:
                column = header[index] if index < len(header) else f"field {index + 1}"
                return start, column
        start = reader.line_num + 1
    return None
