"""Notebook pages for stakeholders (``notebook_html``): what a reader sees, offline."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat

from insightos_utils import notebook_html

PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8cfc0f01f0005000201e2217bc8"
        "0000000049454e44ae426082"
    )
).decode()


def executed_notebook() -> nbformat.NotebookNode:
    """An executed notebook with every kind of output a stakeholder must or must not see."""
    new = nbformat.v4
    parameters = new.new_code_cell('run_dir = "x"')
    parameters.metadata["tags"] = ["parameters"]
    injected = new.new_code_cell('run_dir = "/tmp/run"  # SECRET_PARAMETER')
    injected.metadata["tags"] = ["injected-parameters"]
    chart = new.new_code_cell(
        "plot_source_code_marker()",
        outputs=[
            new.new_output("stream", name="stderr", text="UserWarning: STDERR_MARKER\n"),
            new.new_output("display_data", data={"image/png": PIXEL, "text/plain": "<Figure>"}),
            new.new_output("execute_result", data={"text/plain": "<Axes: title={'center': 'x'}>"}),
        ],
    )
    printed = new.new_code_cell(
        "print('hello')", outputs=[new.new_output("stream", name="stdout", text="STDOUT_KEPT\n")]
    )
    scripted = new.new_code_cell(
        "show_widget()",
        outputs=[new.new_output("display_data", data={"application/javascript": "alert(1)"})],
    )
    failing = new.new_code_cell(
        "raise ValueError('boom')",
        outputs=[
            new.new_output(
                "error",
                ename="ValueError",
                evalue="ERROR_MARKER",
                traceback=["Traceback (most recent call last)", "ValueError: ERROR_MARKER"],
            )
        ],
    )
    silent = new.new_code_cell("x = 1")
    notebook = new.new_notebook(
        cells=[
            new.new_markdown_cell("# Lead scoring\n\nWho converts, and why."),
            parameters,
            injected,
            chart,
            printed,
            scripted,
            failing,
            silent,
            new.new_markdown_cell("Conclusion in words."),
        ]
    )
    return notebook


def test_stakeholder_notebook_keeps_only_what_a_reader_should_see() -> None:
    cleaned = notebook_html.stakeholder_notebook(executed_notebook())
    sources = [cell.source for cell in cleaned.cells]
    assert not any("run_dir" in source for source in sources)  # parameter cells gone
    assert "x = 1" not in sources  # a code cell with no output says nothing
    outputs = [o for cell in cleaned.cells if cell.cell_type == "code" for o in cell.outputs]
    kinds = [(o.output_type, o.get("name"), sorted(o.get("data", {}))) for o in outputs]
    assert kinds == [
        ("display_data", None, ["image/png", "text/plain"]),
        ("stream", "stdout", []),
    ]


def test_render_html_hides_code_errors_and_warnings_and_embeds_images(tmp_path: Path) -> None:
    executed = tmp_path / "03_lead_scoring.ipynb"
    nbformat.write(executed_notebook(), executed)
    html_path = notebook_html.render_html(executed, tmp_path / "03_lead_scoring.html")
    html = html_path.read_text()
    for hidden in (
        "plot_source_code_marker",
        "SECRET_PARAMETER",
        "STDERR_MARKER",
        "ERROR_MARKER",
        "Traceback",
        "<Axes",
        "alert(1)",
        'class="jp-InputPrompt',
        'class="jp-OutputPrompt',
    ):
        assert hidden not in html, hidden
    code_cells = re.findall(r'class="(jp-Cell jp-CodeCell[^"]*)"', html)
    assert code_cells and all("jp-mod-noInput" in classes for classes in code_cells)
    assert "STDOUT_KEPT" in html
    assert f"data:image/png;base64,{PIXEL}" in html
    assert 'alt="Chart for: Lead scoring"' in html
    assert "<title>Lead scoring</title>" in html
    assert notebook_html.external_references(html) == []
    assert "<script" not in html
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_external_references_finds_network_links() -> None:
    page = (
        '<script src="https://cdn.example.org/require.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/a.css">'
        "<style>@import url('https://x.example.org/b.css');</style>"
        '<img src="data:image/png;base64,AAAA"><a href="https://example.org">a link is fine</a>'
    )
    assert notebook_html.external_references(page) == [
        "https://cdn.example.org/require.js",
        "//fonts.example.org/a.css",
        "https://x.example.org/b.css",
    ]
