"""Every DOM hook the browser tests use, in one place: Streamlit's test ids are not a public API, so when
an upgrade renames one, this is the only file to change (checked against Streamlit 1.67)."""
from __future__ import annotations

import re
from pathlib import Path

APP = "[data-testid='stApp']"
APP_IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
APP_RUNNING = "[data-testid='stApp'][data-test-script-state='running']"
MAIN_ELEMENT = "[data-testid='stMain'] [data-testid='stElementContainer']"
EXCEPTION = "[data-testid='stException']"
PLOTLY_CHART = "[data-testid='stPlotlyChart']"
# The chart has really been drawn once plotly.js has put its SVG in the container.
PLOTLY_DRAWN = "[data-testid='stPlotlyChart'] .main-svg"
PLOTLY_TITLE = "[data-testid='stPlotlyChart'] .gtitle"  # an SVG text: read it with text_content
PROGRESS = "[data-testid='stProgress']"
SIDEBAR_NAV = ".st-key-lab_nav"  # our page list (ui.common._navigation); Streamlit's own is off
ERROR_ALERT = "[data-testid='stAlertContentError']"
SKELETON = "[data-testid='stSkeleton']"
STALE = "[data-stale='true']"  # elements of the previous run not yet replaced by this one


def key(widget_key: str) -> str:
    """The container of the widget created with `key=widget_key` (Streamlit adds class st-key-<key>)."""
    return f".st-key-{widget_key}"


def url_path(page_file: Path) -> str:
    """The URL path Streamlit 1.67 gives a page in directory mode: '' for the main script, else the file
    name without the number prefix and '.py' (pages/1_Data.py -> 'Data'), as in
    streamlit.source_util.page_icon_and_name."""
    if page_file.parent.name != "pages":
        return ""
    m = re.match(r"([0-9]*)[_ -]*(.*)\.py$", page_file.name)
    name = re.sub(r"[_ ]+", "_", m.group(2)).strip() if m else page_file.stem
    return name or (m.group(1) if m else page_file.stem)


# A JS predicate for page.wait_for_function: the script has run (some element is on the page) and is not
# running now. A fresh page reports notRunning before its first run starts, hence the element check.
SETTLED_JS = f"""() => {{
  const app = document.querySelector("{APP}");
  if (!app || app.getAttribute("data-test-script-state") !== "notRunning") return false;
  if (!document.querySelector("{MAIN_ELEMENT}")) return false;
  if (document.querySelector("{STALE}")) return false;
  return !document.querySelector("{SKELETON}");
}}"""

# The height of everything in the main area (it scrolls inside its own container, not the document).
CONTENT_HEIGHT_JS = """() => {
  const el = document.querySelector("[data-testid='stMainBlockContainer']");
  return el ? el.scrollHeight + el.getBoundingClientRect().top : 0;
}"""

# Counts script runs in the page (window.__stRuns), so a test can wait for the run its click started
# even when that run is too quick to be seen as "running" by polling. Idempotent.
RUN_COUNTER_JS = """() => {
  if (window.__stRunObserver) return window.__stRuns;
  window.__stRuns = 0;
  const app = document.querySelector("[data-testid='stApp']");
  window.__stRunObserver = new MutationObserver(() => {
    if (app.getAttribute("data-test-script-state") === "running") window.__stRuns += 1;
  });
  window.__stRunObserver.observe(app, {attributes: true, attributeFilter: ["data-test-script-state"]});
  return window.__stRuns;
}"""

SCROLL_TOP_JS = """() => {
  for (const el of document.querySelectorAll("[data-testid='stMain'], [data-testid='stAppScrollToBottomContainer'], [data-testid='stMainBlockContainer']"))
    el.scrollTop = 0;
  window.scrollTo(0, 0);
}"""

# st.selectbox (a react-aria combobox in 1.67): its input, then the options of the listbox it opens.
SELECT_INPUT = "input[role='combobox']"
OPTION = "[role='option']"
