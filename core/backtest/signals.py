"""Signals: a position target per bar (+1 long, -1 short, 0 flat) formed at the bar's close.

From a run's probabilities (document 000's rule: long when P(up) > threshold, short when P(down) > threshold,
else flat; when both clear a low threshold the larger wins), or from rule baselines (buy and hold, a moving
average cross) so a backtest needs no trained model. Every signal at bar t uses data up to t's close only;
the engine trades it at the open of t+1.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from core.errors import UserError

BASELINES = {
    "buy_and_hold": "always long, held through (the benchmark: entry costs only, no stops or time exits)",
    "ma_cross": "long when the fast SMA of closes is above the slow one, short (or flat if long-only) below",
}


def _class_column(predictions: pd.DataFrame, class_names: Sequence[str], name: str) -> np.ndarray:
    if name not in class_names:
        raise UserError(f"the run's classes {list(class_names)} have no '{name}' class, so its probabilities "
                        "cannot be turned into long/short signals")
    col = f"prob_{name}"
    if col not in predictions:
        raise UserError(f"the predictions have no {col} column")
    return predictions[col].to_numpy(dtype=np.float64)


def _index(predictions: pd.DataFrame) -> pd.DatetimeIndex:
    if "timestamp" in predictions:
        idx = pd.DatetimeIndex(pd.to_datetime(predictions["timestamp"], utc=True))
    elif isinstance(predictions.index, pd.DatetimeIndex):
        idx = predictions.index
    else:
        raise UserError("the predictions have no timestamp column")
    return pd.DatetimeIndex(idx, name="timestamp")


def signals_from_probabilities(predictions: pd.DataFrame, class_names: Sequence[str], threshold: float = 0.6,
                               long_only: bool = False) -> pd.Series:
    """+1 where P(up) > threshold, -1 where P(down) > threshold (0 if long_only), else 0; indexed by the
    predictions' timestamps (the close of the window's last bar)."""
    if predictions is None or len(predictions) == 0:
        raise UserError("the run has no predictions to trade on")
    p_up = _class_column(predictions, class_names, "up")
    p_down = _class_column(predictions, class_names, "down")
    long_ = (p_up > threshold) & (p_up > p_down)
    short = (p_down > threshold) & (p_down > p_up)
    if long_only:
        short[:] = False
    sig = np.where(long_, 1, np.where(short, -1, 0)).astype(np.int8)
    return pd.Series(sig, index=_index(predictions), name="signal")


def confidence_from_probabilities(predictions: pd.DataFrame, class_names: Sequence[str]) -> pd.Series:
    """The probability of the side a signal would take: max(P(up), P(down)) per row (used by sizing)."""
    p_up = _class_column(predictions, class_names, "up")
    p_down = _class_column(predictions, class_names, "down")
    return pd.Series(np.maximum(p_up, p_down), index=_index(predictions), name="confidence")


def buy_and_hold_signals(candles: pd.DataFrame) -> pd.Series:
    return pd.Series(np.ones(len(candles), dtype=np.int8), index=candles.index, name="signal")


def ma_cross_signals(candles: pd.DataFrame, fast: int = 20, slow: int = 50, long_only: bool = False) -> pd.Series:
    """+1 while SMA(fast) > SMA(slow) of closes, -1 (0 if long_only) while below, 0 during the warm-up."""
    if fast >= slow:
        raise UserError("the fast moving average must be shorter than the slow one")
    close = candles["close"]
    f = close.rolling(fast, min_periods=fast).mean().to_numpy()
    s = close.rolling(slow, min_periods=slow).mean().to_numpy()
    with np.errstate(invalid="ignore"):
        sig = np.where(f > s, 1, np.where(f < s, 0 if long_only else -1, 0))
    sig[np.isnan(s)] = 0
    return pd.Series(sig.astype(np.int8), index=candles.index, name="signal")


def baseline_signals(name: str, candles: pd.DataFrame, fast: int = 20, slow: int = 50,
                     long_only: bool = False) -> pd.Series:
    if name == "buy_and_hold":
        return buy_and_hold_signals(candles)
    if name == "ma_cross":
        return ma_cross_signals(candles, fast, slow, long_only)
    raise UserError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
