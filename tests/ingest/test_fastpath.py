"""Ingest's vectorised column checks agree with the obvious per-value definitions."""

from __future__ import annotations

import json
import string

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from insightos_utils import contract
from insightos_utils.ingest import fastpath


def text(*values: str | None) -> pd.Series:
    return pd.Series(list(values), dtype="str")


@pytest.mark.parametrize(
    "values",
    [
        ["2024-01-01T10:00:00Z", "2024-01-02T00:30:00.250Z"],  # uniformly zoned (Arrow path)
        ["2024-01-01T10:00:00", "2024-01-02 00:30:00.25"],  # uniformly zone-less (Arrow path)
        ["2024-01-01T12:00:00+02:00", "2024-01-01T19:30:00.25-05:00"],  # offsets
        ["2024-01-01T10:00:00Z", "2024-01-02 00:30:00.25", "20240103T101500Z"],  # mixed: pandas
    ],
)
def test_parse_timestamps_matches_pandas_iso8601_in_utc(values: list[str]) -> None:
    parsed = fastpath.parse_timestamps(text(*values))
    expected = pd.to_datetime(pd.Series(values), format="ISO8601", utc=True).dt.tz_localize(None)
    assert parsed.dtype == "datetime64[us]"
    assert (parsed == expected).all()


def test_parse_timestamps_marks_empty_and_bad_values_nat() -> None:
    parsed = fastpath.parse_timestamps(
        text("2024-01-01", "", "  ", None, "yesterday", "2024-13-01")
    )
    assert parsed.notna().tolist() == [True, False, False, False, False, False]


def test_parse_timestamps_accepts_native_timestamps() -> None:
    aware = pd.Series(pd.to_datetime(["2024-01-01 12:00"]).tz_localize("Europe/Berlin"))
    naive = pd.Series(pd.to_datetime(["2024-01-01 12:00"]))
    assert fastpath.parse_timestamps(aware)[0] == pd.Timestamp("2024-01-01 11:00")
    assert fastpath.parse_timestamps(naive)[0] == pd.Timestamp("2024-01-01 12:00")
    assert fastpath.parse_timestamps(aware).dtype == "datetime64[us]"


def test_parse_numbers() -> None:
    parsed = fastpath.parse_numbers(text("12.5", " 3 ", "1e3", "-2", "abc", "", "inf", None))
    assert parsed.iloc[:4].tolist() == [12.5, 3.0, 1000.0, -2.0]
    assert parsed.iloc[4:].isna().all()
    assert fastpath.parse_numbers(pd.Series([1, 2])).dtype == "float64"


def test_text_values_gives_ids_as_clean_text() -> None:
    assert fastpath.text_values(pd.Series([1, 22])).tolist() == ["1", "22"]
    assert fastpath.text_values(pd.Series([1.0, None])).iloc[0] == "1"
    as_text = fastpath.text_values(pd.Series([{"a": 1}, None], dtype=object))
    assert json.loads(as_text.iloc[0]) == {"a": 1} and pd.isna(as_text.iloc[1])


def test_empty_mask() -> None:
    mask = fastpath.empty_mask(text("a", "", " \t", None, " a "))
    assert mask.tolist() == [False, True, True, True, False]


def _is_json_object(value: str | None) -> bool:
    if value is None or value.strip() in ("", "null"):
        return True
    try:
        return isinstance(json.loads(value), dict)
    except ValueError:
        return False


JSON_SAMPLES = [
    "{}",
    ' { "a" : "b\\"c", "n": -1.5e3, "t": true, "f": false, "z": null } ',
    '{"unicode": "\\u00e9 é ✓"}',
    '{"nested": {"b": [1, 2]}}',
    '{"list": [1, 2, 3]}',
    "[1, 2]",
    '"text"',
    "42",
    "{bad}",
    "{'single': 'quotes'}",
    '{"a": 01}',
    '{"a": 1,}',
    '{"a": NaN}',
    '{"a": "x"',
    "null",
    " ",
    "",
    None,
    '{"a": {"b": }}',
]


def test_json_object_mask_agrees_with_json_loads() -> None:
    mask = fastpath.json_object_mask(text(*JSON_SAMPLES))
    assert mask.tolist() == [_is_json_object(v) for v in JSON_SAMPLES]


def test_flat_json_pattern_never_accepts_invalid_json() -> None:
    """The fast path may only accept text json.loads accepts as an object (random probes)."""
    rng = np.random.default_rng(3)
    alphabet = list('{}[]":,. -+eE0123456789truefalsn\\abc')
    probes = ['{"' + "".join(rng.choice(alphabet, rng.integers(0, 12))) for _ in range(3000)]
    probes += ["".join(rng.choice(alphabet, rng.integers(0, 16))) for _ in range(3000)]
    flat = pa.compute.match_substring_regex(pa.array(probes), fastpath.FLAT_JSON_OBJECT)
    for probe, matched in zip(probes, flat.to_pylist(), strict=True):
        if matched:
            assert isinstance(json.loads(probe), dict), probe


def test_marketing_fields_extracts_utm_values() -> None:
    fields = fastpath.marketing_fields(
        text(
            '{"utm_campaign": "google_gestao_agil", "utm_source": "google", "utm_medium": "cpc"}',
            '{"utm_source": "newsletter"}',
            '{"utm_campaign": ""}',
            "",
            None,
            "not json",
        )
    )
    assert fields["campaign"].tolist() == [
        "google_gestao_agil",
        *[contract.NO_CAMPAIGN] * 5,
    ]
    assert fields["source"].tolist()[:2] == ["google", "newsletter"]
    assert fields["medium"].tolist()[:2] == ["cpc", contract.NO_CAMPAIGN]
    assert fields["valid"].tolist() == [True, True, True, True, True, False]


def test_repeated_mask_matches_pandas_duplicated() -> None:
    rng = np.random.default_rng(5)
    letters = np.array(list(string.ascii_lowercase[:4]))
    values = ["".join(rng.choice(letters, rng.integers(0, 5))) for _ in range(2000)]
    series = text(*values)
    expected = series.duplicated(keep=False).to_numpy()
    assert expected.any() and not expected.all()
    assert (fastpath.repeated_mask(series) == expected).all()


def test_string_hashes_do_not_depend_on_chunking() -> None:
    values = [f"id-{i % 37}-{'x' * (i % 5)}" for i in range(300)]
    whole = fastpath.string_hashes(pa.chunked_array([pa.array(values)]))
    pieces = fastpath.string_hashes(pa.chunked_array([pa.array(values[:7]), pa.array(values[7:])]))
    sliced = fastpath.string_hashes(pa.chunked_array([pa.array(values).slice(0)]))
    assert (whole == pieces).all() and (whole == sliced).all()
    by_value = dict(zip(values, whole, strict=True))
    assert len(set(by_value.values())) == len(by_value)  # distinct strings, distinct hashes here


def test_is_in() -> None:
    assert fastpath.is_in(text("a", "b", None, "c"), text("c", "a")).tolist() == [
        True,
        False,
        False,
        True,
    ]
