"""Shared benchmark plumbing: time a callable several times, measure peak memory, record figures.

Each ``benchmarks/bench_<stage>.py`` calls ``record(stage, figures)``; the figures are merged
into ``reports/benchmarks.json`` under the stage's name, with the machine and library versions.
Peak memory is measured in a child process (``measure_in_subprocess``) so that one benchmark's
allocations never inflate another's.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "reports" / "benchmarks.json"
PACKAGES = ("pandas", "numpy", "pyarrow", "scikit-learn", "xgboost-cpu", "lifetimes", "papermill")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "versions": versions,
    }


def median_seconds(func: Callable[[], Any], repeats: int = 3) -> dict[str, Any]:
    """Run ``func`` ``repeats`` times; the median and every run's wall time in seconds."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        runs.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(runs), 3), "runs_s": [round(r, 3) for r in runs]}


def measure_in_subprocess(code: str, repeats: int = 3) -> dict[str, Any]:
    """Run ``code`` (Python source) in fresh interpreters: median wall seconds and peak RSS (GB).

    The code may print one JSON object on its last stdout line; its keys are merged in
    (from the last run). Wall time counts only what the code itself times if it reports
    ``seconds``; otherwise the whole child process, interpreter start-up included.
    """
    runs, peaks, extra = [], [], {}
    for _ in range(repeats):
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
            handle.write(code)
            script = handle.name
        start = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, script], capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - start
        os.unlink(script)
        if completed.returncode != 0:
            raise RuntimeError(f"benchmark child failed:\n{completed.stderr[-4000:]}")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        lines = [line for line in completed.stdout.strip().splitlines() if line.startswith("{")]
        if lines:
            extra = json.loads(lines[-1])
        runs.append(float(extra.get("seconds", wall)))
        peaks.append(float(extra.get("peak_rss_gb", usage.ru_maxrss / 1e6)))
    extra = {k: v for k, v in extra.items() if k not in ("seconds", "peak_rss_gb")}
    return {
        "median_s": round(statistics.median(runs), 3),
        "runs_s": [round(r, 3) for r in runs],
        "peak_rss_gb": round(max(peaks), 3),
        **extra,
    }


CHILD_PEAK_RSS = """
import json as _json, resource as _resource
def _report(seconds, **extra):
    peak = _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(_json.dumps({"seconds": seconds, "peak_rss_gb": peak, **extra}))
"""


def record(stage: str, figures: dict[str, Any]) -> None:
    """Merge ``figures`` under ``stage`` into reports/benchmarks.json (atomic replace)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {}
    if RESULTS.exists():
        document = json.loads(RESULTS.read_text())
    document["machine"] = machine()
    document.setdefault("stages", {})[stage] = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **figures,
    }
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(RESULTS)
    print(json.dumps({stage: figures}, indent=2))
