"""Benchmark: the ConvNeXt feature set on a year of 1-minute bars, vectorised ATR/ADX against ta's loops,
and the memory of zero-copy windows (525,600 rows x 20 channels x 256 steps).

Run: .venv/bin/python bench/bench_features.py [--rows 525600]   (prints figures; no timed asserts)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def minute_candles(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 30000 * np.exp(np.cumsum(rng.normal(0, 8e-4, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 4e-4, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 4e-4, n)))
    idx = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": rng.lognormal(2, 1, n)}, index=idx)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=525_600)
    ap.add_argument("--ta-rows", type=int, default=100_000, help="rows for the ta loop comparison")
    ap.add_argument("--windows-only", action="store_true")
    args = ap.parse_args()
    if args.windows_only:
        windows_memory(args.rows)
        return
    import torch
    torch.set_num_threads(2)
    import ta
    from core.features import PRESETS, adx, atr, compute_features

    print(f"cpus available: {len(os.sched_getaffinity(0))}, torch threads: {torch.get_num_threads()}")
    df = minute_candles(args.rows)
    compute_features(df.iloc[:5000], "convnext")  # warm imports and caches
    best = min(_timed(lambda: compute_features(df, "convnext")) for _ in range(3))
    print(f"convnext ({len(PRESETS['convnext'])} features) on {args.rows:,} 1m rows: {best:.3f} s (best of 3)")
    for name in ("resnet15", "dilated5", "chapter6"):
        print(f"  {name}: {_timed(lambda: compute_features(df, name)):.3f} s")

    small = df.iloc[: args.ta_rows]
    h, l, c = small["high"], small["low"], small["close"]
    print(f"ATR/ADX on {args.ta_rows:,} rows: ta loop vs vectorised")
    print(f"  ATR  ta {_timed(lambda: ta.volatility.AverageTrueRange(h, l, c).average_true_range()):.3f} s"
          f"   ours {_timed(lambda: atr(h, l, c)):.4f} s")
    print(f"  ADX  ta {_timed(lambda: ta.trend.ADXIndicator(h, l, c).adx()):.3f} s"
          f"   ours {_timed(lambda: adx(h, l, c)):.4f} s")

    # Memory in a fresh process so the candles and feature frames above do not blur the figure.
    import subprocess
    subprocess.run([sys.executable, __file__, "--windows-only", "--rows", str(args.rows)], check=True)


def windows_memory(rows: int, ch: int = 20, window: int = 256) -> None:
    import torch
    torch.set_num_threads(2)
    from core.features import WindowDataset

    base = rss_mb()
    feats = np.random.default_rng(1).standard_normal((rows, ch), dtype=np.float32)
    y = np.zeros(rows, dtype=np.int64)
    ends = np.arange(window - 1, rows)
    ds = WindowDataset(feats, y, ends, window)
    loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    for i, (xb, yb) in enumerate(loader):
        if i == 20:
            break
    per_batch = (time.perf_counter() - t0) / 21
    t0 = time.perf_counter()
    for i in range(21):
        ds.batch(np.random.default_rng(i).integers(0, len(ds), 256))
    per_fast = (time.perf_counter() - t0) / 21
    after = rss_mb()
    materialised = len(ends) * ch * window * 4 / 1e9
    print(f"windows: {len(ds):,} samples x {ch} ch x {window} steps, after drawing 42 batches of 256:")
    print(f"  RSS {after:.0f} MB in all (torch + numpy imported: {base:.0f} MB; features + labels + views + "
          f"batches: +{after - base:.0f} MB) vs {materialised:.1f} GB if materialised")
    print(f"  {per_batch * 1e3:.1f} ms per DataLoader batch, {per_fast * 1e3:.2f} ms per WindowDataset.batch()")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
