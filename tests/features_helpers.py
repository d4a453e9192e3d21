"""Candles for the feature tests: the real BTC/ETH hourly CSVs and a seeded synthetic random walk."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def csv_candles(path: Path, rows: int | None = None) -> pd.DataFrame:
    df = pd.read_csv(path)
    idx = pd.to_datetime(df.pop("timestamp"), unit="ms", utc=True)
    df.index = pd.DatetimeIndex(idx, name="timestamp")
    df = df[["open", "high", "low", "close", "volume"]].astype(np.float64)
    if rows:
        df = df.iloc[:rows]
    df.attrs.update(source="file", symbol=path.stem, timeframe="1h")
    return df


def synthetic_candles(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 0.0005, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    volume = rng.lognormal(3, 1, n)
    # Flat bars and silent bars happen in real markets: keep a few so the fallbacks are exercised.
    flat = rng.choice(n, 10, replace=False)
    open_[flat] = high[flat] = low[flat] = close[flat]
    volume[rng.choice(n, 10, replace=False)] = 0.0
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="timestamp")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=idx)
    df.attrs.update(source="synthetic", symbol="TEST/USDT", timeframe="1h")
    return df
