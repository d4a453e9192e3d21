"""How often the paired block bootstrap calls a difference where there is none (prints one table).

Two models whose answers are unrelated to the labels have a true accuracy difference of 0, so a nominal
95 % interval should exclude 0 in about 5 % of test spans. Test samples of a time series hang together:
labels span `horizon` bars, and a model's answer can persist for many bars. Blocks too short for that
make the interval too narrow and the verdict "beats" or "worse" too often.

Each simulated test span has 2,900 samples (the quick preset's test split on 2 years of 1h bars) and
3-class labels of a 12-bar horizon on a random walk. Each model's answer is the argmax of a rolling mean of
noise over P bars (P = 1: a fresh answer every bar). Both rules are run on the same spans:
- "n^(1/3)": blocks of max(horizon, n^(1/3)) (the rule before Politis & White);
- "automatic": `core.train.metrics.paired_block_bootstrap`'s default block length.

    .venv/bin/python bench/bench_bootstrap_coverage.py            # 120 spans per persistence, about 40 s
    .venv/bin/python bench/bench_bootstrap_coverage.py --spans 400
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.train.metrics import paired_block_bootstrap  # noqa: E402

N, HORIZON = 2900, 12


def labels(rng: np.random.Generator) -> np.ndarray:
    close = np.exp(np.cumsum(rng.normal(0, 0.006, N + HORIZON)))
    move = close[HORIZON:] / close[:-HORIZON] - 1
    return np.where(move > 0.002, 2, np.where(move < -0.002, 0, 1))[:N]


def answers(rng: np.random.Generator, persistence: int) -> np.ndarray:
    noise = pd.DataFrame(rng.normal(size=(N + persistence, 3)))
    return noise.rolling(persistence).mean().to_numpy()[persistence:].argmax(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=120, help="simulated test spans per persistence")
    ap.add_argument("--boot", type=int, default=400, help="bootstrap resamples per interval")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    old_block = max(HORIZON, round(N ** (1 / 3)))
    print(f"{args.spans} spans of {N} samples per row, horizon {HORIZON}, {args.boot} resamples; "
          f"nominal rate 5 %")
    print(f"{'answers persist':>16} | {'n^(1/3) blocks':>16} | {'automatic blocks':>17} | {'median block':>12}")
    for persistence in (1, 16, 64, 256):
        hits = {"old": 0, "auto": 0}
        blocks = []
        for _ in range(args.spans):
            y, a, b = labels(rng), answers(rng, persistence), answers(rng, persistence)
            seed = int(rng.integers(1 << 30))
            for rule, block in (("old", old_block), ("auto", None)):
                r = paired_block_bootstrap(y, a, b, 3, "accuracy", block=block, horizon=HORIZON,
                                           n_boot=args.boot, seed=seed)
                hits[rule] += (r["ci_low"] > 0) or (r["ci_high"] < 0)
            blocks.append(r["block"])
        print(f"{persistence:>11} bars | {hits['old'] / args.spans:>15.1%} | {hits['auto'] / args.spans:>16.1%} "
              f"| {np.median(blocks):>12.0f}", flush=True)


if __name__ == "__main__":
    main()
