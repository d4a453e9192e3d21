"""Sweep throughput: the same grid with 1 and with 2 local workers (loky), and run-zip export/import time.

Prints wall time, cells per minute and the speed-up of 2 workers over 1; the worker start-up (a fresh
process imports torch and the app) is included, as a user pays it too. Run: `python bench/bench_sweep.py`
(about 2 minutes on 2 cores). Options: --cells N (seeds), --epochs E, --rows R, --backend loky|ray.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--backend", default="loky")
    args = ap.parse_args()
    os.environ["CNN_LAB_WORKSPACE"] = tempfile.mkdtemp(prefix="bench_sweep_")
    import torch

    torch.set_num_threads(1)
    from core.data.store import ensure_default_dataset
    from core.sweep.runner import run_sweep
    from core.train.archive import export_run_zip, import_run_zip
    from core.train.runs import delete_run

    ensure_default_dataset()
    spec = {"name": "bench", "preset": "quick",
            "data": {"max_rows": args.rows, "window": 32},
            "train": {"epochs": args.epochs, "patience": 0, "n_boot": 200},
            "grid": {"seed": list(range(args.cells))}}
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work on the machine slows this)")
    print(f"grid: quick preset (cnn1d), {args.cells} cells (seeds), {args.rows} rows, {args.epochs} epochs, "
          f"backend {args.backend}")
    times = {}
    last = None
    # jobs=1 runs in this process (joblib's sequential path); the first jobs=2 sweep starts 2 worker
    # processes (each imports torch and the app), the second reuses them (loky keeps idle workers 300 s)
    for label, jobs in (("1 (in process)", 1), ("2 (fresh workers)", 2), ("2 (warm workers)", 2)):
        t0 = time.perf_counter()
        res = run_sweep(spec, jobs=jobs, backend=args.backend)
        dt = time.perf_counter() - t0
        times[label] = dt
        per_cell = [c.get("seconds", 0.0) for c in res.cells]
        print(f"jobs={label:18s}: {dt:6.1f} s wall, {60 * len(res.cells) / dt:5.1f} cells/min, status {res.status}, "
              f"cell seconds {min(per_cell):.1f}..{max(per_cell):.1f}")
        last = res
    print(f"speed-up of 2 warm workers over 1: {times['1 (in process)'] / times['2 (warm workers)']:.2f}x; "
          f"worker start-up cost: {times['2 (fresh workers)'] - times['2 (warm workers)']:.1f} s")
    rid = last.cells[0]["run_id"]
    t0 = time.perf_counter()
    blob = export_run_zip(rid)
    t_exp = time.perf_counter() - t0
    delete_run(rid)
    t0 = time.perf_counter()
    import_run_zip(blob)
    t_imp = time.perf_counter() - t0
    print(f"run zip: {len(blob) / 1e3:.0f} kB, export {t_exp * 1000:.0f} ms, checked import {t_imp * 1000:.0f} ms")


if __name__ == "__main__":
    main()
