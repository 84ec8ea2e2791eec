"""Executing the pipeline's notebooks with papermill: parameters, kernel, failures.

Each notebook receives only the names its ``parameters`` cell declares: configuration keys plus
the per-run ``raw_dir``, ``processed_dir``, ``run_dir`` and ``previous_run_dir``. A database URL
reaches a notebook without its password (the executed notebook is a record anyone with the run
folder can read); the password travels to the kernel in the environment variable
``SOURCE_PASSWORD_VARIABLE``, for ``ingest.connection_url`` to put back.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from insightos_utils import notebook_html
from insightos_utils.config import PipelineConfig, notebook_parameters
from insightos_utils.errors import InputError, InsightOSError
from insightos_utils.ingest import redact_url, split_password
from insightos_utils.ingest.sources import SOURCE_PASSWORD_VARIABLE
from insightos_utils.io_utils import utc_stamp

KERNEL_NAME = "insightos"
FALLBACK_KERNEL = "python3"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


class RunLog:
    """``run.log``: timestamped lines from the runner, and the notebooks' own output in between."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream: IO[str] = path.open("a", encoding="utf-8", buffering=1)

    def line(self, message: str) -> None:
        if self.stream.closed:
            return
        stamp = utc_stamp()
        for text in message.splitlines() or [""]:
            self.stream.write(f"{stamp} {text}\n")

    def close(self) -> None:
        self.stream.close()


def kernel_name() -> str:
    """The project's Jupyter kernel (registered in .venv by ``make setup``), else ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return KERNEL_NAME if KERNEL_NAME in specs else FALLBACK_KERNEL


def find_notebooks(notebooks_dir: Path) -> list[Path]:
    """The pipeline's notebooks (``NN_name.ipynb``) in their run order."""
    notebooks = sorted(notebooks_dir.glob(NOTEBOOK_GLOB))
    if not notebooks:
        raise InsightOSError(
            f"no notebooks named NN_*.ipynb in {notebooks_dir}; run from the repository root "
            "or pass --notebooks DIR"
        )
    return notebooks


def parameters_for(
    notebook: Path, config: PipelineConfig, per_run: dict[str, str]
) -> tuple[dict[str, Any], str | None]:
    """The parameters a notebook declares (paths absolute, the source URL without its
    password) and the password to hand its kernel through the environment (or None)."""
    import papermill

    declared = set(papermill.inspect_notebook(str(notebook)))
    parameters = notebook_parameters(config, declared)
    parameters.update({name: value for name, value in per_run.items() if name in declared})
    password = None
    if parameters.get("source_url"):
        parameters["source_url"], password = split_password(parameters["source_url"])
    return parameters, password


@contextmanager
def kernel_secret(password: str | None) -> Iterator[None]:
    """The source password in the environment kernels inherit, only while one runs."""
    if password is None:
        yield
        return
    before = os.environ.get(SOURCE_PASSWORD_VARIABLE)
    os.environ[SOURCE_PASSWORD_VARIABLE] = password
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SOURCE_PASSWORD_VARIABLE, None)
        else:
            os.environ[SOURCE_PASSWORD_VARIABLE] = before


def _source_cell_index(executed: Path, cell_index: int) -> int:
    """The failing cell's index in the source notebook (papermill inserted a parameters cell)."""
    try:
        import nbformat

        cells = nbformat.read(executed, as_version=4).cells[:cell_index]
    except Exception:
        return cell_index
    injected = sum("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
    return cell_index - injected


def notebook_failure(
    notebook: Path, executed: Path, error: Exception
) -> tuple[InsightOSError, dict[str, Any]]:
    """The error to raise for a failed notebook (naming notebook, cell and error) and its details.

    A notebook stopped by ``InputError`` (bad input) gives an ``InputError`` (exit 2).
    """
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(error, PapermillExecutionError):
        return InsightOSError(f"{notebook.name}: {type(error).__name__}: {error}"), {
            "notebook": notebook.name,
            "ename": type(error).__name__,
            "evalue": str(error),
        }
    cell = _source_cell_index(executed, error.cell_index)
    first_line = next((ln for ln in str(error.source).splitlines() if ln.strip()), "")
    message = (
        f"{notebook.name}: cell {cell} (execution count [{error.exec_count}], "
        f"starting `{first_line.strip()[:80]}`) raised {error.ename}: {error.evalue}"
    )
    failure = InputError(message) if error.ename == "InputError" else InsightOSError(message)
    return failure, {
        "notebook": notebook.name,
        "cell_index": cell,
        "execution_count": error.exec_count,
        "ename": error.ename,
        "evalue": error.evalue,
    }


def execute(
    notebook: Path,
    parameters: dict[str, Any],
    password: str | None,
    staging: Path,
    cwd: Path,
    meta: dict[str, Any],
    log: RunLog,
    show_progress: bool,
) -> None:
    """Execute one notebook into the staging folder and render its HTML; record its timings."""
    import nbformat
    import papermill

    executed = staging / notebook.name
    shown = {k: redact_url(v) if k.endswith("_url") else v for k, v in parameters.items()}
    record: dict[str, Any] = {
        "name": notebook.name,
        "title": notebook_html.notebook_title(nbformat.read(notebook, as_version=4), notebook.stem),
        "status": "running",
    }
    meta.setdefault("notebooks", []).append(record)
    log.line(f"--- {notebook.name}: parameters {json.dumps(shown, sort_keys=True)}")
    start = time.perf_counter()
    try:
        with kernel_secret(password):
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters=parameters,
                kernel_name=meta["kernel"],
                cwd=str(cwd),
                progress_bar={"desc": notebook.stem, "leave": False} if show_progress else False,
                stdout_file=log.stream,
                stderr_file=log.stream,
                # the kernel's own start-up chatter (a TCP-on-loopback notice) is not news
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
    except Exception as error:
        failure, details = notebook_failure(notebook, executed, error)
        record.update(status="failed", seconds=round(time.perf_counter() - start, 2), error=details)
        log.line(f"--- {notebook.name}: failed after {record['seconds']:.1f} s")
        raise failure from error
    record["seconds"] = round(time.perf_counter() - start, 2)
    render_start = time.perf_counter()
    html = notebook_html.render_html(executed, executed.with_suffix(".html"))
    record.update(
        status="ok", render_seconds=round(time.perf_counter() - render_start, 2), html=html.name
    )
    log.line(
        f"--- {notebook.name}: ran in {record['seconds']:.1f} s, "
        f"HTML in {record['render_seconds']:.1f} s"
    )
