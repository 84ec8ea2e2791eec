"""Pipeline configuration: one TOML file, overridable by command-line flags.

Parameters flow down as arguments: modules never read this file or the environment on their
own. ``notebook_parameters`` flattens the configuration into the plain values a notebook's
papermill ``parameters`` cell declares (keys are unique across sections).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_NAME = "insightos.toml"


@dataclass(frozen=True)
class DataConfig:
    raw_dir: str = "data/raw"
    source_url: str = ""
    processed_dir: str = "data/processed"
    as_of: str = ""
    max_reject_share: float = 0.01


@dataclass(frozen=True)
class FeatureConfig:
    feature_window_days: int = 14
    min_event_users: int = 50


@dataclass(frozen=True)
class ScoringConfig:
    holdout_fraction: float = 0.2
    champion_auc_margin: float = 0.01
    leakage_feature_auc: float = 0.95
    suspect_holdout_auc: float = 0.99
    block_on_leakage: bool = False
    corr_threshold: float = 0.9
    vif_threshold: float = 10.0
    top_reasons: int = 3
    random_seed: int = 42


@dataclass(frozen=True)
class LtvConfig:
    time_unit: str = "W"
    holdout_days: int = 90
    horizon_months: int = 12
    monthly_discount_rate: float = 0.01
    gross_margin: float = 1.0
    penalizer: float = 0.0
    bootstrap_samples: int = 2000
    reference_campaign: str = "google_gestao_agil"


@dataclass(frozen=True)
class RunConfig:
    reports_dir: str = "reports"
    models_dir: str = "models"


@dataclass(frozen=True)
class PipelineConfig:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    ltv: LtvConfig = field(default_factory=LtvConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def with_overrides(self, **overrides: Any) -> PipelineConfig:
        """A copy with flat keys (``as_of=...``, ``horizon_months=...``) replaced; None is ignored."""
        sections = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(k for k, v in overrides.items() if v is not None)
        for name, section in sections.items():
            names = {f.name for f in fields(section)}
            changes = {k: v for k, v in overrides.items() if k in names and v is not None}
            if changes:
                sections[name] = replace(section, **changes)
                unknown -= set(changes)
        if unknown:
            raise KeyError(f"unknown configuration keys: {sorted(unknown)}")
        return PipelineConfig(**sections)

    def flat(self) -> dict[str, Any]:
        """All keys of all sections in one flat dict (keys are unique across sections)."""
        flat: dict[str, Any] = {}
        for f in fields(self):
            flat.update(asdict(getattr(self, f.name)))
        return flat


def notebook_parameters(config: PipelineConfig, declared: set[str] | None = None) -> dict[str, Any]:
    """The flat parameters to pass to a notebook: all of them, or only the ``declared`` ones."""
    flat = config.flat()
    if declared is None:
        return flat
    return {k: v for k, v in flat.items() if k in declared}


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Read a TOML configuration; a missing ``path`` (None) gives the built-in defaults.

    Unknown sections or keys are an error, so a typo never silently falls back to a default.
    """
    config = PipelineConfig()
    if path is None:
        return config
    path = Path(path)
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    sections = {f.name: f for f in fields(PipelineConfig)}
    flat: dict[str, Any] = {}
    for section_name, values in document.items():
        if section_name not in sections or not isinstance(values, dict):
            raise KeyError(f"{path}: unknown section [{section_name}]")
        allowed = {f.name for f in fields(getattr(config, section_name))}
        for key, value in values.items():
            if key not in allowed:
                raise KeyError(f"{path}: unknown key '{key}' in section [{section_name}]")
            flat[key] = value
    return config.with_overrides(**flat)
