"""Performance metrics of an equity curve and its trades, annualised from the bar length.

Crypto trades around the clock, so a year has 365 x 24 x 3600 / bar_seconds bars (8,760 for 1h). A market
with sessions (an imported stock or futures file: nights and weekends without bars) has far fewer, and the
calendar count would inflate its Sharpe and volatility by sqrt(8,760 / bars it really has). So when the bar
times are given and the span holds less than 90 % of the calendar's bars, bars_per_year is what the span
really holds per year (`bars_per_year(bar_seconds, index)`; the value used is returned as `bars_per_year`).
Conventions (all from per-bar simple returns r of the marked-to-market equity, risk-free rate 0):
- total_return = E_end / E_0 - 1; cagr = (E_end / E_0) ** (1 / years) - 1 with years = bars / bars_per_year
  (undefined, NaN, where a few bars would compound past a float)
- volatility = std(r, ddof=1) x sqrt(bars_per_year); sharpe = mean(r) / std(r, ddof=1) x sqrt(bars_per_year)
- sortino = mean(r) / sqrt(mean(min(r, 0)^2)) x sqrt(bars_per_year) (downside deviation over all bars)
- max_drawdown = min(E / running peak - 1) (<= 0; the starting capital counts as a peak);
  max_drawdown_duration = the longest run of bars below a previous peak; calmar = cagr / |max_drawdown|
- win_rate = share of trades with net pnl > 0; profit_factor = gross profit / gross loss (net of fees)
- avg_holding = mean bars from entry to exit; exposure = share of bars with a position open at any time
- turnover = traded notional / mean equity over the span (how many times the book was traded)
- fees_paid in account currency (fees_paid_pct: as a fraction of the starting capital)
Undefined values (no trades, zero volatility) are NaN, shown as "n/a" and written as JSON null.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pandas as pd

SECONDS_PER_YEAR = 365 * 24 * 3600

METRIC_LABELS: dict[str, str] = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "volatility": "Volatility (ann.)",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "calmar": "Calmar",
    "max_drawdown": "Max drawdown",
    "max_drawdown_duration": "Max drawdown duration (bars)",
    "max_drawdown_duration_days": "Max drawdown duration (days)",
    "win_rate": "Win rate",
    "profit_factor": "Profit factor",
    "n_trades": "Trades",
    "avg_holding": "Average holding (bars)",
    "avg_holding_hours": "Average holding (hours)",
    "exposure": "Exposure",
    "turnover": "Turnover (x mean equity)",
    "fees_paid": "Fees paid (USDT)",
    "fees_paid_pct": "Fees paid (% of capital)",
    "final_equity": "Final equity (USDT)",
    "bars_per_year": "Bars a year (annualising)",
}
PER_TRADE = {"win_rate", "profit_factor"}  # statistics over trades: empty words for a single one
PERCENT_METRICS = {"total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure", "fees_paid_pct"}


SESSION_SHARE = 0.9  # below this share of the calendar's bars, a span is a market with sessions
MIN_SESSION_SPAN_S = 14 * 86400  # shorter spans say too little about a market's trading hours
HOLE_S = 7 * 86400  # no market closes for longer than a week: a longer gap is missing data


def bars_per_year(bar_seconds: float, index: Optional[pd.DatetimeIndex] = None) -> float:
    """Bars in a year: the calendar's (around the clock), or, when `index` spans two weeks or more and holds
    under 90 % of the calendar's bars (a market with sessions), the bars per year it really holds. Missing
    bars of a 24/7 market (a few gaps) stay on the calendar count, and so does a dataset of separate ranges:
    a gap longer than a week is a hole in the data, not closed hours, and is left out of the span."""
    calendar = SECONDS_PER_YEAR / float(bar_seconds)
    if index is None or len(index) < 2:
        return calendar
    steps = (index[1:] - index[:-1]).total_seconds().to_numpy()
    holes = steps > HOLE_S
    span = float(steps[~holes].sum()) + (int(holes.sum()) + 1) * float(bar_seconds)
    if span < MIN_SESSION_SPAN_S:
        return calendar
    held = len(index) * SECONDS_PER_YEAR / span
    return held if held < SESSION_SHARE * calendar else calendar


def returns_from_equity(equity: np.ndarray, initial: float) -> np.ndarray:
    """Per-bar simple returns; the first bar's is against the starting capital."""
    eq = np.asarray(equity, dtype=np.float64)
    prev = np.concatenate([[initial], eq[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(prev != 0, eq / prev - 1.0, 0.0)


def drawdown(equity: np.ndarray, initial: float) -> np.ndarray:
    """E / running peak - 1 per bar (<= 0), the starting capital counting as the first peak."""
    eq = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(np.concatenate([[initial], eq]))[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, eq / peak - 1.0, -1.0)


def longest_underwater(dd: np.ndarray) -> int:
    """The longest run of consecutive bars below a previous peak."""
    under = np.asarray(dd) < 0
    if not under.any():
        return 0
    # run lengths of True: positions where a run starts/ends
    padded = np.concatenate([[False], under, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return int((edges[1::2] - edges[0::2]).max())


def _nan() -> float:
    return float("nan")


def compute_metrics(equity: np.ndarray, initial: float, bar_seconds: float,
                    trades: Optional[pd.DataFrame] = None, in_market: Optional[np.ndarray] = None,
                    traded_notional: float = 0.0, fees: float = 0.0,
                    index: Optional[pd.DatetimeIndex] = None) -> dict[str, Any]:
    """The metrics above; `index` (the bar times) lets a market with sessions be annualised by the bars it
    really has per year (see `bars_per_year`)."""
    eq = np.asarray(equity, dtype=np.float64)
    n = len(eq)
    ppy = bars_per_year(bar_seconds, index)
    out: dict[str, Any] = {}
    r = returns_from_equity(eq, initial)
    final = float(eq[-1]) if n else float(initial)
    out["total_return"] = final / initial - 1.0
    years = n / ppy if n else 0.0
    if years > 0 and final > 0:
        growth = math.log(final / initial) / years  # a big move over a few bars compounds past any float
        out["cagr"] = math.expm1(growth) if growth < 700.0 else _nan()
    elif final <= 0:
        out["cagr"] = -1.0
    else:
        out["cagr"] = _nan()
    sd = float(np.std(r, ddof=1)) if n > 1 else _nan()
    mean = float(np.mean(r)) if n else _nan()
    out["volatility"] = sd * math.sqrt(ppy) if n > 1 else _nan()
    out["sharpe"] = mean / sd * math.sqrt(ppy) if n > 1 and sd > 0 else _nan()
    down = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) if n else 0.0
    out["sortino"] = mean / down * math.sqrt(ppy) if down > 0 else _nan()
    dd = drawdown(eq, initial)
    mdd = float(dd.min()) if n else 0.0
    out["max_drawdown"] = min(mdd, 0.0)
    dur = longest_underwater(dd)
    out["max_drawdown_duration"] = dur
    out["max_drawdown_duration_days"] = dur * bar_seconds / 86400.0
    out["calmar"] = out["cagr"] / abs(mdd) if mdd < 0 and not math.isnan(out["cagr"]) else _nan()

    nt = 0 if trades is None else len(trades)
    out["n_trades"] = nt
    if nt:
        pnl = trades["pnl"].to_numpy(dtype=np.float64)
        wins, losses = pnl[pnl > 0], pnl[pnl < 0]
        out["win_rate"] = len(wins) / nt
        gross_loss = -float(losses.sum())
        out["profit_factor"] = float(wins.sum()) / gross_loss if gross_loss > 0 else (
            float("inf") if len(wins) else _nan())
        out["avg_holding"] = float(trades["bars_held"].mean())
        out["avg_holding_hours"] = out["avg_holding"] * bar_seconds / 3600.0
    else:
        out["win_rate"] = out["profit_factor"] = out["avg_holding"] = out["avg_holding_hours"] = _nan()
    out["exposure"] = float(np.mean(in_market)) if in_market is not None and n else 0.0
    mean_eq = float(np.mean(eq)) if n else initial
    out["turnover"] = traded_notional / mean_eq if mean_eq > 0 else _nan()
    out["fees_paid"] = float(fees)
    out["fees_paid_pct"] = float(fees) / initial
    out["final_equity"] = final
    out["bars_per_year"] = ppy
    out["span_days"] = n * bar_seconds / 86400.0
    return out


def monthly_returns(equity: pd.Series, initial: float) -> pd.DataFrame:
    """Calendar-month returns of the equity curve as a year x month table (NaN where no bars); the first
    month is measured from the starting capital."""
    if equity.empty:
        return pd.DataFrame(columns=range(1, 13), dtype=float)
    month_end = equity.resample("ME").last().dropna()
    prev = month_end.shift(1)
    prev.iloc[0] = initial
    # after a liquidation the account stays at 0: its later months are 0 %, not 0/0 (a blank "no bars")
    rets = (month_end / prev.where(prev != 0) - 1.0).where(prev != 0, 0.0)
    table = pd.DataFrame({"year": rets.index.year, "month": rets.index.month, "ret": rets.to_numpy()})
    out = table.pivot(index="year", columns="month", values="ret").reindex(columns=range(1, 13))
    out.index.name, out.columns.name = "year", "month"
    return out


def format_metric(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    if name in PERCENT_METRICS:
        return f"{value * 100:.2f} %"
    if name in ("n_trades", "max_drawdown_duration", "bars_per_year"):
        return f"{int(round(value)):,}"
    if name in ("fees_paid", "final_equity"):
        return f"{value:,.2f}"
    return f"{value:.2f}"


def metrics_table(strategy: dict[str, Any], buy_and_hold: dict[str, Any]) -> pd.DataFrame:
    """Strategy beside buy and hold, formatted for display (one row per metric)."""
    days = strategy.get("span_days")
    labels = dict(METRIC_LABELS)
    if days is not None and days < 365:  # a CAGR of a few months is that span's return compounded to a year
        span = f"{days:,.0f} days" if days >= 2 else f"{days * 24:,.0f} hours"
        labels["cagr"] = f"CAGR (annualised from {span})"
    def cell(m: dict[str, Any], k: str) -> str:
        n = m.get("n_trades")
        if k in PER_TRADE and isinstance(n, (int, float)) and n == 1:  # buy and hold is one trade: a 100 % win
            return "n/a (1 trade)"                                        # rate and an infinite factor say nothing
        return format_metric(k, m.get(k))

    rows = [{"metric": labels.get(k, k), "strategy": cell(strategy, k), "buy & hold": cell(buy_and_hold, k)}
            for k in METRIC_LABELS]
    return pd.DataFrame(rows).set_index("metric")
