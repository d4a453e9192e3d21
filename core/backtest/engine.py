"""The backtest engine: a per-bar state machine over candles and signals, compiled with numba.

Timing (no look-ahead):
- A signal formed at the close of bar t (from data up to that close) trades at the open of bar t+1.
- Stops and targets are checked against each bar's high and low. The stop level a bar is checked against was
  set at the previous close (the trailing stop ratchets only at closes, with that close's ATR), so a bar's
  own high never lifts the stop that its own low is tested against.
- When the stop and the target both lie inside one bar, the stop is assumed first (the worse case).
- An open beyond the stop (a gap) fills at the open, not at the stop; an open beyond the target fills at
  the open too (a resting limit order gets the better price).

At the open of each bar, in order: a new UTC day / ISO week resets its drawdown peak; an open position may
exit on a gap through its stop or target, the weekly halt, the time limit, or the signal (reversal, or
`weak`: the signal no longer supports the side); then a flat book may enter on the last close's signal
(never on a bar that already saw a non-signal exit; a signal reversal exits and re-enters at the same open).
Intrabar: stop, else target. At the close: mark to market, ratchet the trailing stop, check the drawdown
rules. The last bar closes any position at its close.

Accounting is linear (USDT-margined perpetual style): cash plus quantity x price; fractional quantities;
a short has a negative quantity. Fees are charged on each fill's notional (taker for market orders,
maker for take-profit limit orders); market fills move against the trader by the slippage. A take-profit
fills at its level when a bar touches it (a resting limit order: no slippage, no queue risk modelled).

Liquidation: the account can lose all its equity and no more. A position whose bar reaches the price at which
equity would be zero (the bankruptcy price, -cash / quantity: reachable by a leveraged long, or by a short
whose price more than doubles) is closed there, before any stop or target of that bar that would fill beyond
it, and the account stays at zero (a wiped-out account opens nothing more). A fill whose slippage and fee
would leave equity below zero is a liquidation too. Real exchanges liquidate earlier, at the maintenance
margin; the whole margin is lost either way.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd

from core.backtest.config import BacktestConfig, make_config
from core.backtest.metrics import compute_metrics, drawdown, monthly_returns, returns_from_equity
from core.backtest.sizing import position_fractions
from core.errors import DataError, UserError

EXIT_REASONS = {1: "signal", 2: "stop", 3: "trailing", 4: "take_profit", 5: "time", 6: "halt", 7: "end",
                8: "liquidation"}
LIQUIDATION = 8
_STOP_CODES = {"none": 0, "fixed": 1, "atr": 2}
_SIGNAL_EXIT_CODES = {"reversal": 0, "weak": 1, "none": 2}


def slippage_fraction(slip_bps, slip_vol_k, atr, close):
    """The adverse slippage of a market fill, as a fraction of price: `slip_bps` basis points plus
    `slip_vol_k` x ATR / close (the volatility part; skipped while the ATR is undefined). `atr` and `close`
    are the last known bar's (the close before an open fill, the bar itself for a fill at its close).

    Plain Python that numba compiles (`_compile`); the compiled state machine and the Python side
    (`buy_and_hold`) call this one function, so the formula is written once.
    """
    slip = slip_bps * 1e-4
    if slip_vol_k > 0.0 and atr == atr and close > 0.0:
        slip += slip_vol_k * atr / close
    return slip


def _simulate_py(open_, high, low, close, atr, sig, frac, day, week, long_only,
                 stop_kind, stop_pct, stop_atr_k, trail_k, tp_on, tp_pct, signal_exit, max_hold,
                 daily_dd, weekly_dd, fee_taker, fee_maker, slip_bps, slip_vol_k, capital):
    """The state machine (plain Python so numba can compile it; also runs uncompiled).

    Returns per-bar arrays (equity at close, direction at close, in-market flag, traded notional, fees), the
    trades as parallel arrays, and the drawdown rules' counts: [entries the weekly halt held back (bars where
    a flat book would have entered on the signal), entries opened at half size by the daily rule].
    """
    n = open_.shape[0]
    equity = np.empty(n)
    pos_dir = np.zeros(n, dtype=np.int8)
    in_market = np.zeros(n, dtype=np.bool_)
    notional = np.zeros(n)
    fees = np.zeros(n)
    m = n + 1
    t_entry = np.zeros(m, dtype=np.int64)
    t_exit = np.zeros(m, dtype=np.int64)
    t_dir = np.zeros(m, dtype=np.int8)
    t_qty = np.zeros(m)
    t_epx = np.zeros(m)
    t_xpx = np.zeros(m)
    t_fee = np.zeros(m)
    t_pnl = np.zeros(m)
    t_eq = np.zeros(m)
    t_reason = np.zeros(m, dtype=np.int8)
    t_open = np.zeros(m, dtype=np.bool_)   # exited at a bar's open (else intrabar or at the close)
    nt = 0
    # counts[0]: entries the weekly halt held back (a flat bar whose signal would have opened a position);
    # counts[1]: entries opened at half size by the daily rule
    counts = np.zeros(2, dtype=np.int64)

    cash = capital
    qty = 0.0
    direction = 0
    entry_bar = 0
    entry_px = 0.0
    entry_fee = 0.0
    stop = 0.0
    stop_is_trail = False
    tp = 0.0
    peak = 0.0
    eq_prev = capital
    cur_day = day[0]
    cur_week = week[0]
    day_peak = capital
    week_peak = capital
    halved = False
    halted = False
    need_atr = stop_kind == 2 or trail_k > 0.0

    for i in range(n):
        o = open_[i]
        exited = False
        signal_reversal = False
        if i > 0:
            if day[i] != cur_day:
                cur_day = day[i]
                day_peak = eq_prev
                halved = False
            if week[i] != cur_week:
                cur_week = week[i]
                week_peak = eq_prev
                halted = False
            a_prev = atr[i - 1]
            slip = slippage_fraction(slip_bps, slip_vol_k, a_prev, close[i - 1])
            s = sig[i - 1]
            # ---- exits at the open
            if direction != 0:
                reason = 0
                px = o
                maker = False
                liq = -cash / qty  # the bankruptcy price: equity cash + qty x price is zero there
                if (direction > 0 and o <= liq) or (direction < 0 and o >= liq):
                    reason = 8
                elif (direction > 0 and o <= stop) or (direction < 0 and o >= stop):
                    reason = 3 if stop_is_trail else 2
                elif tp_on and ((direction > 0 and o >= tp) or (direction < 0 and o <= tp)):
                    reason = 4
                    maker = True
                elif halted:
                    reason = 6
                elif max_hold > 0 and i - entry_bar >= max_hold:
                    reason = 5
                elif signal_exit == 0 and s == -direction:
                    reason = 1
                    signal_reversal = True
                elif signal_exit == 1 and s != direction:
                    reason = 1
                    signal_reversal = s == -direction
                if reason != 0:
                    if not maker:
                        px = o * (1.0 - slip) if direction > 0 else o * (1.0 + slip)
                    f = abs(qty) * px * (fee_maker if maker else fee_taker)
                    if reason == 8 or cash + qty * px - f < 0.0:  # nothing is left after this fill
                        reason = 8
                        px = liq
                        f = 0.0
                    cash = 0.0 if reason == 8 else cash + qty * px - f
                    notional[i] += abs(qty) * px
                    fees[i] += f
                    t_exit[nt] = i
                    t_xpx[nt] = px
                    t_fee[nt] = entry_fee + f
                    t_pnl[nt] = qty * (px - entry_px) - entry_fee - f
                    t_reason[nt] = reason
                    t_open[nt] = True
                    nt += 1
                    qty = 0.0  # out at the open: this bar counts as in the market only if a new trade opens
                    direction = 0
                    exited = True
            # ---- entry at the open
            # (a wiped-out account stops; the weekly rule blocks what would have been entered, and is counted)
            wants_entry = (direction == 0 and s != 0 and (not exited or signal_reversal) and not (long_only and s < 0)
                           and frac[i - 1] > 0.0 and (a_prev == a_prev or not need_atr) and o > 0.0 and cash > 0.0)
            if wants_entry and halted:
                counts[0] += 1
            elif wants_entry:
                f_size = frac[i - 1]
                if halved:
                    f_size *= 0.5
                    counts[1] += 1
                direction = 1 if s > 0 else -1
                px = o * (1.0 + slip) if direction > 0 else o * (1.0 - slip)
                eq_now = cash
                qty = direction * f_size * eq_now / px
                f = abs(qty) * px * fee_taker
                cash -= qty * px + f
                notional[i] += abs(qty) * px
                fees[i] += f
                entry_bar = i
                entry_px = px
                entry_fee = f
                peak = px
                if stop_kind == 1:
                    stop = px * (1.0 - direction * stop_pct)
                elif stop_kind == 2:
                    stop = px - direction * stop_atr_k * a_prev
                else:
                    stop = -np.inf if direction > 0 else np.inf
                stop_is_trail = False
                if trail_k > 0.0:
                    trail = px - direction * trail_k * a_prev
                    if (direction > 0 and trail > stop) or (direction < 0 and trail < stop):
                        stop = trail
                        stop_is_trail = True
                if tp_on:
                    tp = px * (1.0 + direction * tp_pct)
                t_entry[nt] = i
                t_dir[nt] = direction
                t_qty[nt] = qty
                t_epx[nt] = px
                t_eq[nt] = eq_now
        # ---- intrabar: stop first, then target
        if direction != 0:
            in_market[i] = True
            reason = 0
            px = 0.0
            maker = False
            if direction > 0 and low[i] <= stop:
                reason = 3 if stop_is_trail else 2
                px = stop
            elif direction < 0 and high[i] >= stop:
                reason = 3 if stop_is_trail else 2
                px = stop
            elif tp_on and direction > 0 and high[i] >= tp:
                reason = 4
                px = tp
                maker = True
            elif tp_on and direction < 0 and low[i] <= tp:
                reason = 4
                px = tp
                maker = True
            f = 0.0
            if reason != 0:
                if not maker:
                    # a position is only ever opened at an open with i > 0, so bar i - 1 exists
                    slip = slippage_fraction(slip_bps, slip_vol_k, atr[i - 1], close[i - 1])
                    px = px * (1.0 - slip) if direction > 0 else px * (1.0 + slip)
                f = abs(qty) * px * (fee_maker if maker else fee_taker)
            # the bankruptcy price inside the bar comes before a target (the worse case, as for stops) and
            # before a stop that would fill beyond it
            liq = -cash / qty
            if ((reason == 0 or maker) and ((direction > 0 and low[i] <= liq) or (direction < 0 and high[i] >= liq))) \
                    or (reason != 0 and cash + qty * px - f < 0.0):
                reason = 8
                px = liq
                f = 0.0
            if reason != 0:
                cash = 0.0 if reason == 8 else cash + qty * px - f
                notional[i] += abs(qty) * px
                fees[i] += f
                t_exit[nt] = i
                t_xpx[nt] = px
                t_fee[nt] = entry_fee + f
                t_pnl[nt] = qty * (px - entry_px) - entry_fee - f
                t_reason[nt] = reason
                nt += 1
                qty = 0.0
                direction = 0
        # ---- the close
        c = close[i]
        if direction != 0 and i == n - 1:
            slip = slippage_fraction(slip_bps, slip_vol_k, atr[i], c)
            px = c * (1.0 - slip) if direction > 0 else c * (1.0 + slip)
            f = abs(qty) * px * fee_taker
            reason = 7
            if cash + qty * px - f < 0.0:
                reason = 8
                px = -cash / qty
                f = 0.0
            cash = 0.0 if reason == 8 else cash + qty * px - f
            notional[i] += abs(qty) * px
            fees[i] += f
            t_exit[nt] = i
            t_xpx[nt] = px
            t_fee[nt] = entry_fee + f
            t_pnl[nt] = qty * (px - entry_px) - entry_fee - f
            t_reason[nt] = reason
            nt += 1
            qty = 0.0
            direction = 0
        eq = cash + qty * c
        equity[i] = eq
        pos_dir[i] = direction
        if direction != 0:
            a_now = atr[i]
            if direction > 0:
                if high[i] > peak:
                    peak = high[i]
                if trail_k > 0.0 and a_now == a_now:
                    trail = peak - trail_k * a_now
                    if trail > stop:
                        stop = trail
                        stop_is_trail = True
            else:
                if low[i] < peak:
                    peak = low[i]
                if trail_k > 0.0 and a_now == a_now:
                    trail = peak + trail_k * a_now
                    if trail < stop:
                        stop = trail
                        stop_is_trail = True
        if eq > day_peak:
            day_peak = eq
        if eq > week_peak:
            week_peak = eq
        if daily_dd > 0.0 and eq < day_peak * (1.0 - daily_dd):
            halved = True
        if weekly_dd > 0.0 and eq < week_peak * (1.0 - weekly_dd):
            halted = True
        eq_prev = eq
    return (equity, pos_dir, in_market, notional, fees,
            t_entry[:nt], t_exit[:nt], t_dir[:nt], t_qty[:nt], t_epx[:nt], t_xpx[:nt], t_fee[:nt], t_pnl[:nt],
            t_eq[:nt], t_reason[:nt], t_open[:nt], counts)


def _compile():
    if os.environ.get("CNN_LAB_NO_NUMBA"):
        return _simulate_py, False
    if "numba" not in __import__("sys").modules:
        # numba's on-disk cache of the compiled loop goes inside the workspace, like every file we write
        from core.workspace import ws_path

        os.environ.setdefault("NUMBA_CACHE_DIR", str(ws_path("cache", "numba")))
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is pinned in requirements.txt
        return _simulate_py, False
    # numba resolves the helper through this module's globals when it compiles the loop, so the global must
    # be the compiled helper (Python callers get the same compiled function)
    global slippage_fraction
    slippage_fraction = numba.njit(cache=True, nogil=True)(slippage_fraction)
    return numba.njit(cache=True, nogil=True)(_simulate_py), True


_simulate, NUMBA = _compile()


# ------------------------------------------------------------------------------------------- the wrapper

@dataclass
class BacktestResult:
    """One backtest: the equity curves, per-bar returns and positions, the trades, and the metrics of the
    strategy and of buy and hold over the same span (backtesting.py's stats, as one object)."""
    equity: pd.Series                 # strategy equity at each close
    returns: pd.Series                # per-bar simple returns of `equity`
    positions: pd.Series              # direction held at each close (+1, -1, 0)
    trades: pd.DataFrame
    metrics: dict[str, Any]
    buy_and_hold: dict[str, Any]
    benchmark_equity: pd.Series       # buy and hold equity (same costs)
    config: BacktestConfig
    timeframe: str
    bar_seconds: int
    signals: pd.Series = field(repr=False, default_factory=lambda: pd.Series(dtype=np.int8))
    label: str = ""
    note: str = ""                    # e.g. the run's dataset changed since training
    # what the drawdown rules did: {"weekly_blocked": entries the weekly halt held back (bars where a flat book
    # would otherwise have entered on the signal), "daily_halved": entries opened at half size}
    rule_counts: dict[str, int] = field(default_factory=lambda: {"weekly_blocked": 0, "daily_halved": 0})

    @property
    def start(self) -> pd.Timestamp:
        return self.equity.index[0]

    @property
    def end(self) -> pd.Timestamp:
        return self.equity.index[-1]

    def drawdown(self) -> pd.Series:
        return pd.Series(drawdown(self.equity.to_numpy(), self.config.initial_capital), index=self.equity.index,
                         name="drawdown")

    def benchmark_drawdown(self) -> pd.Series:
        return pd.Series(drawdown(self.benchmark_equity.to_numpy(), self.config.initial_capital),
                         index=self.benchmark_equity.index, name="drawdown")

    def monthly_returns(self) -> pd.DataFrame:
        return monthly_returns(self.equity, self.config.initial_capital)

    def summary(self) -> dict[str, Any]:
        """The `--json` object: {"strategy": {...}, "buy_and_hold": {...}} plus what was run."""
        return {"strategy": dict(self.metrics), "buy_and_hold": dict(self.buy_and_hold),
                "span": {"start": str(self.start), "end": str(self.end), "bars": len(self.equity),
                         "timeframe": self.timeframe},
                "risk_rules": dict(self.rule_counts),
                "label": self.label, "config": self.config.to_dict(), **({"note": self.note} if self.note else {})}

    def returns_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"timestamp": self.returns.index, "strategy_return": self.returns.to_numpy(),
                             "equity": self.equity.to_numpy(), "position": self.positions.to_numpy()})


def bar_seconds_of(candles: pd.DataFrame) -> tuple[str, int]:
    """(timeframe name, seconds per bar) from `attrs["timeframe"]`, else from the typical bar spacing
    (`core.data.candles.bar_seconds`; a spacing with no standard name is called e.g. "420s")."""
    from core.data.candles import bar_seconds, timeframe_name

    secs = bar_seconds(candles)
    return timeframe_name(secs), secs


def max_hold_bars(hours: float, bar_seconds: int) -> int:
    """The time limit in bars of the timeframe (at least 1 bar when on; 0 = off)."""
    if hours <= 0:
        return 0
    return max(1, int(round(hours * 3600.0 / bar_seconds)))


@dataclass
class _Prepared:
    candles: pd.DataFrame
    arrays: dict[str, np.ndarray]
    sig: np.ndarray
    confidence: Optional[np.ndarray]
    timeframe: str
    bar_seconds: int


def _align(candles: pd.DataFrame, signals: Any, confidence: Any, start: Any, end: Any,
           atr_window: int = 14) -> _Prepared:
    if candles is None or len(candles) < 2:
        raise DataError("a backtest needs at least 2 candles")
    missing = [c for c in ("open", "high", "low", "close") if c not in candles]
    if missing:
        raise DataError(f"the candles have no {', '.join(missing)} column")
    tf, secs = bar_seconds_of(candles)
    if isinstance(signals, pd.Series):
        sig_s = signals
        if not isinstance(sig_s.index, pd.DatetimeIndex):
            raise UserError("signals must be indexed by timestamp")
        if start is None:
            start = sig_s.index.min()
        if end is None:
            end = sig_s.index.max()
    else:
        arr = np.asarray(signals)
        if arr.shape != (len(candles),):
            raise UserError("signals must be a timestamp-indexed series or have one value per candle")
        sig_s = pd.Series(arr, index=candles.index)
    # ATR over all candles first, so the span's first bars already have it (it only looks back)
    atr_all = _atr_with_window(candles, atr_window)
    mask = np.ones(len(candles), dtype=bool)
    if start is not None:
        mask &= candles.index >= _stamp(start, candles.index)
    if end is not None:
        mask &= candles.index <= _stamp(end, candles.index)
    span = candles.loc[mask]
    if len(span) < 2:
        raise UserError("the chosen span holds fewer than 2 candles: widen it")
    prices = span[["open", "high", "low", "close"]].to_numpy(dtype=np.float64)
    if not np.isfinite(prices).all() or (prices <= 0).any():
        raise DataError("the candles in the span have missing or non-positive prices")
    sig = sig_s.reindex(span.index).fillna(0).to_numpy()
    if not np.isin(sig, (-1, 0, 1)).all():
        raise UserError("signals must be -1, 0 or +1")
    conf = None
    if confidence is not None:
        if isinstance(confidence, pd.Series):
            conf = confidence.reindex(span.index).to_numpy(dtype=np.float64)
        else:
            c = np.asarray(confidence, dtype=np.float64)
            if c.shape != (len(candles),):
                raise UserError("confidence must be a timestamp-indexed series or have one value per candle")
            conf = c[mask]
    ix = span.index if span.index.tz is None else span.index.tz_convert("UTC")
    ns = ix.as_unit("ns").asi8
    days = ns // 86_400_000_000_000
    arrays = {"open": prices[:, 0].copy(), "high": prices[:, 1].copy(), "low": prices[:, 2].copy(),
              "close": prices[:, 3].copy(), "atr": atr_all[mask].astype(np.float64), "day": days.astype(np.int64),
              "week": ((days + 3) // 7).astype(np.int64)}  # 1970-01-01 was a Thursday: weeks start on Monday
    return _Prepared(span, arrays, sig.astype(np.int8), conf, tf, secs)


def _stamp(value: Any, index: pd.DatetimeIndex) -> pd.Timestamp:
    """`value` as a Timestamp comparable with `index` (naive times are read as UTC)."""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{value!r} is not a date or time") from exc
    if index.tz is not None and ts.tzinfo is None:
        return ts.tz_localize("UTC")
    if index.tz is None and ts.tzinfo is not None:
        return ts.tz_convert("UTC").tz_localize(None)
    return ts


def _atr_with_window(candles: pd.DataFrame, window: int) -> np.ndarray:
    from core.features.indicators import atr as atr_fn

    return atr_fn(candles["high"], candles["low"], candles["close"], window).to_numpy()


def simulate(p: _Prepared, cfg: BacktestConfig, sig: np.ndarray, frac: np.ndarray, plain: bool = False) -> tuple:
    """Run the compiled state machine on prepared arrays (`plain` = buy and hold: no stops, no rules)."""
    a = p.arrays
    if plain:
        return _simulate(a["open"], a["high"], a["low"], a["close"], a["atr"], sig, frac, a["day"], a["week"],
                         False, 0, 0.0, 0.0, 0.0, False, 0.0, 2, 0, 0.0, 0.0, cfg.fee_taker, cfg.fee_maker,
                         cfg.slippage_bps, cfg.slippage_vol_k, cfg.initial_capital)
    return _simulate(a["open"], a["high"], a["low"], a["close"], a["atr"], sig, frac, a["day"], a["week"],
                     bool(cfg.long_only), _STOP_CODES[cfg.stop_loss], float(cfg.stop_loss_pct),
                     float(cfg.stop_atr_k), float(cfg.trailing_atr_k), cfg.take_profit == "fixed",
                     float(cfg.take_profit_pct), _SIGNAL_EXIT_CODES[cfg.signal_exit],
                     max_hold_bars(cfg.max_hold_hours, p.bar_seconds), float(cfg.daily_dd_halve),
                     float(cfg.weekly_dd_halt), float(cfg.fee_taker), float(cfg.fee_maker),
                     float(cfg.slippage_bps), float(cfg.slippage_vol_k), float(cfg.initial_capital))


def buy_and_hold(p: _Prepared, cfg: BacktestConfig) -> tuple:
    """Buy and hold without the loop: all in at bar 1's open, out at the last close, the same fees and
    slippage as the strategy (equal to `simulate(..., plain=True)` with an always-long signal; tested)."""
    a = p.arrays
    o, c, atr_ = a["open"], a["close"], a["atr"]
    n = len(c)

    def slip(j: int) -> float:
        return float(slippage_fraction(float(cfg.slippage_bps), float(cfg.slippage_vol_k), float(atr_[j]),
                                       float(c[j])))

    px_in = o[1] * (1 + slip(0))
    qty = cfg.initial_capital / px_in
    fee_in = qty * px_in * cfg.fee_taker
    cash = cfg.initial_capital - qty * px_in - fee_in
    px_out = c[-1] * (1 - slip(n - 1))
    fee_out = qty * px_out * cfg.fee_taker
    equity = cash + qty * c
    equity[0] = cfg.initial_capital
    equity[-1] = cash + qty * px_out - fee_out
    pos = np.zeros(n, dtype=np.int8)
    pos[1:-1] = 1
    in_market = np.ones(n, dtype=np.bool_)
    in_market[0] = False
    notional = np.zeros(n)
    fees = np.zeros(n)
    notional[1] += qty * px_in
    fees[1] += fee_in
    notional[-1] += qty * px_out
    fees[-1] += fee_out
    pnl = qty * (px_out - px_in) - fee_in - fee_out
    one = lambda v, dt=np.float64: np.array([v], dtype=dt)  # noqa: E731
    return (equity, pos, in_market, notional, fees, one(1, np.int64), one(n - 1, np.int64), one(1, np.int8),
            one(qty), one(px_in), one(px_out), one(fee_in + fee_out), one(pnl), one(cfg.initial_capital),
            one(7, np.int8), one(False, np.bool_), np.zeros(2, dtype=np.int64))


def _trades_frame(index: pd.DatetimeIndex, out: tuple, bar_seconds: int) -> pd.DataFrame:
    (t_entry, t_exit, t_dir, t_qty, t_epx, t_xpx, t_fee, t_pnl, t_eq, t_reason, t_open) = out[5:16]
    # an exit at an open ends the trade at that bar's start; an intrabar (or closing) exit counts the whole bar
    bars = (t_exit - t_entry + np.where(t_open, 0, 1)).astype(np.int64)
    return pd.DataFrame({
        "entry_time": index[t_entry], "exit_time": index[t_exit],
        "side": np.where(t_dir > 0, "long", "short"),
        "qty": np.abs(t_qty), "entry_price": t_epx, "exit_price": t_xpx,
        "bars_held": bars, "hours_held": bars * bar_seconds / 3600.0,
        "fees": t_fee, "pnl": t_pnl,
        "return": np.divide(t_pnl, t_eq, out=np.zeros_like(t_pnl), where=t_eq > 0),
        "exit_reason": [EXIT_REASONS.get(int(r), "?") for r in t_reason],
        "entry_bar": t_entry, "exit_bar": t_exit,
    })


def _metrics_of(out: tuple, cfg: BacktestConfig, bar_seconds: int, trades: pd.DataFrame,
                index: pd.DatetimeIndex) -> dict[str, Any]:
    equity, _, in_market, notional, fees = out[:5]
    return compute_metrics(equity, cfg.initial_capital, bar_seconds, trades, in_market,
                           float(notional.sum()), float(fees.sum()), index)


def run_backtest(candles: pd.DataFrame, signals: Any, config: Any = None, confidence: Any = None,
                 start: Any = None, end: Any = None, label: str = "") -> BacktestResult:
    """Backtest `signals` (+1/-1/0 at each bar's close) on `candles` with `config`.

    `signals` is a timestamp-indexed Series (bars without a value are flat; by default the span is from its
    first to its last timestamp) or an array with one value per candle. `confidence` (same shapes) feeds the
    confidence / Kelly sizings. `start`/`end` narrow the span.
    """
    cfg = make_config(config)
    p = _align(candles, signals, confidence, start, end, cfg.atr_window)
    frac = position_fractions(len(p.sig), p.confidence, cfg)
    out = simulate(p, cfg, p.sig, frac)
    idx = p.candles.index
    trades = _trades_frame(idx, out, p.bar_seconds)
    metrics = _metrics_of(out, cfg, p.bar_seconds, trades, idx)
    bh = buy_and_hold(p, cfg)
    bh_trades = _trades_frame(idx, bh, p.bar_seconds)
    bh_metrics = _metrics_of(bh, cfg, p.bar_seconds, bh_trades, idx)
    equity = pd.Series(out[0], index=idx, name="equity")
    return BacktestResult(
        equity=equity,
        returns=pd.Series(returns_from_equity(out[0], cfg.initial_capital), index=idx, name="return"),
        positions=pd.Series(out[1], index=idx, name="position"),
        trades=trades, metrics=metrics, buy_and_hold=bh_metrics,
        benchmark_equity=pd.Series(bh[0], index=idx, name="buy_and_hold"),
        config=cfg, timeframe=p.timeframe, bar_seconds=p.bar_seconds,
        signals=pd.Series(p.sig, index=idx, name="signal"), label=label,
        rule_counts={"weekly_blocked": int(out[16][0]), "daily_halved": int(out[16][1])})
