"""What the Inspect page and the transfer comparison cost (prints figures; no timed asserts).

    .venv/bin/python bench/bench_inspect.py [--threads 2] [--size 64]

Per model: one feature-map capture (all layers, forward hooks), saliency, integrated gradients (32 steps),
Grad-CAM, the effective receptive field over 32 windows, and for chart_resnet18 the training throughput of a
fine-tune with 2 frozen stages against training from scratch (samples/s, fwd + bwd + AdamW step).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from core.inspect import attributions as attr  # noqa: E402
from core.inspect.feature_maps import capture_feature_maps  # noqa: E402
from core.models import create_model  # noqa: E402


def _t(fn, reps: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--window", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cases = [("cnn1d", "sequence", (15, a.window), None), ("resnet18_1d", "sequence", (15, a.window), None),
             ("cnn_ta", "indicator_image", (1, a.window, 15), None),
             ("chart_resnet18", "chart_image", (3, a.size, a.size), min(a.window, a.size))]
    print(f"torch {torch.__version__}, {a.threads} thread(s), window {a.window}, chart {a.size}px")
    for name, kind, shape, n_bars in cases:
        model = create_model(name, 3 if kind == "chart_image" else (1 if kind == "indicator_image" else 15), 3).eval()
        x = torch.randn(*shape)
        xs = torch.randn(32, *shape)
        fm = _t(lambda: capture_feature_maps(model, x))
        sal = _t(lambda: attr.saliency(model, x))
        ig = _t(lambda: attr.integrated_gradients(model, x, steps=32), reps=1)
        cam = _t(lambda: attr.grad_cam(model, x))
        erf = _t(lambda: attr.run_receptive_field(model, xs, kind, n_bars), reps=1)
        print(f"{name:15s} feature maps {fm * 1e3:7.1f} ms | saliency {sal * 1e3:7.1f} ms | IG(32) {ig * 1e3:8.1f} ms"
              f" | Grad-CAM {cam * 1e3:7.1f} ms | ERF(32 windows) {erf * 1e3:8.1f} ms")

    from core.train.transfer import freeze_early_stages

    x = torch.randn(64, 3, a.size, a.size)
    y = torch.randint(0, 3, (64,))
    for label, n_frozen in (("scratch", 0), ("fine-tune, 2 stages frozen", 2), ("head only (5 frozen)", 5)):
        model = create_model("chart_resnet18", 3, 3)
        freeze_early_stages(model, n_frozen)
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        s = _t(step, reps=2)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"chart_resnet18 {a.size}px train, {label:27s}: {64 / s:7.1f} samples/s ({trainable:,} trainable)")


if __name__ == "__main__":
    main()
