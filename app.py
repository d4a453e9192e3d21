"""CNN Trading Lab: the home page (Streamlit directory mode: this file + one file per page in pages/).

Run with `make run` or `python -m streamlit run app.py`. The home page says what the app is, shows the
pipeline as a picture with a link to each page, runs the one-click demo (data -> features -> model ->
backtest on the offline market, in the background, core.demo) ending on its summary, and summarises the
active dataset (the offline synthetic market by default).
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.common import (PAGE_ICONS, job_status, load_candles, note_run_in_view, page_files, page_link, page_setup,
                       session_id, show_error, tab_params)
from ui.jobs import get_job, start_job

ROOT = Path(__file__).resolve().parent
DEMO_JOB = "demo"

# The pipeline in the order a user walks it. A step links to its page once pages/N_<Name>.py exists;
# until then it is listed without a link (page_link to a missing file would raise).
PIPELINE = [
    ("Data", "Candles from Bybit (ccxt), the offline synthetic market, or a CSV/Parquet file; order books."),
    ("Indicators", "Technical features, labels and leakage-safe chronological splits."),
    ("Architectures", "The CNN zoo (ResNet-1D, ConvNeXt-1D, dilated/WaveNet, TCN...) and receptive fields."),
    ("Encodings", "Market data as images: indicator images, candlestick rasters, GAF, order-book heatmaps."),
    ("Train", "Train a model in the background and watch its curves; honest baselines."),
    ("Inspect", "Feature maps, attributions and effective receptive fields of a trained run."),
    ("Backtest", "Signals from probabilities, fees, slippage, sizing and stops; equity curves."),
    ("Live", "The model on fresh Bybit candles, or a replay of stored ones: signal, size, stop and target."),
    ("Experiments", "Compare runs and sweeps."),
]


dataset_id = page_setup("Home", icon=":material/home:")

st.title("CNN Trading Lab")
st.markdown(
    "A workbench for convolutional neural networks on crypto markets: get candles, turn them into "
    "features or images, train a CNN, look inside it, and backtest its signals with fees and risk "
    "rules. Everything runs on this machine; with no internet it uses an offline **synthetic** market "
    "(simulated prices, labelled as such wherever they are shown)."
)

st.subheader("The pipeline")
st.image(str(ROOT / "assets" / "pipeline.svg"), width="stretch")
pages = page_files()
listed = set()
for name, what in PIPELINE:  # unnumbered: the sidebar orders the pages by file, this list by the pipeline
    path = pages.get(name.lower())
    col_link, col_text = st.columns([2, 5], vertical_alignment="center")  # [1, 4] cut "Architectures"
    with col_link:
        if path is None or not page_link(path, name, PAGE_ICONS.get(name.lower())):
            st.markdown(f":gray[{name}]")
            path = None
        else:
            listed.add(name.lower())
    with col_text:
        st.markdown(what if path is not None else f":gray[{what} (not built yet)]")
for key, path in pages.items():  # pages added later that the list above does not know yet
    if key not in listed:
        page_link(path, path.stem.split("_", 1)[-1].replace("_", " "))

# ------------------------------------------------------------------------------------ one-click demo
st.subheader("One-click demo")
st.markdown(
    "Runs the whole path on the offline market: the default features and labels, the **quick** model "
    "(a small CNN, a few epochs), honest baselines on the same test split, then an out-of-sample backtest "
    "of the model's signals with fees, slippage and stops, against buy and hold. Under a minute on 2 CPU "
    "cores; the model is saved as a normal run you can open on every page."
)
sid = session_id()
demo_job = get_job(sid, DEMO_JOB)
demo_running = demo_job is not None and not demo_job.done
if st.button("Run the demo", type="primary", key="demo_run", icon=":material/play_arrow:", disabled=demo_running):
    from core.demo import run_demo

    start_job(sid, DEMO_JOB, run_demo)
    st.rerun()
# on_result: other pages cache their run lists for a few seconds; the demo's new run must show up at once
job_status(DEMO_JOB, "Demo", describe=lambda r: f"run {r.run_id} in {r.seconds.get('total', 0):.0f} s",
           on_result=lambda r: st.cache_data.clear())


def _open(page: str, **state: object) -> None:
    """Carry the demo's run into another page's own selection, then go there."""
    for k, v in state.items():
        st.session_state[k] = v
    st.switch_page(page, query_params=tab_params())


def _demo_summary() -> None:
    from core.demo import last_demo
    from core.viz import live as vl

    res = last_demo()
    if res is None:
        st.caption("No demo run yet in this workspace.")
        return
    note_run_in_view(res.run_id)  # the other pages open on the demo's run
    st.markdown(f"**Last demo**: run `{res.run_id}` · {res.model_name} on {res.dataset_id} · out-of-sample "
                f"span {res.test_start[:16]} to {res.test_end[:16]} · {res.seconds.get('total', 0):.0f} s")
    vs = res.vs_best_baseline or {}
    if vs.get("verdict"):
        from core.train.trainer import verdict_is_good, verdict_text

        (st.success if verdict_is_good(vs) else st.warning)(verdict_text(vs))
    bt, bh = res.backtest or {}, res.buy_and_hold or {}
    # wraps on a narrow window: in four columns the labels and deltas read "Model accurac..." and "-0.6 points vs l..."
    k = st.container(horizontal=True, horizontal_alignment="distribute", gap="medium")
    # the difference sits on the model's card: a red arrow on the baseline's read as the baseline falling
    k.metric("Model accuracy (test)", f"{(res.metrics or {}).get('accuracy', float('nan')):.3f}",
             delta=f"{vs.get('diff', 0) * 100:+.1f} points vs {vs.get('baseline')}" if vs else None,
             help="on the test split, never seen in training")
    if vs:
        k.metric(f"Best baseline ({vs.get('baseline')})", f"{vs.get('baseline_value', float('nan')):.3f}",
                 help="the best of the majority-class and logistic-regression baselines on the same test "
                      "split and labels (chosen on the test split: the hardest comparison for the model)")
    k.metric("Strategy return", f"{bt.get('total_return', float('nan')) * 100:+.1f} %",
             delta=f"{(bt.get('total_return', 0) - bh.get('total_return', 0)) * 100:+.1f} points vs buy and hold")
    k.metric("Buy and hold return", f"{bh.get('total_return', float('nan')) * 100:+.1f} %")
    eq = res.equity
    market = " · synthetic (simulated) market" if res.dataset_id.startswith("synthetic") else f" · {res.dataset_id}"
    # two lines: on one, the title ran past a narrow window's chart and was cut mid-word
    equity = vl.equity_figure(eq.get("strategy"), eq.get("buy_and_hold"),
                              title="equity: model strategy vs buy and hold<br>(out of sample, after costs)" + market)
    equity.update_layout(margin_t=75, title_y=0.97, title_yanchor="top")
    st.plotly_chart(equity, width="stretch", key="demo_equity")
    # one under the other: side by side, each in half the width hid its last columns (balanced accuracy, Sharpe...)
    st.dataframe(vl.demo_classification_table(res.summary()), hide_index=True, key="demo_cls_table")
    st.dataframe(vl.demo_trading_table(res.summary()), hide_index=True, key="demo_trade_table")
    st.markdown("**Look deeper**")
    b = st.container(horizontal=True)  # buttons at their own width, wrapping: in four columns they read "Training curve..."
    if "train" in pages and b.button("Training curves and baselines", key="demo_open_train"):
        _open(str(pages["train"].relative_to(ROOT)), train_view_run=res.run_id)
    if "backtest" in pages and b.button("Backtest with your own rules", key="demo_open_backtest"):
        _open(str(pages["backtest"].relative_to(ROOT)), bt_source=f"run:{res.run_id}")
    if "live" in pages and b.button("Replay its signals live", key="demo_open_live"):
        _open(str(pages["live"].relative_to(ROOT)), live_run_request=res.run_id)
    if "experiments" in pages and b.button("Compare with other runs", key="demo_open_experiments"):
        _open(str(pages["experiments"].relative_to(ROOT)), exp_pick_request=[res.run_id])


try:
    _demo_summary()
except Exception as exc:  # noqa: BLE001 - the home page must still show what the app is
    show_error(exc)

st.subheader("Active dataset")
try:
    from core.data.store import dataset_info
    from core.viz.data import candlestick_figure

    info = dataset_info(dataset_id)
    c = st.container(horizontal=True, horizontal_alignment="distribute", gap="medium")  # not "BTC/..." and "731 d..."
    c.metric("Dataset", f"{info.symbol} {info.timeframe}", help=dataset_id)
    c.metric("Source", info.source)
    c.metric("Bars", f"{info.rows:,}")
    span = (info.end - info.start).total_seconds() / 86400 if info.start is not None else None
    c.metric("Span", "-" if span is None else f"{span:,.0f} days",
             help=f"{info.start} to {info.end}")
    # an overview: about 750 candles (2 years of 1h as daily candles) draw fast; the Data page shows more
    st.plotly_chart(candlestick_figure(load_candles(dataset_id), height=420, max_candles=750), width="stretch",
                    key="home_candles")
    st.caption("Change the active dataset in the sidebar; fetch, import or generate more on the Data page.")
except Exception as exc:  # noqa: BLE001 - the home page must still show what the app is
    show_error(exc)
