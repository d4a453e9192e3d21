"""Backtest: turn a run's probabilities (or a rule baseline) into trades after fees, slippage, sizing and the
risk rules, and compare with buy and hold over the same span. Thin: widgets in, core.backtest, core.viz out."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from ui.common import keep_settings, load_candles, page_setup, pick_saved, show_error

from core.backtest.config import (BYBIT_MAKER_FEE, BYBIT_TAKER_FEE, FEE_NOTE, FRACTION_HELP, LEVERAGE_HELP,
                                  SIGNAL_EXITS, SIZING_HELP, SIZINGS, STOP_KINDS, BacktestConfig, leverage_cap,
                                  uses_base_fraction)
from core.backtest.signals import BASELINES
from core.data.store import dataset_version

dataset_id = page_setup("Backtest")
# the strategy and its settings survive a visit to another page
_keep = keep_settings("bt_kept_settings", (
    "bt_source", "bt_threshold", "bt_long_only", "bt_fraction", "bt_kelly_cap", "bt_wl", "bt_fee_taker",
    "bt_fee_maker", "bt_slip", "bt_slip_k", "bt_stop", "bt_stop_pct", "bt_stop_k", "bt_trail", "bt_tp_on", "bt_tp",
    "bt_signal_exit", "bt_hold", "bt_daily", "bt_weekly", "bt_sweep_on"), ("bt_sizing_",))
st.title("Backtest")
st.caption("A signal formed at the close of a bar trades at the next bar's open; stops are checked against each "
           "bar's high and low (the stop first when stop and target fall in one bar; a gap through the stop fills "
           "at the open). Buy and hold pays the same fees and slippage over the same span.")

D = BacktestConfig()
MODEL_SOURCES = ("run:", "wf:")


@st.cache_data(ttl=10, show_spinner=False)
def _runs() -> list[tuple[str, str, str, str]]:
    from core.train.runs import list_runs

    return [(r.run_id, r.name, r.model_name, r.dataset_id) for r in list_runs()]


@st.cache_data(ttl=10, show_spinner=False)
def _walk_forwards() -> list[tuple[str, str, str, str, int]]:
    from core.train.evaluate import list_walk_forwards

    return [(d["wf_id"], d.get("name") or d["wf_id"], d["model_name"], d["dataset_id"], int(d["n_folds"]))
            for d in list_walk_forwards()]


@st.cache_data(max_entries=8, show_spinner="Loading the predictions...")
def _model_info(source: str, version: int):
    """The out-of-sample predictions of a run ("run:<id>": its test split) or of a walk-forward evaluation
    ("wf:<id>": every fold's test block), checked against the dataset's candles (the shared cache) at
    `version` (`dataset_version`: a dataset rewritten since is read and checked again)."""
    from core.backtest.api import run_inputs, walk_forward_inputs

    kind, ident = source.split(":", 1)
    inp = (run_inputs if kind == "run" else walk_forward_inputs)(ident, load=load_candles)
    return inp.predictions, inp.class_names, inp.dataset_id, inp.name, inp.note


@st.cache_data(max_entries=16, show_spinner="Backtesting...")
def _backtest(source: str, ds: str, version: int, cfg: dict, start, end):
    from core.backtest.api import backtest_baseline, backtest_predictions

    candles = load_candles(ds)
    if source.startswith(MODEL_SOURCES):
        preds, classes, _, name, _ = _model_info(source, version)
        what = "run" if source.startswith("run:") else "walk-forward"
        return backtest_predictions(candles, preds, classes, cfg, start, end, label=f"{what} {name}")
    return backtest_baseline(source[9:], candles, cfg, start, end)


@st.cache_data(max_entries=8, show_spinner="Sweeping the threshold...")
def _sweep(source: str, ds: str, version: int, cfg: dict, start, end):
    from core.backtest.api import threshold_sweep

    preds, classes, _, _, _ = _model_info(source, version)
    return threshold_sweep(load_candles(ds), preds, classes, cfg, start=start, end=end)


# ------------------------------------------------------------------------------------------ what to trade
try:
    runs = _runs()
except Exception as exc:  # a broken runs folder must not take the page down: baselines still work
    show_error(exc)
    runs = []
try:
    wfs = _walk_forwards()
except Exception as exc:  # noqa: BLE001
    show_error(exc)
    wfs = []
labels = ({f"run:{r[0]}": f"run · {r[1]} ({r[2]}, {r[3]})" for r in runs}
          | {f"wf:{w[0]}": f"walk-forward · {w[1]} ({w[2]}, {w[4]} folds, {w[3]})" for w in wfs}
          | {f"baseline:{b}": f"rule baseline · {b}: {d}" for b, d in BASELINES.items()})
source = pick_saved("Strategy", labels, "bt_source", run_prefix="run:",
                    help="A trained run's out-of-sample probabilities, a walk-forward evaluation's (every fold's "
                         "test block: a longer out-of-sample span), or a rule baseline (no model needed).")
if not runs and not wfs:
    st.info("No trained runs yet: train one on the Train page, or backtest a rule baseline here.")

is_run = source.startswith(MODEL_SOURCES)  # a model's probabilities: a run or a walk-forward evaluation
ds_of = {f"run:{r[0]}": r[3] for r in runs} | {f"wf:{w[0]}": w[3] for w in wfs}
try:
    if is_run:
        preds, class_names, ds, run_name, data_note = _model_info(source, dataset_version(ds_of[source]))
        candles = load_candles(ds)
        lo, hi = preds["timestamp"].min(), preds["timestamp"].max()
    else:
        ds = dataset_id
        candles = load_candles(ds)
        lo, hi = candles.index[0], candles.index[-1]
except Exception as exc:
    show_error(exc)
    st.stop()

lo_d, hi_d = lo.to_pydatetime(), hi.to_pydatetime()
start, end = st.slider("Span", min_value=lo_d, max_value=hi_d, value=(lo_d, hi_d), key=f"bt_span_{source}_{ds}",
                       format="YYYY-MM-DD HH:mm")
if source.startswith("wf:"):
    st.markdown(f":green-badge[out-of-sample] every walk-forward fold's test block on **{ds}**: each bar was "
                f"predicted by a model trained only on bars before its block ({len(preds):,} predictions, "
                f"{preds['fold'].nunique() if 'fold' in preds else '?'} folds).")
elif is_run:
    st.markdown(f":green-badge[out-of-sample] the run's test span on **{ds}**: the model never trained or "
                f"early-stopped on these bars ({len(preds):,} predictions).")
else:
    st.markdown(f":gray-badge[rule baseline] on **{ds}** (the active dataset): no model, nothing fitted.")
if is_run and data_note:
    st.warning(data_note)

# ------------------------------------------------------------------------------------------ parameters
with st.expander("Signals and sizing", expanded=True):
    a, b, c = st.columns(3)
    threshold = a.slider("Threshold on P(up) / P(down)", 0.0, 1.0, D.threshold, 0.01, key="bt_threshold",
                         disabled=not is_run, help="Long when P(up) > threshold, short when P(down) > threshold.")
    long_only = a.toggle("Long only", D.long_only, key="bt_long_only",
                         help="No short entries; a short signal still closes a long.")
    sizing = b.selectbox("Sizing", SIZINGS if is_run else ("fixed",), key=f"bt_sizing_{is_run}",
                         help=SIZING_HELP)
    is_kelly = not uses_base_fraction(sizing)
    fixed_fraction = b.number_input("Fraction of equity (base)", 0.01, 10.0, D.fixed_fraction, 0.05,
                                    key="bt_fraction", disabled=is_kelly, help=FRACTION_HELP + LEVERAGE_HELP)
    if is_kelly:
        b.caption(f"{sizing} sizes from the confidence, the win/loss ratio and the Kelly cap: the base fraction "
                  "is not used.")
    elif fixed_fraction > 1:
        b.caption(f":orange[{fixed_fraction:g}x leverage]: positions up to {fixed_fraction:g} times equity; a "
                  "position is liquidated where equity would reach zero.")
    kelly_cap = c.number_input("Kelly cap", 0.01, 1.0, D.kelly_cap, 0.01, key="bt_kelly_cap", disabled=not is_kelly)
    win_loss = c.number_input("Win/loss ratio b", 0.1, 20.0, D.win_loss_ratio, 0.1, key="bt_wl", disabled=not is_kelly)

with st.expander("Costs", expanded=False):
    a, b, c, d = st.columns(4)
    fee_taker = a.number_input("Taker fee (%)", 0.0, 1.0, BYBIT_TAKER_FEE * 100, 0.005, format="%.3f",
                               key="bt_fee_taker")
    fee_maker = b.number_input("Maker fee (%)", -0.1, 1.0, BYBIT_MAKER_FEE * 100, 0.005, format="%.3f",
                               key="bt_fee_maker")
    slip = c.number_input("Slippage (bps)", 0.0, 500.0, D.slippage_bps, 0.5, key="bt_slip")
    slip_k = d.number_input("Vol. slippage (× ATR/price)", 0.0, 5.0, D.slippage_vol_k, 0.01, key="bt_slip_k")
    st.caption(FEE_NOTE + " Quantities are fractional (no rounding to whole coins).")

with st.expander("Risk rules", expanded=False):
    a, b, c = st.columns(3)
    stop_kind = a.selectbox("Stop-loss", STOP_KINDS, index=STOP_KINDS.index(D.stop_loss), key="bt_stop")
    stop_pct = a.number_input("Fixed stop (%)", 0.1, 50.0, D.stop_loss_pct * 100, 0.1, key="bt_stop_pct",
                              disabled=stop_kind != "fixed")
    stop_k = a.number_input("ATR stop (× ATR 14)", 0.1, 20.0, D.stop_atr_k, 0.1, key="bt_stop_k",
                            disabled=stop_kind != "atr")
    trail_k = b.number_input("Trailing stop (× ATR 14 from the peak, 0 = off)", 0.0, 20.0, D.trailing_atr_k, 0.1,
                             key="bt_trail")
    tp_on = b.toggle("Fixed take-profit", D.take_profit == "fixed", key="bt_tp_on")
    tp_pct = b.number_input("Take-profit (%)", 0.1, 100.0, D.take_profit_pct * 100, 0.1, key="bt_tp",
                            disabled=not tp_on)
    signal_exit = c.selectbox("Signal exit", SIGNAL_EXITS, key="bt_signal_exit",
                              help="reversal: close on the opposite signal; weak: close as soon as the signal "
                                   "no longer supports the position; none: only stops, target and time.")
    max_hold = c.number_input("Max holding (hours, 0 = off)", 0.0, 10_000.0, D.max_hold_hours, 1.0, key="bt_hold")
    daily = c.number_input("Halve size after daily drawdown (%)", 0.0, 100.0, D.daily_dd_halve * 100, 0.5,
                           key="bt_daily")
    weekly = c.number_input("Stop for the week after weekly drawdown (%)", 0.0, 100.0, D.weekly_dd_halt * 100,
                            0.5, key="bt_weekly")
    if note := BacktestConfig(stop_loss=stop_kind, stop_atr_k=float(stop_k), trailing_atr_k=float(trail_k)).stop_note():
        st.caption(note)

cfg = dict(threshold=float(threshold), long_only=bool(long_only), sizing=sizing,
           fixed_fraction=float(fixed_fraction), max_position=leverage_cap(fixed_fraction),
           kelly_cap=float(kelly_cap), win_loss_ratio=float(win_loss),
           fee_taker=float(fee_taker) / 100, fee_maker=float(fee_maker) / 100, slippage_bps=float(slip),
           slippage_vol_k=float(slip_k), stop_loss=stop_kind, stop_loss_pct=float(stop_pct) / 100,
           stop_atr_k=float(stop_k), trailing_atr_k=float(trail_k), take_profit="fixed" if tp_on else "none",
           take_profit_pct=float(tp_pct) / 100, signal_exit=signal_exit, max_hold_hours=float(max_hold),
           daily_dd_halve=float(daily) / 100, weekly_dd_halt=float(weekly) / 100)
_keep()

try:
    result = _backtest(source, ds, dataset_version(ds), cfg, start, end)
except Exception as exc:
    show_error(exc)
    st.stop()

from core.backtest.api import risk_rule_note  # noqa: E402
from core.backtest.metrics import format_metric, metrics_table  # noqa: E402
from core.viz import backtest as vb  # noqa: E402

m, bh = result.metrics, result.buy_and_hold
st.subheader(f"{result.label}: {result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC "
             f"({len(result.equity):,} {result.timeframe} bars)")
k = st.container(horizontal=True, horizontal_alignment="distribute", gap="medium")  # in fifths: "-15.4..."
k.metric("Total return", format_metric("total_return", m["total_return"]),
         f"buy & hold {format_metric('total_return', bh['total_return'])}", delta_color="off", delta_arrow="off")
k.metric("Sharpe", format_metric("sharpe", m["sharpe"]), f"buy & hold {format_metric('sharpe', bh['sharpe'])}",
         delta_color="off", delta_arrow="off")
k.metric("Max drawdown", format_metric("max_drawdown", m["max_drawdown"]),
         f"buy & hold {format_metric('max_drawdown', bh['max_drawdown'])}", delta_color="off", delta_arrow="off")
k.metric("Trades", format_metric("n_trades", m["n_trades"]), f"win rate {format_metric('win_rate', m['win_rate'])}",
         delta_color="off", delta_arrow="off")
k.metric("Fees paid (USDT)", format_metric("fees_paid", m["fees_paid"]),
         f"{format_metric('fees_paid_pct', m['fees_paid_pct'])} of capital", delta_color="off", delta_arrow="off")
st.caption(f"Money is in USDT (the quote currency): the account starts with {result.config.initial_capital:,.0f} "
           f"USDT and ends with {format_metric('final_equity', m['final_equity'])} USDT.")
if rules_note := risk_rule_note(result):
    st.caption(rules_note)
if m["n_trades"] == 0:
    if is_run:
        from core.backtest.api import no_trades_note

        st.info(no_trades_note(preds, class_names, threshold, long_only, result.start, result.end))
    else:
        st.info("No trades in this span: widen it or loosen the rules.")

st.plotly_chart(vb.equity_figure(result), width="stretch", key="bt_equity_chart")
span_candles = candles.loc[(candles.index >= result.start) & (candles.index <= result.end)]
st.plotly_chart(vb.trades_figure(span_candles, result.trades), width="stretch", key="bt_trades_chart")

left, right = st.columns([3, 2])
with left:
    st.plotly_chart(vb.monthly_heatmap(result.monthly_returns()), width="stretch", key="bt_monthly_chart")
with right:
    table = metrics_table(m, bh)
    st.dataframe(table, width="stretch", height=35 * (len(table) + 1) + 3, key="bt_metrics_table")

st.subheader("Trades")
trades = result.trades.drop(columns=["entry_bar", "exit_bar"])
money = st.column_config.NumberColumn
st.dataframe(trades, width="stretch", hide_index=True, key="bt_trades_table", column_config={
    "entry_time": st.column_config.DatetimeColumn("entry (UTC)", format="YYYY-MM-DD HH:mm"),
    "exit_time": st.column_config.DatetimeColumn("exit (UTC)", format="YYYY-MM-DD HH:mm"),
    "qty": money("qty (coins)", format="%.6g"), "entry_price": money("entry price", format="%.2f"),
    "exit_price": money("exit price", format="%.2f"), "hours_held": money("hours held", format="%.1f"),
    "fees": money("fees (USDT)", format="%.2f"), "pnl": money("P&L (USDT)", format="%.2f"),
    "return": money("return on equity", format="percent")})
st.download_button("Download trades (CSV)", trades.to_csv(index=False).encode(), file_name="trades.csv",
                   mime="text/csv", key="bt_trades_csv", disabled=trades.empty)

if is_run:
    st.subheader("Threshold sweep")
    # The honest use of a sweep: choose the threshold on test bars before the reported span, then report
    # the span after them. Offered once the span starts at least a day of bars into the test span.
    before_end = pd.Timestamp(start) - pd.Timedelta(seconds=result.bar_seconds)
    n_before = int(((preds["timestamp"] >= lo) & (preds["timestamp"] <= before_end)).sum())
    choices = ["the reported span"] + (["the test bars before the reported span"] if n_before >= 24 else [])
    where = st.radio("Sweep computed on", choices, key="bt_sweep_on", horizontal=True,
                     help="Narrow the span (slider above) to free test bars before it for an honest choice.")
    in_sample = where == choices[0]
    s0, s1 = (start, end) if in_sample else (lo, before_end)
    try:
        sweep = _sweep(source, ds, dataset_version(ds), cfg, s0, s1)
        note = f"{pd.Timestamp(s0):%Y-%m-%d %H:%M} to {pd.Timestamp(s1):%Y-%m-%d %H:%M} ({n_before:,} bars)"
        st.plotly_chart(vb.sweep_figure(sweep, threshold, in_sample=in_sample, span_note=note), width="stretch",
                        key="bt_sweep_chart")
        if in_sample:
            st.caption(":orange-badge[in-sample] The sweep is computed on the span it reports: picking the best "
                       "threshold from it and quoting that span's result is look-ahead. Narrow the span to leave "
                       "test bars before it, and sweep on those instead.")
        else:
            st.caption(":green-badge[out-of-sample] The sweep ran on test bars before the reported span: a "
                       "threshold chosen here and reported on the span above used no bar of that span.")
    except Exception as exc:
        show_error(exc)
