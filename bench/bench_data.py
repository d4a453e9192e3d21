"""Market-data benchmarks (printed figures, no asserts): synthetic generation and the parquet store.

Run: .venv/bin/python bench/bench_data.py   (uses a throwaway workspace)
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(label: str, fn, repeat: int = 1):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    print(f"{label:<52} {best:8.3f} s")
    return out


def main() -> None:
    os.environ["CNN_LAB_WORKSPACE"] = tempfile.mkdtemp(prefix="bench_data_")
    from core.data.store import load_candles, save_candles
    from core.data.synthetic import generate_market

    generate_market(["BTC/USDT"], "1h", periods=100)  # warm imports
    timed("synthetic 2y 1h x 2 symbols (target < 1 s)",
          lambda: generate_market(["BTC/USDT", "ETH/USDT"], "1h", seed=1), repeat=3)
    m = timed("synthetic 1y 1m x 1 symbol",
              lambda: generate_market(["BTC/USDT"], "1m", start="2024-01-01", periods=525_600, seed=1))
    df = m["BTC/USDT"]
    print(f"{'  rows':<52} {len(df):8,d}")
    info = timed("store write 525,600 1m rows (parquet, atomic)",
                 lambda: save_candles(df, "synthetic", "BTC/USDT", "1m"), repeat=3)
    back = timed("store read 525,600 1m rows", lambda: load_candles(info.id), repeat=3)
    assert len(back) == len(df)


if __name__ == "__main__":
    main()
