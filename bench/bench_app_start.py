"""Cold start of the app: `streamlit run app.py` process launch -> first plotly chart drawn in Chromium.

Two runs: a fresh workspace (the first page load also creates the offline default dataset, as on a new
machine) and the same workspace again (dataset on disk). Chromium is started before the clock runs, so the
figure is the app's, not the browser's. Target: < 5 s. Prints figures only.

    .venv/bin/python bench/bench_app_start.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import selectors as S  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, app_server  # noqa: E402


def cold_start(browser, workspace: Path, page_path: str = "") -> dict[str, float]:
    t0 = time.perf_counter()
    with app_server(workspace, workspace / "streamlit.log") as (url, health):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.goto(f"{url}/{page_path}")
        page.wait_for_selector(S.PLOTLY_DRAWN, state="visible", timeout=120_000)
        chart = time.perf_counter() - t0
        ctx.close()
    return {"health_s": health, "first_chart_s": chart}


def main() -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        ws = Path(tmp) / "workspace"
        ws.mkdir()
        for label in ("fresh workspace", "dataset on disk"):
            r = cold_start(browser, ws)
            print(f"app cold start, {label:16s}: server healthy {r['health_s']:.2f} s, "
                  f"first chart drawn {r['first_chart_s']:.2f} s (target < 5 s)")
        browser.close()


if __name__ == "__main__":
    main()
