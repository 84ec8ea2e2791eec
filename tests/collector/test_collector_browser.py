"""A real browser against a real collector: headless Chromium opens the demo page with UTM
parameters, clicks through a signup, and the database then holds exactly those events under the
new user, with the campaign in the user's marketing JSON. Also: the retry queue survives a reload
while the collector is down, and a pagehide beacon delivers what was pending."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from collector_harness import CollectorProcess

from insightos_utils.cli import main
from insightos_utils.ingest import read_processed
from insightos_utils.leads.features import build_feature_table, fit_feature_spec

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WRITE_KEY = "wk-browser-demo"
SERVER_KEY = "sk-browser-demo"
CAMPAIGN_QUERY = "utm_source=google&utm_medium=cpc&utm_campaign=google_gestao_agil"


SITE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>site</title></head><body>
<button id="invite-teammate" type="button">Invite</button>
<script src="/tracker.js"></script>
<script>
  insightos.init({endpoint: "%(collector)s", writeKey: "%(key)s", flushIntervalMs: 500});
  document.getElementById("invite-teammate").addEventListener("click", function () {
    insightos.track("user_invited", {});
  });
</script></body></html>"""


@pytest.fixture(scope="module")
def company_site(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The company's own site on another origin, with a copy of tracker.js: (origin, folder).
    It stays up while the collector is down."""
    import functools
    import http.server
    import threading
    from importlib import resources

    root = tmp_path_factory.mktemp("site")
    tracker = resources.files("insightos_utils") / "static" / "tracker.js"
    (root / "tracker.js").write_text(tracker.read_text(encoding="utf-8"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def collector(company_site, tmp_path_factory) -> Iterator[CollectorProcess]:
    """``insightos serve`` on SQLite whose CORS allow-list names the company's site."""
    origin, root = company_site
    folder = tmp_path_factory.mktemp("collector")
    service = CollectorProcess(
        f"sqlite:///{folder / 'captured.sqlite'}",
        folder / "collector.log",
        [WRITE_KEY],
        SERVER_KEY,
        cors_origins=[origin],
    )
    (root / "app.html").write_text(SITE_PAGE % {"collector": service.base_url, "key": WRITE_KEY})
    service.start()
    yield service
    service.kill()


@pytest.fixture(scope="module")
def chromium(chromium_driver):
    return chromium_driver


@pytest.fixture
def browser(chromium, collector: CollectorProcess, company_site):
    """The shared browser as a new visitor: no tracker state left on either origin."""
    chromium.get("about:blank")
    for origin in (collector.base_url, company_site[0]):
        chromium.execute_cdp_cmd(
            "Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"}
        )
    return chromium


def rows(db_url: str, sql: str) -> list[dict]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(sa.text(sql)).mappings()]
    finally:
        engine.dispose()


def wait_until(condition, timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def sign_up(driver, account_id: str) -> None:
    driver.find_element("id", "start-trial").click()
    driver.find_element("id", "account-id").send_keys(account_id)
    driver.find_element("id", "create-account").click()
    driver.find_element("id", "create-project").click()


def no_anonymous_rows(db_url: str) -> bool:
    """No anonymous visitor became a user, and no event was stored under an anonymous id."""
    users = rows(db_url, "SELECT count(*) AS n FROM users WHERE user_id LIKE 'anon-%'")
    events = rows(db_url, "SELECT count(*) AS n FROM events WHERE user_id LIKE 'anon-%'")
    return users[0]["n"] == 0 and events[0]["n"] == 0


def pending(driver) -> int:
    return int(driver.execute_script("return window.insightos.pending();"))


def test_signup_in_a_real_browser_lands_in_the_database(
    collector: CollectorProcess, browser, tmp_path: Path
) -> None:
    account_id = "acme-team-42"
    browser.get(f"{collector.base_url}/demo?{CAMPAIGN_QUERY}#key={WRITE_KEY}")
    sign_up(browser, account_id)
    wait_until(lambda: pending(browser) == 0, what="the tracker's queue to drain")

    events = rows(
        collector.db_url,
        f"SELECT * FROM events WHERE user_id = '{account_id}' ORDER BY occurred_at",
    )
    assert [e["event_name"] for e in events] == [
        "page_view",
        "trial_cta_clicked",
        "trial_signup",
        "project_created",
    ]
    assert no_anonymous_rows(collector.db_url)  # held anonymous events were re-assigned
    assert len({e["event_id"] for e in events}) == 4
    page_view = json.loads(events[0]["properties"])
    assert page_view["utm_campaign"] == "google_gestao_agil"
    assert page_view["path"] == "/demo"

    (user,) = rows(collector.db_url, f"SELECT * FROM users WHERE user_id = '{account_id}'")
    assert user["status"] == "lead"
    assert json.loads(user["marketing"]) == {
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "google_gestao_agil",
    }

    # what the browser sent is what `insightos ingest --source` reads: no rejects at all
    processed = tmp_path / "processed"
    assert main(["ingest", "--source", collector.db_url, "--out", str(processed)]) == 0
    report = json.loads((processed / "ingest_report.json").read_text())
    for table in ("users", "events"):
        assert report["tables"][table]["rejected_rows"] == 0, report["tables"][table]
    data = read_processed(processed)
    ingested = data.events[data.events["user_id"] == account_id]
    assert sorted(ingested["event_name"]) == sorted(e["event_name"] for e in events)
    lead = data.users.set_index("user_id").loc[account_id]
    assert (lead["campaign"], lead["source"], lead["medium"]) == (
        "google_gestao_agil",
        "google",
        "cpc",
    )

    # and the feature table describes this lead exactly as it would from the company's files
    raw = tmp_path / "raw"
    raw.mkdir()
    engine = sa.create_engine(collector.db_url)
    for table in ("users", "events"):
        pd.read_sql_query(sa.text(f"SELECT * FROM {table}"), engine).to_csv(
            raw / f"{table}.csv", index=False
        )
    engine.dispose()
    from_files = tmp_path / "processed_from_files"
    assert main(["ingest", "--raw", str(raw), "--out", str(from_files)]) == 0
    files = read_processed(from_files)
    spec = fit_feature_spec(data.users, data.events, as_of=None, min_event_users=1)
    assert fit_feature_spec(files.users, files.events, as_of=None, min_event_users=1) == spec
    captured_row = build_feature_table(data.users, data.events, spec, as_of=None).loc[account_id]
    file_row = build_feature_table(files.users, files.events, spec, as_of=None).loc[account_id]
    pd.testing.assert_series_equal(captured_row, file_row)
    # counted from signup on: the pre-signup page view and click are outside the window
    assert captured_row["events_project_created"] == 1
    assert captured_row["events_trial_signup"] == 1
    assert captured_row["campaign"] == "google_gestao_agil"


def test_queue_survives_a_reload_while_the_collector_is_down(
    collector: CollectorProcess, company_site, browser
) -> None:
    # a returning user, identified from the company's own site (cross-origin: CORS preflight)
    browser.get(f"{company_site[0]}/app.html?{CAMPAIGN_QUERY}")
    browser.execute_script("return window.insightos.identify('returning-team');")
    wait_until(lambda: pending(browser) == 0, what="a cross-origin delivery (CORS)")

    collector.kill()
    browser.find_element("id", "invite-teammate").click()
    time.sleep(1.0)  # flush attempts fail against the dead collector
    assert pending(browser) == 1
    browser.refresh()  # the page and its memory are gone; localStorage keeps the queue
    wait_until(lambda: pending(browser) == 2, what="the reloaded page view to be queued")

    collector.start()
    wait_until(lambda: pending(browser) == 0, timeout=20, what="the retry after the restart")
    names = [
        e["event_name"]
        for e in rows(
            collector.db_url, "SELECT event_name FROM events WHERE user_id = 'returning-team'"
        )
    ]
    assert sorted(names) == ["page_view", "page_view", "user_invited"]
    assert no_anonymous_rows(collector.db_url)


def test_pagehide_beacon_delivers_pending_events(collector: CollectorProcess, browser) -> None:
    browser.get(f"{collector.base_url}/demo?{CAMPAIGN_QUERY}#key={WRITE_KEY}")
    sign_up(browser, "beacon-team")
    wait_until(lambda: pending(browser) == 0, what="the first delivery")
    # batchSize 20 and a 2 s interval: this event is still queued when the page goes away
    browser.find_element("id", "invite-teammate").click()
    browser.get("about:blank")

    def delivered() -> bool:
        sql = "SELECT count(*) AS n FROM events WHERE user_id = 'beacon-team'"
        return rows(collector.db_url, sql)[0]["n"] == 5

    wait_until(delivered, timeout=10, what="the beacon to arrive")
