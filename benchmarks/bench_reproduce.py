"""`make reproduce` from a warm .venv: synthetic company (10,000 users) + `insightos run`.

Goal: under 90 s wall on the project's 2-core machine, papermill kernel start-up included.
Both commands run as the Makefile runs them (the console script in a fresh process), into a
temporary folder so the repository's data/ and reports/ are left alone. Per-notebook times come
from the run's run.json; one bare kernel start is timed on its own for reference.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, record  # noqa: E402

TARGET_S = 90.0
INSIGHTOS = Path(sys.executable).parent / "insightos"


def kernel_start_seconds() -> float:
    """Start the project's kernel, wait until it answers, shut it down: the fixed cost per notebook."""
    from jupyter_client.manager import start_new_kernel

    from insightos_utils.runner import kernel_name

    start = time.perf_counter()
    manager, client = start_new_kernel(
        kernel_name=kernel_name(), extra_arguments=["--IPKernelApp.log_level=ERROR"]
    )
    seconds = time.perf_counter() - start
    client.stop_channels()
    manager.shutdown_kernel(now=True)
    return seconds


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-reproduce-") as tmp:
        raw, reports = Path(tmp) / "raw", Path(tmp) / "reports"
        start = time.perf_counter()
        subprocess.run([str(INSIGHTOS), "synth", "--out", str(raw)], cwd=ROOT, check=True)
        synth_s = time.perf_counter() - start
        completed = subprocess.run(
            [str(INSIGHTOS), "run", "--raw", str(raw), "--reports-dir", str(reports),
             "--no-progress"],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        wall_s = time.perf_counter() - start
        if completed.returncode != 0:
            raise SystemExit(f"insightos run failed:\n{completed.stderr[-4000:]}")
        meta = json.loads((Path(completed.stdout.strip()) / "run.json").read_text())
    notebooks = {nb["name"]: nb["seconds"] for nb in meta["notebooks"]}
    renders = {nb["name"]: nb["render_seconds"] for nb in meta["notebooks"]}
    record(
        "reproduce",
        {
            "users": 10_000,
            "wall_s": round(wall_s, 2),
            "target_s": TARGET_S,
            "meets_target": wall_s < TARGET_S,
            "synth_s": round(synth_s, 2),
            "run_s": round(wall_s - synth_s, 2),
            "run_inside_s": meta["seconds"],
            "notebook_s": notebooks,
            "html_render_s": renders,
            "kernel_start_s": round(kernel_start_seconds(), 2),
            "champion": meta.get("champion"),
            "holdout_roc_auc": meta.get("holdout_roc_auc"),
            "open_leads": meta.get("open_leads"),
        },
    )


if __name__ == "__main__":
    main()
