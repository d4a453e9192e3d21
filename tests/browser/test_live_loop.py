"""The Live page's timer loop in a real browser (AppTest never fires `run_every`): Start makes the fragment tick
every N seconds on its own, each tick moves the replayed clock and logs a signal; Pause stops it.
Its own server, on a workspace holding one tiny trained run."""
from __future__ import annotations

import re

import pytest

from tests.browser.conftest import act, app_server, go, screenshot, settle
from tests.browser import selectors as S
from tests.test_live import install_run, trained  # noqa: F401 - the session fixture


@pytest.fixture
def live_app(trained, workspace, tmp_path):  # noqa: F811
    install_run(trained, workspace)
    with app_server(workspace, tmp_path / "streamlit.log") as (url, _):
        yield url, workspace


def _ticks(page) -> int:
    m = re.search(r"(\d+) ticks", page.inner_text("[data-testid='stMain']"))
    return int(m.group(1)) if m else 0


def test_start_ticks_on_a_timer_and_pause_stops(page, live_app):
    url, workspace = live_app
    page.goto(f"{url}/Live")
    settle(page)
    assert page.locator(S.EXCEPTION).count() == 0
    page.locator(S.key("live_every_replay")).locator("input").fill("1")
    page.keyboard.press("Enter")
    settle(page)
    page.locator(S.key("live_toggle")).locator("button").first.click()
    page.wait_for_function(
        "() => /([3-9]|\\d\\d+) ticks/.test(document.querySelector(\"[data-testid='stMain']\").innerText)",
        timeout=60_000, polling=200)  # three ticks or more, with no click after Start
    assert page.locator(S.EXCEPTION).count() == 0
    page.wait_for_selector(S.PLOTLY_DRAWN, state="visible", timeout=60_000)
    screenshot(page, "live-running")
    page.locator(S.key("live_toggle")).locator("button").first.click()
    page.wait_for_function("() => /paused/.test(document.querySelector(\"[data-testid='stMain']\").innerText)",
                           timeout=30_000, polling=200)
    settle(page)
    paused_at = _ticks(page)
    page.wait_for_timeout(3000)
    assert _ticks(page) == paused_at  # no tick while paused
    logged = sum(len(f.read_text().splitlines()) for f in (workspace / "live" / "signals").rglob("*.jsonl"))
    assert logged == paused_at >= 3  # every tick a new replayed bar, logged once


def test_hidden_settings_come_back_after_a_visit_to_another_page(page, live_app):
    """The replay's "bars per tick" is not drawn while the Bybit source is chosen. After a visit to another
    page and back, choosing replay again shows the value the user set (not the widget's default while the
    script used the kept value)."""
    url, _ = live_app
    page.goto(f"{url}/Live")
    settle(page)
    page.evaluate(S.RUN_COUNTER_JS)
    step = page.locator(S.key("live_replay_step")).locator("input")
    act(page, lambda: (step.fill("4"), step.press("Enter")))
    act(page, lambda: page.locator(S.key("live_mode")).get_by_text("Live from Bybit").click())
    for name in ("Data", "Live"):
        go(page, name)
        page.evaluate(S.RUN_COUNTER_JS)
    assert "Fetch now" in page.locator(S.key("live_step_btn")).inner_text()  # the source was kept
    act(page, lambda: page.locator(S.key("live_mode")).get_by_text("Replay a stored dataset").click())
    assert page.locator(S.key("live_replay_step")).locator("input").input_value() == "4"
    assert page.locator(S.EXCEPTION).count() == 0
