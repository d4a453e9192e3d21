"""The offline synthetic market: determinism, exact aggregation, valid OHLC, stylized facts, calibration
against real Binance BTC/ETH 1h candles, and order books whose imbalance leans toward the next move."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.candles import resample_candles, validate_candles
from core.data.synthetic import (book_imbalance, generate_market, simulate_market,
                                 synthetic_order_book_snapshots)


@pytest.fixture(scope="module")
def market() -> dict[str, pd.DataFrame]:
    # The default offline market: two years of 1h, seed 42.
    return generate_market(["BTC/USDT", "ETH/USDT"], "1h", seed=42)


def _abs_returns(df: pd.DataFrame) -> pd.Series:
    return np.log(df["close"]).diff().dropna().abs()


def _facts(df: pd.DataFrame) -> dict[str, float]:
    r = np.log(df["close"]).diff().dropna()
    a = r.abs()
    return {
        "kurtosis": float(r.kurt()),
        "acf1": float(a.autocorr(1)),
        "acf24": float(a.autocorr(24)),
        "vol_corr": float(np.corrcoef(a, df["volume"].iloc[1:])[0, 1]),
    }


def test_deterministic_and_labelled(market):
    again = generate_market(["BTC/USDT", "ETH/USDT"], "1h", seed=42)
    pd.testing.assert_frame_equal(market["BTC/USDT"], again["BTC/USDT"])
    other = generate_market(["BTC/USDT"], "1h", seed=7)["BTC/USDT"]
    assert not np.allclose(other["close"].to_numpy(), market["BTC/USDT"]["close"].to_numpy())
    btc = market["BTC/USDT"]
    assert btc.attrs["source"] == "synthetic" and btc.attrs["timeframe"] == "1h"
    assert len(btc) == 2 * 365 * 24 + 24  # 2024 is a leap year
    assert btc.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert btc.index[-1] == pd.Timestamp("2025-12-31 23:00", tz="UTC")


def test_valid_ohlc_every_timeframe(market):
    validate_candles(market["BTC/USDT"])
    validate_candles(market["ETH/USDT"])
    small = generate_market(["BTC/USDT"], "1m", periods=3000, seed=1)["BTC/USDT"]
    v = validate_candles(small)
    assert (v["high"] >= v[["open", "close"]].max(axis=1)).all()
    assert (v["low"] <= v[["open", "close"]].min(axis=1)).all()


@pytest.mark.parametrize("fine,coarse", [("1m", "1h"), ("1m", "15m"), ("1h", "1d"), ("5m", "4h")])
def test_coarser_timeframes_are_exact_aggregations(fine, coarse):
    kw = dict(start="2024-03-01", end="2024-03-05", seed=3)
    f = generate_market(["ETH/USDT"], fine, **kw)["ETH/USDT"]
    c = generate_market(["ETH/USDT"], coarse, **kw)["ETH/USDT"]
    pd.testing.assert_frame_equal(resample_candles(f, coarse), c, check_freq=False, rtol=1e-12)


def test_symbols_are_correlated(market):
    rb = np.log(market["BTC/USDT"]["close"]).diff().dropna()
    re = np.log(market["ETH/USDT"]["close"]).diff().dropna()
    assert 0.6 < np.corrcoef(rb, re)[0, 1] < 0.95  # real Binance 2024-26: 0.81


def test_fat_tails(market):
    for df in market.values():
        assert _facts(df)["kurtosis"] > 3


def test_volatility_clustering_over_lags_1_to_24(market):
    for df in market.values():
        a = _abs_returns(df)
        acf = [a.autocorr(lag) for lag in range(1, 25)]
        assert min(acf) > 0.05, acf


def test_volume_rises_with_abs_returns(market):
    for df in market.values():
        a = _abs_returns(df)
        v = df["volume"].iloc[1:]
        q = pd.qcut(a, 5, labels=False)
        by_quintile = v.groupby(q.to_numpy()).mean().to_numpy()
        assert np.all(np.diff(by_quintile) > 0), by_quintile
        assert a.corr(v, method="spearman") > 0.3


def test_intraday_volatility_cycle(market):
    a = _abs_returns(market["BTC/USDT"])
    by_hour = a.groupby(a.index.hour).mean()
    assert by_hour.max() / by_hour.min() > 1.5
    assert by_hour.idxmax() in range(12, 18)  # the US session, as on real exchanges
    # A random relabelling of the hours has no such cycle: the pattern is in the clock, not the noise.
    shuffled = a.groupby(np.random.default_rng(0).permutation(a.index.hour)).mean()
    assert shuffled.max() / shuffled.min() < 1.3


def test_occasional_regime_changes():
    path = simulate_market(["BTC/USDT"], "2024-01-01", "2026-01-01", seed=42)
    reg = path.regimes
    changes = int((np.diff(reg) != 0).sum())
    assert 4 <= changes <= 200  # occasional: weeks apart, not every hour
    assert len(set(reg.tolist())) == 3
    # Regimes are visible in realised volatility: turbulent hours move more than calm ones.
    m = path.minutes["BTC/USDT"]
    hourly = resample_candles(m, "1h")
    a = np.abs(np.log(hourly["close"]).diff().fillna(0).to_numpy())
    assert a[reg == 2].mean() > 1.8 * a[reg == 0].mean()


def test_calibrated_against_real_binance(shared_data, market):
    """Kurtosis, |r| autocorrelation at lags 1 and 24, volume-|r| correlation within a factor of 2."""
    for sym, name in (("BTC/USDT", "BTCUSDT"), ("ETH/USDT", "ETHUSDT")):
        real = pd.read_csv(shared_data / f"binance_spot_{name}_1h.csv")
        real.index = pd.to_datetime(real.pop("timestamp"), unit="ms", utc=True)
        fr, fs = _facts(real), _facts(market[sym])
        for k in fr:
            ratio = fs[k] / fr[k]
            assert 0.5 <= ratio <= 2.0, f"{sym} {k}: synthetic {fs[k]:.3f} vs real {fr[k]:.3f}"


def test_order_book_follows_price_and_imbalance_leads():
    df = generate_market(["BTC/USDT"], "1h", periods=3000, seed=5)["BTC/USDT"]
    book = synthetic_order_book_snapshots(df, levels=10, seed=1)
    assert list(book.columns) == ["timestamp", "side", "level", "price", "size"]
    assert book["timestamp"].nunique() == len(df)
    best = book[book["level"] == 1].pivot_table(index="timestamp", columns="side", values="price")
    mid = (best["bid"] + best["ask"]) / 2
    # Snapshots sit at each candle's close, around the close price, with bid < ask.
    np.testing.assert_allclose(mid.to_numpy(), df["close"].to_numpy(), rtol=2e-3)
    assert (best["bid"] < best["ask"]).all()
    bids = book[book.side == "bid"].pivot_table(index="timestamp", columns="level", values="price")
    assert (bids.diff(axis=1).iloc[:, 1:] < 0).all().all()  # deeper bids are lower
    imb = book_imbalance(book).to_numpy()
    nxt = np.log(df["close"]).diff().shift(-1).to_numpy()
    ok = np.isfinite(nxt)
    assert np.corrcoef(imb[ok], nxt[ok])[0, 1] > 0.1
    # ...but it is information, not a copy of the future.
    assert np.corrcoef(imb[ok], nxt[ok])[0, 1] < 0.8

