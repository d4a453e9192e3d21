"""Every page of the real app in headless Chromium: it finishes running, shows no exception box, draws a
plotly chart, and leaves a screenshot in test-artifacts/screenshots/. Pages added later are picked up by
the glob; a page that legitimately has no chart must say so in NO_CHART."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import selectors as S
from tests.browser.conftest import ROOT, screenshot, settle

PAGES = [ROOT / "app.py"] + sorted((ROOT / "pages").glob("*.py"))
NO_CHART: set[str] = {"Experiments", "Inspect"}  # url paths of pages without a chart on their default view
# (Experiments: a fresh workspace has no runs and no sweeps to chart; its AppTest test covers the charts)
# (Inspect: a fresh workspace has no trained run to look inside; tests/test_page_inspect.py trains one)


def _id(path: Path) -> str:
    return S.url_path(path) or "home"


@pytest.mark.parametrize("page_file", PAGES, ids=_id)
def test_page_renders(page, app_url, page_file):
    path = S.url_path(page_file)
    page.goto(f"{app_url}/{path}")
    settle(page)
    exceptions = page.locator(S.EXCEPTION)
    if exceptions.count():
        screenshot(page, f"FAILED-{_id(page_file)}")
        pytest.fail(f"{page_file.name} shows an exception:\n{exceptions.first.inner_text()[:2000]}")
    if path not in NO_CHART:
        # plotly.js draws after the script finished: wait for its SVG, not only for the container
        page.wait_for_selector(S.PLOTLY_DRAWN, state="visible", timeout=60_000)
        assert page.locator(S.PLOTLY_CHART).count() >= 1
    screenshot(page, _id(page_file))


def test_sidebar_lists_every_page(page, app_url):
    page.goto(app_url)
    settle(page)
    nav = page.locator(S.SIDEBAR_NAV)
    text = nav.inner_text()
    for page_file in PAGES[1:]:
        assert S.url_path(page_file).replace("_", " ") in text
    assert "Home" in text and "app" not in text.split()  # not the main script's file name
    assert page.locator("[data-testid='stSidebarNav']").count() == 0  # Streamlit's own list is off


def test_page_changes_keep_the_tab_id_in_one_history_entry_each(page, app_url):
    """The tab's id rides in the address (a reload finds its jobs) without extra history entries: each page
    change is one entry, so Back goes to the previous page at once."""
    import re

    from tests.browser.conftest import go

    page.goto(app_url)
    settle(page)
    start = page.evaluate("history.length")
    for name in ("Data", "Indicators", "Train"):
        go(page, name)
    assert page.evaluate("history.length") == start + 3
    sid = re.search(r"[?&]session=([0-9a-f]{32})", page.url)
    assert sid and page.url.split("?")[0].endswith("/Train")
    page.go_back()
    page.wait_for_url(re.compile(r"/Indicators\?"))
    settle(page)
    assert f"session={sid.group(1)}" in page.url and page.locator(S.EXCEPTION).count() == 0
