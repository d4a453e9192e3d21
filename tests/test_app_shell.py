"""The app shell under AppTest: the home page and every page run on the default offline data without an
exception, and the active dataset in the sidebar is shared by every page."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "pages").glob("*.py"))


def _run(path: Path) -> AppTest:
    at = AppTest.from_file(str(path), default_timeout=120)
    at.run()
    return at


def _chart_titles(at: AppTest) -> list[str]:
    out = []
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        out.append(str(spec.get("layout", {}).get("title", {}).get("text", "")))
    return out


def test_home_runs_on_the_default_offline_market(workspace):
    at = _run(ROOT / "app.py")
    assert not at.exception, at.exception
    assert at.session_state["active_dataset"].startswith("synthetic")
    titles = _chart_titles(at)
    assert titles and "synthetic" in titles[0]
    assert "CNN Trading Lab" in at.title[0].value
    # the default dataset was written inside the test's workspace, nowhere else
    assert any(workspace.rglob("*.parquet"))


def test_home_links_each_existing_page_and_no_missing_one():
    at = _run(ROOT / "app.py")
    links = [el.proto.page for el in at.main.get("page_link")]  # the url path Streamlit resolved the page to
    expected = sorted(re.sub(r"^[0-9]*[_ -]*", "", p.stem) for p in PAGES)
    assert sorted(links) == expected
    # the sidebar lists Home (labelled so, not "app") and then every page in file order
    side = at.sidebar.get("page_link")
    assert [el.proto.page for el in side] == [""] + [re.sub(r"^[0-9]*[_ -]*", "", p.stem) for p in sorted(PAGES)]
    assert side[0].proto.label == "Home"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_page_runs_without_exception(page):
    at = _run(page)
    assert not at.exception, f"{page.name}: {at.exception}"


def test_sidebar_switch_changes_the_active_dataset():
    from core.data import store

    default = store.ensure_default_dataset()
    other = _make_second_dataset()
    at = _run(ROOT / "app.py")
    assert at.session_state["active_dataset"] == default
    at.selectbox(key="sidebar_dataset_Home").select(other).run()
    assert not at.exception
    assert at.session_state["active_dataset"] == other
    assert "ETH/USDT" in " ".join(m.value for m in at.metric)


def test_active_dataset_set_elsewhere_wins_over_the_stale_sidebar_widget():
    from core.data import store

    default = store.ensure_default_dataset()
    other = _make_second_dataset()
    at = _run(ROOT / "app.py")
    assert at.selectbox(key="sidebar_dataset_Home").value == default
    at.session_state["active_dataset"] = other  # what a fetch or an import does
    at.run()
    assert at.session_state["active_dataset"] == other
    assert at.selectbox(key="sidebar_dataset_Home").value == other


def _make_second_dataset() -> str:
    from core.data import store
    from tests.test_page_data import small_candles

    info = store.save_candles(small_candles(300), "file", "ETH/USDT", "1h")
    return info.id


def test_a_reloaded_tab_gets_its_active_dataset_and_running_job_back():
    """F5 starts a new Streamlit session; the tab's id rides in the address (`?session=`), so the reloaded
    page finds the training it started (progress and Stop, not a second Start) and its active dataset."""
    from core.data import store
    from core.progress import Progress
    from ui.jobs import forget_job, start_job

    store.ensure_default_dataset()
    other = _make_second_dataset()
    at = _run(ROOT / "app.py")
    sid = at.session_state["_session_id"]
    at.selectbox(key="sidebar_dataset_Home").select(other).run()
    assert at.query_params["session"] in (sid, [sid])  # a choice worth finding again pins the tab's id

    def long_job(progress, cancel):
        progress(Progress("batch", 1, 10, "epoch 1/3 · batch 1/10"))
        while not cancel.wait(0.05):
            pass

    job = start_job(sid, "train", long_job)
    try:
        reloaded = AppTest.from_file(str(ROOT / "pages" / "4_Train.py"), default_timeout=120)
        reloaded.query_params["session"] = sid
        reloaded.run()
        assert not reloaded.exception, reloaded.exception
        assert reloaded.session_state["_session_id"] == sid
        assert reloaded.session_state["active_dataset"] == other
        assert reloaded.button(key="train_start").disabled and reloaded.button(key="train_stop")
        # a made-up or foreign-looking id is not adopted: a fresh tab
        fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        fresh.query_params["session"] = "../../etc"
        fresh.run()
        assert fresh.session_state["_session_id"] != "../../etc" and fresh.session_state["active_dataset"] != other
    finally:
        job.stop()
        job.thread.join(10)
        forget_job(sid, "train")


def test_progress_says_time_so_far_and_about_how_long_is_left():
    from core.progress import Progress, duration_text, eta_text
    from ui.jobs import Job

    assert [duration_text(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]
    assert eta_text(0.01, 1.0) == "1 s so far"  # too little seen for a rate
    # 10 s of set-up, then 25 % of the steps in 20 s: 60 s left at this speed
    assert eta_text(0.25, 30.0, since=(10.0, 0.0)) == "30 s so far, about 1 min 00 s left at this speed"
    assert eta_text(1.0, 30.0) == "30 s so far" and eta_text(None, 5.0) == ""
    job = Job("t")
    job.started_at -= 10
    job.on_progress(Progress("batch", 0, 100))
    job.started_at -= 20  # 20 s later, half the steps
    job.on_progress(Progress("batch", 50, 100))
    assert job.eta("batch").endswith("about 20 s left at this speed")
