"""The home page as a demo, in AppTest: the pipeline picture with one link per page, the one-click demo run
through the page's own button in the background (on a tiny config), its summary (model vs baselines, equity
vs buy and hold), and the buttons that open the demo's run on the other pages."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.page_helpers import horizontal_rows, in_columns, metric_rows, row_keys
from tests.test_demo import TINY

ROOT = Path(__file__).resolve().parents[1]


def _home() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def test_home_shows_the_pipeline_picture_and_links():
    at = _home()
    imgs = at.get("image")
    assert imgs and "svg" in str(imgs[0].proto)
    links = [el.proto.page for el in at.main.get("page_link")]
    assert len(links) == len(set(links))  # one link per page, no duplicates
    assert {"Data", "Indicators", "Train", "Backtest", "Live"} <= set(links)
    assert at.button(key="demo_run").label == "Run the demo"
    assert any("No demo run yet" in c.value for c in at.caption)


def test_demo_button_runs_the_pipeline_and_ends_on_a_summary(workspace, monkeypatch):
    import core.demo
    from ui.jobs import forget_job, get_job

    monkeypatch.setattr(core.demo, "run_demo", partial(core.demo.run_demo, overrides=TINY))
    at = _home()
    # rows of figures and buttons wrap on a narrow window (1,000 px with the sidebar open) instead of cutting
    # their text ("BTC/...", "731 d..."; after the demo "Model accurac...", "Training curve...")
    assert ["Dataset", "Source", "Bars", "Span"] in metric_rows(at)
    at.button(key="demo_run").click().run()
    assert not at.exception, at.exception
    sid = at.session_state["_session_id"]
    job = get_job(sid, "demo")
    assert job is not None
    assert job.done or at.get("progress")  # a progress bar while it runs (the job polls every second)
    job.thread.join(240)  # AppTest cannot fire run_every: wait for the thread, then rerun like the poll would
    assert job.done and job.error is None, job.error
    at.run()
    at.run()
    assert not at.exception, at.exception
    run_id = job.result.run_id
    assert (workspace / "runs" / run_id / "config.json").is_file()
    metrics = {m.label: m.value for m in at.metric}
    assert "Model accuracy (test)" in metrics and "Strategy return" in metrics and "Buy and hold return" in metrics
    assert any(k.startswith("Best baseline") for k in metrics)
    verdicts = [e.value for e in list(at.success) + list(at.warning)]
    assert any("baseline" in v for v in verdicts)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    equity = [s for s in specs if "buy and hold" in json.dumps(s.get("layout", {}).get("title", ""))]
    assert equity and {t["name"] for t in equity[0]["data"]} == {"model strategy", "buy and hold"}
    tables = [t.value for t in at.dataframe]
    assert any("baseline: majority" in " ".join(map(str, t.iloc[:, 0])) for t in tables)
    assert any("buy and hold" in " ".join(map(str, t.iloc[:, 0])) for t in tables)
    demo = [r for r in metric_rows(at) if "Model accuracy (test)" in r]
    assert len(demo) == 1 and demo[0][2:] == ["Strategy return", "Buy and hold return"]
    assert ["demo_open_train", "demo_open_backtest", "demo_open_live", "demo_open_experiments"] in \
        [row_keys(row) for row in horizontal_rows(at)]
    assert len(at.dataframe) == 2 and in_columns(at, "Dataframe") == [False, False]  # side by side: cut columns
    assert any(in_columns(at, "Markdown"))  # (columns are still found: the pipeline's rows are columns)
    assert "<br>" in json.dumps(equity[0]["layout"]["title"])  # on one line the title was cut mid-word
    # look deeper: the demo's run opens on the Live page, selected
    at.button(key="demo_open_live").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="live_run").value == run_id
    forget_job(sid, "demo")
    # a fresh session finds the last demo on disk, and opens its run on the Backtest page
    again = _home()
    assert any(run_id in md.value for md in again.markdown)
    again.button(key="demo_open_backtest").click().run()
    assert not again.exception, again.exception
    assert again.selectbox(key="bt_source").value == f"run:{run_id}"


def test_demo_failure_is_a_sentence_and_nothing_is_lost(workspace, monkeypatch):
    import core.demo
    from ui.jobs import forget_job, get_job

    monkeypatch.setattr(core.demo, "run_demo",
                        partial(core.demo.run_demo, overrides={**TINY, "data.max_rows": 60}))
    at = _home()
    at.button(key="demo_run").click().run()
    sid = at.session_state["_session_id"]
    job = get_job(sid, "demo")
    job.thread.join(240)
    at.run()
    assert not at.exception, at.exception
    assert job.error and at.error and at.error[0].value == job.error
    assert "Traceback" not in at.error[0].value
    assert at.button(key="demo_run").disabled is False  # the user can run it again
    forget_job(sid, "demo")
