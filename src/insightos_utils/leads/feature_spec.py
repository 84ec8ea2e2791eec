"""What ``features.fit_feature_spec`` learns (``FeatureSpec``: the event vocabulary and the
columns, in a fixed order, saved with every model bundle) and how the feature table is stored.
``leads.features`` re-exports all three, so callers keep ``features.FeatureSpec``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from insightos_utils.io_utils import atomic_write, atomic_write_json
from insightos_utils.leads.attributes import AttributePlan


@dataclass(frozen=True)
class FeatureSpec:
    """What ``fit_feature_spec`` learned: the event vocabulary and the columns, in a fixed order.

    ``key_events`` (extra) maps each ``hours_to_first_<slug>`` column to its raw event name;
    ``as_of`` and ``min_event_users`` record where the spec was fitted.
    """

    window_days: int
    event_columns: dict[str, str]
    excluded_events: tuple[str, ...]
    categorical_columns: tuple[str, ...]
    numeric_columns: tuple[str, ...]
    key_events: dict[str, str] = field(default_factory=dict)
    as_of: str = ""
    min_event_users: int = 50
    horizon_days: int | None = None  # None: the old label (converted by as-of, ever)
    attributes: dict[str, Any] = field(default_factory=dict)  # leads.attributes.AttributePlan

    @property
    def attribute_plan(self) -> AttributePlan:
        """The lead attributes this spec encodes (an empty plan when there are none)."""
        return AttributePlan.from_dict(self.attributes) if self.attributes else AttributePlan()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tuples become lists)."""
        document = asdict(self)
        for name in ("excluded_events", "categorical_columns", "numeric_columns"):
            document[name] = list(document[name])
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> FeatureSpec:
        """The spec ``to_dict`` wrote."""
        return cls(
            window_days=int(document["window_days"]),
            event_columns={str(k): str(v) for k, v in document["event_columns"].items()},
            excluded_events=tuple(document["excluded_events"]),
            categorical_columns=tuple(document["categorical_columns"]),
            numeric_columns=tuple(document["numeric_columns"]),
            key_events={str(k): str(v) for k, v in document.get("key_events", {}).items()},
            as_of=str(document.get("as_of", "")),
            min_event_users=int(document.get("min_event_users", 50)),
            horizon_days=(
                int(document["horizon_days"]) if document.get("horizon_days") is not None else None
            ),
            attributes=dict(document.get("attributes") or {}),
        )

    def to_json(self, path: str | Path) -> Path:
        """Write the spec as JSON (atomic)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | Path) -> FeatureSpec:
        """Read a spec ``to_json`` wrote."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    @property
    def event_feature_columns(self) -> tuple[str, ...]:
        """The ``events_*`` columns, in order."""
        return tuple(c for c in self.numeric_columns if c.startswith("events_"))


def write_feature_table(feature_table: pd.DataFrame, path: str | Path) -> Path:
    """Write the feature table as Parquet (atomic); ``read_feature_table`` reads it back."""
    return atomic_write(path, lambda tmp: feature_table.to_parquet(tmp, index=True))


def read_feature_table(path: str | Path) -> pd.DataFrame:
    """The feature table ``write_feature_table`` wrote, dtypes included."""
    return pd.read_parquet(path)
