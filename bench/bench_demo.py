"""Benchmark the one-click demo and the live loop (prints figures; no timed asserts).

1. The home page's demo end to end (core.demo.run_demo): the offline market (made first, outside the timing,
   as the home page has already made it by the time the button is pressed), the quick preset's training,
   baselines, the out-of-sample backtest. Target: under 90 s on 2 CPU cores. Per-stage seconds are printed;
   the load average is printed too, since other processes on the machine slow everything down.
2. One live tick on the demo's run (replay: features of window + warm-up bars, scaler, predict, signal,
   log), median of `--ticks` ticks, against the 1 s tick interval the page allows.

Usage: `.venv/bin/python bench/bench_demo.py [--threads 2] [--ticks 30] [--set train.epochs=3 ...]`
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ticks", type=int, default=30)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="demo override")
    args = ap.parse_args()
    os.environ.setdefault("CNN_LAB_WORKSPACE", tempfile.mkdtemp(prefix="bench_demo_ws_"))

    import torch

    torch.set_num_threads(args.threads)
    from core.cli import parse_set
    from core.data.store import ensure_default_dataset, load_candles
    from core.demo import run_demo
    from core.device import best_device
    from core.live.feed import ReplayFeed
    from core.live.signals import load_live_model, tick

    print(f"device {best_device()}, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f} before")
    ds = ensure_default_dataset()
    last = [0.0]

    def show(p) -> None:
        now = time.perf_counter()
        if now - last[0] > 5 or p.done >= 100:
            last[0] = now
            print(f"  {p.done:5.1f} %  {p.message[:100]}", flush=True)

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    res = run_demo(progress=show, overrides=parse_set(args.set))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(f"demo: {wall:.1f} s wall ({cpu:.1f} s CPU), target < 90 s on 2 cores -> "
          f"{'OK' if wall < 90 else 'OVER'}; load average {os.getloadavg()[0]:.1f} after")
    print("  stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in res.seconds.items()))
    bt, bh = res.backtest, res.buy_and_hold
    print(f"  run {res.run_id}: test accuracy {res.metrics.get('accuracy', float('nan')):.3f}; "
          f"{res.vs_best_baseline.get('verdict', '')}")
    print(f"  out of sample {res.test_start[:10]} .. {res.test_end[:10]}: strategy "
          f"{bt.get('total_return', 0) * 100:+.1f} % ({bt.get('n_trades')} trades, Sharpe {bt.get('sharpe', 0):.2f}) "
          f"vs buy and hold {bh.get('total_return', 0) * 100:+.1f} %")

    lm = load_live_model(res.run_id)
    feed = ReplayFeed(load_candles(ds))
    feed.cursor = feed.position_of(res.test_start)
    times = []
    for _ in range(args.ticks):
        t = time.perf_counter()
        r = tick(lm, feed, advance=1)
        times.append(time.perf_counter() - t)
        if r.error:
            print("  tick error:", r.error)
            break
    print(f"live tick (replay, {lm.lookback} bars in, predict + signal + log): median "
          f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {len(times)} ticks "
          f"(first includes warm-up)")


if __name__ == "__main__":
    main()
