"""Benchmark the model zoo (prints figures; no timed asserts).

For every registered model at its default size, on windows of `--window` bars x `--features` channels
(chart models: a square image of `--window` pixels; image models read their image channels):
1. training throughput: samples/s of forward + loss + backward at batch `--batch` (64), train mode;
2. inference latency: time of one window (batch 1, eval mode, no autograd);
times are the fastest of the timed runs (on a machine shared with other jobs, the least disturbed one),
with the medians beside them;
and, for both, the achieved GFLOP/s (floating-point operations counted by torch's FlopCounterMode on the
very same passes, backward included) as a share of this machine's fp32 matmul peak measured in the same
run (the best of several square matmuls). Small models are bound by per-layer overhead, not arithmetic:
the share of peak shows how far each is from the hardware's limit.

Usage: `.venv/bin/python bench/bench_models.py [--threads 2] [--batch 64] [--window 64] [--seconds 1.0]
[--models wavenet,tcn] [--device cpu|cuda|auto]`
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def matmul_peak(device, n: int = 2048, repeats: int = 8) -> float:
    """Best fp32 GFLOP/s of an n x n matmul on `device`."""
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = 0.0
    for _ in range(2):  # warm-up
        a @ b
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _loss(out, y):
    import torch.nn.functional as F

    if isinstance(out, dict):
        return (F.cross_entropy(out["direction"], y) + out["magnitude"].pow(2).mean()
                + out["volatility"].pow(2).mean())
    return F.cross_entropy(out, y)


def _timed(fn, seconds: float, device, min_runs: int = 3) -> list[float]:
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return times


def bench_model(name: str, args, device) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from core.inspect.receptive_field import create_registered, example_input

    model, spec = create_registered(name, args.features, 3)
    model.to(device)
    shape = example_input(spec.input_kind, args.features, args.window).shape[1:]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, *shape, generator=gen).to(device)
    y = torch.randint(0, 3, (args.batch,), generator=gen).to(device)
    x1 = x[:1].clone()

    # training step: forward + loss + backward (gradients zeroed each step, no optimiser)
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        _loss(model(x), y).backward()

    step()  # warm-up (allocations, lazy init)
    with FlopCounterMode(display=False) as fc:
        step()
    train_flops = fc.get_total_flops()
    times = _timed(step, args.seconds, device)
    # the fastest run: on a shared machine the least disturbed one (medians are printed beside)
    t_train, t_train_med = min(times), statistics.median(times)

    # inference: one window
    model.eval()
    with torch.no_grad():  # not inference_mode: weight-norm parametrisations fail under it
        model(x1)
        with FlopCounterMode(display=False) as fc1:
            model(x1)
        infer_flops = fc1.get_total_flops()
        lat_times = _timed(lambda: model(x1), args.seconds / 2, device, min_runs=5)
        lat, lat_med = min(lat_times), statistics.median(lat_times)
    params = sum(p.numel() for p in model.parameters())
    return {"model": name, "kind": spec.input_kind, "params": params,
            "train_sps": args.batch / t_train, "train_sps_median": args.batch / t_train_med,
            "train_gflops": train_flops / t_train / 1e9, "latency_ms": lat * 1e3,
            "latency_ms_median": lat_med * 1e3, "infer_gflops": infer_flops / lat / 1e9, "macs": infer_flops // 2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--features", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=1.0, help="timing budget per model and measure")
    ap.add_argument("--models", default="", help="comma-separated names (default: every registered model)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    args = ap.parse_args()

    import torch

    from core.device import best_device
    from core.models import list_models

    torch.set_num_threads(args.threads)
    device = best_device() if args.device == "auto" else torch.device(args.device)
    names = [n for n in args.models.split(",") if n] or [s.name for s in list_models()]
    peak = matmul_peak(device, repeats=20)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"window {args.window}, features {args.features}")
    print(f"fp32 matmul peak at the start (2048^2, best of 20): {peak:.1f} GFLOP/s")
    rows = []
    for name in names:
        t0 = time.perf_counter()
        try:
            r = bench_model(name, args, device)
        except Exception as exc:  # one model failing must not hide the others' figures
            print(f"  {name}: failed: {type(exc).__name__}: {exc}")
            continue
        rows.append(r)
        print(f"  {name}: done in {time.perf_counter() - t0:.1f} s", flush=True)
    peak_end = matmul_peak(device, repeats=20)
    best = max(peak, peak_end)
    print(f"fp32 matmul peak at the end: {peak_end:.1f} GFLOP/s; shares below are of the better one, "
          f"{best:.1f} GFLOP/s (a large gap between the two means other jobs shared the cores)")
    print("times are the fastest of the timed runs (the least disturbed on a shared machine); medians in ()")
    head = (f"{'model':18s} {'params':>11s} {'MACs/sample':>13s} {'train samples/s':>24s} {'train GFLOP/s':>14s} "
            f"{'% peak':>7s} {'latency ms':>20s} {'infer GFLOP/s':>14s} {'% peak':>7s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        sps = f"{r['train_sps']:,.0f} ({r['train_sps_median']:,.0f})"
        lat = f"{r['latency_ms']:.3f} ({r['latency_ms_median']:.3f})"
        print(f"{r['model']:18s} {r['params']:>11,} {r['macs']:>13,} {sps:>24s} {r['train_gflops']:>14.2f} "
              f"{100 * r['train_gflops'] / best:>6.1f}% {lat:>20s} {r['infer_gflops']:>14.3f} "
              f"{100 * r['infer_gflops'] / best:>6.2f}%")


if __name__ == "__main__":
    main()
