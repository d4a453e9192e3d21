"""Benchmark the training engine (prints figures; no timed asserts).

1. The quick preset end to end on the offline market (2 years of 1h candles): prepare, train, evaluate,
   baselines, save. Target: results in < 60 s on 2 CPU cores.
2. The full training loop's samples/s (data gathering, augmentation, loss, backward, clipping, AdamW, lr
   schedule, progress callbacks) against the bare model step (forward, backward, the configured gradient
   clipping and AdamW on one batch already in memory) at the same batch size. Target: the loop within 10 %
   of the bare step: what is left between them is the data pipeline (gathering windows, augmenting) and the
   loop's bookkeeping.
   Interleaved: a round of the bare step (one epoch's steps) runs right after each loop epoch, and the figure is
   the median over the epochs after the first of each epoch against its round. A shared machine's speed drifts
   by a quarter from one minute to the next (seen here and on the lent H200), so two timings taken minutes
   apart compare the minutes, not the code.

Usage: `.venv/bin/python bench/bench_train.py [--preset quick] [--model NAME] [--threads 2] [--epochs 4]`
On a machine whose cores are busy with other jobs use `--threads 1`: torch's thread pool then waits on
the other jobs and two threads can be many times slower than one.
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
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0, help="bare-step timing steps per round (0: one epoch's)")
    ap.add_argument("--epochs", type=int, default=4, help="loop epochs (median of all but the first)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--loop-only", action="store_true", help="skip the end-to-end run, measure [2] only")
    ap.add_argument("--max-train", type=int, default=0, help="[2] on the most recent N training samples")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a setting as on the command line (model.x, data.x, train.x)")
    args = ap.parse_args()
    os.environ.setdefault("CNN_LAB_WORKSPACE", tempfile.mkdtemp(prefix="bench_train_ws_"))

    import torch

    torch.set_num_threads(args.threads)
    from core.data.store import ensure_default_dataset
    from core.train.cli import resolve_configs
    from core.train.trainer import resolve_device

    model_name, mc, data, train = resolve_configs(args.model, args.preset, args.set)
    train.device = args.device
    device = resolve_device(train)
    load = os.getloadavg()
    print(f"device {device}, torch threads {torch.get_num_threads()}, preset {args.preset}, model {model_name}, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} (other jobs on the machine slow every figure)")

    t0 = time.perf_counter()
    ds = ensure_default_dataset()
    t_ds = time.perf_counter() - t0
    if not args.loop_only:
        end_to_end(ds, t_ds, model_name, mc, data, train)
    loop_vs_bare(ds, model_name, mc, data, train, device, args.steps, args.max_train, args.epochs)


def end_to_end(ds, t_ds, model_name, mc, data, train) -> None:
    """[1] prepare, train, evaluate, baselines, save: what a user waits for after Start."""
    import time

    from core.train.trainer import train_run

    stages: dict[str, float] = {}
    last = {"t": time.perf_counter(), "s": "start"}

    def on(pr):
        if pr.stage in ("prepare", "train", "evaluate", "baselines", "done"):
            now = time.perf_counter()
            stages[last["s"]] = stages.get(last["s"], 0) + now - last["t"]
            last.update(t=now, s=pr.stage)

    t1 = time.perf_counter()
    res = train_run(ds, model_name, mc, data, train, progress=on)
    total = time.perf_counter() - t1
    m = res.metrics
    print(f"\n[1] {model_name} end to end on {ds}: {total:.1f} s (+ {t_ds:.1f} s to create/load the dataset)")
    print("    stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in stages.items() if k != "start"))
    print(f"    samples train/val/test {res.config['n_samples']}, epochs run {len(res.history)} "
          f"({res.status}), params {res.config['n_params']:,}")
    print(f"    test accuracy {m['accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f}, macro F1 "
          f"{m['macro_f1']:.3f}, ROC AUC {m['roc_auc']:.3f}, log loss {m['log_loss']:.3f}")
    for b, bm in res.baselines.items():
        print(f"    {b:<9} accuracy {bm['accuracy']:.3f}, balanced {bm['balanced_accuracy']:.3f}, "
              f"macro F1 {bm['macro_f1']:.3f}")
    print(f"    {res.vs_best_baseline.get('verdict', '')}")


def loop_vs_bare(ds, model_name, mc, data, train, device, steps: int = 0, max_train: int = 0,
                 epochs: int = 4) -> None:
    """[2] the full loop's training throughput against the bare model step at the same batch size."""
    from dataclasses import asdict

    import numpy as np
    import torch

    from core.data.store import load_candles
    from core.models import create_model
    from core.train.losses import build_loss, class_weights_for
    from core.train.trainer import (_autocast, _resolve, _valid_ends, build_source, features_on, fit,
                                    param_groups, prepare_for_run, target_scaling)

    data, train, mc, ds, kind = _resolve(ds, model_name, mc, data, train)
    cfg = {"dataset_id": ds, "data_config": asdict(data)}
    prepared = prepare_for_run(cfg, load_candles(ds))
    scaling = target_scaling(prepared) if data.label == "multitask" and model_name.endswith("multitask") else None
    feats = features_on(prepared, kind, device)
    train_ends = _valid_ends(prepared, "train")[-max_train:] if max_train else None
    src_tr = build_source(prepared, kind, "train", data.encoding, scaling, train_ends, features_tensor=feats)
    src_va = build_source(prepared, kind, "val", data.encoding, scaling, features_tensor=feats)
    n_cls = len(prepared.class_names)
    bs = train.batch_size

    def new_model():
        torch.manual_seed(0)
        return create_model(model_name, int(src_tr.get(np.arange(2), torch.device("cpu"))["x"].shape[1]),
                            n_cls, **mc).to(device)

    model = new_model()
    if device.type == "cuda":  # the same cuDNN settings as fit() uses, so both figures are comparable
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    batch = src_tr.get(np.arange(bs), device)
    # the configured optimizer (its parameter groups) and loss (class weights, focal, smoothing), as fit() builds
    # them: they are the model's step, not the data pipeline (fp16's GradScaler is left out: a GPU without bf16)
    opt = torch.optim.AdamW(param_groups(model, train), lr=train.lr, weight_decay=train.weight_decay)
    weights = class_weights_for(train.class_weights, src_tr.labels, n_cls)
    crit = build_loss(train.loss, n_cls, weights, train.label_smoothing, train.focal_gamma).to(device)
    model.train()

    def step():
        with _autocast(device, train):
            out = model(batch["x"])
            out = out["direction"] if isinstance(out, dict) else out
            loss = crit(out.float(), batch["y"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if train.clip and train.clip > 0:  # the configured optimizer step: clipping belongs to it, not to the data
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.clip)
        opt.step()
        return float(loss.detach())  # the loop also reads the loss every step

    steps = steps or max(1, len(src_tr) // bs)

    def bare_round() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return steps * bs / (time.perf_counter() - t)

    for _ in range(5):
        step()
    bare_round()  # warm-up
    # The rounds after the epochs run inside fit's private dropout generator (its progress callback), so the bare
    # step takes the same dropout code as the loop's model (core.models.blocks.dropout); its draws shift the
    # loop's dropout masks, which changes its losses, not its speed.

    # The loop (same model, same batch size; the training phase's throughput, validation excluded), with a round
    # of the bare step right after each of its epochs: a shared machine's speed drifts by a quarter between
    # minutes, so each epoch is compared with the bare step of the same moment, not with one of another minute.
    after: list[float] = []

    def on_epoch(p) -> None:
        if p.stage == "epoch":
            after.append(bare_round())
    loop_cfg = type(train)(**{**asdict(train), "epochs": max(2, epochs), "patience": 0})
    fr = fit(new_model(), src_tr, src_va, loop_cfg, n_cls, device, progress=on_epoch)
    per_epoch = fr.history["samples_per_second"].to_numpy()
    loop, bare = float(np.median(per_epoch[1:])), float(np.median(after[1:]))  # the first epoch warms up
    ratio = float(np.median([lp / b for lp, b in zip(per_epoch[1:], after[1:])]))
    print(f"\n[2] {model_name} ({kind}) on {device} in {fr.precision}, batch size {bs}, {len(src_tr)} training "
          f"samples, augmentations "
          f"{'on' if (loop_cfg.noise_std or loop_cfg.time_warp or loop_cfg.scale_min != 1) and src_tr.time_axis is not None else 'off'}")
    print(f"    bare model step : {bare:10.0f} samples/s  (a round of {steps} steps after each epoch: "
          f"{', '.join(f'{v:.0f}' for v in after)})")
    print(f"    full train loop : {loop:10.0f} samples/s  (per epoch: {', '.join(f'{v:.0f}' for v in per_epoch)})")
    print(f"    loop / bare     : {ratio * 100:9.1f} %  (median of the epochs after the first, each against the "
          f"round after it)")


if __name__ == "__main__":
    main()
