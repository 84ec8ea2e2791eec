"""Crontab lines for the two scheduled jobs: frequent scoring and slower full retraining.

``python -m insightos_utils.schedule`` prints them (``make schedule``); ``--install`` merges them
into the user's crontab inside a marked block, replacing that block if it is already there, so
installing twice changes nothing. Every path is absolute: cron starts jobs in the home folder
with a minimal PATH.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from insightos_utils.errors import InsightOSError

SCORE_SCHEDULE = "17 * * * *"  # hourly, off the round hour
RETRAIN_SCHEDULE = "40 2 * * *"  # nightly at 02:40
CRON_LOG = Path("reports") / "cron.log"


def block_markers(root: Path) -> tuple[str, str]:
    """The comment lines that open and close this repository's block in a crontab."""
    return f"# >>> insightos {root} >>>", f"# <<< insightos {root} <<<"


def crontab_lines(
    root: Path | None = None,
    score_schedule: str = SCORE_SCHEDULE,
    retrain_schedule: str = RETRAIN_SCHEDULE,
) -> list[str]:
    """The marked block: scoring with the current champion, and full retraining, both logged.

    ``root`` is the repository (default: the current directory, as ``make schedule`` runs there).
    """
    for schedule in (score_schedule, retrain_schedule):
        if len(schedule.split()) != 5:
            raise InsightOSError(
                f"'{schedule}' is not a cron schedule (five fields: m h dom mon dow)"
            )
    root = (root or Path.cwd()).resolve()
    insightos = shlex.quote(str(root / ".venv" / "bin" / "insightos"))
    log = shlex.quote(str(root / CRON_LOG))
    cd = f"cd {shlex.quote(str(root))}"
    begin, end = block_markers(root)

    def job(schedule: str, flags: str) -> str:
        command = f"{cd} && {insightos} run {flags}--no-progress >> {log} 2>&1"
        return f"{schedule} {command.replace('%', chr(92) + '%')}"  # cron reads % as newline

    return [
        begin,
        "# scores the open leads with the current champion (no retraining) -> reports/latest_scores",
        job(score_schedule, "--score-only "),
        "# retrains and re-runs every notebook -> reports/latest (only if the whole run succeeds)",
        job(retrain_schedule, ""),
        end,
    ]


def merge_block(crontab: str, block: Sequence[str]) -> str:
    """``crontab`` with ``block`` replacing the same-marked block, or appended when absent."""
    begin, end = block[0], block[-1]
    lines = crontab.splitlines()
    if begin in lines and end in lines[lines.index(begin) :]:
        start = lines.index(begin)
        stop = lines.index(end, start)
        lines[start : stop + 1] = list(block)
    else:
        if lines and lines[-1].strip():
            lines.append("")
        lines.extend(block)
    return "\n".join(lines) + "\n"


def install(block: Sequence[str], crontab_command: str = "crontab") -> str:
    """Merge ``block`` into the current user's crontab; the crontab as installed."""
    executable = shutil.which(crontab_command)
    if executable is None:
        raise InsightOSError(
            f"'{crontab_command}' not found: install cron (Debian: apt-get install cron) "
            "or add the printed lines to your scheduler by hand"
        )
    current = subprocess.run([executable, "-l"], capture_output=True, text=True, check=False)
    existing = current.stdout if current.returncode == 0 else ""  # "no crontab for user": empty
    merged = merge_block(existing, block)
    written = subprocess.run(
        [executable, "-"], input=merged, capture_output=True, text=True, check=False
    )
    if written.returncode != 0:
        raise InsightOSError(f"crontab refused the new table: {written.stderr.strip()}")
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m insightos_utils.schedule",
        description="Print (or install) the crontab lines for scoring and retraining.",
    )
    parser.add_argument("--install", action="store_true", help="merge into your crontab")
    parser.add_argument("--score", default=SCORE_SCHEDULE, help=f"default '{SCORE_SCHEDULE}'")
    parser.add_argument("--retrain", default=RETRAIN_SCHEDULE, help=f"default '{RETRAIN_SCHEDULE}'")
    parser.add_argument("--repo", type=Path, help="repository root (default: current folder)")
    args = parser.parse_args(argv)
    try:
        block = crontab_lines(args.repo, args.score, args.retrain)
        root = (args.repo or Path.cwd()).resolve()
        if not (root / ".venv" / "bin" / "insightos").exists():
            print(f"schedule: warning: {root}/.venv/bin/insightos is missing; run `make setup`",
                  file=sys.stderr)  # fmt: skip
        print("\n".join(block))
        if args.install:
            install(block)
            print("installed: `crontab -l` shows the block above", file=sys.stderr)
    except InsightOSError as error:
        print(f"schedule: {error}", file=sys.stderr)
        return error.exit_status
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
