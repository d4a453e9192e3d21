"""The offline synthetic market: real-looking crypto candles and order books with no network.

The model, chosen to reproduce the stylized facts of real crypto returns (calibrated against Binance
BTC/ETH 1h candles, see tests/test_data_synthetic.py):

* an hourly volatility process per symbol: GARCH(1,1) on Student-t shocks (fat tails, volatility
  clustering), scaled by a market-wide three-state Markov regime (calm / normal / turbulent, with a small
  drift each: occasional regime changes) and by an intraday cycle over the UTC hour (the US session is the
  busiest);
* hourly shocks of the symbols correlated through a shared Gaussian factor and a shared chi-square mixing
  variable (so the tails are joint, as in crypto sell-offs);
* a 1-minute price path inside each hour: a Student-t random walk bridged to end exactly on the hour's
  return, with intra-minute highs and lows, and hourly volume that rises with |return| and with the
  volatility level, split over the minutes in proportion to their moves.

Every timeframe is an exact aggregation of that one 1-minute path (`resample_candles`), so the 1d candles of
seed 42 are the 1h candles of seed 42 summed up. The path is simulated from midnight UTC of the start day,
so a range that starts later in that day is a slice of the same path. Synthetic order books follow the
path: their imbalance leans toward the next bar's move.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from core.data.candles import COLUMNS, MIN_CANDLES, resample_candles, timeframe_delta, too_few_candles
from core.errors import DataError

SOURCE = "synthetic"
DEFAULT_SYMBOLS: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
DEFAULT_START = "2024-01-01"
DEFAULT_END = "2026-01-01"  # exclusive: the last candle is on 2025-12-31

# Share of the 1-minute variance that comes from the intra-minute range: keeps highs/lows realistic.
_MINUTES_PER_HOUR = 60


@dataclass(frozen=True)
class SymbolProfile:
    """How one synthetic symbol looks: price level, volatility, volume, link to the market factor."""

    start_price: float
    hourly_vol: float        # unconditional std of 1h log returns (Binance 2024-26: BTC 0.0052, ETH 0.0073)
    base_volume: float       # mean hourly volume in base units
    market_loading: float    # correlation of its shocks with the market factor
    tail_df: float           # Student-t degrees of freedom of its idiosyncratic mixing
    price_decimals: int = 2
    jump_prob: float = 0.001  # per hour: its own news jumps (altcoins jump more often than BTC)
    jump_size: float = 6.0    # in units of its hourly sigma


PROFILES: dict[str, SymbolProfile] = {
    "BTC/USDT": SymbolProfile(42_000.0, 0.0052, 1_000.0, 1.0, 5.0, 2, 0.0003, 5.0),
    "ETH/USDT": SymbolProfile(2_300.0, 0.0073, 15_000.0, 0.84, 4.5, 2, 0.0015, 8.0),
    "SOL/USDT": SymbolProfile(100.0, 0.0095, 120_000.0, 0.75, 4.0, 3, 0.002),
    "XRP/USDT": SymbolProfile(0.62, 0.0090, 15_000_000.0, 0.65, 4.0, 5, 0.002),
}


def profile_for(symbol: str) -> SymbolProfile:
    """The profile of `symbol`; unknown symbols get a stable made-up one (altcoin-like)."""
    if symbol in PROFILES:
        return PROFILES[symbol]
    h = zlib.crc32(symbol.encode())
    price = float(10 ** ((h % 500) / 100 - 1))  # 0.1 .. 1000, fixed per name
    decimals = max(2, int(np.ceil(-np.log10(price))) + 4)
    return SymbolProfile(price, 0.009 + (h % 7) * 0.0005, 1e5 / max(price, 0.01), 0.7, 4.0, decimals)


@dataclass(frozen=True)
class MarketModel:
    """The parameters of the volatility and volume process (shared by all symbols)."""

    # alpha, beta keep the 4th moment of the variance finite with t shocks (beta^2 + 2ab + kurt*a^2 < 1),
    # so the sample kurtosis is stable from seed to seed.
    garch_alpha: float = 0.06
    garch_beta: float = 0.90
    shock_df: float = 5.0                       # market mixing variable's degrees of freedom
    regime_vol: tuple[float, float, float] = (0.6, 1.0, 1.9)
    regime_drift: tuple[float, float, float] = (0.015, 0.0, -0.03)   # per hour, in units of sigma
    regime_mean_hours: tuple[float, float, float] = (24 * 25, 24 * 30, 24 * 6)
    # Intraday cycle (by UTC hour): quiet Asian night, busy US open - the shape of Binance BTC 2024-26.
    intraday_amplitude: float = 1.0
    volume_noise: float = 0.6
    volume_from_abs_return: float = 0.55
    volume_from_vol_level: float = 0.45
    jump_prob: float = 0.001                    # per hour: rare market-wide news jumps
    jump_size: float = 5.0                      # in units of sigma


# Mean |1h return| by UTC hour on Binance BTC/USDT 2024-2026, normalised: a smooth cycle with the peak at
# 14:00 UTC (US open) and the trough around 05:00 UTC.
_INTRADAY = np.array([1.03, 1.09, 1.00, 0.85, 0.79, 0.76, 0.85, 0.88, 0.88, 0.82, 0.79, 0.82,
                      0.91, 1.33, 1.73, 1.55, 1.24, 1.27, 1.15, 1.15, 1.06, 1.00, 1.00, 0.88])


def intraday_profile(amplitude: float = 1.0) -> np.ndarray:
    """Volatility multiplier per UTC hour (mean square 1, so it moves the timing, not the level)."""
    p = 1.0 + amplitude * (_INTRADAY - 1.0)
    return p / np.sqrt(np.mean(p**2))


@dataclass
class SimulatedPath:
    """The raw simulation: hourly states and the 1-minute candles per symbol."""

    minutes: dict[str, pd.DataFrame]
    hours: pd.DatetimeIndex
    regimes: np.ndarray            # (H,) state 0 calm, 1 normal, 2 turbulent
    sigma: dict[str, np.ndarray]   # (H,) conditional hourly volatility per symbol


# The dates a dataset can hold (the store keeps nanosecond timestamps).
_TS_MIN, _TS_MAX = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
_MAX_SPAN = pd.Timedelta(days=366 * 12)


def _utc(value, what: str) -> pd.Timestamp:
    """`value` as a UTC timestamp; DataError (a sentence naming `what`) if it is not a date or out of range."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        ts = pd.NaT
    if ts is pd.NaT:
        raise DataError(f"the {what} {str(value)!r} is not a date; use e.g. 2024-01-01 or 2024-01-01T12:00")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    _check_in_range(ts, what)
    return ts


def _check_in_range(ts: pd.Timestamp, what: str) -> None:
    if not _TS_MIN <= ts <= _TS_MAX:
        raise DataError(f"the {what} ({ts:%Y-%m-%d}) is outside the dates a dataset can hold "
                        f"({_TS_MIN:%Y-%m-%d} to {_TS_MAX:%Y-%m-%d})")


def _parse_range(timeframe: str, start, end, periods) -> tuple[pd.Timestamp, pd.Timestamp]:
    step = timeframe_delta(timeframe)
    start_ts = _utc(start if start is not None else DEFAULT_START, "start")
    start_ts = start_ts.floor(step) if step <= pd.Timedelta(days=1) else start_ts
    if periods is not None:
        if end is not None and start is not None:
            raise DataError("give either an end or a number of periods, not both")
        if int(periods) <= 0:
            raise DataError("the number of periods must be positive")
        if int(periods) * step > _MAX_SPAN:
            raise DataError("the synthetic market makes at most 12 years at a time")
        if start is None and end is not None:
            end_ts = _utc(end, "end").floor(step)
            start_ts = end_ts - int(periods) * step
            _check_in_range(start_ts, "start")
        else:
            end_ts = start_ts + int(periods) * step
            _check_in_range(end_ts, "end")
    else:
        end_ts = _utc(end if end is not None else DEFAULT_END, "end").ceil(step)
    if end_ts <= start_ts:
        raise DataError(f"the end ({end_ts}) must be after the start ({start_ts})")
    if (end_ts - start_ts) > _MAX_SPAN:
        raise DataError("the synthetic market makes at most 12 years at a time")
    return start_ts, end_ts


def _markov_regimes(rng: np.random.Generator, n: int, mean_hours: Sequence[float]) -> np.ndarray:
    """A 3-state chain: leave a state with prob 1/mean_hours; move to a neighbour state (calm<->normal<->
    turbulent), so turbulence grows out of normal markets rather than out of calm ones."""
    leave = 1.0 / np.asarray(mean_hours, dtype=float)
    states = np.empty(n, dtype=np.int8)
    u = rng.random(n)
    side = rng.random(n)
    s = 1
    for t in range(n):  # a Python loop over hours (not minutes): 17,520 steps for two years
        if u[t] < leave[s]:
            if s == 1:
                s = 0 if side[t] < 0.5 else 2
            else:
                s = 1
        states[t] = s
    return states


def _garch(z: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Conditional variance (unconditional mean 1) of a GARCH(1,1) driven by unit-variance shocks z (H, S)."""
    omega = 1.0 - alpha - beta
    h = np.empty_like(z)
    prev = np.ones(z.shape[1])
    for t in range(z.shape[0]):
        h[t] = prev
        prev = omega + alpha * prev * z[t] ** 2 + beta * prev
    return h


def simulate_market(
    symbols: Iterable[str] = DEFAULT_SYMBOLS,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    seed: int = 42,
    model: MarketModel | None = None,
) -> SimulatedPath:
    """Simulate the 1-minute path of `symbols` over whole days covering [start, end)."""
    model = model or MarketModel()
    symbols = list(symbols)
    if not symbols:
        raise DataError("choose at least one symbol")
    if len(set(symbols)) != len(symbols):
        raise DataError("each symbol may appear only once")
    start_ts, end_ts = _parse_range("1m", start, end, None)
    origin = start_ts.floor("1D")
    n_hours = int(np.ceil((end_ts - origin) / pd.Timedelta(hours=1)))
    hours = pd.date_range(origin, periods=n_hours, freq="1h", tz="UTC", name="timestamp")
    S, H, M = len(symbols), n_hours, _MINUTES_PER_HOUR
    profiles = [profile_for(s) for s in symbols]
    rng = np.random.default_rng(seed)

    # Market-wide state: regimes, the common Gaussian factor and the shared tail mixing variable.
    regimes = _markov_regimes(rng, H, model.regime_mean_hours)
    market = rng.standard_normal(H)
    mix_market = rng.chisquare(model.shock_df, H) / model.shock_df
    jumps = rng.random(H) < model.jump_prob
    jump_sign = np.where(rng.random(H) < 0.5, -1.0, 1.0)

    # Per-symbol shocks: loading on the market factor + own noise, divided by sqrt(mixing) for fat tails.
    z = np.empty((H, S))
    for j, p in enumerate(profiles):
        own = rng.standard_normal(H)
        mix_own = rng.chisquare(p.tail_df, H) / p.tail_df
        g = p.market_loading * market + np.sqrt(max(0.0, 1 - p.market_loading**2)) * own
        # Mix the shared and own chi-square so tails are partly joint; rescale to unit variance.
        mix = 0.7 * mix_market + 0.3 * mix_own
        zz = g / np.sqrt(mix)
        sd = zz.std()
        z[:, j] = zz / sd if sd > 0 else zz  # a single hour has no spread to scale by
    h = _garch(z, model.garch_alpha, model.garch_beta)
    season = intraday_profile(model.intraday_amplitude)[hours.hour.to_numpy()]
    rv = np.asarray(model.regime_vol)[regimes]
    rv = rv / np.sqrt(np.sum(np.asarray(model.regime_vol) ** 2 * _stationary(model.regime_mean_hours)))
    drift = np.asarray(model.regime_drift)[regimes]

    minutes: dict[str, pd.DataFrame] = {}
    sigmas: dict[str, np.ndarray] = {}
    minute_index = pd.date_range(origin, periods=H * M, freq="1min", tz="UTC", name="timestamp")
    for j, (sym, p) in enumerate(zip(symbols, profiles)):
        sigma = p.hourly_vol * np.sqrt(h[:, j]) * season * rv
        own_jump = (rng.random(H) < p.jump_prob) * np.where(rng.random(H) < 0.5, -1.0, 1.0)
        jump = (jumps * jump_sign * model.jump_size + own_jump * p.jump_size) * (0.7 + 0.6 * rng.random(H))
        r = sigma * (z[:, j] + drift + jump)
        sigmas[sym] = sigma

        # The 1-minute path inside each hour: a Student-t walk bridged so the hour ends on exactly r.
        sm = (sigma / np.sqrt(M))[:, None]
        steps = rng.standard_t(5.0, (H, M)) * np.sqrt(3.0 / 5.0) * sm
        steps += (r[:, None] - steps.sum(axis=1, keepdims=True)) / M
        logp = np.log(p.start_price) + np.cumsum(steps.ravel())
        close = np.exp(logp)
        open_ = np.empty_like(close)
        open_[0] = p.start_price
        open_[1:] = close[:-1]
        wick = np.abs(rng.standard_normal((2, H * M))) * 0.5 * np.repeat(sigma / np.sqrt(M), M)
        high = np.maximum(open_, close) * np.exp(wick[0])
        low = np.minimum(open_, close) * np.exp(-wick[1])
        d = p.price_decimals
        open_, high, low, close = (np.round(x, d) for x in (open_, high, low, close))
        # Rounding can meet a price floor of zero for tiny coins: keep one tick above it.
        tick = 10.0**-d
        open_, high, low, close = (np.maximum(x, tick) for x in (open_, high, low, close))

        # Hourly volume: rises with |return| and with the volatility level; lognormal noise.
        level = sigma / p.hourly_vol
        shock = np.abs(r) / p.hourly_vol
        vol_h = p.base_volume * (
            model.volume_from_vol_level * level + model.volume_from_abs_return * shock
        ) * np.exp(model.volume_noise * rng.standard_normal(H) - 0.5 * model.volume_noise**2)
        # Split over the minutes in proportion to each minute's move (plus a floor of quiet trading).
        w = (0.4 + np.abs(steps) / sm) * np.exp(0.3 * rng.standard_normal((H, M)))
        w /= w.sum(axis=1, keepdims=True)
        volume = np.round((w * vol_h[:, None]).ravel(), 6)

        df = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
            index=minute_index,
        )
        df.attrs.update(source=SOURCE, symbol=sym, timeframe="1m")
        minutes[sym] = df
    return SimulatedPath(minutes=minutes, hours=hours, regimes=regimes, sigma=sigmas)


def _stationary(mean_hours: Sequence[float]) -> np.ndarray:
    """Stationary distribution of the regime chain (half of 'normal' exits go to each neighbour)."""
    d = np.asarray(mean_hours, dtype=float)
    # Flow balance: calm and turbulent each receive half of normal's exits.
    pi = np.array([d[0] * 0.5, d[1], d[2] * 0.5])
    return pi / pi.sum()


def generate_market(
    symbols: Iterable[str] | str = DEFAULT_SYMBOLS,
    timeframe: str = "1h",
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    periods: int | None = None,
    seed: int = 42,
    model: MarketModel | None = None,
) -> dict[str, pd.DataFrame]:
    """Synthetic candles for each symbol: {symbol: candles} labelled source "synthetic".

    `start` defaults to 2024-01-01; give `end` (exclusive, default 2026-01-01) or `periods`. The same seed
    and start day give the same 1-minute path whatever the timeframe, so coarser candles are exact
    aggregations of finer ones.
    """
    if isinstance(symbols, str):
        symbols = [symbols]
    symbols = list(symbols)
    start_ts, end_ts = _parse_range(timeframe, start, end, periods)
    n_bars = int((end_ts - start_ts) // timeframe_delta(timeframe))
    if n_bars < MIN_CANDLES:
        raise too_few_candles(n_bars, f"this span holds {n_bars} {timeframe} candle{'s' if n_bars != 1 else ''}: "
                                      f"choose a longer span (or a shorter timeframe)")
    path = simulate_market(symbols, start_ts, end_ts, seed, model)
    out: dict[str, pd.DataFrame] = {}
    for sym in symbols:
        m = path.minutes[sym]
        m = m.loc[(m.index >= start_ts) & (m.index < end_ts)]
        df = resample_candles(m, timeframe) if timeframe != "1m" else m.copy()
        # Bins are epoch-aligned; drop partial bins at the edges (only possible for odd start times).
        df = df.loc[(df.index >= start_ts) & (df.index + timeframe_delta(timeframe)
                                              <= end_ts)]
        df.attrs.update(source=SOURCE, symbol=sym, timeframe=timeframe, seed=int(seed))
        out[sym] = df
    return out


def synthetic_order_book_snapshots(
    candles: pd.DataFrame,
    levels: int = 20,
    seed: int = 0,
    information: float = 0.35,
    max_snapshots: int | None = None,
) -> pd.DataFrame:
    """One order-book snapshot at the close of every candle, following the candles' price path.

    Returns the long table `timestamp, side, level, price, size` (level 1 = best). The mid is the candle's
    close; the spread and level spacing scale with the recent bar range; sizes follow a hump-shaped depth
    profile with lognormal noise. The bid/ask imbalance leans toward the next bar's return with
    correlation about `information` (order flow that precedes the move), so it carries some information.
    """
    if levels < 1 or levels > 500:
        raise DataError("an order book needs between 1 and 500 levels")
    if len(candles) < 2:
        raise DataError("an order book needs at least two candles")
    if max_snapshots is not None and len(candles) > max_snapshots:
        candles = candles.iloc[-max_snapshots:]
    rng = np.random.default_rng(seed)
    tf = candles.attrs.get("timeframe")
    step = timeframe_delta(tf) if tf else (candles.index[1] - candles.index[0])
    close = candles["close"].to_numpy(float)
    high, low = candles["high"].to_numpy(float), candles["low"].to_numpy(float)
    T = len(close)
    rel_range = np.maximum((high - low) / close, 1e-6)
    # A smoothed range sets the book's width: volatile markets have wider, thinner books.
    width = pd.Series(rel_range).ewm(span=24, min_periods=1).mean().to_numpy()
    nxt = np.r_[np.diff(np.log(close)), 0.0]
    scale = pd.Series(np.abs(nxt)).ewm(span=48, min_periods=1).mean().to_numpy() + 1e-12
    signal = np.clip(nxt / scale / 1.25, -4, 4)
    signal = information * signal + np.sqrt(max(0.0, 1 - information**2)) * rng.standard_normal(T)
    signal[-1] = rng.standard_normal()  # the last snapshot has no next bar to lean toward

    lv = np.arange(1, levels + 1)
    tick = width[:, None] / 40.0
    half_spread = 0.5 * tick[:, 0]
    gaps = tick * (0.6 + rng.exponential(0.6, (T, levels)))
    bid_off = half_spread[:, None] + np.cumsum(gaps, axis=1) - gaps[:, :1]
    gaps_a = tick * (0.6 + rng.exponential(0.6, (T, levels)))
    ask_off = half_spread[:, None] + np.cumsum(gaps_a, axis=1) - gaps_a[:, :1]
    vol = candles["volume"].to_numpy(float)
    base = (pd.Series(vol).ewm(span=24, min_periods=1).mean().to_numpy() / 200.0 + 1e-9)[:, None]
    profile = (0.5 + lv / levels * 2.0) * np.exp(-lv / (0.8 * levels))  # thin at the touch, hump deeper
    tilt = np.exp(0.6 * signal)[:, None]
    bid_sz = base * profile * np.exp(0.5 * rng.standard_normal((T, levels))) * tilt
    ask_sz = base * profile * np.exp(0.5 * rng.standard_normal((T, levels))) / tilt
    bid_px = close[:, None] * (1 - bid_off)
    ask_px = close[:, None] * (1 + ask_off)

    ts = candles.index + step
    n = T * levels
    table = pd.DataFrame(
        {
            "timestamp": np.concatenate([np.repeat(ts.to_numpy(), levels)] * 2),
            "side": np.array(["bid"] * n + ["ask"] * n, dtype=object),
            "level": np.concatenate([np.tile(lv, T)] * 2).astype(np.int32),
            "price": np.concatenate([bid_px.ravel(), ask_px.ravel()]),
            "size": np.concatenate([bid_sz.ravel(), ask_sz.ravel()]),
        }
    )
    table["timestamp"] = pd.to_datetime(table["timestamp"], utc=True)
    table = table.sort_values(["timestamp", "side", "level"], kind="stable", ignore_index=True)
    table.attrs.update(source=SOURCE, symbol=candles.attrs.get("symbol", ""), levels=levels)
    return table


def book_imbalance(book: pd.DataFrame, depth: int | None = None) -> pd.Series:
    """(bid size - ask size) / (bid + ask) per snapshot over the best `depth` levels (all by default)."""
    b = book if depth is None else book[book["level"] <= depth]
    piv = b.pivot_table(index="timestamp", columns="side", values="size", aggfunc="sum")
    return ((piv["bid"] - piv["ask"]) / (piv["bid"] + piv["ask"])).rename("imbalance")


__all__ = [
    "COLUMNS",
    "DEFAULT_SYMBOLS",
    "MarketModel",
    "PROFILES",
    "SOURCE",
    "SymbolProfile",
    "book_imbalance",
    "generate_market",
    "intraday_profile",
    "profile_for",
    "simulate_market",
    "synthetic_order_book_snapshots",
]
