"""Crontab lines: absolute paths, both jobs, and an install that is idempotent."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

import pytest

from insightos_utils import schedule
from insightos_utils.errors import InsightOSError


def test_lines_use_absolute_paths_and_log_to_the_repo(tmp_path: Path) -> None:
    repo = tmp_path / "my repo"
    block = schedule.crontab_lines(repo)
    begin, end = schedule.block_markers(repo.resolve())
    assert block[0] == begin and block[-1] == end
    jobs = [line for line in block if not line.startswith("#")]
    assert len(jobs) == 2
    score, retrain = jobs
    assert score.startswith("17 * * * * ") and retrain.startswith("40 2 * * * ")
    assert "run --score-only" in score and "--score-only" not in retrain
    for job in jobs:
        words = shlex.split(job.split(" ", 5)[5])
        assert words[:2] == ["cd", str(repo.resolve())]
        insightos = words[words.index("&&") + 1]
        assert insightos == str(repo.resolve() / ".venv" / "bin" / "insightos")
        log = words[words.index(">>") + 1]
        assert Path(log).is_absolute() and log.endswith("reports/cron.log")


def test_bad_schedule_is_refused() -> None:
    with pytest.raises(InsightOSError, match="five fields"):
        schedule.crontab_lines(Path("/repo"), score_schedule="hourly")


def test_merge_replaces_its_own_block_and_keeps_the_rest() -> None:
    block = schedule.crontab_lines(Path("/repo"))
    other = "MAILTO=ops@example.org\n0 5 * * * /usr/bin/backup\n"
    once = schedule.merge_block(other, block)
    assert once.startswith(other) and once.count(block[0]) == 1
    assert schedule.merge_block(once, block) == once  # idempotent
    moved = schedule.crontab_lines(Path("/repo"), score_schedule="*/30 * * * *")
    again = schedule.merge_block(once, moved)
    assert "*/30 * * * *" in again and "17 * * * *" not in again
    assert again.startswith(other) and again.count(block[0]) == 1


def fake_crontab(bin_dir: Path, table: Path) -> None:
    """A ``crontab`` that keeps the table in a file (-l prints it, - replaces it)."""
    bin_dir.mkdir()
    script = bin_dir / "crontab"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-l" ]; then [ -f "{table}" ] || {{ echo "no crontab for $USER" >&2; exit 1; }};'
        f' cat "{table}"; else cat > "{table}"; fi\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_install_twice_gives_one_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tmp_path / "table"
    fake_crontab(tmp_path / "bin", table)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert schedule.main(["--install", "--repo", str(tmp_path)]) == 0
    first = table.read_text()
    assert schedule.main(["--install", "--repo", str(tmp_path)]) == 0
    assert table.read_text() == first
    assert first.count("insightos run") == 2


def test_install_without_cron_says_what_to_do() -> None:
    with pytest.raises(InsightOSError, match="not found"):
        schedule.install(["# a", "# b"], crontab_command="no-such-crontab")
