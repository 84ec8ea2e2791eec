"""Ingestion: a raw folder (CSV/Parquet) or a SQL database → validated, deduplicated, typed Parquet.

The bad-input rules of the contract (section 1), as ``ingest`` applies them:

- A missing required file/table or column, or a file that cannot be parsed, raises
  ``InputError`` before anything is written.
- Row-level violations never vanish: each bad row goes to ``rejected_<table>.csv`` with its
  original columns plus ``reason`` and ``line``; the counts go to ``ingest_report.json``.
  An event delivered twice (same ``event_id``, identical content) is kept once and counted as a
  duplicate, not a reject. A rejected user takes its events and transactions with it
  (``user_rejected``), so every written row refers to a written user.
- When a table's rejected share exceeds ``max_reject_share``, the rejected files and the report
  (``status: failed``) are still written, the previous Parquet is left as it was, and
  ``InputError`` names the table, the share and the first offending lines.

``line`` is the record's line in a CSV file (header = line 1; a value spanning several lines
counts them all; blank lines, which the CSV reader skips, are not counted). For Parquet and SQL it
is the row's position counted the same way (first row = line 2), as in a CSV export of the table.

Speed: columns are read with pyarrow and checked a whole column at a time (ISO 8601 by Arrow's
cast, or one ``pd.to_datetime`` call for mixed columns; repeated ids by hashing; JSON objects by
``contract.json_object_mask``); no per-row Python except ``json`` parsing of distinct non-flat
JSON texts. Bad rows are removed while the Parquet is written, batch by batch, so no filtered
copy of a large table is held in memory. ``read_processed`` loads what ingest wrote.

On a SQL source, rows are read in reverse dependency order (events before users) so that a
database being written to meanwhile cannot make an event look orphaned.
"""

from __future__ import annotations

import csv
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm import tqdm

from insightos_utils import contract
from insightos_utils.contract import TABLES, TableSpec
from insightos_utils.errors import InputError, InsightOSError
from insightos_utils.io_utils import atomic_write, atomic_write_json, atomic_write_many, utc_now

REPORT_NAME = "ingest_report.json"
FIRST_ROWS_SHOWN = 5  # offending lines named in a threshold error


@dataclass
class ProcessedData:
    """The typed tables ingest wrote; optional tables are None when the company has none."""

    users: pd.DataFrame
    events: pd.DataFrame
    transactions: pd.DataFrame | None = None
    campaign_spend: pd.DataFrame | None = None


def read_processed(processed_dir: str | Path) -> ProcessedData:
    """Load the Parquet tables written by ``ingest`` from ``processed_dir``."""
    processed_dir = Path(processed_dir)

    def optional(name: str) -> pd.DataFrame | None:
        path = processed_dir / f"{name}.parquet"
        return pd.read_parquet(path) if path.exists() else None

    return ProcessedData(
        users=pd.read_parquet(processed_dir / "users.parquet"),
        events=pd.read_parquet(processed_dir / "events.parquet"),
        transactions=optional("transactions"),
        campaign_spend=optional("campaign_spend"),
    )


# --- public entry point --------------------------------------------------------------------------


def ingest(
    out_dir: str | Path,
    raw_dir: str | Path | None = None,
    source_url: str | None = None,
    max_reject_share: float = 0.01,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Validate, deduplicate and type the raw tables into ``out_dir``; return the ingest report.

    Exactly one of ``raw_dir`` (a folder with ``<table>.csv`` or ``<table>.parquet``) and
    ``source_url`` (a SQLAlchemy URL). Writes ``<table>.parquet``, ``ingest_report.json`` and
    ``rejected_<table>.csv`` (tables with rejects). Raises ``InputError`` on bad input.
    """
    if not 0 <= max_reject_share <= 1:
        raise InputError(f"max_reject_share must be between 0 and 1, got {max_reject_share}")
    source = _open_source(raw_dir, source_url)
    out_dir = Path(out_dir)
    try:
        located = {spec.name: source.locate(spec) for spec in TABLES}
        for spec in TABLES:
            where = located[spec.name]
            if where is not None:
                header = source.header(spec, where)  # type: ignore[arg-type]  # each source's own kind
                _require_columns(spec, str(where), header)
        present = [spec for spec in TABLES if located[spec.name]]
        with tqdm(
            total=2 * len(present) + 1,
            desc="ingest",
            unit="step",
            file=sys.stderr,
            disable=not show_progress,
        ) as bar:
            # Dependents first, users last: a database being written to meanwhile can only
            # gain users, so no event is reported as an orphan because of the reading order.
            raw: dict[str, _RawTable] = {}
            for spec in reversed(present):
                bar.set_postfix_str(f"reading {spec.name}")
                raw[spec.name] = source.read(spec, located[spec.name])  # type: ignore[arg-type]
                bar.update()
            results: dict[str, _TableResult | None] = dict.fromkeys(located)
            users: _TableResult | None = None
            for spec in present:
                bar.set_postfix_str(f"checking {spec.name}")
                results[spec.name] = _check_table(spec, raw.pop(spec.name), users)
                users = users or results[spec.name]
                bar.update()
            bar.set_postfix_str("writing")
            report = _write_outputs(out_dir, source.description, results, max_reject_share)
            bar.update()
    finally:
        source.close()
    if report["status"] != "ok":
        raise InputError(report["error"])
    return report


# --- sources -------------------------------------------------------------------------------------


@dataclass
class _RawTable:
    """One table as read: original values, the source line of each row, where it came from."""

    label: str
    kind: str  # csv | parquet | sql
    frame: pd.DataFrame
    lines: np.ndarray


class _FolderSource:
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
                f"{', '.join(spec.column_names)})"
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

    def read(self, spec: TableSpec, path: Path) -> _RawTable:
        if path.suffix == ".parquet":
            return _read_parquet(path)
        return _read_csv(path, self.header(spec, path))

    def close(self) -> None:
        pass


class _DatabaseSource:
    """A SQL database (SQLAlchemy URL) holding tables with the contract's names."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise InputError(
                f"--source {url!r} is not a SQLAlchemy URL "
                "(e.g. sqlite:///data/raw/insightos.sqlite or postgresql+psycopg://user@host/db)"
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
                f"(it needs columns {', '.join(spec.column_names)})"
            )
        return None

    def header(self, spec: TableSpec, label: str) -> list[str]:
        return [column["name"] for column in self.inspector.get_columns(spec.name)]

    def read(self, spec: TableSpec, label: str) -> _RawTable:
        import sqlalchemy as sa

        quoted = self.connection.dialect.identifier_preparer.quote(spec.name)
        try:
            frame = pd.read_sql_query(sa.text(f"SELECT * FROM {quoted}"), self.connection)
        except sa.exc.SQLAlchemyError as error:
            raise InsightOSError(f"{label}: cannot be read ({error})") from None
        return _RawTable(label, "sql", frame, _positional_lines(len(frame)))

    def close(self) -> None:
        self.connection.close()
        self.engine.dispose()


def _open_source(
    raw_dir: str | Path | None, source_url: str | None
) -> _FolderSource | _DatabaseSource:
    raw_dir = raw_dir or None  # "" (an unset configuration value) means "not given"
    source_url = source_url or None
    if (raw_dir is None) == (source_url is None):
        raise InputError("give exactly one of a raw folder (--raw) or a database URL (--source)")
    if source_url is not None:
        return _DatabaseSource(source_url)
    assert raw_dir is not None
    return _FolderSource(Path(raw_dir))


def _require_columns(spec: TableSpec, label: str, header: list[str]) -> None:
    missing = [name for name in spec.column_names if name not in header]
    if missing:
        raise InputError(
            f"{label}: required column(s) {', '.join(repr(m) for m in missing)} missing "
            f"(found {', '.join(header) or 'no columns'}; the '{spec.name}' table needs "
            f"{', '.join(spec.column_names)})"
        )


def _positional_lines(n_rows: int) -> np.ndarray:
    return np.arange(2, n_rows + 2, dtype=np.int64)


def _read_parquet(path: Path) -> _RawTable:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{path}: cannot be read as Parquet ({error})") from None
    for index, column in enumerate(table.schema):
        if pa.types.is_dictionary(column.type):  # categoricals → plain values
            table = table.set_column(index, column.name, table[index].cast(column.type.value_type))
    frame = table.to_pandas()
    return _RawTable(str(path), "parquet", frame, _positional_lines(len(frame)))


def _read_csv(path: Path, header: list[str]) -> _RawTable:
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
        line = _first_bad_csv_line(path, len(header))
        where = f" at line {line}" if line else ""
        raise InputError(
            f"{path}: cannot be parsed as CSV{where} ({error}); every row needs the header's "
            f"{len(header)} fields, UTF-8 text and closed quotes"
        ) from None
    frame = table.to_pandas()
    lines = _positional_lines(len(frame))
    extra_lines = np.zeros(len(frame), dtype=np.int64)
    for name in frame.columns:
        if frame[name].str.contains("\n", regex=False).any():
            extra_lines += frame[name].str.count("\n").to_numpy(dtype=np.int64)
    if extra_lines.any():  # a record spanning lines pushes every later record down
        lines += np.concatenate([[0], np.cumsum(extra_lines)[:-1]])
    return _RawTable(str(path), "csv", frame, lines)


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


# --- row checks ----------------------------------------------------------------------------------


@dataclass
class _TableResult:
    """One checked table: the typed good rows, the rejected rows, and its report entry."""

    spec: TableSpec
    output: pd.DataFrame  # every row read, typed; ``keep`` marks the ones written
    keep: np.ndarray
    rejected: pd.DataFrame
    report: dict[str, Any]
    all_ids: pd.Series | None = None  # users: every non-empty user_id read, rejected or not

    def kept_values(self, column: str) -> pd.Series:
        """One column of the rows that are written."""
        return _keep_rows(self.output[[column]], self.keep)[column]


@dataclass
class _Reasons:
    """The first reason found for each row (0 = none yet); earlier checks take precedence."""

    n_rows: int
    names: list[str] = field(default_factory=lambda: [""])

    def __post_init__(self) -> None:
        self.codes = np.zeros(self.n_rows, dtype=np.int16)

    def flag(self, mask: np.ndarray | pd.Series, reason: str) -> None:
        new = np.asarray(mask, dtype=bool) & (self.codes == 0)
        if new.any():
            if reason not in self.names:
                self.names.append(reason)
            self.codes[new] = self.names.index(reason)

    def labels(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.names, dtype=object)[self.codes[rows]]


def _check_table(spec: TableSpec, raw: _RawTable, users: _TableResult | None) -> _TableResult:
    """Apply the contract's row rules to one table; split it into typed good rows and rejects."""
    frame = raw.frame.reset_index(drop=True)
    reasons = _Reasons(len(frame))
    typed = _typed_columns(spec, frame, reasons)
    if spec is contract.USERS:
        _check_users(typed, reasons)
    if "user_id" in typed and spec is not contract.USERS and users is not None:
        _check_user_refs(typed["user_id"], users, reasons)
    if spec is contract.TRANSACTIONS:
        reasons.flag(typed["amount"].to_numpy() <= 0, "non_positive_amount")
    if spec is contract.CAMPAIGN_SPEND:
        reasons.flag(typed["spend"].to_numpy() < 0, "negative_spend")
    redelivered = _check_duplicates(spec, frame, typed, reasons)

    good = (reasons.codes == 0) & ~redelivered
    output = pd.DataFrame(typed, copy=False)
    if spec is contract.USERS:
        output = _with_campaign_fields(output)
    extras = [name for name in frame.columns if name not in spec.column_names]
    for name in extras:
        values = frame[name]
        kept = contract.text_values(values) if values.dtype == object else values
        output[name if name not in output.columns else f"raw_{name}"] = kept

    bad_rows = np.flatnonzero((reasons.codes > 0) & ~redelivered)
    rejected = _keep_rows(frame, (reasons.codes > 0) & ~redelivered)
    rejected.insert(len(rejected.columns), "reason", reasons.labels(bad_rows), True)
    rejected.insert(len(rejected.columns), "line", raw.lines[bad_rows], True)

    counts = pd.Series(rejected["reason"]).value_counts()
    stamp_column = contract.TIMESTAMP_COLUMNS.get(spec.name)
    report = {
        "present": True,
        "source": raw.label,
        "format": raw.kind,
        "rows_read": len(frame),
        "duplicates": int(redelivered.sum()),
        "rejected": {str(k): int(v) for k, v in counts.items()},
        "rejected_rows": len(rejected),
        "reject_share": len(rejected) / len(frame) if len(frame) else 0.0,
        "rows_written": int(good.sum()),
        "date_range": _date_range(output, good, stamp_column),
        "columns": [str(c) for c in output.columns],
        "extra_columns": [str(c) for c in extras],
    }
    all_ids = None
    if spec is contract.USERS:
        all_ids = typed["user_id"][~contract.empty_mask(typed["user_id"])]
    return _TableResult(spec, output, good, rejected, report, all_ids)


def _typed_columns(spec: TableSpec, frame: pd.DataFrame, reasons: _Reasons) -> dict[str, pd.Series]:
    """The contract columns typed as ``docs/ARCHITECTURE.md`` says; flags empty and bad values."""
    typed: dict[str, pd.Series] = {}
    for column in spec.columns:
        values = frame[column.name]
        if column.kind == "json":
            text = contract.text_values(values)
            reasons.flag(~contract.json_object_mask(text), f"bad_{column.name}")
            typed[column.name] = text.where(~contract.json_empty_mask(text), "")
            continue
        empty = contract.empty_mask(values)
        if not column.nullable:
            reasons.flag(empty, f"empty_{column.name}")
        if column.kind == "timestamp":
            typed[column.name] = contract.parse_timestamps(values)
        elif column.kind == "number":
            typed[column.name] = contract.parse_numbers(values)
        else:
            typed[column.name] = contract.text_values(values)
            continue
        reasons.flag(typed[column.name].isna().to_numpy() & ~empty, f"bad_{column.name}")
    return typed


def _check_users(typed: dict[str, pd.Series], reasons: _Reasons) -> None:
    status = typed["status"]
    reasons.flag(status.notna() & ~status.isin(contract.STATUSES), "unknown_status")
    converted = (status == "converted").to_numpy()
    reasons.flag(
        converted & typed["converted_at"].isna().to_numpy(), "converted_without_converted_at"
    )
    reasons.flag(
        (typed["converted_at"] < typed["created_at"]).to_numpy(), "converted_before_created"
    )


def _check_user_refs(user_ids: pd.Series, users: _TableResult, reasons: _Reasons) -> None:
    """Every event/transaction must point at a written user (orphans and rejected users out)."""
    unknown = ~contract.is_in(user_ids, users.kept_values("user_id")) & (reasons.codes == 0)
    if unknown.any():
        rejected_user = np.zeros(len(user_ids), dtype=bool)
        rejected_user[unknown] = contract.is_in(user_ids[unknown], users.all_ids)
        reasons.flag(rejected_user, "user_rejected")
        reasons.flag(unknown, "orphan_user_id")


def _check_duplicates(
    spec: TableSpec, frame: pd.DataFrame, typed: dict[str, pd.Series], reasons: _Reasons
) -> np.ndarray:
    """Flag repeated ids; return the mask of redelivered rows (events: identical repeats).

    The first row with an id claims it, whatever else is wrong with that row, so a later row
    can never silently replace an earlier one.
    """
    redelivered = np.zeros(len(frame), dtype=bool)
    if spec.key is None:
        return redelivered
    key = typed[spec.key]
    repeated = contract.repeated_mask(key) & ~contract.empty_mask(key)
    if not repeated.any():
        return redelivered
    candidates = np.flatnonzero(repeated)
    content = _keep_rows(frame, repeated).apply(contract.text_values)
    later = content[spec.key].duplicated(keep="first").to_numpy()
    conflicting = later
    if spec.name in contract.REDELIVERED_TABLES:
        identical = content.duplicated(keep="first").to_numpy() & later
        redelivered[candidates[identical]] = True
        reasons.codes[candidates[identical]] = 0  # the first copy carries any rejection
        conflicting = later & ~identical
    duplicate = np.zeros(len(frame), dtype=bool)
    duplicate[candidates[conflicting]] = True
    reasons.flag(duplicate, f"duplicate_{spec.key}")
    return redelivered


def _keep_rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``frame[keep]`` with a fresh index, through Arrow's filter where the columns allow it:
    pandas' take on chunked Arrow strings is 10-20x slower."""
    if keep.all():
        return frame
    if any(pd.api.types.is_object_dtype(dtype) for dtype in frame.dtypes):  # database values
        return frame.loc[keep].reset_index(drop=True)
    table = pa.Table.from_pandas(frame, preserve_index=False).filter(pa.array(keep))
    return table.to_pandas()


def _with_campaign_fields(users: pd.DataFrame) -> pd.DataFrame:
    fields = contract.marketing_fields(users["marketing"])
    position = users.columns.get_loc("marketing") + 1
    for offset, name in enumerate(contract.MARKETING_FIELDS):
        users.insert(position + offset, name, fields[name].to_numpy())
    return users


def _date_range(output: pd.DataFrame, keep: np.ndarray, column: str | None) -> dict | None:
    if column is None:
        return None
    stamps = output[column][keep]
    if stamps.isna().all():
        return {"column": column, "min": None, "max": None}
    return {"column": column, "min": stamps.min().isoformat(), "max": stamps.max().isoformat()}


# --- outputs -------------------------------------------------------------------------------------


def _write_rejected(result: _TableResult, path: Path) -> None:
    result.rejected.to_csv(path, index=False)


def _write_parquet(result: _TableResult, path: Path) -> None:
    """The kept rows, filtered batch by batch while writing (no full filtered copy in memory).

    Dictionary encoding only for text columns that repeat (not ids, timestamps or JSON)."""
    table = pa.Table.from_pandas(result.output, preserve_index=False)
    spec = result.spec
    unique_like = {spec.key} | {c.name for c in spec.columns if c.kind in ("timestamp", "json")}
    dictionary = [name for name in table.column_names if name not in unique_like]
    with pq.ParquetWriter(path, table.schema, use_dictionary=dictionary) as writer:
        start = 0
        for batch in table.to_batches(max_chunksize=1 << 20):
            keep = result.keep[start : start + len(batch)]
            start += len(batch)
            writer.write_batch(batch if keep.all() else batch.filter(pa.array(keep)))


def _write_outputs(
    out_dir: Path,
    description: str,
    results: dict[str, _TableResult | None],
    max_reject_share: float,
) -> dict[str, Any]:
    """Rejected files and the report always; Parquet only when every table is within bounds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables: dict[str, Any] = {}
    failures: list[str] = []
    for name, result in results.items():
        rejected_path = out_dir / f"rejected_{name}.csv"
        if result is None:
            tables[name] = {"present": False, "note": f"no {name} table in the source"}
            rejected_path.unlink(missing_ok=True)
            continue
        tables[name] = result.report
        if len(result.rejected):
            atomic_write(rejected_path, functools.partial(_write_rejected, result))
            result.report["rejected_file"] = rejected_path.name
        else:
            rejected_path.unlink(missing_ok=True)
        if result.report["reject_share"] > max_reject_share:
            failures.append(_threshold_message(result, rejected_path, max_reject_share))

    ok = not failures
    if ok:  # all Parquet under temporary names first, then renamed: never a mixed set
        atomic_write_many(
            {
                out_dir / f"{name}.parquet": functools.partial(_write_parquet, result)
                for name, result in results.items()
                if result is not None
            }
        )
        for name, result in results.items():
            if result is None:  # a table the company no longer provides
                (out_dir / f"{name}.parquet").unlink(missing_ok=True)

    report = {
        "status": "ok" if ok else "failed",
        "source": description,
        "ingested_at": utc_now().replace(tzinfo=None).isoformat(),
        "max_reject_share": max_reject_share,
        "parquet_written": ok,
        "line_numbering": "CSV: line in the file (header = 1); Parquet/SQL: row position, first row = 2",
        "error": None if ok else "\n".join(failures),
        "tables": tables,
    }
    atomic_write_json(out_dir / REPORT_NAME, report)
    return report


def _threshold_message(result: _TableResult, rejected_path: Path, max_share: float) -> str:
    report = result.report
    first = result.rejected.sort_values("line").head(FIRST_ROWS_SHOWN)
    rows = "; ".join(
        f"line {line}: {contract.describe_reason(reason, result.spec)} ({reason})"
        for line, reason in zip(first["line"], first["reason"], strict=True)
    )
    return (
        f"{report['source']}: {report['rejected_rows']} of {report['rows_read']} rows rejected "
        f"({report['reject_share']:.1%}), more than max_reject_share {max_share:.1%}. "
        f"First offending rows: {rows}. Every rejected row and its reason is in {rejected_path}; "
        "fix the source, or raise --max-reject-share to accept them. "
        "The processed Parquet was not replaced."
    )


# --- the report as tables (for 01_ingest) ---------------------------------------------------------


def report_tables(report: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The ingest report as three small tables: ``rows`` per table, ``rejects`` by reason,
    ``date_ranges``."""
    rows, rejects, ranges = [], [], []
    for name, entry in report["tables"].items():
        if not entry.get("present"):
            rows.append({"table": name, "present": False})
            continue
        rows.append(
            {
                "table": name,
                "present": True,
                "rows_read": entry["rows_read"],
                "duplicates": entry["duplicates"],
                "rejected": entry["rejected_rows"],
                "rows_written": entry["rows_written"],
                "reject_share": round(entry["reject_share"], 4),
            }
        )
        spec = next(s for s in TABLES if s.name == name)
        for reason, count in entry["rejected"].items():
            meaning = contract.describe_reason(reason, spec)
            rejects.append({"table": name, "reason": reason, "rows": count, "meaning": meaning})
        if entry["date_range"]:
            ranges.append({"table": name, **entry["date_range"]})
    return {
        "rows": pd.DataFrame(rows).set_index("table"),
        "rejects": pd.DataFrame(rejects, columns=["table", "reason", "rows", "meaning"]),
        "date_ranges": pd.DataFrame(ranges, columns=["table", "column", "min", "max"]),
    }


def report_summary(report: dict[str, Any]) -> str:
    """The report in a few sentences (Markdown), numbers inline."""
    tables = {name: entry for name, entry in report["tables"].items() if entry["present"]}
    written = ", ".join(f"{entry['rows_written']:,} {name}" for name, entry in tables.items())
    absent = [name for name in report["tables"] if name not in tables]
    duplicates = sum(entry["duplicates"] for entry in tables.values())
    rejects = [
        f"{name} {entry['rejected_rows']:,} ("
        + ", ".join(f"{reason} {count:,}" for reason, count in entry["rejected"].items())
        + ")"
        for name, entry in tables.items()
        if entry["rejected_rows"]
    ]
    outcome = "written as Parquet" if report["parquet_written"] else "NOT written (see the error)"
    lines = [
        f"Ingest **{report['status']}** from `{report['source']}`: {written} rows passed the "
        f"contract and were {outcome}.",
        "Rejected rows, kept with their reason in `rejected_<table>.csv`: "
        + ("; ".join(rejects) if rejects else "none")
        + f". Redelivered events dropped as duplicates: {duplicates:,}.",
    ]
    events_range = tables["events"].get("date_range") or {}
    if events_range.get("min"):
        lines.append(f"Events run from {events_range['min']} to {events_range['max']}.")
    if absent:
        lines.append(f"Optional tables not provided: {', '.join(absent)}.")
    return " ".join(lines)


def events_per_week(events: pd.DataFrame) -> pd.Series:
    """Number of events per calendar week (weeks start on Monday, UTC), empty weeks as 0."""
    stamps = events["occurred_at"].dropna()
    weeks = stamps.dt.to_period("W-SUN").dt.start_time
    counts = weeks.value_counts().sort_index()
    if len(counts):
        every_week = pd.date_range(counts.index.min(), counts.index.max(), freq="7D")
        counts = counts.reindex(every_week, fill_value=0)
    counts.index.name = "week"
    return counts.rename("events")
