"""The Data page as a user drives it in Chromium: import a bad file (an error, nothing lost), import a good
one (it becomes the active dataset and is drawn), go back to the synthetic market and look at its order
books (depth chart and heatmap drawn). Nothing here touches the network."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tests.browser import selectors as S
from tests.browser.conftest import act, choose, click, screenshot, settle


def _csv(path, n: int = 240) -> None:
    rng = np.random.default_rng(0)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[50.0, close[:-1]]
    idx = pd.date_range("2024-05-01", periods=n, freq="1h", tz="UTC")
    df = pd.DataFrame({"Time": idx.strftime("%Y-%m-%dT%H:%M:%SZ"), "Open": open_,
                       "High": np.maximum(open_, close) * 1.003, "Low": np.minimum(open_, close) * 0.997,
                       "Close": close, "Volume": rng.uniform(1, 9, n)})
    pd.concat([df, df.iloc[:4]]).sample(frac=1.0, random_state=1).to_csv(path, index=False)


def _titles(page) -> str:
    return " | ".join(page.locator(S.PLOTLY_TITLE).all_text_contents())


def test_import_then_order_books(page, app_url, tmp_path):
    bad, good = tmp_path / "bad.csv", tmp_path / "MYCOIN.csv"
    bad.write_text("date,open,high,low,close,volume\n2024-01-01,10,9,11,10,5\n")
    _csv(good)
    page.goto(f"{app_url}/Data")
    settle(page)
    page.wait_for_selector(S.PLOTLY_DRAWN, state="visible")
    held_before = page.locator(S.key("datasets_count")).inner_text()

    act(page, lambda: page.locator(S.key("data_source")).get_by_text("Import a file").click())
    upload = page.locator(S.key("import_file")).locator("input[type=file]")
    act(page, lambda: upload.set_input_files(str(bad)))
    page.locator(S.key("import_symbol")).locator("input").fill("MYCOIN/USDT")
    act(page, lambda: page.keyboard.press("Enter"))
    click(page, "import_go")
    assert "1 row has high below low (data row 1)" in " ".join(page.locator(S.ERROR_ALERT).all_inner_texts())
    assert page.locator(S.EXCEPTION).count() == 0
    assert page.locator(S.key("datasets_count")).inner_text() == held_before  # nothing lost or added

    act(page, lambda: upload.set_input_files(str(good)))
    click(page, "import_go")
    assert page.locator(S.ERROR_ALERT).count() == 0
    page.wait_for_selector(S.PLOTLY_DRAWN, state="visible")
    assert "MYCOIN/USDT" in _titles(page)
    assert "4 duplicate" in page.locator("[data-testid='stAlertContentSuccess']").inner_text()

    choose(page, "ds_pick", "synthetic-BTCUSDT-1h")
    click(page, "ds_activate")
    click(page, "ob_synth")
    page.wait_for_function(f"() => document.querySelectorAll(\"{S.PLOTLY_DRAWN}\").length >= 3")
    titles = _titles(page)
    assert "Depth (synthetic)" in titles and "Heatmap (synthetic)" in titles
    assert page.locator(S.EXCEPTION).count() == 0
    screenshot(page, "Data-orderbooks")
