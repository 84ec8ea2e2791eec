"""Why a lead scored as it did: per-lead feature contributions turned into readable reasons.

Contributions are on the log-odds scale and add up, with a base value, to the model's margin:

- logistic regression: coefficient x (transformed value - its training mean), i.e. coefficient x
  standardized value for numeric features and coefficient x (indicator - category share) for each
  one-hot category; the columns one feature produced are summed back into that feature;
- XGBoost: the booster's own per-row contributions (``pred_contribs=True``, TreeSHAP), mapped back
  to the original features through the pipeline's transformed columns.

Reasons are phrased from the feature names alone (``events_<name>`` becomes "<name> 3 times in the
first 14 days"), so a company with other event names gets sensible words without code changes.
Everything is vectorised: phrases are built once per distinct (feature, value, direction).
"""

from __future__ import annotations

from insightos_utils import _openmp  # noqa: F401  (before scikit-learn and xgboost load)

# isort: split

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from insightos_utils.leads.attributes import MARKETING_PREFIX, USERS_PREFIX
from insightos_utils.leads.features import KEY_EVENT_PREFIX, OTHER_COLUMN
from insightos_utils.leads.pipelines import (
    CATEGORICAL,
    IMPUTE,
    MODEL,
    NUMERIC,
    ONEHOT,
    PREPARE,
    prepare,
)

EVENT_PREFIX = "events_"
# Behavioural columns of the feature table (features.BEHAVIOURAL_COLUMNS), phrased in words.
BEHAVIOUR_PHRASES = {
    "days_active": "active on {value} of the first {window} days",
    "distinct_event_types": "{value} different kinds of activity in the first {window} days",
}
RAISES = "raises"
LOWERS = "lowers"
# Acquisition columns of the processed users table (docs/ARCHITECTURE.md), phrased as origins.
ORIGIN_PHRASES = {
    "campaign": "came from campaign {value}",
    "source": "came from source {value}",
    "medium": "came via medium {value}",
}
NO_ORIGIN = {"(none)", "(missing)", ""}
_ZERO = 1e-12
EXACT_SHAP_MAX_ROWS = 200_000


@dataclass(frozen=True)
class TransformedColumn:
    """One column the pipeline's preparation step outputs, and the feature it came from."""

    feature: str
    kind: str  # "value" (scaled number), "missing" (missing-value indicator), "category"
    category: str | None = None


@dataclass
class LeadExplanations:
    """Per-lead contributions (log-odds) per original feature, the top reasons and their text."""

    contributions: pd.DataFrame
    base_value: np.ndarray
    top_features: pd.DataFrame  # reason_1..N: feature names ("" when fewer reasons)
    top_contributions: pd.DataFrame  # reason_1..N: signed contribution
    text: pd.Series
    method: str


def transformed_columns(pipeline: Pipeline) -> list[TransformedColumn]:
    """The source feature of every column the fitted ``prepare`` step produces, in order."""
    prepare_step = pipeline.named_steps[PREPARE]
    columns: list[TransformedColumn] = []
    for name, steps, source in prepare_step.transformers_:
        if name == "remainder" or steps == "drop" or len(source) == 0:
            continue
        source = list(source)
        if name == NUMERIC:
            columns += [TransformedColumn(feature, "value") for feature in source]
            indicator = steps.named_steps[IMPUTE].indicator_
            if indicator is not None:
                columns += [TransformedColumn(source[i], "missing") for i in indicator.features_]
        elif name == CATEGORICAL:
            encoder = steps.named_steps[ONEHOT]
            for feature, categories in zip(source, encoder.categories_, strict=True):
                columns += [TransformedColumn(feature, "category", str(c)) for c in categories]
        else:
            raise ValueError(f"unexpected transformer {name!r} in the pipeline")
    return columns


def _feature_matrix(columns: list[TransformedColumn], features: list[str]) -> np.ndarray:
    """A 0/1 matrix (transformed columns x features) that sums columns back into features."""
    position = {feature: j for j, feature in enumerate(features)}
    matrix = np.zeros((len(columns), len(features)), dtype=np.float64)
    for i, column in enumerate(columns):
        matrix[i, position[column.feature]] = 1.0
    return matrix


def feature_contributions(
    pipeline: Pipeline,
    prepared: np.ndarray,
    features: list[str],
    reference: np.ndarray | None = None,
    distinct: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(contributions: rows x ``features``, base value per row, method), in log-odds.

    ``prepared`` is ``pipelines.prepare(pipeline, frame, features)`` (what ``ModelBundle.prepare`` does); ``reference`` the mean prepared
    training row (logistic regression only); ``distinct`` is ``distinct_rows(prepared)`` when the
    caller already has it (tree models explain each distinct row once). Contributions plus the
    base value equal the model's margin (decision function).
    """
    columns = transformed_columns(pipeline)
    if len(columns) != prepared.shape[1]:
        raise ValueError(
            f"pipeline produced {prepared.shape[1]} columns but {len(columns)} were mapped"
        )
    model = pipeline.named_steps[MODEL]
    if isinstance(model, LogisticRegression):
        coef = model.coef_[0]
        if reference is None:
            reference = np.zeros(prepared.shape[1])
        per_column = (prepared - reference) * coef
        base = np.full(len(prepared), float(model.intercept_[0] + reference @ coef))
        method = "coefficient x standardized value"
        return per_column @ _feature_matrix(columns, features), base, method
    unique_rows, inverse = distinct_rows(prepared) if distinct is None else distinct
    per_column, base, method = _tree_contributions(model, unique_rows)
    # summed into features per distinct row, then spread back to every row
    return (per_column @ _feature_matrix(columns, features))[inverse], base[inverse], method


def uses_distinct_rows(pipeline: Pipeline) -> bool:
    """True for tree models, whose per-row work (prediction, contributions) is done once per
    distinct prepared row (see ``distinct_rows``); a linear model is cheaper row by row."""
    return not isinstance(pipeline.named_steps[MODEL], LogisticRegression)


def _tree_contributions(
    model: object, unique_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str]:
    """XGBoost's contributions for each of the (already distinct) ``unique_rows``.

    Exact TreeSHAP costs about 0.15 ms per row on 2 cores (2.5 minutes for a million leads), so
    above ``EXACT_SHAP_MAX_ROWS`` distinct rows the booster's path contributions (Saabas,
    ``approx_contribs``) are used: also additive to the margin, ten times faster.
    """
    import xgboost

    booster = model.get_booster()  # type: ignore[attr-defined]
    approx = len(unique_rows) > EXACT_SHAP_MAX_ROWS
    contribs = booster.predict(
        xgboost.DMatrix(unique_rows, nthread=getattr(model, "n_jobs", None) or -1),
        pred_contribs=True,
        approx_contribs=approx,
    )
    method = "XGBoost path contributions (Saabas)" if approx else "XGBoost TreeSHAP"
    contribs = contribs.astype(np.float64)  # whole: converting strided slices is much slower
    return contribs[:, :-1], contribs[:, -1], method


def distinct_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``matrix`` (in order of first appearance) and, per row, the index
    of its distinct row, so ``unique_rows[inverse]`` gives ``matrix`` back.

    Rows are hashed (NaN equals NaN, -0.0 equals 0.0); only the repeated rows are then compared
    with their first occurrence, which rules out a 64-bit hash collision at a fraction of the
    cost of comparing every row.
    """
    if len(matrix) < 2:
        return matrix, np.arange(len(matrix))
    frame = pd.DataFrame(matrix, copy=False)  # a view: pandas would otherwise copy the matrix
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    codes, unique_hashes = pd.factorize(hashes)
    first = np.full(len(unique_hashes), -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    repeats = np.flatnonzero(first[codes] != np.arange(len(codes)))
    same = np.array_equal(matrix[first[codes[repeats]]], matrix[repeats], equal_nan=True)
    if not same:  # a 64-bit hash collision: explain every row
        return matrix, np.arange(len(matrix))
    return matrix[first], codes


# --- words ---------------------------------------------------------------------------------------


def humanise(name: str) -> str:
    """Feature or event name in plain words: ``project_created`` → ``project created``; a lead
    attribute loses its prefix (``attr_company_size`` → ``company size``)."""
    for prefix in (USERS_PREFIX, MARKETING_PREFIX):
        if name.startswith(prefix) and len(name) > len(prefix):
            name = name[len(prefix) :]
            break
    words = re.sub(r"[_\-.:/]+", " ", name)
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", words)
    return re.sub(r"\s+", " ", words).strip().lower()


def feature_label(feature: str) -> str:
    """A short chart label for a feature: ``events_task_created`` → ``task created (count)``."""
    if feature == OTHER_COLUMN:
        return "other events (count)"
    if feature.startswith(EVENT_PREFIX):
        return f"{humanise(feature[len(EVENT_PREFIX) :])} (count)"
    return humanise(feature)


def _format_number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def describe_value(feature: str, value: object, window_days: int, categorical: bool) -> str:
    """One feature's value as a phrase a salesperson can read."""
    if categorical:
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        if feature in ORIGIN_PHRASES:
            if text in NO_ORIGIN:
                return f"no {feature} recorded"
            return ORIGIN_PHRASES[feature].format(value=text)
        return f"{humanise(feature)} is {text or 'unknown'}"
    number = float(value) if value is not None else float("nan")  # type: ignore[arg-type]
    window = f"in the first {window_days} days"
    if feature.startswith(EVENT_PREFIX):
        event = (
            "other events" if feature == OTHER_COLUMN else humanise(feature[len(EVENT_PREFIX) :])
        )
        if np.isnan(number) or number == 0:
            return f"no {event} {window}"
        if number == 1:
            return f"{event} once {window}"
        return f"{event} {_format_number(number)} times {window}"
    if feature.startswith(KEY_EVENT_PREFIX):
        event = humanise(feature[len(KEY_EVENT_PREFIX) :])
        if np.isnan(number) or number >= window_days * 24:
            return f"no {event} {window}"
        if number < 1:
            return f"first {event} within an hour of signup"
        if number < 48:
            return f"first {event} {_format_number(round(number))} hours after signup"
        return f"first {event} {_format_number(round(number / 24))} days after signup"
    if feature in BEHAVIOUR_PHRASES and not np.isnan(number):
        return BEHAVIOUR_PHRASES[feature].format(value=_format_number(number), window=window_days)
    if np.isnan(number):
        if feature.startswith((USERS_PREFIX, MARKETING_PREFIX)):
            return f"no {humanise(feature)} recorded"
        return f"{humanise(feature)}: not yet"
    return f"{humanise(feature)}: {_format_number(number)}"


def _phrase_codes(
    feature: str,
    values: pd.Series,
    signs: np.ndarray,
    window_days: int,
    categorical: bool,
) -> tuple[list[str], np.ndarray]:
    """(phrases, code per row) for one feature: each distinct (value, direction) is phrased
    once; row ``i`` reads ``phrases[codes[i]]``."""
    if categorical:
        codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=False)
        labels = [describe_value(feature, v, window_days, True) for v in uniques]
    else:
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        uniques, codes = np.unique(np.round(numbers, 1), return_inverse=True)
        labels = [describe_value(feature, v, window_days, False) for v in uniques]
    phrases = [text for label in labels for text in (f"{label} ({LOWERS})", f"{label} ({RAISES})")]
    return phrases, 2 * np.asarray(codes).ravel() + (signs > 0).astype(np.int64)


def _join_reasons(phrase_ids: np.ndarray, phrases: list[str]) -> np.ndarray:
    """Each row's reasons joined with "; " (phrase id 0 is no reason), built once per distinct
    combination of reasons: far fewer combinations than leads."""
    n_rows, top_n = phrase_ids.shape
    if n_rows == 0 or top_n == 0:
        return np.full(n_rows, "", dtype=object)
    combination = np.zeros(n_rows, dtype=np.int64)
    for rank in range(top_n):  # stays below n_rows x len(phrases): no overflow
        combination, _ = pd.factorize(combination * len(phrases) + phrase_ids[:, rank])
    first = np.full(combination.max() + 1, -1, dtype=np.int64)
    first[combination[::-1]] = np.arange(n_rows)[::-1]
    texts = np.empty(len(first), dtype=object)
    for k, row in enumerate(first):
        ids = phrase_ids[row]
        text = phrases[ids[0]]
        for later in ids[1:]:
            if later:
                text = text + "; " + phrases[later]
        texts[k] = text
    return texts[combination]


def _largest_columns(magnitude: np.ndarray, top_n: int) -> np.ndarray:
    """Per row, the columns of the ``top_n`` largest values, largest first (ties: the earlier
    column), i.e. the first ``top_n`` of a stable descending sort. One ``argmax`` per rank is
    far faster than sorting or partitioning a million short rows."""
    remaining = magnitude.copy()
    rows = np.arange(len(magnitude))
    top = np.empty((len(magnitude), top_n), dtype=np.intp)
    for rank in range(top_n):
        top[:, rank] = np.argmax(remaining, axis=1)
        remaining[rows, top[:, rank]] = -np.inf
    return top


def explain_leads(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    features: list[str],
    *,
    window_days: int,
    top_n: int = 3,
    reference: np.ndarray | None = None,
    prepared: np.ndarray | None = None,
    distinct: tuple[np.ndarray, np.ndarray] | None = None,
) -> LeadExplanations:
    """The ``top_n`` features that moved each lead's score most, with readable text.

    ``prepared`` (``pipelines.prepare(pipeline, frame, features)``, as ``ModelBundle.prepare``) and ``distinct``
    (``distinct_rows(prepared)``) save computing them twice when the caller already has them
    for scoring.
    """
    if prepared is None:
        prepared = prepare(pipeline, frame, features)
    contributions, base, method = feature_contributions(
        pipeline, prepared, features, reference, distinct
    )
    n_rows, n_features = contributions.shape
    top_n = max(0, min(top_n, n_features))
    top = _largest_columns(np.abs(contributions), top_n)
    top_values = np.take_along_axis(contributions, top, axis=1)
    numeric = {f for f in features if pd.api.types.is_numeric_dtype(frame[f])}
    phrases = [""]  # phrase id 0: no reason
    phrase_ids = np.zeros((n_rows, top_n), dtype=np.int64)
    for rank in range(top_n):
        # rows grouped by the feature at this rank (-1: no reason), each group in row order
        which = np.where(np.abs(top_values[:, rank]) > _ZERO, top[:, rank], -1)
        by_feature = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[by_feature], np.arange(n_features + 1))
        for j, feature in enumerate(features):
            rows = by_feature[bounds[j] : bounds[j + 1]]
            if len(rows) == 0:
                continue
            texts, codes = _phrase_codes(
                feature,
                frame[feature].iloc[rows],
                top_values[rows, rank],
                window_days,
                categorical=feature not in numeric,
            )
            phrase_ids[rows, rank] = len(phrases) + codes
            phrases += texts
    text = _join_reasons(phrase_ids, phrases)
    names = np.asarray(features, dtype=object)[top] if top_n else np.empty((n_rows, 0), object)
    names = np.where(np.abs(top_values) > _ZERO, names, "")
    columns = [f"reason_{k + 1}" for k in range(top_n)]
    return LeadExplanations(  # copy=False: the arrays are ours, pandas need not copy them
        contributions=pd.DataFrame(contributions, index=frame.index, columns=features, copy=False),
        base_value=base,
        top_features=pd.DataFrame(names, index=frame.index, columns=columns, copy=False),
        top_contributions=pd.DataFrame(top_values, index=frame.index, columns=columns, copy=False),
        text=pd.Series(text, index=frame.index, name="top_reasons", dtype=object),
        method=method,
    )


def no_explanations(features: list[str], top_n: int) -> LeadExplanations:
    """The explanations of no leads at all (an empty scoring run)."""
    columns = [f"reason_{k + 1}" for k in range(max(0, min(top_n, len(features))))]
    empty = pd.Index([], name="user_id")
    return LeadExplanations(
        contributions=pd.DataFrame(index=empty, columns=features, dtype=np.float64),
        base_value=np.empty(0),
        top_features=pd.DataFrame(index=empty, columns=columns, dtype=object),
        top_contributions=pd.DataFrame(index=empty, columns=columns, dtype=np.float64),
        text=pd.Series([], index=empty, name="top_reasons", dtype=object),
        method="none (no leads)",
    )


def reason_frequency(explanations: LeadExplanations) -> pd.DataFrame:
    """How often each feature appears among the leads' top reasons, raising or lowering."""
    names = explanations.top_features.to_numpy().ravel()
    values = explanations.top_contributions.to_numpy().ravel()
    keep = names != ""
    table = pd.DataFrame(
        {"feature": names[keep], "direction": np.where(values[keep] > 0, RAISES, LOWERS)}
    )
    counts = table.groupby(["feature", "direction"]).size().unstack(fill_value=0)
    for direction in (RAISES, LOWERS):
        if direction not in counts.columns:
            counts[direction] = 0
    counts = counts[[RAISES, LOWERS]]
    counts["total"] = counts.sum(axis=1)
    return counts.sort_values("total", ascending=False).reset_index()
