"""Shared fixtures: the default synthetic company (made once per session), processed data,
and headless notebook execution with the project's kernel."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def synthetic_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default synthetic company (10,000 users, seed 42) as a raw CSV folder."""
    from insightos_utils.synth import write_company

    out = tmp_path_factory.mktemp("raw")
    write_company(out, n_users=10_000, seed=42)
    return out


@pytest.fixture(scope="session")
def synthetic_processed(synthetic_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default synthetic company after ingest (Parquet + ingest_report.json)."""
    from insightos_utils.ingest import ingest

    out = tmp_path_factory.mktemp("processed")
    ingest(out, raw_dir=synthetic_raw)
    return out


def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return "insightos" if "insightos" in specs else "python3"


@pytest.fixture(scope="session")
def run_notebook() -> Callable[..., Path]:
    """Execute ``notebooks/<name>.ipynb`` headlessly with papermill; returns the output path."""
    import papermill

    def execute(name: str, output_dir: Path, **parameters: Any) -> Path:
        output_dir.mkdir(parents=True, exist_ok=True)
        output = output_dir / f"{name}.ipynb"
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"),
            str(output),
            parameters=parameters,
            kernel_name=_kernel_name(),
            cwd=str(REPO_ROOT),
            progress_bar=False,
        )
        return output

    return execute


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A real PostgreSQL server's URL, from INSIGHTOS_TEST_DATABASE_URL; skip where none exists."""
    url = os.environ.get("INSIGHTOS_TEST_DATABASE_URL", "")
    if not url:
        pytest.skip("no PostgreSQL server: INSIGHTOS_TEST_DATABASE_URL is not set")
    return url


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    """Paths of Debian's chromium and chromedriver; skip where they are not installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    return browser, driver


# --- runner (issue 5): one end-to-end `insightos run`, shared by the runner and browser tests ---


@pytest.fixture(scope="session")
def pipeline_run(synthetic_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`insightos run` on the default synthetic company, once per session: the run folder.

    The run is published in its own reports folder (``run.parents[1]``: ``latest``, index).
    """
    import subprocess
    import sys

    expected = {"01_ingest", "02_eda", "03_lead_scoring", "04_ltv"}
    missing = expected - {path.stem for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    if missing:
        pytest.skip(f"pipeline notebooks not in notebooks/ yet: {sorted(missing)}")
    reports = tmp_path_factory.mktemp("pipeline-reports")
    command = [
        sys.executable, "-m", "insightos_utils", "run", "--raw", str(synthetic_raw),
        "--config", str(REPO_ROOT / "insightos.toml"), "--notebooks", str(NOTEBOOKS),
        "--reports-dir", str(reports), "--no-progress",
    ]  # fmt: skip
    completed = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    if completed.returncode != 0:
        pytest.fail(f"insightos run exited {completed.returncode}:\n{completed.stderr[-4000:]}")
    return Path(completed.stdout.strip().splitlines()[-1])
