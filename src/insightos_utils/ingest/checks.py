"""The contract's row rules, applied one whole column at a time.

A row breaking a rule is never dropped silently: it goes to ``rejected_<table>.csv`` with its
first ``reason`` and its ``line``. A rejected user takes its events and transactions with it
(``user_rejected``, with the ``cause``: the users file and line that was rejected), so every
written row refers to a written user; those rows are counted apart and do not count toward the
dependent table's reject share (the fault is in users, where it is counted). Timestamps before
``earliest`` or later than the run's clock plus the tolerance are ``implausible_timestamp``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from insightos_utils import contract
from insightos_utils.contract import DEPENDENT_REASONS, TableSpec
from insightos_utils.ingest import fastpath
from insightos_utils.ingest.sources import RawTable

CAUSES_SHOWN = 5  # lines of the causing file named in a cascade message


@dataclass(frozen=True)
class Plausible:
    """The range of timestamps a row may carry: from ``earliest`` to ``latest`` (naive UTC)."""

    earliest: pd.Timestamp
    latest: pd.Timestamp

    def mask(self, stamps: pd.Series) -> np.ndarray:
        """True where a timestamp is present and outside the plausible range."""
        values = stamps.to_numpy(dtype="datetime64[us]")
        low = np.datetime64(self.earliest.as_unit("us").to_datetime64(), "us")
        high = np.datetime64(self.latest.as_unit("us").to_datetime64(), "us")
        present = ~np.isnat(values)
        return present & ((values < low) | (values > high))


@dataclass
class TableResult:
    """One checked table: the typed good rows, the rejected rows, and its report entry."""

    spec: TableSpec
    output: pd.DataFrame  # every row read, typed; ``keep`` marks the ones written
    keep: np.ndarray
    rejected: pd.DataFrame
    report: dict[str, Any]
    all_ids: pd.Series | None = None  # users: every non-empty user_id read, rejected or not
    label: str = ""  # where the table came from (a file path, or a table in a database)

    def kept_values(self, column: str) -> pd.Series:
        """One column of the rows that are written."""
        return keep_rows(self.output[[column]], self.keep)[column]


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


def check_table(
    spec: TableSpec, raw: RawTable, users: TableResult | None, plausible: Plausible
) -> TableResult:
    """Apply the contract's row rules to one table; split it into typed good rows and rejects."""
    frame = raw.frame.reset_index(drop=True)
    reasons = _Reasons(len(frame))
    typed = _typed_columns(spec, frame, reasons)
    implausible = _check_plausible(spec, typed, reasons, plausible)
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
        kept = fastpath.text_values(values) if values.dtype == object else values
        output[name if name not in output.columns else f"raw_{name}"] = kept

    bad_rows = np.flatnonzero((reasons.codes > 0) & ~redelivered)
    rejected = keep_rows(frame, (reasons.codes > 0) & ~redelivered)
    rejected.insert(len(rejected.columns), "reason", reasons.labels(bad_rows), True)
    rejected.insert(len(rejected.columns), "line", raw.lines[bad_rows], True)
    cascade = rejected["reason"].isin(list(DEPENDENT_REASONS)).to_numpy()
    causes: list[str] = []
    if cascade.any() and users is not None:
        causes = _cascade_causes(rejected, cascade, users)

    counts = pd.Series(rejected["reason"]).value_counts()
    own_rejects = len(rejected) - int(cascade.sum())
    stamp_column = contract.TIMESTAMP_COLUMNS.get(spec.name)
    report = {
        "present": True,
        "source": raw.label,
        "format": raw.kind,
        "rows_read": len(frame),
        "duplicates": int(redelivered.sum()),
        "rejected": {str(k): int(v) for k, v in counts.items()},
        "rejected_rows": len(rejected),
        "user_rejected_rows": int(cascade.sum()),
        "reject_share": own_rejects / len(frame) if len(frame) else 0.0,
        "rows_written": int(good.sum()),
        "date_range": _date_range(output, good, stamp_column),
        "columns": [str(c) for c in output.columns],
        "extra_columns": [str(c) for c in extras],
    }
    if implausible:
        report["implausible_timestamps"] = implausible
    if causes:
        report["user_rejected_cause"] = (
            f"{int(cascade.sum()):,} row(s) rejected only because their user was rejected in "
            f"{users.label if users is not None else 'users'}: " + "; ".join(causes)
        )
    all_ids = None
    if spec is contract.USERS:
        all_ids = typed["user_id"][~fastpath.empty_mask(typed["user_id"])]
    return TableResult(spec, output, good, rejected, report, all_ids, raw.label)


def _typed_columns(spec: TableSpec, frame: pd.DataFrame, reasons: _Reasons) -> dict[str, pd.Series]:
    """The contract columns typed as ``docs/ARCHITECTURE.md`` says; flags empty and bad values."""
    typed: dict[str, pd.Series] = {}
    for column in spec.columns:
        if column.optional and column.name not in frame.columns:
            continue
        values = frame[column.name]
        if column.kind == "json":
            text = fastpath.text_values(values)
            reasons.flag(~fastpath.json_object_mask(text), f"bad_{column.name}")
            typed[column.name] = text.where(~fastpath.json_empty_mask(text), "")
            continue
        empty = fastpath.empty_mask(values)
        if not column.nullable:
            reasons.flag(empty, f"empty_{column.name}")
        if column.kind == "timestamp":
            typed[column.name] = fastpath.parse_timestamps(values)
        elif column.kind == "number":
            typed[column.name] = fastpath.parse_numbers(values)
        else:
            typed[column.name] = fastpath.text_values(values)
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
    if "closed_at" in typed:
        reasons.flag((typed["closed_at"] < typed["created_at"]).to_numpy(), "closed_before_created")


def _check_plausible(
    spec: TableSpec, typed: dict[str, pd.Series], reasons: _Reasons, plausible: Plausible
) -> dict[str, dict[str, Any]]:
    """Flag timestamps outside the plausible range; per column: rows, earliest and latest seen."""
    found: dict[str, dict[str, Any]] = {}
    for column in spec.columns:
        if column.kind != "timestamp" or column.name not in typed:
            continue
        stamps = typed[column.name]
        outside = plausible.mask(stamps)
        reasons.flag(outside, "implausible_timestamp")
        if outside.any():
            values = stamps[outside]
            found[column.name] = {
                "rows": int(outside.sum()),
                "min": values.min().isoformat(),
                "max": values.max().isoformat(),
                "plausible_from": plausible.earliest.isoformat(),
                "plausible_to": plausible.latest.isoformat(),
            }
    return found


def _cascade_causes(rejected: pd.DataFrame, cascade: np.ndarray, users: TableResult) -> list[str]:
    """The users rows (file and line, reason) that took dependent rows with them."""
    dependent = fastpath.text_values(rejected["user_id"][cascade]).value_counts()
    return cascade_causes(dependent, users)


def cascade_causes(dependent: pd.Series, users: TableResult) -> list[str]:
    """Words for ``dependent`` (rows rejected per user_id, most first): each user's line and
    reason in ``users``, the first ``CAUSES_SHOWN`` of them."""
    user_rows = users.rejected
    ids = fastpath.text_values(user_rows["user_id"]).to_numpy()
    first_line = pd.Series(user_rows["line"].to_numpy(), index=ids)
    first_line = first_line[~first_line.index.duplicated()]
    first_reason = pd.Series(user_rows["reason"].to_numpy(), index=ids)
    first_reason = first_reason[~first_reason.index.duplicated()]
    causes = []
    for user_id, rows in dependent.head(CAUSES_SHOWN).items():
        line = first_line.get(user_id)
        reason = first_reason.get(user_id, "")
        causes.append(f"line {line} ({reason}) took {rows:,} row(s)")
    if len(dependent) > CAUSES_SHOWN:
        causes.append(f"and {len(dependent) - CAUSES_SHOWN:,} more users")
    return causes


def _check_user_refs(user_ids: pd.Series, users: TableResult, reasons: _Reasons) -> None:
    """Every event/transaction must point at a written user (orphans and rejected users out)."""
    unknown = ~fastpath.is_in(user_ids, users.kept_values("user_id")) & (reasons.codes == 0)
    if unknown.any():
        rejected_user = np.zeros(len(user_ids), dtype=bool)
        rejected_user[unknown] = fastpath.is_in(user_ids[unknown], users.all_ids)
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
    repeated = fastpath.repeated_mask(key) & ~fastpath.empty_mask(key)
    if not repeated.any():
        return redelivered
    candidates = np.flatnonzero(repeated)
    content = keep_rows(frame, repeated).apply(fastpath.text_values)
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


def keep_rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``frame[keep]`` with a fresh index, through Arrow's filter where the columns allow it:
    pandas' take on chunked Arrow strings is 10-20x slower."""
    if keep.all():
        return frame
    if any(pd.api.types.is_object_dtype(dtype) for dtype in frame.dtypes):  # database values
        return frame.loc[keep].reset_index(drop=True)
    table = pa.Table.from_pandas(frame, preserve_index=False).filter(pa.array(keep))
    return table.to_pandas()


def _with_campaign_fields(users: pd.DataFrame) -> pd.DataFrame:
    fields = fastpath.marketing_fields(users["marketing"])
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
