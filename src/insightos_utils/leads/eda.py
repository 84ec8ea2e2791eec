"""EDA statistics and the feature decisions modelling reuses: class balance, conversion by
campaign with Wilson intervals, correlation, VIF, single-feature AUC and the leakage audit.

Statistics about the model's inputs (correlation, VIF, AUC, balance) are computed on the
training rows (``label_known``): the matrix the models are fitted on. ``decide_feature_drops``
turns them into data-driven, deterministic decisions written to ``feature_decisions.json``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from statsmodels.stats.outliers_influence import variance_inflation_factor
from statsmodels.stats.proportion import proportion_confint
from statsmodels.tools.tools import add_constant
from threadpoolctl import threadpool_limits

from insightos_utils.config import ScoringConfig
from insightos_utils.errors import InsightOSError
from insightos_utils.io_utils import atomic_write_json
from insightos_utils.leads.attributes import audit_feature_table
from insightos_utils.leads.features import TARGET, FeatureSpec, training_rows

POST_CONVERSION_REASON = "seen only at or after the user's conversion (post-conversion event)"


def _labelled(feature_table: pd.DataFrame) -> pd.DataFrame:
    rows = training_rows(feature_table) if "label_known" in feature_table else feature_table
    if rows.empty:
        raise InsightOSError(
            "no user has a known outcome at as-of: move as_of later or shorten the window"
        )
    return rows


def _target(rows: pd.DataFrame) -> np.ndarray:
    return rows[TARGET].to_numpy(dtype=np.int64)


def class_balance(feature_table: pd.DataFrame) -> dict[str, Any]:
    """Users with a known outcome (``n``), how many converted, and the share (``rate``); also
    the converted share of all users at as-of (``all_users``, ``all_rate``), the figure the
    original design quoted (10.1%) though open leads are not negatives."""
    rows = _labelled(feature_table)
    converted = int(_target(rows).sum())
    return {
        "n": len(rows),
        "converted": converted,
        "rate": converted / len(rows),
        "all_users": len(feature_table),
        "all_rate": converted / len(feature_table),
    }


def conversion_by(
    feature_table: pd.DataFrame, column: str = "campaign", confidence: float = 0.95
) -> pd.DataFrame:
    """Conversion rate per value of ``column`` with a Wilson interval, highest rate first."""
    rows = _labelled(feature_table)
    grouped = (
        pd.DataFrame({column: rows[column].to_numpy(), "converted": _target(rows)})
        .groupby(column, sort=True)["converted"]
        .agg(n="size", converted="sum")
    )
    low, high = proportion_confint(
        grouped["converted"], grouped["n"], alpha=1 - confidence, method="wilson"
    )
    grouped["rate"] = grouped["converted"] / grouped["n"]
    grouped["ci_low"] = np.asarray(low, dtype=float)
    grouped["ci_high"] = np.asarray(high, dtype=float)
    return grouped.sort_values(["rate", "n"], ascending=[False, False], kind="stable")


def _matrix(rows: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> pd.DataFrame:
    # numeric lead attributes may be empty: the median stands in, as the model's imputer does
    matrix = rows[list(columns)].astype(np.float64)
    return matrix.fillna(matrix.median()) if matrix.isna().to_numpy().any() else matrix


def constant_columns(
    feature_table: pd.DataFrame, columns: list[str] | tuple[str, ...]
) -> list[str]:
    """The columns with a single value on the training rows (no variance: no r, no VIF)."""
    matrix = _matrix(_labelled(feature_table), columns)
    return [c for c in columns if matrix[c].nunique(dropna=False) <= 1]


def correlation_matrix(
    feature_table: pd.DataFrame, columns: list[str] | tuple[str, ...]
) -> pd.DataFrame:
    """Pearson correlation of ``columns`` on the training rows (NaN for constant columns)."""
    return _matrix(_labelled(feature_table), columns).corr(method="pearson")


def high_correlation_pairs(corr: pd.DataFrame, threshold: float = 0.9) -> pd.DataFrame:
    """Pairs with |r| > threshold, strongest first (ties in column order)."""
    names = list(corr.columns)
    values = corr.to_numpy()
    pairs = [
        {"feature_a": names[i], "feature_b": names[j], "r": float(values[i, j])}
        for i in range(len(names))
        for j in range(i + 1, len(names))
        if np.isfinite(values[i, j]) and abs(values[i, j]) > threshold
    ]
    table = pd.DataFrame(pairs, columns=["feature_a", "feature_b", "r"])
    order = np.argsort(-table["r"].abs().to_numpy(), kind="stable")
    return table.iloc[order].reset_index(drop=True)


def vif_table(feature_table: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Variance inflation factor of each column on the training rows, with a constant in the
    design (statsmodels needs it) and the target kept out; NaN for constant columns."""
    constant = set(constant_columns(feature_table, columns))
    varying = [c for c in columns if c not in constant]
    vif = dict.fromkeys(columns, np.nan)
    if varying:
        design = add_constant(_matrix(_labelled(feature_table), varying), has_constant="add")
        values = design.to_numpy()
        # collinear designs are what VIF is for: their conditioning warnings are expected;
        # one BLAS thread: these small least squares run several times faster than threaded
        with (
            np.errstate(divide="ignore", invalid="ignore"),
            warnings.catch_warnings(),
            threadpool_limits(limits=1, user_api="blas"),
        ):
            warnings.simplefilter("ignore")
            for i, column in enumerate(varying, start=1):
                vif[column] = float(variance_inflation_factor(values, i))
    return pd.DataFrame({"feature": list(columns), "vif": [vif[c] for c in columns]})


def single_feature_auc(
    feature_table: pd.DataFrame, columns: list[str] | tuple[str, ...]
) -> pd.DataFrame:
    """ROC AUC of each column alone against the target, on the training rows, most predictive
    first; ``abs_auc`` = max(auc, 1 - auc), so a feature that predicts by its absence counts."""
    rows = _labelled(feature_table)
    target = _target(rows)
    if len(np.unique(target)) < 2:
        raise InsightOSError(
            "single-feature AUC needs both outcomes among the training rows; only "
            f"target={int(target[0])} is present at this as-of"
        )
    aucs = []
    for column in columns:
        values = rows[column].to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        lowest = float(finite.min()) - 1.0 if len(finite) else 0.0  # missing ranks lowest
        aucs.append(float(roc_auc_score(target, np.where(np.isfinite(values), values, lowest))))
    table = pd.DataFrame({"feature": list(columns), "auc": aucs})
    table["abs_auc"] = np.maximum(table["auc"], 1 - table["auc"])
    order = np.argsort(-table["abs_auc"].to_numpy(), kind="stable")
    return table.iloc[order].reset_index(drop=True)


@dataclass
class FeatureDecisions:
    """Which features modelling keeps, and why; written by 02_eda, read by 03_lead_scoring.

    ``single_feature_auc`` holds max(AUC, 1 - AUC) per numeric feature; ``vif_before`` /
    ``vif_after`` the VIFs before and after the linear drops (None where undefined).
    """

    leaky_features: dict[str, str] = field(default_factory=dict)
    excluded_events: dict[str, str] = field(default_factory=dict)
    dropped_for_linear: dict[str, str] = field(default_factory=dict)
    flagged_pairs: list[dict[str, Any]] = field(default_factory=list)
    high_vif: dict[str, float] = field(default_factory=dict)
    single_feature_auc: dict[str, float] = field(default_factory=dict)
    vif_before: dict[str, float | None] = field(default_factory=dict)
    vif_after: dict[str, float | None] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    lead_attributes: list[dict[str, Any]] = field(default_factory=list)  # attribute_table rows

    def to_json(self, path: str | Path) -> Path:
        """Write the decisions as JSON (atomic; NaN becomes null)."""
        return atomic_write_json(path, asdict(self))

    @classmethod
    def from_json(cls, path: str | Path) -> FeatureDecisions:
        """Read decisions ``to_json`` wrote."""
        document = json.loads(Path(path).read_text())
        known = {name: document[name] for name in cls.__dataclass_fields__ if name in document}
        return cls(**known)

    def features_for(self, model: Literal["linear", "tree"], spec: FeatureSpec) -> list[str]:
        """The model's input columns (numeric, then categorical): a tree model drops the leaky
        features; a linear one also drops those ``dropped_for_linear``."""
        if model not in ("linear", "tree"):
            raise ValueError(f"model must be 'linear' or 'tree', got {model!r}")
        dropped = set(self.leaky_features)
        if model == "linear":
            dropped |= set(self.dropped_for_linear)
        columns = list(spec.numeric_columns) + list(spec.categorical_columns)
        return [c for c in columns if c not in dropped]


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def decisions_from_config(
    feature_table: pd.DataFrame, spec: FeatureSpec, settings: ScoringConfig
) -> FeatureDecisions:
    """``decide_feature_drops`` with the ``[scoring]`` section's thresholds: the one way
    02_eda, the lead-scoring stage and the backtest decide."""
    return decide_feature_drops(
        feature_table,
        spec,
        settings.corr_threshold,
        settings.vif_threshold,
        settings.leakage_feature_auc,
        settings.holdout_fraction,
    )


def decide_feature_drops(
    feature_table: pd.DataFrame,
    spec: FeatureSpec,
    corr_threshold: float = 0.9,
    vif_threshold: float = 10.0,
    leakage_feature_auc: float = 0.95,
    holdout_fraction: float = 0.2,
) -> FeatureDecisions:
    """Leakage audit, then multicollinearity for linear models, from the data alone.

    1. Leaky: a numeric feature whose single-feature |AUC| exceeds ``leakage_feature_auc``
       (kept out of every model); post-conversion event names come from the spec; a lead
       attribute that ``leads.attributes.audit_feature_table`` finds filled in after the
       outcome (fill rate among open leads against closed ones, single-feature AUC on the time
       holdout). ``lead_attributes`` describes every attribute found: kept or dropped, and why.
    2. For linear models: while a pair has |r| > ``corr_threshold``, take the strongest pair and
       drop its member with the lower single-feature |AUC| (tie: the later column); constant
       columns are dropped too. VIF is recomputed after each drop.
    3. Remaining features with VIF > ``vif_threshold`` are flagged, not dropped.
    """
    numeric = list(spec.numeric_columns)
    auc = single_feature_auc(feature_table, numeric).set_index("feature")["abs_auc"]
    leaky = {
        c: f"single-feature AUC {auc[c]:.3f} > {leakage_feature_auc}"
        for c in numeric
        if auc[c] > leakage_feature_auc
    }
    attribute_rows: list[dict[str, Any]] = []
    plan = spec.attribute_plan
    if plan.specs:
        audited, described = audit_feature_table(
            feature_table, plan, leakage_feature_auc, holdout_fraction, TARGET
        )
        for attribute in plan.features:
            if attribute not in audited.features:
                reason = next(s.reason for s in audited.specs if s.feature == attribute)
                reason = reason.removeprefix("leakage audit: ")
                leaky[attribute] = f"{leaky[attribute]}; {reason}" if attribute in leaky else reason
        attribute_rows = [
            {
                k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in row.items()
            }
            for row in described.to_dict(orient="records")
        ]
    position = {c: i for i, c in enumerate(numeric)}
    candidates = [c for c in numeric if c not in leaky]
    dropped: dict[str, str] = {
        c: "constant on the training rows (no information)"
        for c in constant_columns(feature_table, candidates)
    }
    candidates = [c for c in candidates if c not in dropped]

    vif = vif_table(feature_table, candidates).set_index("feature")["vif"]
    vif_before = {c: _finite(v) for c, v in vif.items()}
    pairs = high_correlation_pairs(correlation_matrix(feature_table, candidates), corr_threshold)
    flagged = pairs.to_dict(orient="records")
    while not pairs.empty:
        a, b, r = pairs.iloc[0][["feature_a", "feature_b", "r"]]
        if auc[a] != auc[b]:
            loser, keeper = (a, b) if auc[a] < auc[b] else (b, a)
        else:
            loser, keeper = (a, b) if position[a] > position[b] else (b, a)
        dropped[loser] = (
            f"r={r:.2f} with {keeper}; VIF {vif[loser]:.1f}; "
            f"single-feature AUC {auc[loser]:.3f} <= {auc[keeper]:.3f}"
        )
        candidates.remove(loser)
        vif = vif_table(feature_table, candidates).set_index("feature")["vif"]
        pairs = high_correlation_pairs(
            correlation_matrix(feature_table, candidates), corr_threshold
        )
    for pair in flagged:
        pair["r"] = round(float(pair["r"]), 4)
        pair["dropped_for_linear"] = next(
            (c for c in (pair["feature_a"], pair["feature_b"]) if c in dropped), None
        )
    return FeatureDecisions(
        leaky_features=leaky,
        excluded_events=dict.fromkeys(spec.excluded_events, POST_CONVERSION_REASON),
        dropped_for_linear=dropped,
        flagged_pairs=flagged,
        high_vif={c: float(v) for c, v in vif.items() if v > vif_threshold},
        single_feature_auc={c: float(auc[c]) for c in numeric},
        vif_before=vif_before,
        vif_after={c: _finite(v) for c, v in vif.items()},
        thresholds={
            "corr_threshold": corr_threshold,
            "vif_threshold": vif_threshold,
            "leakage_feature_auc": leakage_feature_auc,
        },
        lead_attributes=attribute_rows,
    )


def findings_markdown(
    feature_table: pd.DataFrame,
    spec: FeatureSpec,
    decisions: FeatureDecisions,
    conversion: pd.DataFrame,
) -> str:
    """The EDA's conclusion in words with its numbers, for the notebook's last cell."""
    balance = class_balance(feature_table)
    best, rest = conversion.iloc[0], conversion.iloc[1:]
    rest_rate = rest["converted"].sum() / max(rest["n"].sum(), 1)
    lines = [
        f"- **Class balance:** {balance['converted']:,} of the {balance['n']:,} users whose outcome "
        f"is known at as-of converted ({balance['rate']:.1%}); "
        f"{balance['all_rate']:.1%} of all {balance['all_users']:,} users at as-of. "
        "Imbalanced: modelling weighs the classes.",
        f"- **Campaigns:** `{conversion.index[0]}` converts best, {best['rate']:.1%} "
        f"(95% CI {best['ci_low']:.1%}–{best['ci_high']:.1%}, n = {int(best['n']):,}) against "
        f"{rest_rate:.1%} for the others together.",
    ]
    if decisions.flagged_pairs:
        pairs = "; ".join(
            f"`{p['feature_a']}` / `{p['feature_b']}` (r = {p['r']:.2f})"
            for p in decisions.flagged_pairs
        )
        lines.append(
            f"- **Multicollinearity:** pairs with |r| > "
            f"{decisions.thresholds.get('corr_threshold', 0.9)}: {pairs}."
        )
    else:
        lines.append("- **Multicollinearity:** no pair of features above the correlation flag.")
    correlated = {c: r for c, r in decisions.dropped_for_linear.items() if r.startswith("r=")}
    if correlated:
        lines.append(
            "- **Dropped for the linear model:** "
            + "; ".join(f"`{c}` ({reason})" for c, reason in correlated.items())
            + ". Tree models keep every feature that is not leaky."
        )
    if decisions.high_vif:
        lines.append(
            "- **Still high VIF (flagged, kept):** "
            + ", ".join(f"`{c}` ({v:.1f})" for c, v in decisions.high_vif.items())
        )
    excluded = ", ".join(f"`{name}`" for name in decisions.excluded_events) or "none"
    leaky = (
        "; ".join(f"`{c}` ({reason})" for c, reason in decisions.leaky_features.items())
        or "no feature"
    )
    best_auc = max(decisions.single_feature_auc.items(), key=lambda item: item[1])
    lines.append(
        f"- **Leakage audit:** post-conversion events kept out: {excluded}. Leaky features "
        f"(single-feature AUC above {decisions.thresholds.get('leakage_feature_auc', 0.95)}): "
        f"{leaky}. The strongest single feature is `{best_auc[0]}` (AUC {best_auc[1]:.2f})."
    )
    if decisions.lead_attributes:
        kept = [r["attribute"] for r in decisions.lead_attributes if r["decision"] == "kept"]
        dropped = [
            f"`{r['attribute']}` ({r['reason']})"
            for r in decisions.lead_attributes
            if r["decision"] == "dropped"
        ]
        lines.append(
            f"- **Lead attributes:** {len(decisions.lead_attributes)} found; used: "
            + (", ".join(f"`{a}`" for a in kept) or "none")
            + ". Not used: "
            + ("; ".join(dropped) or "none")
            + "."
        )
    if spec.horizon_days is not None:
        lines.append(
            f"- **Label:** converted within {spec.horizon_days} days of signup (lost, or open "
            f"past {spec.horizon_days} days without converting: not converted; open and younger: "
            "censored, scored but not trained on)."
        )
    lines.append(
        f"- **Window:** {spec.window_days} days after signup, cut at conversion; "
        f"{int((~feature_table['window_complete']).sum()):,} users (young leads) have a partial window."
    )
    return "\n".join(lines)
