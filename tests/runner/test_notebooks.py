"""The runner hands each notebook the parameters it declares: papermill must see every one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import papermill
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_declared_parameter_is_seen_by_papermill(notebook: Path) -> None:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    written = re.findall(r"^(\w+)\s*=", "".join(cell["source"]), flags=re.MULTILINE)
    # a comment papermill cannot parse (an "=" in it, say) silently drops the parameter
    assert list(papermill.inspect_notebook(str(notebook))) == written
