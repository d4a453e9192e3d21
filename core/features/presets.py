"""Feature presets from the source documents, and `compute_features` (warm-up rows dropped, never filled).

A preset is only a list of feature names (see `available_features()`); a user edits a preset by passing
their own list. Every feature is scale-free so a model trained on one symbol transfers to another.
"""
from __future__ import annotations

import functools

from typing import Sequence, Union

import numpy as np
import pandas as pd

from core.errors import DataError, UserError
from core.features.indicators import available_features, feature_frame

PRESETS: dict[str, list[str]] = {
    # "ResNet for Time Series": OHLCV made scale-free (4 channels, the close is `return`), returns,
    # log returns, high-low range, body ratio, RSI 14, MACD, Bollinger %B, normalised ATR,
    # volume / SMA(volume, 20), OBV direction, VWAP distance: 15 channels.
    "resnet15": ["open_gap", "high_rel", "low_rel", "volume_change", "return", "log_return", "hl_range",
                 "body_ratio", "rsi", "macd", "bb_pctb", "atr_norm", "volume_ratio", "obv_dir", "vwap_dist"],
    # "ConvNeXt for Trading": price, volume (volume, VWAP, volume SMA), momentum (RSI, MACD, stochastic),
    # volatility (ATR, Bollinger, Keltner), trend (EMA 9/21/50/200, ADX): 20 channels.
    "convnext": ["return", "hl_range", "body_ratio",
                 "log_volume", "vwap_dist", "volume_ratio",
                 "rsi", "macd", "macd_hist", "stoch_k", "stoch_d",
                 "atr_norm", "bb_pctb", "bb_width", "kc_pos",
                 "ema9_dist", "ema21_dist", "ema50_dist", "ema200_dist", "adx"],
    # "Dilated Convolutions for Trading": the five inputs.
    "dilated5": ["return", "log_volume", "hl_range", "close_position", "volume_ratio"],
    # "Chapter 18: CNNs": return, RSI, MACD histogram, ATR, Bollinger width, volume ratio.
    "chapter6": ["return", "rsi", "macd_hist", "atr_norm", "bb_width", "volume_ratio"],
}

PRESET_DESCRIPTIONS: dict[str, str] = {
    "resnet15": "ResNet document: 15 channels (scale-free OHLCV, returns, range, body, RSI, MACD, %B, ATR, "
                "volume, OBV direction, VWAP distance)",
    "convnext": "ConvNeXt document: 20 channels in volume, momentum, volatility and trend groups",
    "dilated5": "Dilated-convolution document: returns, log volume, range, close position, volume ratio",
    "chapter6": "CNN chapter (document 004, Chapter 18): return, RSI, MACD histogram, ATR, Bollinger width, "
                "volume ratio; RSI and ATR are ta's Wilder versions, not the chapter's simple rolling means",
}

PresetOrList = Union[str, Sequence[str]]


def resolve_features(preset_or_list: PresetOrList) -> list[str]:
    """The feature names of a preset name, or a user's own list (checked, duplicates refused)."""
    if isinstance(preset_or_list, str):
        if preset_or_list not in PRESETS:
            raise UserError(f"unknown feature preset {preset_or_list!r}; choose one of {', '.join(PRESETS)} "
                            f"or pass a list of feature names")
        return list(PRESETS[preset_or_list])
    names = [str(n) for n in preset_or_list]
    if not names:
        raise UserError("choose at least one feature")
    if len(set(names)) != len(names):
        raise UserError("a feature is listed twice; each feature may appear once")
    unknown = [n for n in names if n not in available_features()]
    if unknown:
        raise UserError(f"unknown feature(s) {', '.join(unknown)}; available: {', '.join(available_features())}")
    return names


def warmup_bars(preset_or_list: PresetOrList) -> int:
    """How many candles the features need for their first defined row (e.g. 200 with EMA 200), measured
    on a steady random market long enough for every indicator here (once per feature list: the Train page
    asks on every rerun)."""
    return _warmup_bars(tuple(resolve_features(preset_or_list)))


@functools.lru_cache(maxsize=64)
def _warmup_bars(names: tuple[str, ...]) -> int:
    rng = np.random.default_rng(0)
    n = 1500
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    frame = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.002,
                          "low": np.minimum(open_, close) * 0.998, "close": close,
                          "volume": rng.uniform(1.0, 2.0, n)}, index=idx)
    ok = np.isfinite(feature_frame(frame, list(names)).to_numpy()).all(axis=1)
    return int(np.argmax(ok)) + 1 if ok.any() else n


def compute_features(candles: pd.DataFrame, preset_or_list: PresetOrList) -> pd.DataFrame:
    """Scale-free features (float64, unscaled) for every bar after the warm-up.

    Leading rows where any indicator is not yet defined are dropped, never back-filled; every feature
    at row t uses bars <= t only. A NaN after the warm-up means the candles themselves hold NaN/zero prices.
    """
    names = resolve_features(preset_or_list)
    if len(candles) == 0:
        raise UserError("there are no candles to compute features on")
    raw = feature_frame(candles, names)
    ok = np.isfinite(raw.to_numpy()).all(axis=1)
    if not ok.any():
        raise UserError(f"{len(candles)} candles are too few for these features: their indicators' warm-up "
                        f"needs at least {warmup_bars(names)} bars for its first row of features")
    first = int(np.argmax(ok))
    out = raw.iloc[first:]
    bad = ~ok[first:]
    if bad.any():
        when = out.index[int(np.argmax(bad))]
        raise DataError(f"the candles give undefined features at {when} (NaN or non-positive prices?); "
                        f"clean the data first")
    out = out.copy()
    out.attrs = dict(candles.attrs)
    out.attrs["warmup_rows"] = first
    return out
