"""The vocabulary carries everything ``fit_feature_spec`` learns from events.

``engines.pipeline.spec_from_vocabulary`` is ``features.fit_feature_spec``'s decision logic
(exclusion, own columns, slugs, key events) applied to an engine's ``Vocabulary`` instead of
in-memory arrays: the spec the pipeline fits when an engine computes. Equal specs on the edge cases and the synthetic company prove that
no input of the spec is lost in the engine's counts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from insightos_utils import engines
from insightos_utils.engines.pipeline import spec_from_vocabulary
from insightos_utils.leads import features

from .conftest import AS_OF, WINDOW_DAYS, edge_company, to_folder


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
