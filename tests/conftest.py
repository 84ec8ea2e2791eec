"""Shared fixtures: the default synthetic company (made once per session), processed data,
and headless notebook execution with the project's kernel."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def fresh_postgres_schema(postgres_url: str, prefix: str) -> Iterator[str]:
    """A new PostgreSQL schema; yields a URL whose search_path points at it; dropped after."""
    import sqlalchemy as sa

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as error:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at INSIGHTOS_TEST_DATABASE_URL: {error}")
    separator = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A fresh schema in the test database for one test (never touches ``public``)."""
    with fresh_postgres_schema(postgres_url, "test") as url:
        yield url


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    """Paths of Debian's chromium and chromedriver; skip where they are not installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture(scope="module")
def chromium_driver(chromium_paths: tuple[str, str], tmp_path_factory: pytest.TempPathFactory):
    """Headless Chromium under selenium, kept off the network, with a fresh profile per module."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# --- lead scoring: a hand-built feature table (tests/leads) -------------


@pytest.fixture(scope="session")
def toy_feature_table() -> Any:
    """A small feature table shaped like ``features.build_feature_table``'s, with a known signal.

    4,000 users over a year: ``events_project_created`` and campaign ``google_a`` raise the
    conversion odds, ``events_page_view`` is noise, ``hours_to_first_event`` is partly missing;
    15 % of users are still open leads (no known outcome). No synth or ingest needed.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 4_000
    days = np.sort(rng.uniform(0, 365, n))
    intent = rng.normal(size=n)
    campaign = rng.choice(["google_a", "meta_b", "(none)"], n, p=[0.3, 0.3, 0.4])
    logit = -2.4 + 1.3 * intent + np.where(campaign == "google_a", 0.9, 0.0)
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    is_open = rng.random(n) < 0.15
    status = np.where(is_open, "lead", np.where(converted, "converted", "lost"))
    table = pd.DataFrame(
        {
            "events_project_created": rng.poisson(np.exp(0.3 + 0.7 * intent)),
            "events_page_view": rng.poisson(2.0, n),
            "hours_to_first_event": np.where(rng.random(n) < 0.3, np.nan, rng.exponential(20, n)),
            "campaign": pd.array(campaign, dtype="str"),
            "created_at": pd.Timestamp("2025-01-01") + pd.to_timedelta(days, unit="D"),
            "status_at_as_of": pd.array(status, dtype="str"),
            "label_known": ~is_open,
            "target_converted": pd.array(
                np.where(is_open, None, converted.astype(int)), dtype="Int8"
            ),
            "window_complete": days < 351,
        },
        index=pd.Index([f"u{i:05d}" for i in range(n)], name="user_id"),
    )
    return table


TOY_FEATURES = ["events_project_created", "events_page_view", "hours_to_first_event", "campaign"]


@pytest.fixture(scope="session")
def toy_training(toy_feature_table: Any) -> Any:
    """Both lead models trained on ``toy_feature_table`` (a ``leads.train.TrainingResult``)."""
    from insightos_utils.leads.pipelines import MODEL_NAMES
    from insightos_utils.leads.train import train_lead_models

    rows = toy_feature_table[toy_feature_table["label_known"]]
    return train_lead_models(rows, {name: TOY_FEATURES for name in MODEL_NAMES})


@pytest.fixture(scope="session")
def synthetic_lead_models(synthetic_processed: Path) -> dict[str, Any]:
    """Feature inputs and both lead models trained on the default synthetic company."""
    from insightos_utils.ingest import read_processed
    from insightos_utils.leads import features
    from insightos_utils.leads.stage import feature_inputs
    from insightos_utils.leads.train import model_features, train_lead_models

    data = read_processed(synthetic_processed)
    as_of = features.resolve_as_of(data.users, data.events, None)
    inputs = feature_inputs(data.users, data.events, as_of)
    result = train_lead_models(
        features.training_rows(inputs.feature_table),
        model_features(inputs.decisions, inputs.spec),
    )
    return {"data": data, "as_of": as_of, "inputs": inputs, "result": result}


# --- runner (issue 5): one end-to-end `insightos run`, shared by the runner and browser tests ---


@pytest.fixture(scope="session")
def pipeline_run(synthetic_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`insightos run` on the default synthetic company, once per session: the run folder.

    The run is published in its own reports folder (``run.parents[1]``: ``latest``, index).
    """
    import subprocess
    import sys

    expected = {"01_ingest", "02_eda", "03_lead_scoring", "04_ltv", "05_product"}
    missing = expected - {path.stem for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    assert not missing, f"pipeline notebooks missing from notebooks/: {sorted(missing)}"
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
