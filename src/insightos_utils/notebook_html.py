"""Executed notebooks as standalone HTML pages for stakeholders.

Everything here is read by people who do not code: no code cells, prompts, tracebacks, warnings
or raw object dumps; charts embedded so a file stands alone; no script or CDN link (the pages work
offline and need no JavaScript). Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

from insightos_utils.io_utils import atomic_write_text

TEMPLATES = Path(__file__).resolve().parent / "templates"
NOTEBOOK_TEMPLATE = "notebook_report.html.j2"

# Cells a reader never sees: papermill's parameter cells and error banner, cells tagged to hide.
HIDDEN_CELL_TAGS = frozenset(
    {"parameters", "injected-parameters", "papermill-error-cell-tag", "remove_cell", "remove-cell"}
)
# Output formats that need a script to display: never embedded (offline, no JavaScript).
SCRIPTED_MIMETYPES = frozenset(
    {
        "application/javascript",
        "application/vnd.jupyter.widget-view+json",
        "application/vnd.jupyter.widget-state+json",
    }
)
# A bare repr such as "<Figure size 640x480 with 1 Axes>" or "<Axes: title=...>" says nothing.
OBJECT_REPR = re.compile(r"^\s*(\[?<[\w.]+[ :].*>\]?|<[\w.]+ object at 0x[0-9a-f]+>)\s*$", re.S)


def _keep_output(output: nbformat.NotebookNode) -> bool:
    if output.get("output_type") == "error":
        return False
    if output.get("output_type") == "stream":
        return output.get("name") != "stderr"
    data = output.get("data", {})
    for mimetype in SCRIPTED_MIMETYPES & set(data):
        del data[mimetype]
    if not data:
        return False
    if set(data) == {"text/plain"}:
        text = data["text/plain"]
        text = "".join(text) if isinstance(text, list) else text
        return not OBJECT_REPR.match(text)
    return True


def stakeholder_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of an executed notebook with only what a stakeholder should read.

    Drops parameter cells, papermill's error banner, error outputs, stderr streams (warnings),
    outputs that need JavaScript, bare object reprs, and code cells left with no output.
    """
    cleaned = nbformat.from_dict(json.loads(json.dumps(notebook)))
    cells, context = [], "the notebook"
    for cell in cleaned.cells:
        if HIDDEN_CELL_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        if cell.cell_type == "markdown":
            context = next(
                (ln.lstrip("# ") for ln in cell.source.splitlines() if ln.strip()), context
            )
        if cell.cell_type == "code":
            cell.outputs = [output for output in cell.get("outputs", []) if _keep_output(output)]
            if not cell.outputs:
                continue
            for output in cell.outputs:  # alternative text for screen readers
                if "image/png" in output.get("data", {}):
                    image_meta = output.setdefault("metadata", {}).setdefault("image/png", {})
                    image_meta.setdefault("alt", f"Chart for: {context[:150]}")
        cells.append(cell)
    cleaned.cells = cells
    cleaned.metadata.pop("widgets", None)
    return cleaned


def notebook_title(notebook: nbformat.NotebookNode, fallback: str) -> str:
    """The first Markdown heading of a notebook (what it is about), else ``fallback``."""
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip() or fallback
    return fallback


def render_html(executed_notebook: str | Path, html_path: str | Path) -> Path:
    """Render an executed notebook as one self-contained, offline HTML report for stakeholders.

    Code cells and prompts are hidden, charts are embedded as data URIs, and the template links
    no script or stylesheet from the network.
    """
    from nbconvert import HTMLExporter

    executed_notebook = Path(executed_notebook)
    notebook = nbformat.read(executed_notebook, as_version=4)
    cleaned = stakeholder_notebook(notebook)
    cleaned.metadata["title"] = notebook_title(notebook, executed_notebook.stem)
    exporter = HTMLExporter(
        template_name="lab",
        template_file=NOTEBOOK_TEMPLATE,
        extra_template_paths=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(cleaned)
    return atomic_write_text(html_path, body)


def external_references(html: str) -> list[str]:
    """Every script, stylesheet, image or font the page would fetch from the network."""
    pattern = re.compile(
        r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)"""
        r"""|@import\s+(?:url\()?["']?((?:https?:)?//[^"')]+)"""
        r"""|url\(\s*["']?((?:https?:)?//[^"')]+)""",
        re.I,
    )
    return [next(group for group in match.groups() if group) for match in pattern.finditer(html)]
