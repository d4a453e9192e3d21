"""Training in the background, as a user does it in the browser: start a run on the Train page, go to
another page while it trains, come back to its live progress, reload the browser tab, press Stop, and get a usable run (the best
checkpoint) with its results. Runs after test_pages.py (file order), so the run it leaves in the shared
workspace changes no page's first view there."""
from __future__ import annotations

from tests.browser import selectors as S
from tests.browser.conftest import act, click, go, screenshot, settle


def _number(page, key: str, value: str) -> None:
    box = page.locator(S.key(key)).locator("input")
    act(page, lambda: (box.fill(value), box.press("Enter")))


def test_train_leave_come_back_and_stop(page, app_url):
    page.goto(f"{app_url}/Train")
    settle(page)
    page.evaluate(S.RUN_COUNTER_JS)
    page.get_by_text("Training settings", exact=True).click()
    _number(page, "train_epochs", "200")  # far more than the test waits for: Stop must end it
    _number(page, "train_pat", "0")       # early stopping off
    click(page, "train_start")
    page.wait_for_selector(S.PROGRESS, state="visible", timeout=120_000)

    go(page, "Data")                     # the run goes on while the user looks elsewhere
    assert page.locator(S.EXCEPTION).count() == 0
    page.wait_for_timeout(2000)

    go(page, "Train")
    page.evaluate(S.RUN_COUNTER_JS)
    page.wait_for_selector(S.PROGRESS, state="visible", timeout=60_000)
    # the settings of the running job are still there (widget values belong to a page; the page keeps them)
    assert page.locator(S.key("train_epochs")).locator("input").input_value() == "200"
    assert page.locator(S.key("train_pat")).locator("input").input_value() == "0"
    stop = page.locator(S.key("train_stop")).locator("button").first
    stop.wait_for(state="visible", timeout=60_000)
    # the live curves of this run are there after coming back
    page.wait_for_selector(f"{S.key('train_live_curves')} .main-svg", timeout=120_000)

    page.reload()  # F5: a new Streamlit session, but the same tab (its id is in the address)
    settle(page)
    page.evaluate(S.RUN_COUNTER_JS)
    page.wait_for_selector(S.PROGRESS, state="visible", timeout=60_000)
    stop = page.locator(S.key("train_stop")).locator("button").first
    stop.wait_for(state="visible", timeout=60_000)
    assert page.locator(S.key("train_start")).locator("button").is_disabled()  # no second run by mistake
    stop.click()

    # the stopped run is saved with its best checkpoint and its results are shown
    page.locator(S.key("train_run_pick")).wait_for(state="visible", timeout=180_000)
    settle(page)
    page.get_by_text("stopped", exact=False).first.wait_for(timeout=60_000)
    assert page.locator(S.EXCEPTION).count() == 0
    assert page.locator(f"{S.key('train_cm')} .main-svg").count() >= 1  # the confusion matrix drawn
    screenshot(page, "train-stopped")
