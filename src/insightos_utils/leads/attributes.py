"""Lead attributes: what a company records about a lead besides the contract's columns.

Extra columns of ``users`` (landing page, industry, company size, ...) and extra keys of the
``marketing`` JSON (``utm_content``, ``utm_term``, ...) become features by one written rule:

1. **Candidates.** Every ``users`` column that is not a contract column (nor one ingest derives:
   campaign, source, medium, ``raw_*``), as ``attr_<name>``; every ``marketing`` key other than
   ``utm_campaign`` / ``utm_source`` / ``utm_medium``, as ``marketing_<key>``. A non-empty
   ``include_attributes`` keeps only the fields it names; ``exclude_attributes`` drops fields.
2. **Type.** Empty text and JSON null are missing. A field is *numeric* when at least
   ``NUMERIC_SHARE`` of its filled values parse as numbers (``1,234.5``, ``1.234,5``, ``3,5``
   and ``12%`` included), a *timestamp* when as many parse as ISO 8601 dates (not used: a date
   a process fills in usually records something after signup), else *categorical*.
3. **Levels.** A categorical field keeps its ``attribute_max_levels`` most common levels held by
   at least ``attribute_min_users`` users; the rest become ``(other)``, missing is ``(missing)``.
   A field whose kept levels cover less than ``MIN_LEVEL_COVERAGE`` of the filled values is
   id-like or free text (a sales owner among hundreds, notes) and is not used; nor is a field
   with one value only. A field named in ``include_attributes`` skips the coverage rule.
4. **Leakage audit** (``audit_attributes``, needs the outcomes): a field filled in after the
   outcome is dropped with the reason shown. Two measurements: its fill rate among open leads
   against closed ones (a "lead quality" column sales fills in when a lead closes is empty for
   open leads), and its single-feature ROC AUC on a time holdout (level conversion rates learned
   on the earlier labelled signups, measured on the later ones; missing counts as a value) above
   ``[scoring] leakage_feature_auc``.

Levels are learned without the target; the plan (``AttributePlan``) is JSON-safe so scoring
applies exactly the encoding training used. Every step is vectorised over distinct values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from insightos_utils.contract import MARKETING_FIELDS, OPEN_STATUSES, USERS

USERS_PREFIX = "attr_"
MARKETING_PREFIX = "marketing_"
OTHER_LEVEL = "(other)"
MISSING_LEVEL = "(missing)"
NUMERIC_SHARE = 0.95  # share of filled values that must parse for a field to be numeric
MIN_LEVEL_COVERAGE = 0.5  # kept levels must hold at least this share of the filled values
FILLED_AFTER_RATIO = 0.5  # filled among open leads below this × filled among closed: a leak
LEVEL_PRIOR_USERS = 10.0  # level conversion rates are shrunk toward the overall rate by this
_CONTRACT_MARKETING_KEYS = frozenset(f"utm_{name}" for name in MARKETING_FIELDS)
_DERIVED_USERS_COLUMNS = frozenset(MARKETING_FIELDS)
KINDS = ("numeric", "categorical", "timestamp", "constant", "empty")


@dataclass(frozen=True)
class AttributeSpec:
    """One candidate field: where it comes from, its type, and (categorical) its kept levels."""

    feature: str  # the feature column: attr_<slug> or marketing_<slug>
    source: str  # "users" (a column) or "marketing" (a JSON key)
    field: str  # the column name or the JSON key
    kind: str  # one of KINDS
    levels: tuple[str, ...] = ()
    filled_share: float = 0.0
    used: bool = True
    reason: str = ""


@dataclass(frozen=True)
class AttributePlan:
    """The attributes found in the data and how each is encoded; ``features`` are the used ones."""

    specs: tuple[AttributeSpec, ...] = ()
    max_levels: int = 20
    min_users: int = 30

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(s.feature for s in self.specs if s.used)

    @property
    def numeric_features(self) -> tuple[str, ...]:
        return tuple(s.feature for s in self.specs if s.used and s.kind == "numeric")

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return tuple(s.feature for s in self.specs if s.used and s.kind == "categorical")

    def drop(self, reasons: dict[str, str]) -> AttributePlan:
        """A copy with the features in ``reasons`` marked unused, each with its reason."""
        specs = tuple(
            replace(s, used=False, reason=reasons[s.feature]) if s.feature in reasons else s
            for s in self.specs
        )
        return replace(self, specs=specs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``from_dict`` reads it back)."""
        return {
            "max_levels": self.max_levels,
            "min_users": self.min_users,
            "specs": [{**asdict(s), "levels": list(s.levels)} for s in self.specs],
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> AttributePlan:
        specs = tuple(
            AttributeSpec(**{**s, "levels": tuple(s.get("levels", ()))})
            for s in document.get("specs", [])
        )
        return cls(
            specs=specs,
            max_levels=int(document.get("max_levels", 20)),
            min_users=int(document.get("min_users", 30)),
        )


# ---------------------------------------------------------------- raw values


def _slug(name: str) -> str:
    slug = re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")
    return slug or "unnamed"


def _as_text(values: pd.Series | np.ndarray) -> np.ndarray:
    """Object array of stripped text, None where missing (NaN, None, empty, JSON null)."""
    codes, distinct = pd.factorize(pd.Series(np.asarray(values, dtype=object)))
    cleaned = []
    for value in distinct:  # once per distinct value, not per row
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip()
        cleaned.append(None if text in ("", "null", "None", "nan", "NaN") else text)
    return np.array([*cleaned, None], dtype=object)[codes]  # code -1 (missing) takes None


def extra_user_columns(users: pd.DataFrame) -> list[str]:
    """The ``users`` columns beyond the contract's (and those ingest derives from it)."""
    contract = set(USERS.column_names) | _DERIVED_USERS_COLUMNS
    return [str(c) for c in users.columns if c not in contract and not str(c).startswith("raw_")]


def marketing_keys(marketing: pd.Series) -> pd.DataFrame:
    """The extra keys of the ``marketing`` JSON (not utm_campaign/source/medium), one column
    each (the key as its name), aligned with ``marketing``; parsed once per distinct text."""
    text = _as_text(marketing)
    codes, distinct = pd.factorize(pd.Series(text, dtype=object), use_na_sentinel=True)
    parsed: list[dict[str, Any]] = []
    for item in distinct:
        try:
            document = json.loads(item)
        except (TypeError, ValueError):
            document = None
        parsed.append(document if isinstance(document, dict) else {})
    keys = sorted({k for d in parsed for k in d if k not in _CONTRACT_MARKETING_KEYS})
    columns = {}
    for key in keys:
        per_distinct = np.array([d.get(key) for d in parsed] + [None], dtype=object)
        columns[key] = per_distinct[codes]  # code -1 (missing JSON) takes the trailing None
    return pd.DataFrame(columns, index=marketing.index)


_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
_THOUSANDS_DOT = re.compile(r"^[-+]?\d{1,3}(\.\d{3})+(,\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[-+]?\d*,\d+$")


def parse_numbers(text: np.ndarray) -> np.ndarray:
    """Numbers from text (NaN where a filled value does not parse, or is missing): ``1,234.5``
    and ``1.234,5`` (thousands separators), ``3,5`` (decimal comma), ``12%`` (= 12)."""
    series = pd.Series(text, dtype=object)
    distinct = series.dropna().unique()
    values = {}
    for item in distinct:
        raw = str(item).replace(" ", "").replace("\u00a0", "").removesuffix("%")
        if _THOUSANDS.match(raw):
            raw = raw.replace(",", "")
        elif _THOUSANDS_DOT.match(raw):
            raw = raw.replace(".", "").replace(",", ".")
        elif _DECIMAL_COMMA.match(raw):
            raw = raw.replace(",", ".")
        try:
            number = float(raw)
        except ValueError:
            number = np.nan
        values[item] = number if np.isfinite(number) else np.nan
    return series.map(values).to_numpy(dtype=np.float64)


def _looks_like_timestamps(filled: np.ndarray) -> float:
    """Share of filled values that parse as ISO 8601 dates (and contain a date separator)."""
    distinct = pd.unique(filled)
    if not len(distinct):
        return 0.0
    shaped = np.array([bool(re.match(r"^\d{4}-\d{2}-\d{2}", str(v))) for v in distinct])
    stamps = pd.to_datetime(pd.Series(distinct[shaped]), errors="coerce", format="ISO8601")
    parsed = dict(zip(distinct[shaped], stamps.notna(), strict=True))
    return float(np.mean([parsed.get(v, False) for v in filled]))


def attribute_values(users: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """Every candidate field's raw values as text (None where missing), keyed by
    (source, field), aligned with ``users``' rows."""
    values: dict[tuple[str, str], np.ndarray] = {}
    for column in extra_user_columns(users):
        values[("users", column)] = _as_text(users[column])
    if "marketing" in users.columns:
        keys = marketing_keys(users["marketing"])
        for key in keys.columns:
            values[("marketing", str(key))] = _as_text(keys[key])
    return values


# ---------------------------------------------------------------- fit and build


def _listed(source: str, name: str, feature: str, names: Sequence[str]) -> bool:
    return name in names or feature in names or f"{source}.{name}" in names


def fit_attribute_plan(
    users: pd.DataFrame,
    max_levels: int = 20,
    min_users: int = 30,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    as_of: pd.Timestamp | str | None = None,
) -> AttributePlan:
    """Find the attributes in ``users`` and decide each one's type and levels (steps 1-3 of the
    module's rule), from the users existing at ``as_of`` (all when None); no target is used.

    ``include`` / ``exclude`` name fields by column or JSON key (``landing_page``,
    ``utm_content``), by feature name (``attr_landing_page``) or as ``users.X`` /
    ``marketing.X``. A name in ``include`` that is not in the data is listed, not an error.
    """
    if as_of is not None and "created_at" in users.columns:
        users = users.loc[users["created_at"] <= pd.Timestamp(as_of)]
    specs: list[AttributeSpec] = []
    taken: set[str] = set()
    found: set[str] = set()
    for (source, name), text in attribute_values(users).items():
        prefix = USERS_PREFIX if source == "users" else MARKETING_PREFIX
        feature = base = f"{prefix}{_slug(name)}"
        suffix = 2
        while feature in taken:
            feature, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(feature)
        found |= {name, feature, f"{source}.{name}"}
        specs.append(_fit_one(source, name, feature, text, max_levels, min_users, include, exclude))
    for name in include:
        if name not in found:
            specs.append(
                AttributeSpec(
                    feature=name,
                    source="config",
                    field=name,
                    kind="empty",
                    used=False,
                    reason="listed in [features] include_attributes but not in the data",
                )
            )
    return AttributePlan(specs=tuple(specs), max_levels=int(max_levels), min_users=int(min_users))


def _fit_one(
    source: str,
    name: str,
    feature: str,
    text: np.ndarray,
    max_levels: int,
    min_users: int,
    include: Sequence[str],
    exclude: Sequence[str],
) -> AttributeSpec:
    filled = text[pd.notna(text)]
    filled_share = float(len(filled) / len(text)) if len(text) else 0.0
    spec = AttributeSpec(feature, source, name, "empty", filled_share=round(filled_share, 6))
    if _listed(source, name, feature, exclude):
        kind = _kind(filled)
        return replace(
            spec, kind=kind, used=False, reason="listed in [features] exclude_attributes"
        )
    if include and not _listed(source, name, feature, include):
        return replace(
            spec,
            kind=_kind(filled),
            used=False,
            reason="not listed in [features] include_attributes",
        )
    if not len(filled):
        return replace(spec, used=False, reason="never filled in")
    kind = _kind(filled)
    if kind == "timestamp":
        return replace(
            spec,
            kind=kind,
            used=False,
            reason="a date: not used (a date a process fills in usually records something "
            "after signup); derive a number upstream to use it",
        )
    if kind == "numeric":
        numbers = parse_numbers(filled)
        if np.nanmin(numbers) == np.nanmax(numbers):
            return replace(spec, kind="constant", used=False, reason="one value only")
        return replace(spec, kind=kind)
    counts = pd.Series(filled).value_counts()
    if len(counts) < 2:
        return replace(spec, kind="constant", used=False, reason="one value only")
    kept = counts[counts >= int(min_users)].iloc[: int(max_levels)]
    coverage = float(kept.sum() / len(filled))
    levels = tuple(sorted(str(v) for v in kept.index))
    spec = replace(spec, kind="categorical", levels=levels)
    if not _listed(source, name, feature, include) and (
        coverage < MIN_LEVEL_COVERAGE or not levels
    ):
        return replace(
            spec,
            used=False,
            reason=(
                f"id-like or free text: {len(counts):,} distinct values; the {len(levels)} "
                f"level(s) held by >= {min_users} users cover {coverage:.0%} of the filled "
                f"values (< {MIN_LEVEL_COVERAGE:.0%})"
            ),
        )
    return spec


def _kind(filled: np.ndarray) -> str:
    if not len(filled):
        return "empty"
    if float(np.mean(np.isfinite(parse_numbers(filled)))) >= NUMERIC_SHARE:
        return "numeric"
    if _looks_like_timestamps(filled) >= NUMERIC_SHARE:
        return "timestamp"
    return "categorical"


def build_attribute_features(
    users: pd.DataFrame, plan: AttributePlan, index: str = "user_id"
) -> pd.DataFrame:
    """The used attributes as feature columns, one row per user (index ``user_id``): numeric as
    float64 (NaN where missing or unparseable), categorical as text with the plan's levels,
    ``(other)`` and ``(missing)``. A field missing from ``users`` (scoring data without it) is
    all missing, never an error."""
    values = attribute_values(users)
    columns: dict[str, Any] = {}
    for spec in plan.specs:
        if not spec.used:
            continue
        text = values.get((spec.source, spec.field))
        if text is None:
            text = np.full(len(users), None, dtype=object)
        if spec.kind == "numeric":
            columns[spec.feature] = parse_numbers(text)
        else:
            columns[spec.feature] = pd.array(_encode_levels(text, spec.levels), dtype="str")
    frame = pd.DataFrame(columns, index=pd.Index(users[index].to_numpy(), name=index))
    return frame


def _encode_levels(text: np.ndarray, levels: tuple[str, ...]) -> np.ndarray:
    known = pd.Index(levels)
    series = pd.Series(text, dtype=object)
    missing = series.isna().to_numpy()
    position = known.get_indexer(series.where(~missing, "").astype(str))
    names = np.array([*levels, OTHER_LEVEL], dtype=object)
    encoded = names[np.where(position >= 0, position, len(levels))]
    encoded[missing] = MISSING_LEVEL
    return encoded


# ---------------------------------------------------------------- leakage audit


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def _holdout_scores(
    values: pd.Series, is_train: np.ndarray, y: np.ndarray, kind: str
) -> np.ndarray:
    """The value each labelled row gets as its single-feature score: a number (missing lowest)
    or, for a level, its conversion rate among the training rows (shrunk toward the overall)."""
    if kind == "numeric":
        numbers = values.to_numpy(dtype=np.float64)
        finite = numbers[np.isfinite(numbers)]
        lowest = float(finite.min()) - 1.0 if len(finite) else 0.0
        return np.where(np.isfinite(numbers), numbers, lowest)  # missing ranks lowest
    levels = values.astype(str).to_numpy(dtype=object)
    train = pd.DataFrame({"level": levels[is_train], "y": y[is_train]})
    overall = float(train["y"].mean()) if len(train) else 0.0
    grouped = train.groupby("level")["y"].agg(["sum", "count"])
    rate = (grouped["sum"] + LEVEL_PRIOR_USERS * overall) / (grouped["count"] + LEVEL_PRIOR_USERS)
    return pd.Series(levels).map(rate).fillna(overall).to_numpy(dtype=np.float64)


def audit_attributes(
    features: pd.DataFrame,
    plan: AttributePlan,
    target: pd.Series,
    is_open: pd.Series,
    created_at: pd.Series,
    leakage_feature_auc: float = 0.95,
    holdout_fraction: float = 0.2,
) -> tuple[AttributePlan, pd.DataFrame]:
    """The leakage audit of the used attributes (step 4 of the module's rule).

    ``features`` is ``build_attribute_features``' table; ``target`` (1 / 0 / <NA> where the
    outcome is not known), ``is_open`` (open at as-of) and ``created_at`` are indexed like it.
    Returns the plan with leaky fields marked unused, and ``attribute_table`` of every field.
    """
    target = target.reindex(features.index)
    is_open = is_open.reindex(features.index).fillna(False).to_numpy(dtype=bool)
    labelled = target.notna().to_numpy()
    closed = labelled & ~is_open
    created = created_at.reindex(features.index).to_numpy()
    order = np.argsort(created[labelled], kind="stable")
    n_labelled = int(labelled.sum())
    n_holdout = int(round(n_labelled * float(holdout_fraction)))
    is_train = np.ones(n_labelled, dtype=bool)
    is_train[order[n_labelled - n_holdout :]] = False
    y = target[labelled].to_numpy(dtype=np.int64)
    holdout_has_both = len(np.unique(y[~is_train])) == 2 and is_train.any()

    measured: dict[str, dict[str, Any]] = {}
    leaky: dict[str, str] = {}
    for spec in plan.specs:
        if not spec.used or spec.feature not in features.columns:
            continue
        column = features[spec.feature]
        if spec.kind == "numeric":
            filled = column.notna().to_numpy()
        else:
            filled = (column.astype(str) != MISSING_LEVEL).to_numpy()
        filled_open = float(filled[is_open].mean()) if is_open.any() else None
        filled_closed = float(filled[closed].mean()) if closed.any() else None
        scores = _holdout_scores(column[labelled], is_train, y, spec.kind)
        if holdout_has_both:
            auc, auc_on = _auc(y[~is_train], scores[~is_train]), "holdout"
        else:
            auc, auc_on = _auc(y, scores), "all labelled (the holdout has one class)"
        measured[spec.feature] = {
            "filled_share_open": filled_open,
            "filled_share_closed": filled_closed,
            "holdout_auc": auc,
            "auc_on": auc_on,
        }
        reasons = []
        enough = int(is_open.sum()) >= plan.min_users and int(closed.sum()) >= plan.min_users
        if (
            enough
            and filled_open is not None
            and filled_closed is not None
            and filled_closed > 0
            and filled_open < FILLED_AFTER_RATIO * filled_closed
        ):
            reasons.append(
                f"filled in after the outcome: {filled_closed:.0%} filled among closed leads, "
                f"{filled_open:.0%} among open ones"
            )
        if auc is not None and auc > leakage_feature_auc:
            reasons.append(
                f"single-feature ROC AUC {auc:.3f} ({auc_on}) > leakage_feature_auc "
                f"{leakage_feature_auc}"
            )
        if reasons:
            leaky[spec.feature] = "leakage audit: " + "; ".join(reasons)
    audited = plan.drop(leaky)
    return audited, attribute_table(audited, measured)


def attribute_table(
    plan: AttributePlan, measured: dict[str, dict[str, Any]] | None = None
) -> pd.DataFrame:
    """One row per field found: ``attribute`` (feature), ``source``, ``field``, ``kind``,
    ``levels``, ``filled_share``, the audit's measurements, ``decision`` (kept/dropped) and
    ``reason``."""
    measured = measured or {}
    rows = []
    for spec in plan.specs:
        audit = measured.get(spec.feature, {})
        rows.append(
            {
                "attribute": spec.feature,
                "source": spec.source,
                "field": spec.field,
                "kind": spec.kind,
                "levels": len(spec.levels) if spec.kind == "categorical" else None,
                "filled_share": spec.filled_share,
                "filled_share_open": audit.get("filled_share_open"),
                "filled_share_closed": audit.get("filled_share_closed"),
                "holdout_auc": audit.get("holdout_auc"),
                "decision": "kept" if spec.used else "dropped",
                "reason": spec.reason
                or ("numeric" if spec.kind == "numeric" else "levels by the written rule"),
            }
        )
    columns = [
        "attribute", "source", "field", "kind", "levels", "filled_share", "filled_share_open",
        "filled_share_closed", "holdout_auc", "decision", "reason",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


@dataclass
class AttributeResult:
    """What ``lead_attributes`` found: the audited plan, the used features, the table."""

    plan: AttributePlan
    features: pd.DataFrame
    table: pd.DataFrame = field(default_factory=pd.DataFrame)


def lead_attributes(
    users: pd.DataFrame,
    target: pd.Series,
    is_open: pd.Series,
    max_levels: int = 20,
    min_users: int = 30,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    leakage_feature_auc: float = 0.95,
    holdout_fraction: float = 0.2,
    as_of: pd.Timestamp | str | None = None,
) -> AttributeResult:
    """Plan, build and audit the lead attributes in one call; ``features`` holds only the
    attributes kept after the audit (``target`` / ``is_open`` indexed by user_id)."""
    plan = fit_attribute_plan(users, max_levels, min_users, include, exclude, as_of)
    features = build_attribute_features(users, plan)
    created = pd.Series(users["created_at"].to_numpy(), index=features.index)
    audited, table = audit_attributes(
        features, plan, target, is_open, created, leakage_feature_auc, holdout_fraction
    )
    kept = features[list(audited.features)]
    return AttributeResult(plan=audited, features=kept, table=table)


def audit_feature_table(
    feature_table: pd.DataFrame,
    plan: AttributePlan,
    leakage_feature_auc: float = 0.95,
    holdout_fraction: float = 0.2,
    target_column: str = "target_converted",
) -> tuple[AttributePlan, pd.DataFrame]:
    """``audit_attributes`` on a feature table that holds the attribute columns, the target,
    ``status_at_as_of`` (open = lead or trial) and ``created_at``."""
    is_open = feature_table["status_at_as_of"].isin(list(OPEN_STATUSES))
    return audit_attributes(
        feature_table[[f for f in plan.features if f in feature_table.columns]],
        plan,
        feature_table[target_column],
        is_open,
        feature_table["created_at"],
        leakage_feature_auc,
        holdout_fraction,
    )
