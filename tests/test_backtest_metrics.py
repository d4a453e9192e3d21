"""Metrics on hand-computed cases, signals from probabilities and rules, sizing formulas, config checks."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.backtest.config import make_config
from core.backtest.metrics import compute_metrics, drawdown, longest_underwater, metrics_table, monthly_returns
from core.backtest.signals import (confidence_from_probabilities, ma_cross_signals, signals_from_probabilities)
from core.backtest.sizing import position_fractions
from core.errors import UserError


def test_metrics_of_a_three_bar_daily_curve_match_hand_computation():
    # returns +10 %, -10 %, +10 % on daily bars (365 a year)
    eq = np.array([110.0, 99.0, 108.9])
    trades = pd.DataFrame({"pnl": [10.0, -5.0, 20.0, -5.0], "bars_held": [1, 2, 3, 2]})
    m = compute_metrics(eq, 100.0, 86400, trades, np.array([True, True, False]), traded_notional=217.8,
                        fees=0.5)
    assert m["total_return"] == pytest.approx(0.089)
    # mean 1/30, sample std sqrt(((1/15)^2 * 2 + (2/15)^2) / 2) = 0.11547 -> per-bar Sharpe 1/sqrt(12)
    assert m["sharpe"] == pytest.approx(math.sqrt(365) / math.sqrt(12))
    assert m["volatility"] == pytest.approx(0.11547005 * math.sqrt(365))
    # downside deviation sqrt(0.01 / 3)
    assert m["sortino"] == pytest.approx((1 / 30) / math.sqrt(0.01 / 3) * math.sqrt(365))
    assert m["max_drawdown"] == pytest.approx(-0.1)
    assert m["max_drawdown_duration"] == 2 and m["max_drawdown_duration_days"] == pytest.approx(2.0)
    assert m["cagr"] == pytest.approx(1.089 ** (365 / 3) - 1)
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.1)
    assert m["win_rate"] == 0.5 and m["profit_factor"] == pytest.approx(3.0) and m["n_trades"] == 4
    assert m["avg_holding"] == 2.0 and m["avg_holding_hours"] == 48.0
    assert m["exposure"] == pytest.approx(2 / 3)
    assert m["turnover"] == pytest.approx(217.8 / eq.mean())
    assert m["fees_paid"] == 0.5 and m["fees_paid_pct"] == pytest.approx(0.005)


def test_hourly_annualisation_and_undefined_cases():
    eq = np.array([101.0, 100.0, 102.0, 101.0])
    m = compute_metrics(eq, 100.0, 3600)
    r = np.array([0.01, -1 / 101, 0.02, -1 / 102])
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(8760))
    flat = compute_metrics(np.full(5, 100.0), 100.0, 3600)
    assert math.isnan(flat["sharpe"]) and math.isnan(flat["sortino"]) and flat["max_drawdown"] == 0.0
    assert flat["n_trades"] == 0 and math.isnan(flat["win_rate"]) and math.isnan(flat["profit_factor"])
    only_wins = compute_metrics(eq, 100.0, 3600, pd.DataFrame({"pnl": [1.0], "bars_held": [1]}))
    assert only_wins["profit_factor"] == math.inf
    table = metrics_table(m, flat)
    assert table.loc["Sharpe", "buy & hold"] == "n/a" and table.loc["Total return", "strategy"] == "1.00 %"
    # one trade (buy and hold is one): a 100 % win rate and an infinite profit factor say nothing
    one = metrics_table(only_wins, only_wins)
    assert one.loc["Profit factor", "buy & hold"] == one.loc["Win rate", "strategy"] == "n/a (1 trade)"


def test_a_market_with_sessions_is_annualised_by_the_bars_it_really_has():
    """An imported stock file (7 hourly bars a weekday) has ~1,827 bars a year, not 8,760: annualising
    with the calendar would inflate its Sharpe by sqrt(8760 / 1827) = 2.2x. Crypto keeps the calendar,
    also with a few missing bars."""
    days = pd.bdate_range("2024-01-01", periods=260, tz="UTC")
    idx = pd.DatetimeIndex([d + pd.Timedelta(hours=h) for d in days for h in range(14, 21)])
    r = np.random.default_rng(0).normal(0.0005, 0.01, len(idx))
    eq = 100.0 * np.cumprod(1 + r)
    m = compute_metrics(eq, 100.0, 3600, index=idx)
    held = len(idx) / (((idx[-1] - idx[0]).total_seconds() + 3600) / (365 * 86400))
    assert 1750 < held < 1900 and m["bars_per_year"] == pytest.approx(held)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(held))
    assert m["cagr"] == pytest.approx((eq[-1] / 100.0) ** (365 * 86400 / ((idx[-1] - idx[0]).total_seconds() + 3600)) - 1)
    crypto = pd.date_range("2024-01-01", periods=2000, freq="h", tz="UTC").delete(range(500, 520))
    assert compute_metrics(eq[:len(crypto)], 100.0, 3600, index=crypto)["bars_per_year"] == 8760
    assert compute_metrics(eq[:50], 100.0, 3600, index=idx[:50])["bars_per_year"] == 8760  # a week says too little
    # two fetched ranges a year apart: the hole is missing data, not a market closed for nine months
    two = pd.date_range("2024-01-01", "2024-04-30", freq="h", tz="UTC").append(
        pd.date_range("2025-01-01", "2025-04-30", freq="h", tz="UTC"))
    assert compute_metrics(np.full(len(two), 100.0), 100.0, 3600, index=two)["bars_per_year"] == 8760
    assert metrics_table(m, m).loc["Bars a year (annualising)", "strategy"] == f"{round(held):,}"


def test_drawdown_counts_the_starting_capital_as_a_peak():
    dd = drawdown(np.array([90.0, 95.0, 100.0, 120.0, 60.0]), 100.0)
    assert dd == pytest.approx([-0.1, -0.05, 0.0, 0.0, -0.5])
    assert longest_underwater(dd) == 2 and longest_underwater(np.zeros(3)) == 0


def test_monthly_returns_table():
    idx = pd.date_range("2024-01-30", "2024-03-02", freq="D", tz="UTC")
    eq = pd.Series(100.0, index=idx)
    eq[idx >= "2024-01-31"] = 110.0
    eq[idx >= "2024-02-29"] = 99.0
    eq[idx >= "2024-03-02"] = 108.9
    t = monthly_returns(eq, 100.0)
    assert list(t.index) == [2024] and list(t.columns) == list(range(1, 13))
    assert t.loc[2024, 1] == pytest.approx(0.1) and t.loc[2024, 2] == pytest.approx(-0.1)
    assert t.loc[2024, 3] == pytest.approx(0.1) and np.isnan(t.loc[2024, 4])


def _preds(up, down):
    up, down = np.asarray(up, float), np.asarray(down, float)
    ts = pd.date_range("2024-01-01", periods=len(up), freq="h", tz="UTC")
    return pd.DataFrame({"timestamp": ts, "y_true": 0, "prob_down": down, "prob_flat": 1 - up - down,
                         "prob_up": up, "split": "test"})


def test_signals_from_probabilities():
    p = _preds([0.7, 0.2, 0.5, 0.45, 0.6], [0.1, 0.65, 0.3, 0.45, 0.61])
    classes = ["down", "flat", "up"]
    assert signals_from_probabilities(p, classes, 0.6).tolist() == [1, -1, 0, 0, -1]
    assert signals_from_probabilities(p, classes, 0.6, long_only=True).tolist() == [1, 0, 0, 0, 0]
    # a low threshold both clear: the larger wins, a tie stays flat
    assert signals_from_probabilities(p, classes, 0.4).tolist() == [1, -1, 1, 0, -1]
    assert confidence_from_probabilities(p, classes).tolist() == pytest.approx([0.7, 0.65, 0.5, 0.45, 0.61])
    binary = p.drop(columns=["prob_flat"])
    assert signals_from_probabilities(binary, ["down", "up"], 0.55).tolist() == [1, -1, 0, 0, -1]
    with pytest.raises(UserError, match="no 'up' class"):
        signals_from_probabilities(p, ["a", "b", "c"], 0.6)


def test_ma_cross_uses_only_past_closes():
    idx = pd.date_range("2024-01-01", periods=8, freq="h", tz="UTC")
    close = pd.Series([1, 2, 3, 4, 3, 2, 1, 0], index=idx, dtype=float)
    c = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0})
    s = ma_cross_signals(c, 2, 4)
    # SMA2 vs SMA4 from bar 3: (3.5 vs 2.5) up, (3.5 vs 3) up, (2.5 vs 3) down, (1.5 vs 2.5) down...
    assert s.tolist() == [0, 0, 0, 1, 1, -1, -1, -1]
    assert ma_cross_signals(c, 2, 4, long_only=True).tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    changed = c.copy()
    changed.iloc[6:] = 100.0
    assert ma_cross_signals(changed, 2, 4).tolist()[:6] == s.tolist()[:6]


def test_sizing_formulas():
    p = np.array([0.6, 0.75, 0.35, np.nan])
    conf = position_fractions(4, p, make_config({"sizing": "confidence", "fixed_fraction": 0.5}))
    assert conf == pytest.approx([0.1, 0.25, 0.0, 0.0])
    # Kelly f = p - (1 - p) / b with b = 1.5: 0.6 -> 0.3333, 0.75 -> 0.5833 (capped at 0.25), 0.35 -> < 0
    kelly = position_fractions(4, p, make_config({"sizing": "kelly"}))
    assert kelly == pytest.approx([0.25, 0.25, 0.0, 0.0])
    half = position_fractions(4, p, make_config({"sizing": "half_kelly"}))
    assert half == pytest.approx([1 / 6, 0.25, 0.0, 0.0])
    b1 = position_fractions(4, p, make_config({"sizing": "kelly", "win_loss_ratio": 1.0, "kelly_cap": 1.0}))
    assert b1 == pytest.approx([0.2, 0.5, 0.0, 0.0])  # 2p - 1
    capped = make_config({"sizing": "confidence", "fixed_fraction": 3.0, "max_position": 2.0})
    assert position_fractions(3, np.array([1.0, 0.9, 0.6]), capped) == pytest.approx([2.0, 2.0, 0.6])
    # a fixed fraction above the cap is refused, not silently cut to the cap
    with pytest.raises(UserError, match="fixed_fraction 3 is above max_position 1"):
        make_config({"fixed_fraction": 3.0})
    assert position_fractions(2, None, make_config({"fixed_fraction": 3.0, "max_position": 3.0})) == \
        pytest.approx([3.0, 3.0])
    with pytest.raises(UserError, match="needs a run's probabilities"):
        position_fractions(3, None, make_config({"sizing": "kelly"}))


def test_cagr_of_a_huge_move_over_a_few_bars_is_undefined_not_an_overflow():
    idx = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    m = compute_metrics(np.array([10_000.0, 15_000, 20_000, 26_000]), 10_000.0, 3600, index=idx)
    assert m["total_return"] == pytest.approx(1.6) and math.isnan(m["cagr"])
    year = compute_metrics(np.full(8760, 11_000.0), 10_000.0, 3600)
    assert year["cagr"] == pytest.approx(0.1)


def test_config_checks_and_set_values():
    cfg = make_config({"threshold": 1, "long_only": "true", "atr_window": 10.0})
    assert cfg.threshold == 1.0 and cfg.long_only is True and cfg.atr_window == 10
    assert cfg.fee_taker == pytest.approx(0.00055) and cfg.fee_maker == pytest.approx(0.0002)
    for bad, msg in [({"sizing": "martingale"}, "unknown sizing"), ({"threshold": 1.5}, "threshold must"),
                     ({"stop_loss": "magic"}, "unknown stop_loss"), ({"long_only": "maybe"}, "true or false"),
                     ({"ma_fast": 50, "ma_slow": 20}, "shorter"), ({"fee_taker": -0.1}, "fee_taker"),
                     ({"nope": 1}, "unknown backtest setting")]:
        with pytest.raises(UserError, match=msg):
            make_config(bad)
