"""Pipeline configuration: the one home of every setting and its default.

``PipelineConfig`` has one section per stage; each field's default is the project's default,
and its metadata says which values are allowed. ``load_config`` reads a TOML file (the
checked-in ``insightos.toml`` documents every key) and checks every key, type and value at
once: a typo, a wrong type or a TOML syntax error is an ``InputError`` (exit 2) naming the file,
the section, the key and what was expected, before any work starts. Command-line flags
(``with_overrides``) and notebook parameters (``from_flat``) go through the same checks.

Parameters flow down as arguments: modules never read this file or the environment on their
own. ``flat`` gives every key in one dict (keys are unique across sections), which is what a
notebook's papermill ``parameters`` cell declares.
"""

from __future__ import annotations

import math
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from insightos_utils.errors import InputError

DEFAULT_CONFIG_NAME = "insightos.toml"


# --- field declarations: a default plus the rule its values follow ------------------------------


def _setting(default: Any, **rule: Any) -> Any:
    """A configuration field: ``default`` and its rule (``choices``, ``low``/``high``, ...)."""
    if isinstance(default, list | tuple):
        default = tuple(default)  # immutable, so a plain default is safe
    return field(default=default, metadata=rule)


def choice(default: str, *options: str) -> Any:
    """A text setting that must be one of ``options``."""
    return _setting(default, choices=tuple(options))


def number(
    default: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """A number within [low, high] (``*_open``: the bound itself is not allowed)."""
    return _setting(default, low=low, high=high, low_open=low_open, high_open=high_open)


def text(default: str = "", *, timestamp: bool = False, octal: bool = False) -> Any:
    """Free text; ``timestamp``: empty or an ISO 8601 timestamp; ``octal``: a file mode mask."""
    return _setting(default, timestamp=timestamp, octal=octal)


# --- the sections -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    """Where the raw data is and how strictly ingest treats it."""

    raw_dir: str = text("data/raw")
    source_url: str = text("")
    processed_dir: str = text("data/processed")
    as_of: str = text("", timestamp=True)
    max_reject_share: float = number(0.01, 0.0, 1.0)
    earliest_timestamp: str = text("1990-01-01", timestamp=True)
    future_tolerance_hours: float = number(24.0, 0.0)
    stale_after_days: int = number(30, 1)
    shrink_warning_share: float = number(0.5, 0.0, 1.0, low_open=True)
    engine: str = choice("auto", "auto", "memory", "duckdb", "source", "spark")
    engine_memory_limit: str = text("")  # e.g. "3GB": DuckDB spills beyond it; "" = default


@dataclass(frozen=True)
class FeatureConfig:
    """The per-user feature table: window, event vocabulary, lead attributes."""

    feature_window_days: int = number(14, 1)
    min_event_users: int = number(50, 1)
    key_events: tuple[str, ...] = _setting(())
    attribute_max_levels: int = number(20, 2)
    attribute_min_users: int = number(30, 1)
    include_attributes: tuple[str, ...] = _setting(())
    exclude_attributes: tuple[str, ...] = _setting(())


@dataclass(frozen=True)
class ScoringConfig:
    """Lead models: holdout, champion rule, leakage audit, minimum data, horizon, ranking."""

    holdout_fraction: float = number(0.2, 0.0, 1.0, low_open=True, high_open=True)
    champion_auc_margin: float = number(0.01, 0.0, 1.0)
    leakage_feature_auc: float = number(0.95, 0.5, 1.0, low_open=True)
    suspect_holdout_auc: float = number(0.99, 0.5, 1.0, low_open=True)
    block_on_leakage: bool = _setting(False)
    corr_threshold: float = number(0.9, 0.0, 1.0, low_open=True)
    vif_threshold: float = number(10.0, 1.0, low_open=True)
    top_reasons: int = number(3, 0)
    random_seed: int = number(42, 0)
    min_conversions: int = number(40, 2)
    min_non_conversions: int = number(40, 2)
    backtest_lookback_days: int = number(60, 1)
    backtest_min_conversions: int = number(10, 1)
    horizon_days: int = number(90, 1)
    rank_by: str = choice("value", "value", "probability")
    trend_threshold: float = number(0.05, 0.0, 1.0)


@dataclass(frozen=True)
class LtvConfig:
    """Lifetime value: time unit, holdout, horizon, money, model choice, intervals."""

    time_unit: str = choice("W", "D", "W", "M")
    holdout_days: int = number(90, 0)
    horizon_months: int = number(12, 1)
    monthly_discount_rate: float = number(0.01, -1.0, low_open=True)
    gross_margin: float = number(1.0, 0.0, 1.0, low_open=True)
    penalizer: float = number(0.0, 0.0)
    bootstrap_samples: int = number(2000, 0)
    reference_campaign: str = text("google_gestao_agil")
    model: str = choice("auto", "auto", "bgnbd", "paretonbd")
    business: str = choice("auto", "auto", "non-contractual", "subscription")
    interval_method: str = choice("refit", "refit", "sampling")
    refit_samples: int = number(200, 10)
    min_repeat_customers: int = number(20, 2)
    min_campaign_customers: int = number(30, 1)


@dataclass(frozen=True)
class ProductConfig:
    """Product intelligence: the activation funnel and its drivers."""

    funnel_steps: tuple[str, ...] = _setting(())
    max_funnel_steps: int = number(8, 1)
    min_step_users: int = number(30, 1)


@dataclass(frozen=True)
class RunConfig:
    """Headless runs: where reports go, what is kept, where results are published."""

    reports_dir: str = text("reports")
    models_dir: str = text("models")
    publish_url: str = text("")
    keep_runs: int = number(60, 0)
    keep_score_runs: int = number(168, 0)
    keep_failed_days: int = number(14, 0)
    umask: str = text("0027", octal=True)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "features": FeatureConfig,
    "scoring": ScoringConfig,
    "ltv": LtvConfig,
    "product": ProductConfig,
    "run": RunConfig,
}


# --- checking values ----------------------------------------------------------------------------

_TYPE_WORDS = {
    str: "text",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    tuple: "a list of text values",
}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, list | tuple):
        return f"the list {list(value)!r}"
    return f"a {type(value).__name__} ({value!r})"


def _field_types(section: type) -> dict[str, type]:
    hints = typing.get_type_hints(section)
    return {name: typing.get_origin(hint) or hint for name, hint in hints.items()}


def _check_value(spec: Field, kind: type, value: Any, where: str) -> Any:
    """``value`` converted to the field's type, or an ``InputError`` naming ``where``."""

    def wrong(expected: str) -> InputError:
        return InputError(f"{where}: expected {expected}, got {_describe(value)}")

    rule = spec.metadata
    if kind is bool:
        if not isinstance(value, bool):
            raise wrong(_TYPE_WORDS[bool])
        return value
    if kind is int:
        whole = isinstance(value, float) and value.is_integer()
        if isinstance(value, bool) or not (isinstance(value, int) or whole):
            raise wrong(_TYPE_WORDS[int])
        value = int(value)
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong(_TYPE_WORDS[float])
        value = float(value)
        if not math.isfinite(value):
            raise wrong("a finite number")
    elif kind is str:
        if not isinstance(value, str):
            raise wrong(_TYPE_WORDS[str])
    elif kind is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise wrong(_TYPE_WORDS[tuple])
        return tuple(value)
    if kind in (int, float):
        low, high = rule.get("low"), rule.get("high")
        too_low = low is not None and (value <= low if rule.get("low_open") else value < low)
        too_high = high is not None and (value >= high if rule.get("high_open") else value > high)
        if too_low or too_high:
            left = "" if low is None else f"{'>' if rule.get('low_open') else '>='} {low:g}"
            right = "" if high is None else f"{'<' if rule.get('high_open') else '<='} {high:g}"
            bounds = " and ".join(part for part in (left, right) if part)
            raise wrong(f"{_TYPE_WORDS[kind]} {bounds}")
    if "choices" in rule and value not in rule["choices"]:
        raise wrong("one of " + ", ".join(repr(c) for c in rule["choices"]))
    if rule.get("timestamp") and value.strip():
        _check_timestamp(value, wrong)
    if rule.get("octal"):
        try:
            mask = int(value, 8)
        except ValueError:
            raise wrong("an octal file-mode mask such as '0027'") from None
        if not 0 <= mask <= 0o777:
            raise wrong("an octal file-mode mask between '0000' and '0777'")
    return value


def _check_timestamp(value: str, wrong: Any) -> None:
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise wrong(
            "an ISO 8601 timestamp such as '2026-06-30' or '2026-06-30T12:00:00Z'"
        ) from None
    if pd.isna(stamp):
        raise wrong("an ISO 8601 timestamp")


def _checked_section(section: type, values: Mapping[str, Any], source: str, name: str) -> Any:
    """A section instance from ``values`` (unknown keys are an error), every value checked."""
    specs = {f.name: f for f in fields(section)}
    types = _field_types(section)
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise InputError(
            f"{source}: unknown key {unknown[0]!r} in section [{name}]; the keys of [{name}] "
            f"are {', '.join(specs)}"
        )
    checked = {
        key: _check_value(specs[key], types[key], value, f"{source}: [{name}] {key}")
        for key, value in values.items()
    }
    return section(**checked)


def _defaults(section: type) -> dict[str, Any]:
    return {spec.name: spec.default for spec in fields(section)}


@dataclass(frozen=True)
class PipelineConfig:
    """Every setting of a run, one section per stage (see ``SECTIONS``)."""

    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    ltv: LtvConfig = field(default_factory=LtvConfig)
    product: ProductConfig = field(default_factory=ProductConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @staticmethod
    def section_of(key: str) -> str:
        """The section a flat key belongs to (``KeyError`` for an unknown key)."""
        return KEY_SECTIONS[key]

    def with_overrides(self, source: str = "overrides", **overrides: Any) -> PipelineConfig:
        """A copy with flat keys replaced (``as_of=...``); a value of None is ignored.

        Unknown keys and bad values are an ``InputError`` naming ``source``.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(k for k in given if k not in KEY_SECTIONS)
        if unknown:
            raise InputError(f"{source}: unknown configuration key {unknown[0]!r}")
        sections = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, section in sections.items():
            changes = {k: v for k, v in given.items() if KEY_SECTIONS[k] == name}
            if changes:
                current = asdict(section)
                current.update(changes)
                sections[name] = _checked_section(type(section), current, source, name)
        return PipelineConfig(**sections)

    def flat(self) -> dict[str, Any]:
        """All keys of all sections in one flat dict (lists as lists, for papermill and JSON)."""
        flat: dict[str, Any] = {}
        for f in fields(self):
            for key, value in asdict(getattr(self, f.name)).items():
                flat[key] = list(value) if isinstance(value, tuple) else value
        return flat

    @classmethod
    def from_flat(cls, values: Mapping[str, Any], source: str = "parameters") -> PipelineConfig:
        """The configuration a notebook's parameters describe: the known keys of ``values``
        (a notebook may pass ``globals()``), defaults for the rest, every value checked."""
        known = {k: v for k, v in values.items() if k in KEY_SECTIONS}
        return cls().with_overrides(source=source, **known)

    def replace_section(self, name: str, **changes: Any) -> PipelineConfig:
        """A copy with fields of one section replaced (checked like any override)."""
        return self.with_overrides(source=f"[{name}]", **changes)


KEY_SECTIONS: dict[str, str] = {}
for _name, _section in SECTIONS.items():
    for _field in fields(_section):
        if _field.name in KEY_SECTIONS:  # pragma: no cover - a programming error, caught at import
            raise RuntimeError(f"configuration key {_field.name!r} is in two sections")
        KEY_SECTIONS[_field.name] = _name

DEFAULTS: dict[str, Any] = {k: v for s in SECTIONS.values() for k, v in _defaults(s).items()}


def notebook_parameters(config: PipelineConfig, declared: set[str] | None = None) -> dict[str, Any]:
    """The flat parameters to pass to a notebook: all of them, or only the ``declared`` ones."""
    flat = config.flat()
    if declared is None:
        return flat
    return {k: v for k, v in flat.items() if k in declared}


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Read a TOML configuration; ``path`` None gives the built-in defaults.

    A missing file, a TOML syntax error, an unknown section or key, a wrong type or a value out
    of range is an ``InputError`` (exit 2) naming the file, the key and what was expected.
    """
    config = PipelineConfig()
    if path is None:
        return config
    path = Path(path)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML ({error})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error})") from None
    sections = {f.name: getattr(config, f.name) for f in fields(config)}
    for name, values in document.items():
        if name not in SECTIONS:
            raise InputError(
                f"{path}: unknown section [{name}]; the sections are "
                + ", ".join(f"[{s}]" for s in SECTIONS)
            )
        if not isinstance(values, dict):
            raise InputError(f"{path}: {name} must be a section ([{name}]), not a value")
        current = asdict(sections[name])
        current.update(values)
        sections[name] = _checked_section(SECTIONS[name], current, str(path), name)
    return PipelineConfig(**sections)


def find_config(path: str | Path | None = None, cwd: str | Path | None = None) -> Path | None:
    """``path`` when given, else ``insightos.toml`` in ``cwd`` (default: the current folder)
    when it exists, else None (the built-in defaults)."""
    if path is not None:
        return Path(path)
    candidate = Path(cwd or Path.cwd()) / DEFAULT_CONFIG_NAME
    return candidate if candidate.exists() else None
