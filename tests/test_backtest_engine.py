"""The backtest engine on hand-built candles: fills at the next open, fees, stops before targets, gaps, the
trailing stop, time exits, reversals, the drawdown rules, no look-ahead, and numba = plain Python."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.backtest import engine
from core.backtest.api import backtest_baseline
from core.backtest.engine import max_hold_bars, run_backtest
from core.errors import UserError

FREE = dict(fee_taker=0.0, fee_maker=0.0, slippage_bps=0.0, stop_loss="none", trailing_atr_k=0.0,
            take_profit="none", signal_exit="weak", max_hold_hours=0, daily_dd_halve=0.0, weekly_dd_halt=0.0,
            fixed_fraction=1.0)


def candles(opens, highs=None, lows=None, closes=None, tf="1h", start="2024-01-01") -> pd.DataFrame:
    o = np.asarray(opens, dtype=float)
    c = np.asarray(closes if closes is not None else o, dtype=float)
    h = np.asarray(highs if highs is not None else np.maximum(o, c) + 1, dtype=float)
    lo = np.asarray(lows if lows is not None else np.minimum(o, c) - 1, dtype=float)
    idx = pd.date_range(start, periods=len(o), freq={"1h": "h", "15m": "15min", "1d": "D"}[tf], tz="UTC",
                        name="timestamp")
    df = pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": 1.0}, index=idx)
    df.attrs["timeframe"] = tf
    return df


def test_signal_at_close_trades_at_next_open_and_equity_is_marked_to_market():
    c = candles([100, 100, 110, 120, 120], closes=[100, 105, 115, 120, 120])
    res = run_backtest(c, [1, 1, 0, 0, 0], FREE)
    # long from the open of bar 1 (100) with 10,000 / 100 = 100 units; bar 2's close turns flat -> out at
    # bar 3's open (120)
    t = res.trades.iloc[0]
    assert (t.entry_bar, t.exit_bar, t.side, t.entry_price, t.exit_price) == (1, 3, "long", 100.0, 120.0)
    assert t.qty == pytest.approx(100.0) and t.exit_reason == "signal"
    assert res.equity.to_numpy() == pytest.approx([10_000, 10_500, 11_500, 12_000, 12_000])
    assert res.positions.tolist() == [0, 1, 1, 0, 0]
    assert res.metrics["total_return"] == pytest.approx(0.2)
    # buy and hold over the same span: in at bar 1's open (100), out at the last close (120)
    assert res.buy_and_hold["total_return"] == pytest.approx(0.2) and res.buy_and_hold["n_trades"] == 1


def test_taker_fees_on_both_sides_and_slippage_against_the_trader():
    c = candles([100, 100, 110, 110], closes=[100, 105, 110, 110])
    res = run_backtest(c, [1, 0, 0, 0], {**FREE, "fee_taker": 0.001})
    # 100 units at 100: fee 10; sold at 110: fee 11 -> 10,000 + 1,000 - 21
    assert res.metrics["final_equity"] == pytest.approx(10_979.0)
    assert res.metrics["fees_paid"] == pytest.approx(21.0)
    assert res.trades.iloc[0].pnl == pytest.approx(979.0)
    slipped = run_backtest(c, [1, 0, 0, 0], {**FREE, "slippage_bps": 10})
    t = slipped.trades.iloc[0]
    assert t.entry_price == pytest.approx(100.1) and t.exit_price == pytest.approx(110 * 0.999)
    # fractional quantity: 10,000 / 100.1 units, no rounding
    assert t.qty == pytest.approx(10_000 / 100.1)


def test_short_profits_when_price_falls():
    c = candles([100, 100, 90, 90], closes=[100, 95, 90, 90])
    res = run_backtest(c, [-1, 0, 0, 0], FREE)
    t = res.trades.iloc[0]
    assert t.side == "short" and t.pnl == pytest.approx(1_000.0)
    assert res.metrics["final_equity"] == pytest.approx(11_000.0)
    long_only = run_backtest(c, [-1, 0, 0, 0], {**FREE, "long_only": True})
    assert long_only.metrics["n_trades"] == 0


def test_a_leveraged_long_is_liquidated_at_zero_equity_and_the_account_stays_empty():
    # 5x long from bar 1's open (100): 500 units on 10,000 of equity, cash -40,000; equity is zero at 80
    c = candles([100, 100, 95, 90, 100, 120], lows=[99, 99, 75, 89, 99, 119], closes=[100, 98, 90, 95, 110, 120])
    lev = {**FREE, "fixed_fraction": 5.0, "max_position": 5.0}
    res = run_backtest(c, [1, 1, 1, 1, 1, 1], lev)
    t = res.trades.iloc[0]
    assert (t.exit_bar, t.exit_reason, t.exit_price, t.pnl) == (2, "liquidation", pytest.approx(80.0),
                                                               pytest.approx(-10_000.0))
    # everything is lost and nothing is opened again, though the price recovers above the entry
    assert len(res.trades) == 1
    assert res.equity.to_numpy() == pytest.approx([10_000, 9_000, 0, 0, 0, 0], abs=1e-9)
    assert res.equity.min() >= 0 and res.metrics["total_return"] == pytest.approx(-1.0)
    # a stop above the bankruptcy price fills first and saves what is left
    stopped = run_backtest(c, [1, 1, 1, 1, 1, 1], {**lev, "stop_loss": "fixed", "stop_loss_pct": 0.1})
    t = stopped.trades.iloc[0]
    assert (t.exit_bar, t.exit_reason, t.exit_price) == (2, "stop", pytest.approx(90.0))
    assert stopped.equity.iloc[2] == pytest.approx(5_000.0)
    # a stop beyond it (70 < 80) never fills: the account is gone first
    beyond = run_backtest(c, [1, 1, 1, 1, 1, 1], {**lev, "stop_loss": "fixed", "stop_loss_pct": 0.3})
    assert beyond.trades.iloc[0].exit_reason == "liquidation" and beyond.metrics["final_equity"] == 0.0


def test_an_unleveraged_short_is_liquidated_when_the_price_gaps_past_double():
    # 1x short at 100: 100 units, cash 20,000; equity is zero at 200. Bar 2 opens at 250 (a gap)
    c = candles([100, 100, 250, 260], closes=[100, 120, 255, 260])
    res = run_backtest(c, [-1, -1, -1, -1], FREE)
    t = res.trades.iloc[0]
    assert (t.exit_bar, t.exit_reason, t.exit_price, t.bars_held) == (2, "liquidation", pytest.approx(200.0), 1)
    assert res.metrics["final_equity"] == 0.0 and len(res.trades) == 1
    # fees and slippage on a fill near the bankruptcy price cannot take equity below zero either
    costly = run_backtest(candles([100, 100, 199.9, 199.9], closes=[100, 120, 199.9, 199.9]), [-1, 0, 0, 0],
                          {**FREE, "fee_taker": 0.01, "slippage_bps": 50})
    assert costly.trades.iloc[0].exit_reason == "liquidation" and costly.equity.min() == 0.0


def test_stop_is_assumed_first_when_stop_and_target_are_both_inside_one_bar():
    c = candles([100, 100, 100, 100], highs=[101, 101, 104, 101], lows=[99, 99.5, 97, 99])
    cfg = {**FREE, "stop_loss": "fixed", "stop_loss_pct": 0.02, "take_profit": "fixed", "take_profit_pct": 0.03,
           "signal_exit": "none"}
    res = run_backtest(c, [1, 1, 1, 1], cfg)
    t = res.trades.iloc[0]
    assert (t.exit_bar, t.exit_reason, t.exit_price) == (2, "stop", pytest.approx(98.0))
    # the target alone is a maker fill at the target price
    c2 = candles([100, 100, 100, 100], highs=[101, 101, 104, 101], lows=[99, 99.5, 99, 99])
    t2 = run_backtest(c2, [1, 0, 0, 0], {**cfg, "fee_maker": 0.0002, "fee_taker": 0.00055}).trades.iloc[0]
    assert (t2.exit_reason, t2.exit_price) == ("take_profit", pytest.approx(103.0))
    assert t2.fees == pytest.approx(100 * 10_000 / 100 * 0.00055 + 103 * 100 * 0.0002)


def test_a_gap_through_the_stop_fills_at_the_open():
    c = candles([100, 100, 95, 95], highs=[101, 101, 96, 96], lows=[99, 99, 94, 94])
    cfg = {**FREE, "stop_loss": "fixed", "stop_loss_pct": 0.02, "signal_exit": "none"}
    t = run_backtest(c, [1, 1, 1, 1], cfg).trades.iloc[0]
    assert (t.exit_bar, t.exit_reason, t.exit_price) == (2, "stop", 95.0)


def test_atr_and_trailing_stops_follow_the_hand_computed_levels():
    from core.features.indicators import atr

    n = 30
    o = np.full(n, 100.0)
    cl = o.copy()
    h, lo = o + 1.0, o - 1.0                      # true range 2 -> ATR(14) = 2 exactly
    h[21], cl[21] = 110.0, 108.0                  # a rally after entry lifts the peak to 110
    o[22], h[22], lo[22], cl[22] = 108.0, 108.5, 100.0, 101.0
    c = candles(o, h, lo, cl)
    a = atr(c["high"], c["low"], c["close"], 14).to_numpy()
    assert a[19] == pytest.approx(2.0)
    sig = np.zeros(n)
    sig[19] = 1                                   # enter at bar 20's open (100)
    cfg = {**FREE, "signal_exit": "none", "stop_loss": "atr", "stop_atr_k": 2.0, "trailing_atr_k": 1.5}
    t = run_backtest(c, sig, cfg).trades.iloc[0]
    # trailing at the close of bar 21: peak 110 - 1.5 x ATR(bar 21) -> hit by bar 22's low of 100
    expected = 110.0 - 1.5 * a[21]
    assert (t.entry_bar, t.exit_bar, t.exit_reason) == (20, 22, "trailing")
    assert t.exit_price == pytest.approx(expected)
    # without the trailing stop the ATR stop (100 - 2 x 2 = 96) is not reached
    t2 = run_backtest(c, sig, {**cfg, "trailing_atr_k": 0.0}).trades.iloc[0]
    assert t2.exit_reason == "end"


def test_time_exit_after_max_holding_in_bars_of_the_timeframe():
    assert max_hold_bars(12, 3600) == 12 and max_hold_bars(12, 900) == 48 and max_hold_bars(12, 86400) == 1
    assert max_hold_bars(0, 3600) == 0
    c = candles(np.full(10, 100.0))
    res = run_backtest(c, np.ones(10), {**FREE, "signal_exit": "none", "max_hold_hours": 3})
    first = res.trades.iloc[0]
    assert (first.entry_bar, first.exit_bar, first.exit_reason, first.bars_held) == (1, 4, "time", 3)
    # no re-entry on the bar of a non-signal exit: the next entry is one bar later
    assert res.trades.iloc[1].entry_bar == 5
    # exposure counts the bars a position is held, as bars_held does: out at bar 4's open, bar 4 is not in it
    assert res.metrics["exposure"] == pytest.approx(res.trades.bars_held.sum() / 10)
    c15 = candles(np.full(60, 100.0), tf="15m")
    t15 = run_backtest(c15, np.ones(60), {**FREE, "signal_exit": "none", "max_hold_hours": 12}).trades.iloc[0]
    assert t15.exit_bar - t15.entry_bar == 48 and t15.hours_held == pytest.approx(12.0)


def test_reversal_exits_and_enters_the_other_side_at_the_same_open():
    c = candles([100, 100, 100, 100, 100])
    res = run_backtest(c, [1, 1, -1, -1, -1], {**FREE, "signal_exit": "reversal"})
    sides = res.trades[["side", "entry_bar", "exit_bar", "exit_reason"]].values.tolist()
    assert sides == [["long", 1, 3, "signal"], ["short", 3, 4, "end"]]


def test_daily_drawdown_halves_the_next_position_and_weekly_drawdown_halts_the_week():
    # Monday 2024-01-01. A 5 % loss on the first long (bar 1 -> exit at bar 2's open) trips the daily rule.
    o = [100, 100, 95, 95, 95, 95]
    c = candles(o, closes=[100, 95, 95, 95, 95, 95])
    sig = [1, 0, 1, 0, 0, 0]
    res = run_backtest(c, sig, {**FREE, "daily_dd_halve": 0.03})
    second = res.trades.iloc[1]
    equity_before = res.equity.iloc[2]
    assert second.qty * second.entry_price == pytest.approx(0.5 * equity_before)
    assert run_backtest(c, sig, FREE).trades.iloc[1].qty * 95 == pytest.approx(res.equity.iloc[2])

    # weekly: a 12 % fall within the week closes the position at the next open and blocks entries until Monday
    n = 24 * 9
    o = np.full(n, 100.0)
    o[3:] = 88.0
    c = candles(o, closes=np.r_[100, 100, 88, np.full(n - 3, 88.0)])
    res = run_backtest(c, np.ones(n), {**FREE, "weekly_dd_halt": 0.10, "signal_exit": "none"})
    first, second = res.trades.iloc[0], res.trades.iloc[1]
    assert first.exit_reason == "halt" and first.exit_bar == 3
    assert second.entry_time == pd.Timestamp("2024-01-08 00:00", tz="UTC")  # next Monday 00:00 UTC


def test_the_engine_counts_entries_the_weekly_rule_blocked_and_the_daily_rule_halved():
    from core.backtest.api import risk_rule_note

    o = [100, 100, 95, 95, 95, 95]
    c = candles(o, closes=[100, 95, 95, 95, 95, 95])
    res = run_backtest(c, [1, 0, 1, 0, 0, 0], {**FREE, "daily_dd_halve": 0.03})
    assert res.rule_counts == {"weekly_blocked": 0, "daily_halved": 1}
    note = risk_rule_note(res)
    assert "the daily rule" in note.lower() and "halved 1 entry" in note and "weekly" not in note
    assert risk_rule_note(run_backtest(c, [1, 0, 1, 0, 0, 0], FREE)) is None

    # the halt closes the long at bar 3's open; every later bar of the week (4 .. Sunday 23:00 = bar 167) had
    # a long signal that a flat book would have taken: 164 blocked entries, then Monday enters again
    n = 24 * 9
    o = np.full(n, 100.0)
    o[3:] = 88.0
    c = candles(o, closes=np.r_[100, 100, 88, np.full(n - 3, 88.0)])
    res = run_backtest(c, np.ones(n), {**FREE, "weekly_dd_halt": 0.10, "signal_exit": "none"})
    assert res.rule_counts == {"weekly_blocked": 164, "daily_halved": 0}
    assert res.summary()["risk_rules"] == res.rule_counts
    note = risk_rule_note(res)
    assert "closed 1 position" in note and "blocked the entry signal of 164 bars" in note and "fewer trades" in note
    # long only: short signals are no entries, so the halt blocks none of them
    res = run_backtest(c, -np.ones(n), {**FREE, "weekly_dd_halt": 0.10, "long_only": True})
    assert res.rule_counts["weekly_blocked"] == 0


def test_changing_prices_after_t_changes_no_decision_at_or_before_t():
    from core.data.synthetic import generate_market

    base = next(iter(generate_market("BTC/USDT", "1h", periods=1200, seed=3).values()))
    cfg = {"stop_loss": "atr", "trailing_atr_k": 1.5, "take_profit": "fixed", "max_hold_hours": 12,
           "slippage_vol_k": 0.05, "signal_exit": "reversal"}
    ref = backtest_baseline("ma_cross", base, {**cfg, "ma_fast": 5, "ma_slow": 20})
    assert ref.metrics["n_trades"] > 20
    rng = np.random.default_rng(0)
    for t in (300, 611, 1000):
        changed = base.copy()
        k = len(changed) - t - 1
        shock = np.exp(np.cumsum(rng.normal(0, 0.03, k)))
        for col in ("open", "high", "low", "close"):
            j = changed.columns.get_loc(col)
            changed.iloc[t + 1:, j] = changed.iloc[t + 1:, j].to_numpy() * shock
        res = backtest_baseline("ma_cross", changed, {**cfg, "ma_fast": 5, "ma_slow": 20})
        np.testing.assert_array_equal(res.positions.to_numpy()[: t + 1], ref.positions.to_numpy()[: t + 1])
        np.testing.assert_allclose(res.equity.to_numpy()[: t + 1], ref.equity.to_numpy()[: t + 1], rtol=1e-12)
        done = ref.trades[ref.trades.exit_bar <= t]
        pd.testing.assert_frame_equal(res.trades.iloc[: len(done)], done)
        entered = ref.trades[ref.trades.entry_bar <= t][["entry_bar", "side", "entry_price", "qty"]]
        pd.testing.assert_frame_equal(res.trades[res.trades.entry_bar <= t][["entry_bar", "side", "entry_price",
                                                                             "qty"]], entered)
        # and the change after t does change what happens after t
        assert not np.allclose(res.equity.to_numpy()[t + 1:], ref.equity.to_numpy()[t + 1:])


def test_compiled_engine_equals_the_plain_python_state_machine():
    from core.data.synthetic import generate_market

    if not engine.NUMBA:
        pytest.skip("numba not installed")
    c = next(iter(generate_market("BTC/USDT", "1h", periods=800, seed=11).values()))
    rng = np.random.default_rng(1)
    sig = rng.choice([-1, 0, 1], size=len(c), p=[0.3, 0.4, 0.3])
    conf = rng.uniform(0.3, 0.9, len(c))
    half_kelly = engine.make_config({"sizing": "half_kelly", "slippage_vol_k": 0.1, "daily_dd_halve": 0.01,
                                     "weekly_dd_halt": 0.03})
    # 10x on a wild random walk (2 % a bar), 6-hour holds: trades until one is liquidated
    walk = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 800)))
    opens = np.r_[100, walk[:-1]]
    wild = candles(opens, np.maximum(opens, walk) * 1.005, np.minimum(opens, walk) * 0.995, walk)
    leveraged = engine.make_config({**FREE, "fixed_fraction": 10.0, "max_position": 10.0, "signal_exit": "none",
                                    "slippage_bps": 1.0, "fee_taker": 0.00055, "max_hold_hours": 6})
    for market, cfg, has_liquidation in ((c, half_kelly, False), (wild, leveraged, True)):
        p = engine._align(market, sig, conf, None, None)
        frac = engine.position_fractions(len(market), p.confidence, cfg)
        fast = engine.simulate(p, cfg, p.sig, frac)
        saved = engine._simulate
        try:
            engine._simulate = engine._simulate_py
            slow = engine.simulate(p, cfg, p.sig, frac)
        finally:
            engine._simulate = saved
        assert len(fast[5]) > 20 and (engine.LIQUIDATION in fast[14]) == has_liquidation
        if cfg is half_kelly:  # both drawdown rules acted, and both engines counted the same
            assert fast[16].min() > 0
        for a, b in zip(fast, slow):
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_vectorised_buy_and_hold_equals_the_state_machine():
    from core.data.synthetic import generate_market

    c = next(iter(generate_market("BTC/USDT", "1h", periods=400, seed=2).values()))
    for cfg in ({}, {"slippage_bps": 5.0, "slippage_vol_k": 0.2, "fee_taker": 0.001}):
        cfg = engine.make_config(cfg)
        p = engine._align(c, np.ones(len(c)), None, None, None)
        fast = engine.buy_and_hold(p, cfg)
        loop = engine.simulate(p, cfg, np.ones(len(c), dtype=np.int8), np.ones(len(c)), plain=True)
        for a, b in zip(fast, loop):
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_bad_input_is_a_sentence():
    c = candles([100, 100, 100])
    with pytest.raises(UserError, match="fewer than 2 candles"):
        run_backtest(c, [1, 1, 1], FREE, start="2024-01-01 02:00")
    with pytest.raises(UserError, match="-1, 0 or \\+1"):
        run_backtest(c, [2, 0, 0], FREE)
    with pytest.raises(UserError, match="unknown backtest setting"):
        run_backtest(c, [1, 0, 0], {"stop": "fixed"})
    bad = c.copy()
    bad.iloc[1, 0] = np.nan
    with pytest.raises(UserError, match="missing or non-positive"):
        run_backtest(bad, [1, 0, 0], FREE)


def test_slippage_is_bps_plus_k_atr_over_close_and_every_market_fill_uses_it():
    # the one formula (compiled by numba when present, plain Python otherwise)
    assert engine.slippage_fraction(10.0, 0.0, 5.0, 100.0) == pytest.approx(0.001)
    assert engine.slippage_fraction(10.0, 0.5, 2.0, 100.0) == pytest.approx(0.001 + 0.5 * 2.0 / 100.0)
    assert engine.slippage_fraction(10.0, 0.5, np.nan, 100.0) == pytest.approx(0.001)  # ATR not defined yet
    # the fills: ATR(2) is defined from bar 1 on; k x ATR / close of the bar before an open fill, of the
    # bar itself for the fill at the last close; the intrabar stop fill uses the previous close's figure
    o = [100.0, 100.0, 102.0, 104.0, 103.0, 103.5, 100.0, 100.0]
    h = [101.0, 103.0, 105.0, 106.0, 104.0, 104.0, 101.0, 101.0]
    lo = [99.0, 99.0, 101.0, 103.0, 102.9, 95.0, 99.0, 99.0]
    cl = [100.0, 102.0, 104.0, 103.0, 103.5, 100.0, 100.0, 100.0]
    c = candles(o, h, lo, cl)
    cfg = {**FREE, "slippage_bps": 5.0, "slippage_vol_k": 0.5, "atr_window": 2, "signal_exit": "weak"}
    a = engine._align(c, np.zeros(len(c)), None, None, None, 2).arrays["atr"]
    assert np.isnan(a[0]) and np.isfinite(a[1:]).all()

    def slip(j: int) -> float:
        return 5e-4 + 0.5 * a[j] / cl[j]

    res = run_backtest(c, [0, 1, 0, 0, 0, 0, 1, 1], cfg)
    first, last = res.trades.iloc[0], res.trades.iloc[1]
    assert (first.entry_bar, first.exit_bar, last.entry_bar, last.exit_bar) == (2, 3, 7, 7)
    assert first.entry_price == pytest.approx(o[2] * (1 + slip(1)))       # entry at bar 2's open
    assert first.exit_price == pytest.approx(o[3] * (1 - slip(2)))        # signal exit at bar 3's open
    assert last.exit_reason == "end" and last.exit_price == pytest.approx(cl[7] * (1 - slip(7)))
    stop_cfg = {**cfg, "stop_loss": "fixed", "stop_loss_pct": 0.02, "signal_exit": "none"}
    t = run_backtest(c, [0, 0, 0, 1, 1, 1, 1, 1], stop_cfg).trades.iloc[0]
    entry = o[4] * (1 + slip(3))
    assert (t.entry_bar, t.exit_bar, t.exit_reason) == (4, 5, "stop")      # bar 5's low 95 hits the stop
    assert t.exit_price == pytest.approx(entry * 0.98 * (1 - slip(4)))


def _probabilities(c: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = c.index[60:-20]
    p_up = rng.uniform(0, 1, len(ts))
    p_down = rng.uniform(0, 1 - p_up)
    return pd.DataFrame({"timestamp": ts, "prob_down": p_down, "prob_flat": 1 - p_up - p_down, "prob_up": p_up})


@pytest.mark.parametrize("cfg", [{}, {"long_only": True, "sizing": "confidence", "slippage_vol_k": 0.1}])
def test_threshold_sweep_at_a_threshold_is_the_plain_backtest_at_that_threshold(cfg, monkeypatch):
    from core.backtest import api
    from core.data.synthetic import generate_market

    c = next(iter(generate_market("BTC/USDT", "1h", periods=1200, seed=7).values()))
    preds = _probabilities(c)
    classes = ["down", "flat", "up"]
    seen: list[tuple] = []
    real = api.simulate

    def spy(p, conf, sig, frac, plain=False):
        out = real(p, conf, sig, frac, plain)
        seen.append((sig.copy(), out[1].copy()))
        return out

    monkeypatch.setattr(api, "simulate", spy)
    start, end = c.index[300], c.index[1000]
    sweep = api.threshold_sweep(c, preds, classes, cfg, [0.4, 0.55], start=start, end=end)
    for k, thr in enumerate((0.4, 0.55)):
        ref = api.backtest_predictions(c, preds, classes, {**cfg, "threshold": thr}, start=start, end=end)
        row = sweep.iloc[k]
        # the same signals go in and the same positions come out as a plain backtest at that threshold
        np.testing.assert_array_equal(seen[k][0], ref.signals.to_numpy())
        np.testing.assert_array_equal(seen[k][1], ref.positions.to_numpy())
        assert row.n_trades == ref.metrics["n_trades"] > 0
        for key in ("sharpe", "total_return", "max_drawdown", "exposure"):
            assert row[key] == pytest.approx(ref.metrics[key], rel=1e-12)


def test_the_stop_note_says_when_the_atr_stop_cannot_fire():
    """The defaults (2 ATR stop, 1.5 ATR trailing from the peak) are the source document's. The trailing stop
    starts inside the ATR stop, so the ATR stop never acts: any multiple from 1.5 up gives the same backtest,
    which is what the note says; below the trailing multiple the ATR stop acts and the note is gone."""
    from core.backtest.api import backtest_predictions
    from core.backtest.config import make_config
    from core.data.synthetic import generate_market

    c = next(iter(generate_market("BTC/USDT", "1h", periods=1500, seed=7).values()))
    preds, classes = _probabilities(c), ["down", "flat", "up"]
    runs = {k: backtest_predictions(c, preds, classes, {"threshold": 0.5, "stop_atr_k": k}) for k in (1.0, 2.0, 5.0)}
    assert runs[2.0].trades.equals(runs[5.0].trades) and runs[2.0].metrics == runs[5.0].metrics
    assert "stop" in set(runs[1.0].trades.exit_reason) and not runs[1.0].trades.equals(runs[2.0].trades)
    assert "the 2 ATR stop behind it never fires" in make_config().stop_note()
    assert make_config(stop_atr_k=1.0).stop_note() is None and make_config(trailing_atr_k=0).stop_note() is None
    assert make_config(stop_loss="fixed").stop_note() is None
