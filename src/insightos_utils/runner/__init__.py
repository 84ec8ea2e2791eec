"""Headless runs of the ordered notebooks (``insightos run``): staged, published only when all
succeeded, labelled when killed, pruned when old.

``run`` (the run itself), ``folders`` (staging, publishing, interrupted leftovers, umask),
``notebooks`` (papermill, parameters, the source password kept out of notebooks), ``meta``
(what run.json says), ``prune`` (``[run] keep_runs`` and friends).
"""

from insightos_utils.ingest import redact_url
from insightos_utils.runner.folders import new_run_id
from insightos_utils.runner.meta import run_metrics
from insightos_utils.runner.notebooks import NOTEBOOK_GLOB, kernel_name, notebook_failure
from insightos_utils.runner.run import DEFAULT_LOCK_TIMEOUT, LOCK_NAME, run_pipeline

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "LOCK_NAME",
    "NOTEBOOK_GLOB",
    "kernel_name",
    "new_run_id",
    "notebook_failure",
    "redact_url",
    "run_metrics",
    "run_pipeline",
]
