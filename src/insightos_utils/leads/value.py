"""What calling a lead is worth: P(convert within the horizon) × a new customer's value.

``expected_value`` = the lead's ``score`` (its probability of converting within ``[scoring]
horizon_days`` of signup) × the value of a just-acquired customer of the lead's acquisition
campaign over ``[ltv] horizon_months`` (``new_customer_value.csv``, written by the LTV stage:
first purchase plus the discounted repeat margin). ``expected_value_low`` / ``_high`` carry that
customer value's 95% interval through the same product; the score's own uncertainty is not in
them. A campaign without its own fit (too few customers or repeat buyers, a fit that failed, or
no customer yet) borrows the ``(all)`` value, and ``value_basis`` says so for each lead.

``[scoring] rank_by`` decides ``rank``: ``value`` (expected value, then score, then user id) or
``probability`` (score, then user id). Without customer values (the LTV stage was skipped, or a
score-only run finds no values from a full run) the value columns stay empty, the ranking is by
probability, and ``Ranking.reason`` says why. Each lead's campaign is the ``campaign`` column
scoring wrote (category codes, no join); a file without one is joined on a user id → campaign
look-up (one Arrow hash join). Then column arithmetic, one sort, and the rows reordered with
the run's constant text columns (model version, scoring time) left in place: on a million
leads 0.36 to 0.43 s of CPU at load average 5 to 6 on 2 cores, where the look-up join and full
reorder took 0.92 to 1.27 s under the same load (``benchmarks/bench_value.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from insightos_utils.contract import NO_CAMPAIGN, USERS
from insightos_utils.errors import InputError
from insightos_utils.io_utils import atomic_write

ALL_CAMPAIGNS = "(all)"  # the overall row of new_customer_value.csv (ltv.new_customers)
RANK_BY = ("value", "probability")
VALUE_COLUMNS = ("campaign", "expected_value", "expected_value_low", "expected_value_high")
BASIS_COLUMN = "value_basis"
VALUE_DECIMALS = 4  # money: cents and a little more, so the written values rank as computed
NEEDED = {"campaign", "value", "value_low", "value_high"}


@dataclass(frozen=True)
class Ranking:
    """Which ordering ``rank`` uses and why; what the values rest on (for run.json and pages)."""

    rank_by: str
    requested: str
    reason: str | None = None  # why the ranking is by probability (None: by value)
    values_missing: str | None = None  # why the value columns are empty (None: computed)
    leads_on_own_campaign: int = 0
    leads_on_overall: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValuedLeads:
    """The scored leads with their expected value, in rank order, and how they were ranked."""

    table: pd.DataFrame
    ranking: Ranking


def _descending_key(values: pd.Series) -> np.ndarray:
    """Numbers to sort highest first, a missing number last."""
    return np.nan_to_num(values.to_numpy(float), nan=-np.inf)


def _in_probability_order(score: np.ndarray, user_ids: Any) -> bool:
    """Whether rows already run by score (highest first), ties by user id: what scoring writes."""
    import pyarrow.compute as pc

    if (score[1:] > score[:-1]).any():
        return False
    ties = np.flatnonzero(score[1:] == score[:-1])
    if not len(ties):
        return True
    earlier, later = pc.take(user_ids, ties), pc.take(user_ids, ties + 1)
    return bool(pc.all(pc.less(earlier, later)).as_py())


def calling_order(leads: pd.DataFrame, by: str) -> np.ndarray:
    """Row positions in calling order: by ``value`` (expected value, then score, highest first;
    leads without a value last) or by ``probability`` (score), ties by user id ascending.

    Rows that already run in probability order (as scoring writes them) need only a stable sort
    on the expected value; any other input gets one Arrow sort on every key."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {', '.join(RANK_BY)}, not {by!r}")
    score = _descending_key(leads["score"])
    user_ids = _arrow_text(leads["user_id"])
    if _in_probability_order(score, user_ids):
        if by == "probability":
            return np.arange(len(leads))
        return np.argsort(-_descending_key(leads["expected_value"]), kind="stable")
    columns = {"score": pa.array(score), "user_id": user_ids}
    keys = [("score", "descending"), ("user_id", "ascending")]
    if by == "value":
        columns["expected_value"] = pa.array(_descending_key(leads["expected_value"]))
        keys.insert(0, ("expected_value", "descending"))
    return pc.sort_indices(pa.table(columns), sort_keys=keys).to_numpy()


def usable_values(
    new_customer_value: pd.DataFrame | None, skipped_reason: str | None = None
) -> tuple[pd.DataFrame | None, str | None]:
    """The customer values to multiply by, or None and the reason there are none."""
    if skipped_reason:
        return None, skipped_reason
    if new_customer_value is None:
        return None, "there is no new_customer_value.csv (the LTV stage did not write one)"
    missing = sorted(NEEDED - set(new_customer_value.columns))
    if missing:
        raise InputError(f"new_customer_value.csv lacks column(s) {', '.join(missing)}")
    table = new_customer_value.assign(campaign=new_customer_value["campaign"].astype(str))
    overall = table[table["campaign"] == ALL_CAMPAIGNS]
    if overall.empty or not np.isfinite(overall["value"].to_numpy(float)).all():
        return None, f"new_customer_value.csv has no {ALL_CAMPAIGNS} value to fall back on"
    return table.drop_duplicates("campaign").set_index("campaign"), None


def _campaign_values(
    names: np.ndarray, table: pd.DataFrame
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per distinct campaign: (value, low, high), the basis in words, and whether it is its own."""
    overall = table.loc[ALL_CAMPAIGNS]
    rows, bases, own = [], [], []
    for name in names:
        known = name is not None and name in table.index and name != ALL_CAMPAIGNS
        row = table.loc[name] if known else None
        if name is None:
            basis = "overall value: the lead's campaign is not known"
        elif row is None:
            basis = f"overall value: no customer from campaign {name} yet"
        elif not np.isfinite(float(row["value"])):
            basis = f"overall value: campaign {name}'s own value is not a number"
        elif str(row.get("fallback", False)).strip().lower() in ("true", "1"):
            basis = str(row.get("basis") or "overall value")
            basis = basis if basis.startswith("overall") else f"overall value: {basis}"
        else:
            customers = row.get("customers")
            count = f" ({int(customers):,} customers)" if pd.notna(customers) else ""
            basis = f"campaign's own fit{count}"
        is_own = row is not None and basis.startswith("campaign's own")
        used = row if row is not None and is_own else overall
        rows.append([float(used[c]) for c in ("value", "value_low", "value_high")])
        bases.append(basis)
        own.append(is_own)
    return np.array(rows, dtype=float).reshape(-1, 3), bases, np.array(own, dtype=bool)


def _arrow_text(values: pd.Series | pd.Index) -> Any:
    """Text values as an Arrow array (no copy for pandas' Arrow-backed strings)."""
    import pyarrow as pa

    return pa.array(pd.Series(values).astype(str), from_pandas=True)


def lead_campaigns(leads: pd.DataFrame, campaigns: pd.Series | None) -> pd.Categorical:
    """Each lead's acquisition campaign: from ``campaigns`` (user id → campaign, first entry of
    a repeated id), else the table's own ``campaign`` column; missing (not known) otherwise, or
    when ``campaigns`` does not hold the lead. One hash join in Arrow, no Python loop."""
    import pyarrow.compute as pc

    if campaigns is None:
        if "campaign" not in leads.columns:
            return pd.Categorical.from_codes(np.full(len(leads), -1), categories=[])
        return pd.Categorical(leads["campaign"])
    codes, distinct = pd.factorize(campaigns)  # a missing campaign: code -1
    positions = pc.index_in(_arrow_text(leads["user_id"]), value_set=_arrow_text(campaigns.index))
    found = positions.is_valid().to_numpy(zero_copy_only=False)
    where = positions.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    lead_codes = np.where(found, codes[where] if len(codes) else -1, -1)
    return pd.Categorical.from_codes(lead_codes, categories=[str(name) for name in distinct])


def _one_value(column: pd.Series) -> bool:
    """Whether a text column holds the same value in every row (no missing one): the run's
    ``model_version`` and ``scored_at``, which reordering leaves as they are."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(column.dtype, pd.StringDtype) or not len(column) or column.hasnans:
        return False
    low_high = pc.min_max(pa.array(column.array, from_pandas=True))
    return bool(low_high["min"] == low_high["max"])


def in_rows(table: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    """``table``'s rows in ``order``, indexed 0..n-1; a text column holding one value in every
    row is kept as it is (gathering a million strings costs about 0.1 s a column)."""
    columns = {
        name: table[name].array if _one_value(table[name]) else table[name].array.take(order)
        for name in table.columns
    }
    return pd.DataFrame(columns, copy=False)


def add_expected_value(
    scored: pd.DataFrame,
    new_customer_value: pd.DataFrame | None,
    *,
    rank_by: str,
    campaigns: pd.Series | None = None,
    skipped_reason: str | None = None,
) -> ValuedLeads:
    """The scored leads (``user_id``, ``score``, ...) with ``campaign``, ``expected_value``,
    ``expected_value_low``, ``expected_value_high`` and ``value_basis``, re-ranked and in rank
    order (module docstring). ``skipped_reason``: the LTV stage did not run, and why."""
    if rank_by not in RANK_BY:
        raise ValueError(f"[scoring] rank_by must be one of {', '.join(RANK_BY)}, not {rank_by!r}")
    table, missing = usable_values(new_customer_value, skipped_reason)
    leads = scored.drop(columns=[c for c in (*VALUE_COLUMNS, BASIS_COLUMN) if c in scored])
    names = lead_campaigns(scored, campaigns)
    leads["campaign"] = names
    score = leads["score"].to_numpy(float)
    on_own = 0
    if table is None:
        for column in VALUE_COLUMNS[1:]:
            leads[column] = np.full(len(leads), np.nan)
        leads[BASIS_COLUMN] = pd.Categorical.from_codes(
            np.zeros(len(leads), dtype=np.int64), categories=[f"not computed: {missing}"]
        )
    else:
        categories = [*names.categories, None]  # the last: a lead whose campaign is not known
        codes = np.asarray(names.codes, dtype=np.int64)
        codes = np.where(codes < 0, len(categories) - 1, codes)
        values, bases, own = _campaign_values(np.asarray(categories, dtype=object), table)
        for position, column in enumerate(VALUE_COLUMNS[1:]):
            leads[column] = np.round(score * values[codes, position], VALUE_DECIMALS)
        basis_codes, basis_names = pd.factorize(pd.Series(bases, dtype=object))
        leads[BASIS_COLUMN] = pd.Categorical.from_codes(
            basis_codes[codes], categories=list(basis_names)
        )
        on_own = int(own[codes].sum())
    if table is None:
        used, reason = "probability", f"no expected value: {missing}"
    elif rank_by == "probability":
        used, reason = "probability", "[scoring] rank_by = probability"
    else:
        used, reason = "value", None
    order = calling_order(leads, used)
    in_order = bool((order == np.arange(len(order))).all())
    ranked = leads.reset_index(drop=True) if in_order else in_rows(leads, order)
    ranked["rank"] = np.arange(1, len(ranked) + 1, dtype=np.int64)
    ranking = Ranking(
        rank_by=used,
        requested=rank_by,
        reason=reason,
        values_missing=missing,
        leads_on_own_campaign=on_own,
        leads_on_overall=len(leads) - on_own if table is not None else 0,
    )
    return ValuedLeads(ranked, ranking)


# --- files ---------------------------------------------------------------------------------------


def read_new_customer_value(path: Path) -> pd.DataFrame | None:
    """``new_customer_value.csv``, or None when it is missing or holds no rows."""
    if not path.exists():
        return None
    try:
        table = pd.read_csv(path, dtype={"campaign": str}, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot be read as CSV ({error})") from None
    return table if len(table) else None


def skipped_ltv_reason(stage: Mapping[str, Any] | None, source: str) -> str | None:
    """Why there are no customer values when the LTV stage in ``source`` was skipped, else None."""
    if not isinstance(stage, Mapping) or stage.get("state") != "skipped":
        return None
    because = str(stage.get("reason") or "no reason was recorded").rstrip(".")
    return f"the LTV stage was skipped in {source} ({because})"


def campaigns_from_processed(processed_dir: Path) -> pd.Series:
    """user id → acquisition campaign, from ingest's ``users.parquet`` (its ``campaign`` column)."""
    users = pd.read_parquet(processed_dir / "users.parquet", columns=["user_id", "campaign"])
    return pd.Series(users["campaign"].to_numpy(), index=users["user_id"].astype(str))


def campaigns_from_source(raw_dir: str | Path | None, source_url: str | None) -> pd.Series:
    """user id → acquisition campaign read straight from the raw users table (score-only runs,
    which keep no processed data): ``marketing``'s ``utm_campaign``, else a ``campaign`` column."""
    from insightos_utils.ingest.fastpath import marketing_fields
    from insightos_utils.ingest.sources import open_source

    source = open_source(raw_dir, source_url)
    try:
        where = source.locate(USERS)
        users = source.read(USERS, where).frame  # type: ignore[arg-type]  # located: not None
    finally:
        source.close()
    if "marketing" in users.columns:
        names = marketing_fields(users["marketing"])["campaign"]
    elif "campaign" in users.columns:
        names = users["campaign"].astype(str).replace("", NO_CAMPAIGN)
    else:
        names = pd.Series(NO_CAMPAIGN, index=users.index)
    return pd.Series(names.to_numpy(), index=users["user_id"].astype(str))


def rewrite_scored_leads(
    scored_path: Path,
    values_path: Path,
    *,
    rank_by: str,
    campaigns: Callable[[], pd.Series],
    skipped_reason: str | None = None,
) -> Ranking:
    """Add the expected value to ``scored_path`` and rank it by ``rank_by``, in place (atomic).

    Each lead's campaign is the file's own ``campaign`` column (scoring writes it);
    ``campaigns`` is called only for a file without one (or with an empty one), when there are
    customer values."""
    scored = pd.read_csv(scored_path, dtype={"user_id": str, "campaign": str})
    if "campaign" in scored.columns and scored["campaign"].hasnans:  # "NA" can be a campaign
        scored["campaign"] = pd.read_csv(
            scored_path, usecols=["campaign"], dtype=str, keep_default_na=False, na_values=[""]
        )["campaign"]
    values = None if skipped_reason else read_new_customer_value(values_path)
    own = "campaign" in scored.columns and scored["campaign"].notna().any()
    needed = values is not None and len(scored) and not own
    lookup = campaigns() if needed else None
    valued = add_expected_value(
        scored, values, rank_by=rank_by, campaigns=lookup, skipped_reason=skipped_reason
    )
    atomic_write(scored_path, lambda tmp: write_leads_csv(valued.table, tmp))
    return valued.ranking


def write_leads_csv(table: pd.DataFrame, path: Path) -> None:
    """``table`` as CSV that reads back exactly as pandas' own ``to_csv`` output does (``True``
    / ``False``, an empty field for a missing value; every text value quoted), through Arrow's
    writer: about ten times faster than ``DataFrame.to_csv`` on a million leads."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    columns = {}
    for name in table.columns:
        array = pa.array(table[name], from_pandas=True)  # NaN → null: an empty field
        if pa.types.is_dictionary(array.type):  # a categorical: its values
            array = array.cast(array.type.value_type)
        if pa.types.is_boolean(array.type):
            array = pc.if_else(array, "True", "False")
        columns[str(name)] = array
    options = pacsv.WriteOptions(quoting_style="needed")
    pacsv.write_csv(pa.table(columns), path, options)
