"""The published reports in headless Chromium: images load, no code or error shows, links work.

Screenshots of the index, a run summary and every notebook report land in the test's tmp folder.
"""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Anything a stakeholder must never see on a rendered page.
HIDDEN_SELECTORS = ", ".join(
    [
        ".jp-CodeCell .jp-InputArea",
        ".jp-InputPrompt",
        ".jp-OutputPrompt",
        ".jp-OutputArea-error",
        "[data-mime-type='application/vnd.jupyter.stderr']",
        "script[src]",
    ]
)


@pytest.fixture(scope="module")
def published_reports(pipeline_run: Path) -> Path:
    """The reports folder of the session's end-to-end run on the default synthetic company."""
    return pipeline_run.parents[1]


@pytest.fixture(scope="module")
def served_reports(published_reports: Path) -> Iterator[str]:
    """The reports folder over HTTP on loopback, as a stakeholder's browser would reach it."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output for failures
            pass

    handler = functools.partial(Quiet, directory=str(published_reports))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(chromium_driver):
    return chromium_driver


def save_full_page(driver, path: Path) -> None:
    """A screenshot of the whole page, not only the window (Chrome DevTools protocol)."""
    import base64

    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def check_page(driver, url: str, screenshot: Path) -> dict:
    """Open ``url``; assert it reads clean; save a full-page screenshot; return what it saw."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.currentSrc.slice(0, 40), i.complete,"
        " i.naturalWidth]);"
    )
    broken = [image for image in images if not image[1] or image[2] == 0]
    assert not broken, f"{url}: images that did not load: {broken}"
    visible_forbidden = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".filter(e => e.tagName === 'SCRIPT' || e.offsetParent !== null)"
        ".map(e => e.className || e.tagName);",
        HIDDEN_SELECTORS,
    )
    assert visible_forbidden == [], f"{url}: code, prompts or errors visible: {visible_forbidden}"
    text = driver.find_element(By.TAG_NAME, "body").text
    for word in ("Traceback", "Error", "Warning:", "<matplotlib", "<Figure", "object at 0x"):
        assert word not in text, f"{url}: '{word}' shows on the page"
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], f"{url}: the browser reported {severe}"
    save_full_page(driver, screenshot)
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);"
    )
    return {"images": len(images), "links": links, "text": text}


def test_index_run_summary_and_reports_read_clean_in_chromium(
    browser, served_reports: str, tmp_path: Path
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    index = check_page(browser, served_reports + "index.html", tmp_path / "index.png")
    assert "Pipeline runs" in index["text"]
    local = [link for link in index["links"] if link.startswith(served_reports)]
    assert served_reports + "latest/index.html" in local
    for link in local:  # every link from the index answers
        with urllib.request.urlopen(link, timeout=10) as response:
            assert response.status == 200, link

    summary = check_page(browser, served_reports + "latest/index.html", tmp_path / "summary.png")
    for heading in ("Who to call first", "Where to spend", "Reports and files"):
        assert heading in summary["text"]
    # distinct: the "where users get stuck" section links 05_product too
    reports = sorted(
        {link for link in summary["links"] if link.endswith(".html") and "/latest/" in link}
    )
    assert [Path(urlparse(link).path).stem for link in reports] == [
        "01_ingest",
        "02_eda",
        "03_lead_scoring",
        "04_ltv",
        "05_product",
    ], summary["links"]  # one per notebook
    images = 0
    for report in reports:
        name = Path(urlparse(report).path).stem
        images += check_page(browser, report, tmp_path / f"{name}.png")["images"]
    assert images >= 4, "the notebook reports should carry their charts"

    # "all runs" from the latest summary reaches the index, through latest/ as through runs/<id>/.
    back = urljoin(served_reports + "latest/index.html", "../index.html")
    browser.get(back)
    assert browser.current_url == served_reports + "index.html"
    run_page = next(link for link in local if "/runs/" in link and link.endswith("index.html"))
    browser.get(urljoin(run_page, "../index.html"))  # runs/index.html redirects to the index
    WebDriverWait(browser, 10).until(lambda d: d.current_url == served_reports + "index.html")
    assert sorted(p.name for p in tmp_path.glob("*.png"))
