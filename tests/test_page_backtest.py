"""The Backtest page under AppTest: a rule baseline without any run, then a really trained tiny run on its
out-of-sample span with the threshold sweep; bad input is a sentence."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.page_helpers import charts, metric_rows

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "7_Backtest.py")


def _charts(at: AppTest) -> dict[str, dict]:
    return charts(at)


def _chart(at: AppTest, prefix: str) -> dict:
    return next(spec for title, spec in _charts(at).items() if title.startswith(prefix))


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_baseline_backtest_without_any_run():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert any("No trained runs yet" in i.value for i in at.info)
    assert at.selectbox(key="bt_source").value == "baseline:buy_and_hold"
    charts = _charts(at)
    assert len(charts) == 3
    eq, _, _ = _chart(at, "Equity vs buy and hold"), _chart(at, "Trades on the price"), _chart(at, "Monthly returns")
    assert [t["name"] for t in eq["data"]] == ["strategy", "buy & hold", "strategy drawdown", "buy & hold drawdown"]
    assert len(eq["data"][0]["x"]) <= 4000  # 17,544 hourly bars thinned for display
    assert "Threshold sweep" not in " ".join(charts)  # a baseline has no probabilities to sweep
    assert len(at.dataframe) == 2 and at.get("download_button")
    # the buy-and-hold baseline is held through (no stops or time exits): it is the benchmark itself
    assert _metric(at, "Trades") == "1"
    # money is in USDT and the starting capital is said
    fees = next(m for m in at.metric if m.label.startswith("Fees paid"))
    assert fees.label == "Fees paid (USDT)"
    assert any("the account starts with 10,000 USDT and ends with" in c.value and "quote currency" in c.value
               for c in at.caption)
    ret = next(m for m in at.metric if m.label == "Total return")
    assert ret.value in ret.delta, (ret.value, ret.delta)  # "buy & hold <same figure>"

    at.selectbox(key="bt_source").select("baseline:ma_cross").run()
    assert not at.exception
    # the default ATR stop sits behind the trailing stop, and the Risk rules say so until it can act
    assert any("the 2 ATR stop behind it never fires" in c.value for c in at.caption)
    at.number_input(key="bt_stop_k").set_value(1.0).run()
    assert not any("never fires" in c.value for c in at.caption)
    at.number_input(key="bt_stop_k").set_value(2.0).run()
    before = _metric(at, "Total return")
    at.selectbox(key="bt_stop").select("fixed").run()
    at.number_input(key="bt_hold").set_value(0.0).run()
    assert not at.exception and not at.error
    assert _metric(at, "Total return") != before
    trades = _chart(at, "Trades on the price")
    assert {"long entry", "short entry", "exit"} <= {t.get("name") for t in trades["data"]}
    # many trades: the chart opens on the latest 30 (range slider for the rest), each hover names its trade
    assert trades["layout"]["xaxis"]["rangeslider"]["visible"] is True
    assert "latest 30 of" in trades["layout"]["title"]["subtitle"]["text"]
    exits = next(t for t in trades["data"] if t.get("name") == "exit")
    assert exits["text"][-1].startswith("<b>trade ") and "P&L" in exits["text"][-1]

    # a fraction of equity above 1 is leverage, not silently cut back to 1: the first trade is twice the size
    def first_trade():
        return next(d.value for d in at.dataframe if "qty" in d.value).iloc[0]

    first_1x = first_trade()
    at.number_input(key="bt_fraction").set_value(2.0).run()
    assert not at.exception and not at.error
    first_2x = first_trade()
    assert first_2x["entry_time"] == first_1x["entry_time"]
    assert first_2x["qty"] == pytest.approx(2 * first_1x["qty"])
    assert any(c.value.startswith(":orange[2x leverage]") for c in at.caption)  # said beside the field
    at.number_input(key="bt_fraction").set_value(1.0).run()
    assert not any("leverage]" in c.value for c in at.caption)

    # what the drawdown rules did is said beside the metrics, from the engine's own counts
    at.number_input(key="bt_daily").set_value(0.5).run()
    at.number_input(key="bt_weekly").set_value(1.0).run()
    assert not at.exception and not at.error
    note = next(c.value for c in at.caption if c.value.startswith("The weekly drawdown rule"))
    assert "blocked the entry signal of" in note and "the daily rule" in note and "halved" in note
    at.number_input(key="bt_daily").set_value(0.0).run()
    at.number_input(key="bt_weekly").set_value(0.0).run()
    assert not any("drawdown rule" in c.value for c in at.caption)

    # a span of a single bar is a sentence, and the page keeps its widgets
    span = next(s for s in at.slider if (s.key or "").startswith("bt_span_"))
    lo, _ = span.value
    span.set_value((lo, lo)).run()
    assert not at.exception
    assert any("fewer than 2 candles" in e.value for e in at.error)
    assert at.selectbox(key="bt_source").value == "baseline:ma_cross"


def test_trained_run_backtests_on_its_test_span_with_a_threshold_sweep():
    from core.data.store import ensure_default_dataset
    from core.train.config import DataConfig, TrainConfig
    from core.train.trainer import train_run

    ds = ensure_default_dataset()
    run = train_run(ds, "cnn1d", {}, DataConfig(preset="chapter6", window=16, horizon=4, threshold=0.002,
                                                max_rows=1500),
                    TrainConfig(epochs=1, batch_size=64, lr=3e-3, patience=0, n_boot=100, baselines=["majority"]))
    preds = run.predictions
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="bt_source").value == f"run:{run.run_id}"
    assert any("out-of-sample" in md.value for md in at.markdown)
    header = at.subheader[0].value
    assert f"{preds['timestamp'].iloc[0]:%Y-%m-%d %H:%M}" in header and f"{len(preds):,} 1h bars" in header
    top = float(max(preds["prob_up"].max(), preds["prob_down"].max()))
    sweep = _charts(at)["Threshold sweep (in-sample: computed on the span it reports)"]
    assert [t["name"] for t in sweep["data"]] == ["Sharpe", "total return %"]
    if top <= 0.6:  # the default threshold of the document is above what a 1-epoch model says
        assert any("No trades" in i.value for i in at.info)
    at.slider(key="bt_threshold").set_value(round(top - 0.02, 2)).run()
    assert not at.exception
    assert int(_metric(at, "Trades").replace(",", "")) > 0
    assert not at.number_input(key="bt_fraction").disabled
    at.selectbox(key="bt_sizing_True").select("half_kelly").run()
    assert not at.exception and not at.error
    # Kelly sizing does not read the base fraction: the input is off and says so
    assert at.number_input(key="bt_fraction").disabled
    assert any("the base fraction is not used" in c.value for c in at.caption)
    assert "kelly and half_kelly: not used" in at.number_input(key="bt_fraction").help
    assert [r.value for r in at.radio] == ["the reported span"] and at.radio[0].options == ["the reported span"]

    # leave the first half of the test span for choosing the threshold: the sweep there is out-of-sample
    span = next(s for s in at.slider if (s.key or "").startswith("bt_span_"))
    lo, hi = span.value
    mid = lo + (hi - lo) / 2
    span.set_value((mid, hi)).run()
    at.radio(key="bt_sweep_on").set_value("the test bars before the reported span").run()
    assert not at.exception and not at.error
    title = next(t for t in _charts(at) if t.startswith("Threshold sweep"))
    assert "before the reported span" in title and "in-sample" not in title
    assert any("out-of-sample" in c.value for c in at.caption)


def test_settings_survive_a_visit_to_another_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/7_Backtest.py").run()
    at.selectbox(key="bt_source").select("baseline:ma_cross").run()
    at.number_input(key="bt_hold").set_value(6.0).run()
    assert not at.exception
    at.switch_page("pages/2_Indicators.py").run()
    assert not at.exception and "bt_hold" not in at.session_state  # Streamlit dropped the page's widgets
    at.switch_page("pages/7_Backtest.py").run()
    assert not at.exception
    assert at.selectbox(key="bt_source").value == "baseline:ma_cross"
    assert at.number_input(key="bt_hold").value == 6.0


def test_walk_forward_predictions_backtest_across_all_folds():
    """A walk-forward evaluation's stitched out-of-sample series is a strategy of its own: its span is every
    fold's test block, longer than one run's test split, and it equals core's own backtest of it."""
    import pytest

    from core.backtest.api import backtest_predictions, walk_forward_inputs
    from core.data.store import ensure_default_dataset
    from core.train.config import DataConfig, TrainConfig
    from core.train.evaluate import walk_forward

    ds = ensure_default_dataset()
    wf = walk_forward(ds, "cnn1d", {"channels": 8, "layers": 2},
                      DataConfig(preset="chapter6", window=16, horizon=4, threshold=0.002, max_rows=2000),
                      TrainConfig(epochs=1, batch_size=64, lr=3e-3, patience=0, n_boot=100, baselines=["majority"]),
                      k=3)
    inp = walk_forward_inputs(wf.wf_id)
    assert len(inp.predictions) == len(wf.predictions) and inp.dataset_id == ds
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.selectbox(key="bt_source").select(f"wf:{wf.wf_id}").run()
    assert not at.exception, at.exception
    assert any("every walk-forward fold's test block" in md.value and "3 folds" in md.value for md in at.markdown)
    header = at.subheader[0].value
    assert f"{wf.predictions['timestamp'].iloc[0]:%Y-%m-%d %H:%M}" in header
    at.slider(key="bt_threshold").set_value(0.34).run()
    assert not at.exception and not at.error
    expected = backtest_predictions(inp.candles, inp.predictions, inp.class_names, {"threshold": 0.34})
    assert int(_metric(at, "Trades").replace(",", "")) == expected.metrics["n_trades"] > 0
    assert "Threshold sweep" in " ".join(_charts(at))
    assert pytest.approx(expected.metrics["total_return"] * 100, abs=0.01) == float(
        _metric(at, "Total return").replace(" %", "").replace(",", ""))


def test_the_run_in_view_stays_the_default_when_newer_runs_appear(workspace):
    """A sweep trained meanwhile made its newest cell the default of Backtest (and Inspect, Live): the numbers
    changed under a user who never touched a setting. A run the tab has shown is the default instead."""
    from tests.test_backtest_cli import _save_run
    from core.data.store import ensure_default_dataset, load_candles

    ds = ensure_default_dataset()
    candles = load_candles(ds).iloc[-1200:]
    viewed = _save_run(ds, candles, "oracle")
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert at.selectbox(key="bt_source").value == f"run:{viewed}"
    newer = _save_run(ds, candles, "noise", created_at="2026-01-02T00:00:00+00:00")  # newer: first in the list
    import streamlit as st

    st.cache_data.clear()  # the page lists runs through a 10-second cache
    fresh = AppTest.from_file(PAGE, default_timeout=120)
    fresh.run()
    assert fresh.selectbox(key="bt_source").value == f"run:{newer}"  # a new tab: the newest run
    seen = AppTest.from_file(PAGE, default_timeout=120)
    seen.session_state["_run_in_view"] = viewed  # what this tab showed on another page (Inspect, Train, Home)
    seen.run()
    assert not seen.exception and seen.selectbox(key="bt_source").value == f"run:{viewed}"


def test_the_result_figures_wrap_on_a_narrow_window():
    """In fifths of a 1,000 px window (sidebar open) the figures read "-15.4..." and "buy & hold 9.1...": they
    are one wrapping row now."""
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert ["Total return", "Sharpe", "Max drawdown", "Trades", "Fees paid (USDT)"] in metric_rows(at)
