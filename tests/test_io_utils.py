from pathlib import Path

import pytest

from insightos_utils.io_utils import atomic_write, atomic_write_many, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failed_write_keeps_the_good_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("good")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_many_is_all_or_nothing(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("a0")
    second.write_text("b0")

    def fail(tmp: Path) -> None:
        raise OSError("no space")

    with pytest.raises(OSError):
        atomic_write_many({first: lambda p: p.write_text("a1"), second: fail})
    assert (first.read_text(), second.read_text()) == ("a0", "b0")

    atomic_write_many({first: lambda p: p.write_text("a1"), second: lambda p: p.write_text("b1")})
    assert (first.read_text(), second.read_text()) == ("a1", "b1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv"]


def test_json_writer_is_strict_and_keeps_unicode(tmp_path: Path) -> None:
    import json
    import math

    import numpy as np
    import pandas as pd

    from insightos_utils.io_utils import atomic_write_json

    path = atomic_write_json(
        tmp_path / "d.json",
        {
            "nan": math.nan,
            "inf": np.float64("inf"),
            "n": np.int64(3),
            "when": pd.Timestamp("2026-01-02"),
            "name": "promoção",
        },
    )
    text = path.read_text(encoding="utf-8")
    assert "promoção" in text and "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {
        "nan": None,
        "inf": None,
        "n": 3,
        "when": "2026-01-02T00:00:00",
        "name": "promoção",
    }


def test_clock_is_utc_to_the_second() -> None:
    from datetime import UTC, datetime

    from insightos_utils.io_utils import utc_now, utc_stamp

    now = utc_now()
    assert now.tzinfo is not None and now.utcoffset().total_seconds() == 0 and now.microsecond == 0
    assert utc_stamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
