"""The vocabulary carries everything ``fit_feature_spec`` learns from events.

``spec_from_vocabulary`` below is ``features.fit_feature_spec``'s decision logic (exclusion,
own columns, slugs, key events) applied to an engine's ``Vocabulary`` instead of in-memory
arrays; the leads refactor moves it into ``leads/features`` so that the spec is fitted the
same way on every engine. Equal specs on the edge cases and the synthetic company prove that
no input of the spec is lost in the engine's counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from insightos_utils import engines
from insightos_utils.engines.aggregates import Vocabulary
from insightos_utils.errors import InputError
from insightos_utils.leads import features

from .conftest import AS_OF, WINDOW_DAYS, edge_company, to_folder


def spec_from_vocabulary(
    vocabulary: Vocabulary,
    min_event_users: int = 50,
    key_events: Sequence[str] | None = None,
    n_key_events: int = 2,
) -> features.FeatureSpec:
    names = vocabulary.names
    excluded = names.index[names["pre_conversion_events"] == 0]
    kept = names.drop(index=excluded)
    own = kept.index[kept["window_users"] >= int(min_event_users)]
    taken, slug_of = {"other"}, {}
    for name in sorted(map(str, own)):
        base = slug = features._slug(name)
        suffix = 2
        while slug in taken:
            slug, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(slug)
        slug_of[name] = slug
    event_columns = {
        str(name): f"events_{slug_of[name]}" if name in slug_of else features.OTHER_COLUMN
        for name in kept.index
    }
    share = names["window_users"] / max(vocabulary.n_users, 1)
    if key_events is not None:
        unknown = [name for name in key_events if name not in slug_of]
        if unknown:
            raise InputError(f"key events {unknown} are not frequent pre-conversion event names")
        milestones = [name for name in key_events if name in slug_of]
    else:
        candidates = [name for name in slug_of if 0.1 <= share[name] <= 0.9]
        candidates.sort(key=lambda name: (abs(share[name] - 0.5), name))
        milestones = candidates[: int(n_key_events)]
    key_columns = {f"{features.KEY_EVENT_PREFIX}{slug_of[name]}": name for name in milestones}
    numeric = (
        tuple(f"events_{slug}" for slug in sorted(set(slug_of.values())))
        + (features.OTHER_COLUMN,)
        + features.BEHAVIOURAL_COLUMNS
        + tuple(key_columns)
    )
    return features.FeatureSpec(
        window_days=vocabulary.window_days,
        event_columns=dict(sorted(event_columns.items())),
        excluded_events=tuple(sorted(map(str, excluded))),
        categorical_columns=features.CATEGORICAL_COLUMNS,
        numeric_columns=numeric,
        key_events=key_columns,
        as_of=vocabulary.as_of.isoformat(),
        min_event_users=int(min_event_users),
    )


@pytest.mark.parametrize(
    ("min_event_users", "key_events"),
    [(3, None), (1, None), (40, None), (3, ["sign'up", "Page View"])],
)
def test_spec_from_engine_vocabulary_equals_fit_feature_spec(
    min_event_users: int, key_events: list[str] | None, tmp_path: Path
) -> None:
    tables = edge_company()
    vocabulary = engines.fit_vocabulary(
        to_folder(tables, tmp_path / "lake"), AS_OF, WINDOW_DAYS, engine="duckdb"
    )
    expected = features.fit_feature_spec(
        tables["users"], tables["events"], AS_OF, WINDOW_DAYS, min_event_users, key_events
    )
    assert spec_from_vocabulary(vocabulary, min_event_users, key_events) == expected


def test_synthetic_company_spec(synthetic_processed: Path) -> None:
    from insightos_utils.ingest import read_processed

    data = read_processed(synthetic_processed)
    as_of = features.resolve_as_of(data.users, data.events, None)
    vocabulary = engines.fit_vocabulary(synthetic_processed, as_of, 14, engine="duckdb")
    expected = features.fit_feature_spec(data.users, data.events, as_of)
    assert expected.excluded_events  # the synthetic company has post-conversion names
    # the engine counts the event vocabulary; the lead attributes are computed in memory
    assert not expected.attribute_plan.features  # its one marketing key is constant: unused
    assert spec_from_vocabulary(vocabulary) == dataclasses.replace(expected, attributes={})
    assert isinstance(vocabulary.names, pd.DataFrame)
