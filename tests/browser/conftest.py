"""The browser harness: the real app under `streamlit run`, driven by headless Chromium through Playwright.

One Streamlit server per test session (on a free port, with its own empty workspace so the first page
load creates the offline default dataset like on a fresh machine) and one Chromium. Later issues add
tests next to test_pages.py and reuse `app_url`, `page` and `settle`. If Chromium or Playwright is
missing, the tests fail with a sentence saying what to install: they are never skipped.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.browser import selectors as S

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CNN_LAB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
SERVER_START_TIMEOUT_S = 60
PAGE_TIMEOUT_MS = 90_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def streamlit_command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float, log: Path) -> float:
    """Poll /_stcore/health until it answers ok; return the seconds it took. Fails if the server dies."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"streamlit did not answer {url}/_stcore/health within {timeout_s}s:\n"
                       f"{log.read_text()[-3000:]}")


def launch_chromium(playwright):
    """Debian's Chromium (Playwright's own browser download is not reachable here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `make browser-deps` "
                    f"(apt-get install chromium) or point CNN_LAB_CHROMIUM at a Chromium binary.",
                    pytrace=False)
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def app_server(workspace: Path, log: Path, timeout_s: float = SERVER_START_TIMEOUT_S) -> Iterator[tuple[str, float]]:
    """`streamlit run app.py` on a free port with `workspace`; yields (url, seconds until healthy) and stops
    the server on exit. Raises RuntimeError (with the log's tail) when it dies or does not answer in time."""
    port = free_port()
    env = dict(os.environ, CNN_LAB_WORKSPACE=str(workspace), PYTHONUNBUFFERED="1")
    with open(log, "w") as fh:
        proc = subprocess.Popen(streamlit_command(port), cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        yield url, wait_healthy(url, proc, timeout_s, log)
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen, timeout_s: float = 10) -> None:
    """Ask a server process to stop (SIGTERM: it cleans up), and kill it if it has not within `timeout_s`."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory) -> Iterator[str]:
    workspace = tmp_path_factory.mktemp("browser_workspace")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with app_server(workspace, ARTIFACTS / "streamlit-server.log") as (url, _):
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `pip install -r requirements-dev.txt`", pytrace=False)
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(PAGE_TIMEOUT_MS)
    yield pg
    context.close()


def settle(page, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    """Wait until the script has run and finished (no run in progress, no skeleton left)."""
    page.wait_for_selector(S.APP, timeout=timeout_ms)
    page.wait_for_function(S.SETTLED_JS, timeout=timeout_ms, polling=100)
    # st.rerun() chains a second run right after the first: settled means settled for a moment.
    page.wait_for_timeout(300)
    page.wait_for_function(S.SETTLED_JS, timeout=timeout_ms, polling=100)


def act(page, action, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    """Do `action` (a click, a fill...) and wait for the script run it triggers to finish."""
    before = page.evaluate(S.RUN_COUNTER_JS)
    action()
    page.wait_for_function(f"() => window.__stRuns > {before}", timeout=timeout_ms, polling=50)
    settle(page, timeout_ms)


def click(page, widget_key: str) -> None:
    """Click the st.button made with key=widget_key and wait for the rerun. (A button with `help=` holds
    a second, hidden copy of itself for the tooltip: take the first.)"""
    act(page, lambda: page.locator(S.key(widget_key)).locator("button").first.click())


def choose(page, widget_key: str, option: str) -> None:
    """Pick `option` in the st.selectbox made with key=widget_key and wait for the rerun."""
    # A mouse click on the combobox does not open it in headless Chromium; the keyboard does.
    box = page.locator(S.key(widget_key)).locator(S.SELECT_INPUT)
    for _ in range(5):
        box.focus()
        page.keyboard.press("ArrowDown")
        try:
            page.wait_for_selector(S.OPTION, timeout=2000)
            break
        except Exception:  # noqa: BLE001 - a rerun redrew the widget under us: try again
            page.keyboard.press("Escape")
    act(page, lambda: page.locator(S.OPTION).filter(has_text=option).first.click())


def go(page, name: str) -> None:
    """Open the page `name` through the sidebar's page list, as a user does, and wait for it to settle (the
    address then ends in /<name>?session=<this tab's id>: ui.common keeps the tab's id there)."""
    import re

    page.locator(S.SIDEBAR_NAV).get_by_role("link", name=name, exact=True).click()
    page.wait_for_url(re.compile(rf"/{re.escape(name)}(\?|$)"))
    settle(page)


def screenshot(page, name: str, full: bool = True) -> Path:
    """Save a PNG of the page. Streamlit scrolls inside its main container, so Playwright's full_page
    sees only the viewport: grow the viewport to the content's height first (then restore it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = page.viewport_size
    page.evaluate(S.SCROLL_TOP_JS)
    if full and size:
        height = page.evaluate(S.CONTENT_HEIGHT_JS)
        if height and height > size["height"]:
            page.set_viewport_size({"width": size["width"], "height": min(int(height) + 80, 8000)})
            page.wait_for_timeout(600)  # plotly relayouts on resize
    page.screenshot(path=str(path), full_page=True)
    if full and size:
        page.set_viewport_size(size)
    return path


@pytest.fixture
def settled():
    return settle


@pytest.fixture
def shoot():
    return screenshot


def pytest_collection_modifyitems(items):
    # Everything under tests/browser is a browser test, marked so that `-m "not browser"` can leave it out.
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
