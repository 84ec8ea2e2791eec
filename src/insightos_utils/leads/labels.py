"""The horizon label: did a lead convert within ``[scoring] horizon_days`` of its signup?

The score is the probability of converting within the horizon (the way commercial scorers
define "likelihood to close"), so the label is, for each user who exists at as-of:

- converted within the horizon (``converted_at - created_at <= horizon``, known at as-of) = 1;
- lost, or converted later than the horizon, or open with the whole horizon passed
  (``as_of - created_at >= horizon``) without converting = 0;
- open and younger than the horizon = censored (<NA>): not trained on, but scored.

"Known at as-of": a conversion after as-of has not happened yet, and a lost lead whose
``closed_at`` (optional) lies after as-of was still open then. Without ``closed_at`` a lost lead
is taken as lost at as-of (today's status; the backtest handles its own as-of). A converted user
without ``converted_at`` (ingest rejects those) gets no label and is not open.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightos_utils.contract import OPEN_STATUSES, parse_timestamp
from insightos_utils.errors import InputError

CONVERTED_WITHIN = "converted within the horizon"
CONVERTED_AFTER = "converted after the horizon"
LOST = "lost"
NOT_CONVERTED = "open past the horizon without converting"
CENSORED = "open, younger than the horizon (censored)"
NO_CONVERSION_TIME = "converted without converted_at"
REASONS = (CONVERTED_WITHIN, CONVERTED_AFTER, LOST, NOT_CONVERTED, CENSORED, NO_CONVERSION_TIME)
LABEL_COLUMNS = ("label", "label_reason", "is_open", "days_observed", "converted_by_as_of")
_DAY = pd.Timedelta(days=1)


def _naive(series: pd.Series) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = pd.to_datetime(series, utc=True, format="ISO8601")
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series


def horizon_labels(
    users: pd.DataFrame, as_of: str | pd.Timestamp, horizon_days: int = 90
) -> pd.DataFrame:
    """One row per user existing at ``as_of`` (index ``user_id``, the users' order):

    ``label`` (Int8: 1, 0 or <NA> = censored or unknown), ``label_reason`` (one of
    ``REASONS``), ``is_open`` (open at as-of: these are scored), ``days_observed`` (days from
    signup to the conversion when it is known at as-of, else to as-of: the follow-up time a
    survival curve needs) and ``converted_by_as_of`` (the event flag that goes with it).
    """
    missing = [c for c in ("user_id", "created_at", "status", "converted_at") if c not in users]
    if missing:
        raise InputError(f"users: missing column(s) {missing} for the horizon label")
    if int(horizon_days) < 1:
        raise InputError(f"horizon_days must be at least 1, got {horizon_days}")
    as_of = parse_timestamp(as_of)
    created = _naive(users["created_at"])
    exists = (created <= as_of).to_numpy()
    users = users.loc[exists]
    created = created[exists]
    status = users["status"].astype(str).to_numpy()
    converted_at = _naive(users["converted_at"])
    horizon = pd.Timedelta(days=int(horizon_days))

    conversion_known = (
        (status == "converted") & converted_at.notna().to_numpy() & (converted_at <= as_of)
    ).to_numpy()
    time_to_conversion = (converted_at - created).to_numpy()
    within = conversion_known & (time_to_conversion <= horizon.to_timedelta64())
    after = conversion_known & ~within
    lost = status == "lost"
    if "closed_at" in users.columns:
        closed_at = _naive(users["closed_at"])
        lost &= ~(closed_at.notna() & (closed_at > as_of)).to_numpy()
    no_time = (status == "converted") & converted_at.isna().to_numpy()
    # open at as-of: an open status, a conversion after as-of, or a lost lead closed after as-of
    is_open = ~conversion_known & ~lost & ~no_time
    is_open &= np.isin(status, [*OPEN_STATUSES, "converted", "lost"])
    age = (as_of - created).to_numpy()
    horizon_passed = age >= horizon.to_timedelta64()

    reason = np.full(len(users), CENSORED, dtype=object)
    reason[is_open & horizon_passed] = NOT_CONVERTED
    reason[lost] = LOST
    reason[after] = CONVERTED_AFTER
    reason[within] = CONVERTED_WITHIN
    reason[no_time] = NO_CONVERSION_TIME
    label = pd.array(np.where(within, 1, 0), dtype="Int8")
    label[(reason == CENSORED) | (reason == NO_CONVERSION_TIME)] = pd.NA

    observed = np.where(conversion_known, time_to_conversion, age)
    frame = pd.DataFrame(
        {
            "label": label,
            "label_reason": pd.Categorical(reason, categories=list(REASONS)),
            "is_open": is_open,
            "days_observed": pd.to_timedelta(observed) / _DAY,
            "converted_by_as_of": conversion_known,
        },
        index=pd.Index(users["user_id"].to_numpy(), name="user_id"),
    )
    return frame


def label_counts(labels: pd.DataFrame) -> pd.DataFrame:
    """How many users each reason holds, with the label it gives (for the notebook and card)."""
    counts = labels["label_reason"].value_counts(sort=False).reindex(list(REASONS), fill_value=0)
    label_of = {
        CONVERTED_WITHIN: "1",
        CONVERTED_AFTER: "0",
        LOST: "0",
        NOT_CONVERTED: "0",
        CENSORED: "censored (scored, not trained on)",
        NO_CONVERSION_TIME: "none",
    }
    return pd.DataFrame(
        {
            "reason": list(REASONS),
            "label": [label_of[r] for r in REASONS],
            "users": counts.to_numpy(dtype=np.int64),
        }
    )


def with_horizon_labels(
    feature_table: pd.DataFrame, users: pd.DataFrame, as_of: str | pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """``feature_table`` (index user_id, with ``status_at_as_of``, ``label_known`` and the
    target column ``target_converted``) relabelled by the horizon rule: the target is the
    horizon label, ``label_known`` where it is not censored, and ``status_at_as_of`` open
    exactly where ``horizon_labels`` says the lead was open at as-of (a lost lead is closed,
    however young)."""
    labels = horizon_labels(users, as_of, horizon_days).reindex(feature_table.index)
    label = labels["label"].astype("Int8")
    is_open = labels["is_open"].fillna(False).to_numpy(dtype=bool)
    status = feature_table["status_at_as_of"].astype(str).to_numpy(dtype=object)
    reason = labels["label_reason"].astype(object).to_numpy()
    was_open = np.isin(status, list(OPEN_STATUSES))
    status = np.where(is_open & ~was_open, "lead", status)
    status = np.where(reason == LOST, "lost", status)
    converted = np.isin(reason, [CONVERTED_WITHIN, CONVERTED_AFTER, NO_CONVERSION_TIME])
    status = np.where(converted, "converted", status)
    return feature_table.assign(
        status_at_as_of=pd.array(status, dtype="str"),
        label_known=label.notna().to_numpy(),
        target_converted=label.array,
    )
