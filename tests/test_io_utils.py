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
