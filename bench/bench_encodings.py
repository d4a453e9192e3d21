"""Throughput of the image encodings (prints figures; no timed asserts).

    .venv/bin/python bench/bench_encodings.py [--n 2000] [--window 64]

Chart rasters are rendered in batches of `--batch` windows (how ChartImageDataset renders a DataLoader
batch), in one process (numpy is single-threaded here).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from core.encodings.candlestick import render_candles  # noqa: E402
from core.encodings.gaf import gramian_angular_field  # noqa: E402
from core.encodings.orderbook_heatmap import HeatmapConfig, orderbook_heatmap  # noqa: E402
from core.encodings.recurrence import recurrence_plot  # noqa: E402


def _windows(n: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, w)), axis=1))
    o = c * np.exp(rng.normal(0, 0.003, c.shape))
    h = np.maximum(o, c) * (1 + rng.random(c.shape) * 0.004)
    lo = np.minimum(o, c) * (1 - rng.random(c.shape) * 0.004)
    return np.stack([o, h, lo, c, rng.random(c.shape)], axis=-1)


def _rate(fn, n_items: int, repeat: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_items / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    wins = _windows(a.n, a.window)

    for size in (64, 224):
        n = a.n if size == 64 else a.n // 4
        def run(size=size, n=n):
            for i in range(0, n, a.batch):
                render_candles(wins[i:i + a.batch], size)
        print(f"chart raster {size}x{size} ({a.window} candles, batch {a.batch}): "
              f"{_rate(run, n):,.0f} images/s")
    print(f"chart raster 64x64 one window per call: {_rate(lambda: [render_candles(w, 64) for w in wins[:256]], 256):,.0f} images/s")

    close = wins[..., 3]
    for method in ("summation", "difference"):
        print(f"GAF {method} {a.window}x{a.window}: "
              f"{_rate(lambda m=method: gramian_angular_field(close, m), a.n):,.0f} windows/s")
    print(f"recurrence plot {a.window}x{a.window}: {_rate(lambda: recurrence_plot(close), a.n):,.0f} windows/s")
    print(f"recurrence plot dim 3 delay 2, 10% threshold: "
          f"{_rate(lambda: recurrence_plot(close, 3, 2, percentage=10), a.n):,.0f} windows/s")

    rng = np.random.default_rng(1)
    n_snap, levels = 5000, 20
    ts = np.repeat(pd.date_range("2024-01-01", periods=n_snap, freq="100ms", tz="UTC"), 2 * levels)
    mid = np.repeat(100 * np.exp(np.cumsum(rng.normal(0, 1e-4, n_snap))), 2 * levels)
    lvl = np.tile(np.arange(1, levels + 1), 2 * n_snap)
    side = np.tile(np.repeat(["bid", "ask"], levels), n_snap)
    price = mid * (1 + np.where(side == "bid", -1, 1) * lvl * 5e-4)
    book = pd.DataFrame({"timestamp": ts, "side": side, "level": lvl, "price": price,
                         "size": rng.exponential(10, len(ts))})
    print(f"order-book heatmap (100 bins, {levels} levels/side): "
          f"{_rate(lambda: orderbook_heatmap(book, HeatmapConfig()), n_snap):,.0f} snapshots/s")


if __name__ == "__main__":
    main()
