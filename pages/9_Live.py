"""Live: a trained run on the latest candles, every N seconds - from Bybit through ccxt, or an offline replay of
a stored dataset as if it were live (the default: no network needed). Each tick shows the signal, its
confidence, the suggested size and the stop / target levels over a live-updating chart, and logs the signal
in the workspace. A failed fetch is shown and the loop carries on. Thin: widgets in, core.live, core.viz out."""
from __future__ import annotations

import streamlit as st

from ui.common import keep_settings, load_candles, page_setup, pick_saved, show_error

dataset_id = page_setup("Live")
# the run, the source and the signal settings survive a visit to another page (not the buttons, not the
# running loop's state, which lives in its own key; a run handed over by another page still wins below)
_keep = keep_settings("live_kept_settings", (
    "live_run", "live_mode", "live_replay_ds", "live_replay_step", "live_symbol", "live_market", "live_tf",
    "live_threshold", "live_long_only", "live_sizing", "live_fraction", "live_equity", "live_stop", "live_stop_k",
    "live_stop_pct", "live_tp"), ("live_every_",))

from core.backtest.config import (FRACTION_HELP, LEVERAGE_HELP, SIZING_HELP, SIZINGS, STOP_KINDS, BacktestConfig,
                                  leverage_cap, uses_base_fraction)
from core.data.bybit import MARKET_TYPES, UNREACHABLE
from core.data.candles import TIMEFRAMES
from core.live.feed import BybitFeed, ReplayFeed
from core.live.log import read_signals
from core.live.session import LiveSession
from core.live.signals import load_live_model, replay_start, signal_config, timeframe_note
from core.train import runs as registry
from core.viz import live as vl

D = BacktestConfig()
STATE = "live_state"

st.title("Live signals")
st.caption("The run's model on the latest closed candles, with its features computed exactly as in training "
           "(the run's feature list and its own saved scaler). Replay steps through stored candles as if they "
           "arrived live; Live asks Bybit's public API through ccxt. Signals are suggestions, not orders.")


@st.cache_resource(max_entries=4, show_spinner="Loading the run's model...")
def _live_model(run_id: str, stamp: float):
    # `stamp` (the weights' mtime) is part of the cache key: a run replaced on disk is loaded again
    return load_live_model(run_id)


# ------------------------------------------------------------------------------------------------ the run
table = registry.runs_table()
if table.empty:
    st.info("No trained runs yet: train one on the Train page, or run the one-click demo on the home page. "
            "Below: the latest candles of the active dataset, which a run's signals would be drawn on.")
    try:
        st.plotly_chart(vl.live_figure(load_candles(dataset_id), title=f"{dataset_id}: latest candles (no run yet)"),
                        width="stretch", key="live_chart_norun")
    except Exception as exc:  # noqa: BLE001
        show_error(exc)
    st.stop()
run_id = pick_saved("Run", dict(zip(table["run_id"], table["name"].astype(str) + " · " + table["model_name"].astype(str)
                                    + " · " + table["dataset_id"].astype(str))),
                    "live_run", "live_run_request", run_prefix="")  # e.g. the home page's "replay its signals"
try:
    lm = _live_model(run_id, registry.weights_stamp(run_id))
except Exception as exc:  # noqa: BLE001 - a run that cannot go live says why; the page stays usable
    show_error(exc)
    st.stop()

# --------------------------------------------------------------------------------------------- settings
mode = st.radio("Source", ["replay", "live"], key="live_mode", horizontal=True,
                format_func=lambda m: {"replay": "Replay a stored dataset (offline)",
                                       "live": "Live from Bybit (needs internet)"}[m])
a, b, c = st.columns(3)
interval = int(a.number_input("Tick every (seconds)", 1, 3600, 2 if mode == "replay" else 30, key=f"live_every_{mode}"))
tf_note = None  # live mode: the other-timeframe warning shown beside its selectbox
if mode == "replay":
    from core.data.store import list_datasets

    ds_ids = [d.id for d in list_datasets()]
    default_ds = lm.dataset_id if lm.dataset_id in ds_ids else dataset_id
    if st.session_state.get("_live_ds_for") != run_id:  # another run picked (or handed over): replay its own data
        st.session_state["_live_ds_for"] = run_id
        if default_ds in ds_ids:
            st.session_state["live_replay_ds"] = default_ds
    replay_ds = b.selectbox("Dataset to replay", ds_ids, index=ds_ids.index(default_ds) if default_ds in ds_ids else 0,
                            key="live_replay_ds")
    step = int(c.number_input("Bars per tick", 1, 1000, 1, key="live_replay_step",
                              help="How far the replayed clock moves each tick. With a step of N only every "
                                   "N-th bar is decided: signals on the bars in between are not seen (1 = every "
                                   "bar)."))
    source_key = ("replay", run_id, replay_ds)
else:
    run_symbol, tf_default, run_market = lm.market()
    symbol = b.text_input("Symbol", run_symbol, key="live_symbol")
    market = b.selectbox("Market", MARKET_TYPES, index=MARKET_TYPES.index(run_market), key="live_market")
    tf_default = tf_default if tf_default in TIMEFRAMES else "1h"
    tf = c.selectbox("Timeframe", list(TIMEFRAMES), index=list(TIMEFRAMES).index(tf_default), key="live_tf")
    if tf_note := timeframe_note(lm, tf):  # said as the timeframe is chosen (the ticks' notes skip it)
        c.warning(tf_note)
    step = 0
    source_key = ("live", run_id, symbol.strip().upper(), market, tf)

with st.expander("Signal, sizing and risk settings (the Backtest page's rules)", expanded=False):
    a, b, c = st.columns(3)
    threshold = a.slider("Probability threshold", 0.05, 0.95, D.threshold, 0.01, key="live_threshold",
                         help="long when P(up) > threshold, short when P(down) > threshold")
    long_only = a.checkbox("Long only", D.long_only, key="live_long_only")
    sizing = b.selectbox("Sizing", SIZINGS, index=SIZINGS.index(D.sizing), key="live_sizing", help=SIZING_HELP)
    fraction = b.number_input("Fixed / base fraction of equity", 0.01, 10.0, D.fixed_fraction, 0.05,
                              key="live_fraction", help=FRACTION_HELP + LEVERAGE_HELP,
                              disabled=not uses_base_fraction(sizing))
    equity = b.number_input("Account equity (USDT)", 1.0, 1e12, D.initial_capital, 1000.0, key="live_equity")
    stop_kind = c.selectbox("Stop-loss", STOP_KINDS, index=STOP_KINDS.index(D.stop_loss), key="live_stop")
    stop_k = c.number_input("Stop: k x ATR(14)", 0.1, 20.0, D.stop_atr_k, 0.1, key="live_stop_k")
    stop_pct = c.number_input("Stop: fixed %", 0.1, 50.0, D.stop_loss_pct * 100, 0.1, key="live_stop_pct") / 100
    tp_pct = c.number_input("Take-profit % (0 = off)", 0.0, 500.0, D.take_profit_pct * 100, 0.1, key="live_tp") / 100
_keep()
try:
    cfg = signal_config(threshold=threshold, long_only=long_only, sizing=sizing, fixed_fraction=fraction,
                        max_position=leverage_cap(fraction), initial_capital=equity, stop_loss=stop_kind,
                        stop_atr_k=stop_k, stop_loss_pct=stop_pct, take_profit="fixed" if tp_pct > 0 else "none",
                        take_profit_pct=tp_pct or D.take_profit_pct)
except Exception as exc:  # noqa: BLE001
    show_error(exc)
    st.stop()


# ------------------------------------------------------------------------------------------------- state
session = st.session_state.get(STATE)
if session is None or session.key != source_key:  # another source: another loop
    session = st.session_state[STATE] = LiveSession(source_key)


def _make_feed():
    """The source's feed and, for a replay, where its clock starts: by default the run's test span (out of
    sample); another dataset starts after the warm-up."""
    if mode == "replay":
        feed = ReplayFeed(load_candles(replay_ds))
        return feed, replay_start(lm, feed)
    return BybitFeed(symbol.strip(), tf, market), None


def _tick() -> None:
    session.tick(lm, _make_feed, cfg, step)


# a row that wraps rather than cutting labels ("St...") when the window is narrow; the callbacks run before the
# script, so Start is drawn as Pause at once and the panel below takes the first tick
buttons = st.container(horizontal=True)
buttons.button("Pause" if session.running else "Start", key="live_toggle", type="primary", on_click=session.toggle,
               icon=":material/pause:" if session.running else ":material/play_arrow:", disabled=session.finished)
if buttons.button("Step once" if mode == "replay" else "Fetch now", key="live_step_btn", icon=":material/skip_next:"):
    _tick()
buttons.button("Reset", key="live_reset", icon=":material/restart_alt:", on_click=session.reset)


def _panel(log) -> None:
    sig = session.last
    if session.finished:
        st.info("The replay reached the end of the dataset. Reset to start again.")
    else:
        st.caption(vl.loop_status(session, mode == "replay", interval))
    if error := vl.loop_error(session, UNREACHABLE):
        st.error(error)
    if session.start_note:
        st.caption(session.start_note)
    if sig is None:
        st.info("Press Start (or Step once) to take the first signal." if mode == "replay" else
                "Press Start (or Fetch now) to take the first signal from Bybit.")
        if mode == "replay":  # where the replayed clock stands (no network needed to show it)
            try:
                feed = session.ensure_feed(_make_feed)
                title = f"{vl.source_title(feed.source)} · replay clock at {feed.now:%Y-%m-%d %H:%M} UTC"
                st.plotly_chart(vl.live_figure(feed.latest(300), log, title=title), width="stretch",
                                key="live_chart_start")
            except Exception as exc:  # noqa: BLE001
                show_error(exc)
        return
    for note in session.notes:  # holes in the candles, another timeframe than the run's
        if note != tf_note:  # not twice
            st.warning(note)
    st.markdown(vl.signal_headline(sig))
    figures = st.container(horizontal=True, horizontal_alignment="distribute", gap="medium")  # wraps, not "do..."
    for label, value, help_text in vl.signal_figures(sig, threshold, sizing):
        figures.metric(label, value, help=help_text)
    if heads := vl.heads_caption(sig):  # a multi-task run also predicts the horizon's return and volatility
        st.caption(heads)
    log = log[log["source"] == sig.source] if "source" in log and len(log) else log
    left, right = st.columns([4, 1])
    left.plotly_chart(vl.live_figure(session.candles, log, sig, title=f"{vl.source_title(sig.source)} · run {lm.name}"),
                      width="stretch", key="live_chart")
    right.plotly_chart(vl.probability_bars(sig, threshold), width="stretch", key="live_probs")


def _log_table(log) -> None:
    st.subheader("Signal log")
    try:
        log = log.head(500)
        table = vl.signal_table(log)
        shown, caption = vl.signal_log_view(table, run_id)
        st.caption(caption)
        columns = {c: st.column_config.NumberColumn(c, format="%.2f", width="small") for c in ("price", "stop",
                                                                                              "target")}
        columns.update({c: st.column_config.Column(help=h) for c, h in vl.SIGNAL_TABLE_HELP.items()})
        columns["size"] = st.column_config.NumberColumn(help=vl.SIGNAL_TABLE_HELP["size"], format="percent")
        for c, label in (("timestamp", "bar (UTC)"), ("logged_at", "logged at (UTC)")):
            columns[c] = st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm", timezone="UTC",
                                                         help=vl.SIGNAL_TABLE_HELP.get(c),
                                                         pinned=c == "timestamp")  # the bar stays in view
        if flat_note := vl.all_flat_note(log, threshold):
            st.caption(flat_note)
        st.dataframe(table, hide_index=True, key="live_log_table", column_config=columns, column_order=shown,
                     width="stretch", placeholder="")  # "empty for flat", as the caption says (not "None")
        if len(log):
            st.download_button("Download CSV", log.to_csv(index=False).encode(), f"signals-{run_id}.csv",
                               "text/csv", key="live_log_csv")
    except Exception as exc:  # noqa: BLE001
        show_error(exc)


def _live() -> None:
    was_running = session.running
    if session.due(interval):  # one tick first (it appends to the log), then one read of the log
        _tick()
    log = read_signals(run_id, limit=2000)
    _panel(log)
    _log_table(log)
    if was_running and not session.running:
        st.rerun(scope="app")  # the replay ran out: stop the timer


st.fragment(run_every=interval if session.running else None, key="live_fragment")(_live)()
