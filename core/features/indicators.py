"""Technical indicators and the scale-free feature registry.

`ta` is the reference implementation. Where `ta` is already vectorised (RSI, MACD, Bollinger, stochastic,
EMA, VWAP, OBV) it is called directly. Its ATR and ADX run Python loops over every row (about a second per
100,000 rows), so `atr` and `adx` below are vectorised equivalents built on pandas' exponentially weighted
mean (Wilder smoothing = `ewm(alpha=1/n, adjust=False)`) seeded exactly as `ta` seeds them; the tests check
them equal to `ta` within 1e-9 relative.

Every *feature* is scale-free (returns, ratios, distances, bounded oscillators) so a model trained on one
symbol or price level can be applied to another. Warm-up rows are NaN here; `compute_features` drops them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import ta

from core.errors import DataError, UserError

OHLCV = ("open", "high", "low", "close", "volume")


# --------------------------------------------------------------------------------------------------
# Vectorised Wilder indicators (equal to ta's loops)
# --------------------------------------------------------------------------------------------------
def true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """max(high-low, |high-prev close|, |low-prev close|); the first bar is high-low (as in ta)."""
    prev = close.shift(1)
    tr = np.fmax(high - low, np.fmax((high - prev).abs(), (low - prev).abs()))
    return pd.Series(tr, index=close.index)


def _wilder(values: np.ndarray, seed_pos: int, seed: float, n: int) -> np.ndarray:
    """y[seed_pos] = seed, y[i] = y[i-1] + (x[i] - y[i-1]) / n after it; NaN before seed_pos."""
    out = np.full(len(values), np.nan)
    if seed_pos >= len(values):
        return out
    z = values[seed_pos:].astype(np.float64, copy=True)
    z[0] = seed
    out[seed_pos:] = pd.Series(z).ewm(alpha=1.0 / n, adjust=False).mean().to_numpy()
    return out


def atr(high: pd.Series, low: pd.Series, close: pd.Series, window: int = 14) -> pd.Series:
    """Average true range, Wilder smoothed, seeded with the mean of the first `window` true ranges.

    Equals `ta.volatility.AverageTrueRange(...).average_true_range()` from row `window-1` on; the rows
    before it are NaN (ta writes 0 there, which is not a value but a placeholder).
    """
    tr = true_range(high, low, close).to_numpy()
    if len(tr) < window:
        return pd.Series(np.nan, index=close.index, name="atr")
    out = _wilder(tr, window - 1, float(tr[:window].mean()), window)
    return pd.Series(out, index=close.index, name="atr")


def adx(high: pd.Series, low: pd.Series, close: pd.Series, window: int = 14) -> pd.Series:
    """Average directional index, equal to `ta.trend.ADXIndicator(...).adx()` where ta defines it.

    ta sums the first `window` values (bars 1..window) and then runs S[i] = S[i-1] - S[i-1]/n + x[i]
    for true range, +DM and -DM; that recursion is n times a Wilder mean, and only ratios are used, so
    the mean form gives the same DI and DX. ADX is seeded with the mean of the first `window` DX values
    and Wilder-smoothed after that. Rows before 2*window-1 are NaN (ta writes 0 there).
    """
    n = len(close)
    out = np.full(n, np.nan)
    if n < 2 * window:  # ta's first ADX is at row 2 * window - 1
        return pd.Series(out, index=close.index, name="adx")
    h, lo, c = high.to_numpy(float), low.to_numpy(float), close.to_numpy(float)
    prev_c = np.r_[np.nan, c[:-1]]
    tr = np.fmax(h, prev_c) - np.fmin(lo, prev_c)  # ta's pdm - pdn (bar 0 is h - lo: fmax ignores the NaN)
    up = np.r_[np.nan, h[1:] - h[:-1]]
    down = np.r_[np.nan, lo[:-1] - lo[1:]]
    pos = np.where((up > down) & (up > 0), up, 0.0)
    neg = np.where((down > up) & (down > 0), down, 0.0)
    # The sums start at bar `window` (bars 1..window), smoothing runs on from there.
    s_tr = _wilder(tr, window, tr[1:window + 1].mean(), window)
    s_pos = _wilder(pos, window, pos[1:window + 1].mean(), window)
    s_neg = _wilder(neg, window, neg[1:window + 1].mean(), window)
    with np.errstate(divide="ignore", invalid="ignore"):
        dip = np.where(s_tr != 0, 100.0 * s_pos / s_tr, 0.0)
        din = np.where(s_tr != 0, 100.0 * s_neg / s_tr, 0.0)
        dx = np.where(dip + din != 0, 100.0 * np.abs(dip - din) / (dip + din), 0.0)
    dx[:window] = np.nan
    first = 2 * window - 1
    out[:] = _wilder(dx, first, float(dx[window:first + 1].mean()), window)
    return pd.Series(out, index=close.index, name="adx")


def keltner(high: pd.Series, low: pd.Series, close: pd.Series, window: int = 20, window_atr: int = 10,
            multiplier: float = 2.0) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Keltner channel (EMA middle +- multiplier x ATR), as ta's `original_version=False`: (low, mid, high)."""
    mid = close.ewm(span=window, min_periods=window, adjust=False).mean()
    a = atr(high, low, close, window_atr)
    return mid - multiplier * a, mid, mid + multiplier * a


def ema(close: pd.Series, window: int) -> pd.Series:
    return ta.trend.EMAIndicator(close, window).ema_indicator()


def sma(series: pd.Series, window: int) -> pd.Series:
    return series.rolling(window, min_periods=window).mean()


def rolling_vwap(high: pd.Series, low: pd.Series, close: pd.Series, volume: pd.Series,
                 window: int = 14) -> pd.Series:
    """Rolling VWAP of the typical price (ta's definition); NaN where the window traded no volume."""
    tp = (high + low + close) / 3.0
    pv = (tp * volume).rolling(window, min_periods=window).sum()
    vv = volume.rolling(window, min_periods=window).sum()
    return (pv / vv.where(vv > 0)).rename("vwap")


def obv(close: pd.Series, volume: pd.Series) -> pd.Series:
    return ta.volume.OnBalanceVolumeIndicator(close, volume).on_balance_volume()


# --------------------------------------------------------------------------------------------------
# The feature registry
# --------------------------------------------------------------------------------------------------
class _Ctx:
    """Candles plus a memo of shared intermediates (ATR, EMAs...), so a preset computes each once."""

    def __init__(self, candles: pd.DataFrame):
        self.o = candles["open"].astype(np.float64)
        self.h = candles["high"].astype(np.float64)
        self.l = candles["low"].astype(np.float64)
        self.c = candles["close"].astype(np.float64)
        self.v = candles["volume"].astype(np.float64)
        self._memo: dict[str, pd.Series] = {}

    def get(self, key: str, fn: Callable[[], pd.Series]) -> pd.Series:
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def macd(self) -> "ta.trend.MACD":
        return self.get("macd_obj", lambda: ta.trend.MACD(self.c, 26, 12, 9))  # type: ignore[arg-type]

    def bb(self) -> "ta.volatility.BollingerBands":
        return self.get("bb_obj", lambda: ta.volatility.BollingerBands(self.c, 20, 2))  # type: ignore

    def stoch(self) -> "ta.momentum.StochasticOscillator":
        return self.get("stoch_obj", lambda: ta.momentum.StochasticOscillator(self.h, self.l, self.c, 14, 3))  # type: ignore

    def atr(self, n: int) -> pd.Series:
        return self.get(f"atr{n}", lambda: atr(self.h, self.l, self.c, n))

    def vol_sma(self, n: int = 20) -> pd.Series:
        return self.get(f"vsma{n}", lambda: sma(self.v, n))


def _safe_div(num: pd.Series, den: pd.Series, fallback: float) -> pd.Series:
    """num/den, `fallback` where den == 0 (a flat bar, a silent market): defined, never a future value."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return out.where(den != 0, fallback).where(den.notna())


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    description: str
    fn: Callable[[_Ctx], pd.Series]


def _ema_dist(n: int) -> Callable[[_Ctx], pd.Series]:
    return lambda x: x.c / x.get(f"ema{n}", lambda: ema(x.c, n)) - 1.0


def _log_volume(x: _Ctx) -> pd.Series:
    # The document's log(volume + 1) depends on the symbol's units; log(1 + volume / its 100-bar mean)
    # keeps the log compression and is scale-free (and defined on silent bars).
    return np.log1p(_safe_div(x.v, x.vol_sma(100), 1.0))


_SPECS: list[FeatureSpec] = [
    FeatureSpec("open_gap", "open / previous close - 1", lambda x: x.o / x.c.shift(1) - 1.0),
    FeatureSpec("high_rel", "high / close - 1", lambda x: x.h / x.c - 1.0),
    FeatureSpec("low_rel", "low / close - 1", lambda x: x.l / x.c - 1.0),
    FeatureSpec("volume_change", "log(volume / previous volume), 0 when either is 0",
                lambda x: _volume_change(x)),
    FeatureSpec("return", "close / previous close - 1", lambda x: x.c.pct_change(fill_method=None)),
    FeatureSpec("log_return", "log(close / previous close)", lambda x: np.log(x.c / x.c.shift(1))),
    FeatureSpec("hl_range", "(high - low) / close", lambda x: (x.h - x.l) / x.c),
    FeatureSpec("body_ratio", "|close - open| / (high - low); 0 on a flat bar",
                lambda x: _safe_div((x.c - x.o).abs(), x.h - x.l, 0.0)),
    FeatureSpec("close_position", "(close - low) / (high - low); 0.5 on a flat bar",
                lambda x: _safe_div(x.c - x.l, x.h - x.l, 0.5)),
    FeatureSpec("rsi", "RSI(14), 0..100", lambda x: ta.momentum.RSIIndicator(x.c, 14).rsi()),
    FeatureSpec("macd", "MACD(12, 26) line / close", lambda x: x.macd().macd() / x.c),
    FeatureSpec("macd_signal", "MACD signal(9) / close", lambda x: x.macd().macd_signal() / x.c),
    FeatureSpec("macd_hist", "MACD histogram / close", lambda x: x.macd().macd_diff() / x.c),
    FeatureSpec("bb_pctb", "Bollinger %B (20, 2); 0.5 when the band is flat",
                lambda x: _safe_div(x.c - x.bb().bollinger_lband(),
                                    x.bb().bollinger_hband() - x.bb().bollinger_lband(), 0.5)),
    FeatureSpec("bb_width", "Bollinger band width / middle band",
                lambda x: (x.bb().bollinger_hband() - x.bb().bollinger_lband()) / x.bb().bollinger_mavg()),
    FeatureSpec("atr_norm", "ATR(14) / close", lambda x: x.atr(14) / x.c),
    FeatureSpec("volume_ratio", "volume / SMA(volume, 20); 1 when the average is 0",
                lambda x: _safe_div(x.v, x.vol_sma(20), 1.0)),
    FeatureSpec("log_volume", "log(1 + volume / SMA(volume, 100)): scale-free log volume", _log_volume),
    FeatureSpec("obv_dir", "sign of the on-balance-volume change (ta's OBV: +1 when the close rises or is "
                           "unchanged, -1 when it falls, 0 on a bar without volume)",
                lambda x: np.sign(obv(x.c, x.v).diff())),
    FeatureSpec("vwap_dist", "close / rolling VWAP(14) - 1; 0 when the window traded nothing",
                lambda x: (x.c / rolling_vwap(x.h, x.l, x.c, x.v, 14) - 1.0)
                .where(x.v.rolling(14, min_periods=14).sum() > 0, 0.0)
                .where(np.arange(len(x.c)) >= 13)),
    FeatureSpec("stoch_k", "stochastic %K(14), 0..100; 50 when the range is flat", lambda x: _stoch_k(x)),
    FeatureSpec("stoch_d", "stochastic %D (3-bar mean of %K)",
                lambda x: _stoch_k(x).rolling(3, min_periods=3).mean()),
    FeatureSpec("kc_pos", "position in the Keltner channel (EMA 20 +- 2 ATR 10): 0 low band, 1 high band",
                lambda x: _keltner_pos(x)),
    FeatureSpec("kc_width", "Keltner channel width / middle", lambda x: 4.0 * x.atr(10) / x.get(
        "ema20", lambda: ema(x.c, 20))),
    FeatureSpec("ema9_dist", "close / EMA(9) - 1", _ema_dist(9)),
    FeatureSpec("ema21_dist", "close / EMA(21) - 1", _ema_dist(21)),
    FeatureSpec("ema50_dist", "close / EMA(50) - 1", _ema_dist(50)),
    FeatureSpec("ema200_dist", "close / EMA(200) - 1", _ema_dist(200)),
    FeatureSpec("adx", "ADX(14), trend strength 0..100", lambda x: adx(x.h, x.l, x.c, 14)),
]


def _volume_change(x: _Ctx) -> pd.Series:
    prev = x.v.shift(1)
    ok = (x.v > 0) & (prev > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(x.v.where(ok) / prev.where(ok))
    return out.where(ok, 0.0).where(prev.notna())


def _stoch_k(x: _Ctx) -> pd.Series:
    """%K(14), computed once per feature set (stoch_d reuses it)."""
    return x.get("stoch_k", lambda: x.stoch().stoch().where(
        (x.h.rolling(14).max() - x.l.rolling(14).min()) != 0, 50.0).where(np.arange(len(x.c)) >= 13))


def _keltner_pos(x: _Ctx) -> pd.Series:
    lo, mid, hi = keltner(x.h, x.l, x.c, 20, 10, 2.0)
    return _safe_div(x.c - lo, hi - lo, 0.5)


_FEATURES: dict[str, FeatureSpec] = {s.name: s for s in _SPECS}


def available_features() -> dict[str, str]:
    """Every feature name with a one-line description."""
    return {s.name: s.description for s in _SPECS}


def feature_frame(candles: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The raw (unscaled) features, warm-up rows still present as NaN."""
    missing = [c for c in OHLCV if c not in candles.columns]
    if missing:
        raise DataError(f"the candles have no {', '.join(repr(m) for m in missing)} column")
    unknown = [n for n in names if n not in _FEATURES]
    if unknown:
        raise UserError(f"unknown feature(s) {', '.join(unknown)}; available: {', '.join(_FEATURES)}")
    ctx = _Ctx(candles)
    cols = {}
    for n in names:
        s = _FEATURES[n].fn(ctx)
        cols[n] = pd.Series(np.asarray(s, dtype=np.float64), index=candles.index)
    return pd.DataFrame(cols, index=candles.index)
