"""The CUDA check of the training engine, prepared as one short script for a session that is lent a GPU.

What it checks (prints one line per check and writes a JSON report; exit status 1 if any check fails):
1. `train_run` on CUDA with mixed precision (bf16 where the GPU has it) produces the same run folder a CPU run
   does: config with device "cuda" and its precision, finite history, metrics, predictions.
2. The run reloads on CPU and on CUDA; both recomputed prediction tables match the stored one (the stored
   predictions are float32 computations; CUDA and CPU kernels differ in the last bits, so the check is the
   largest probability difference, which must stay under 1e-4).
3. The float16 + GradScaler path (forced, as on a GPU without bf16) trains to finite weights and a saved run.
4. Throughput: the bench_train loop-vs-bare figures on CUDA (interleaved: a bare-step round after each loop
   epoch) for three sequence models.
Also reported (a figure, not a check): how far the same config trained twice on the GPU lands from itself.

Run on an H200 on 2026-11-30 (torch 2.11.0+cu130, pandas 3.1.1, numpy 2.5.2, scikit-learn 1.9.1 there): all passed.
The device machine has torch, pandas, pyarrow, scikit-learn, numba, joblib, PyYAML and Pillow but not `ta`,
which PyPI has only as a source archive, so build its (pure-Python) wheel here and carry it (see
/work/.library/device/README.md, "a missing Python package can travel as wheels"):
    echo /.whl/ >> .git/info/exclude
    .venv/bin/pip wheel --no-deps -w .whl ta==0.11.0        # -> .whl/ta-0.11.0-py3-none-any.whl (checked)
Then, with `carry: [".whl"]` and a timeout of about 300 s:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site;
    PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out $OUT/gpu_check.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--cpu-rehearsal", action="store_true",
                    help="run checks 1-3 here on CPU with mixed precision switched on for CPU (tries the script out "
                         "before spending device time)")
    args = ap.parse_args()
    os.environ.setdefault("CNN_LAB_WORKSPACE", tempfile.mkdtemp(prefix="gpu_check_ws_"))

    import numpy as np
    import torch

    from core.data.store import ensure_default_dataset, load_candles
    from core.train import runs as registry
    from core.train import trainer
    from core.train.cli import resolve_configs

    report: dict = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "checks": {}}
    ok = True

    def check(name: str, passed: bool, **figures) -> None:
        nonlocal ok
        ok &= bool(passed)
        report["checks"][name] = {"passed": bool(passed), **figures}
        print(f"[{'ok' if passed else 'FAIL'}] {name}: {json.dumps(figures, default=str)}", flush=True)

    dev_name = "cuda"
    if args.cpu_rehearsal:
        dev_name = "cpu"
        trainer.AMP_DEVICE_TYPES = ("cuda", "cpu")
        torch.set_num_threads(2)
    elif not torch.cuda.is_available():
        check("cuda available", False, reason="torch.cuda.is_available() is False")
        return _finish(report, args.out, ok)
    else:
        report["gpu"] = torch.cuda.get_device_name(0)
        report["bf16"] = torch.cuda.is_bf16_supported()
    ds = ensure_default_dataset()
    candles = load_candles(ds)

    def quick(model: str | None, extra: list[str]):
        name, mc, data, train = resolve_configs(model, "quick", [f"train.epochs={args.epochs}", *extra])
        t = time.perf_counter()
        res = trainer.train_run(ds, name, mc, data, train, candles=candles)
        return res, time.perf_counter() - t

    # 1 + 2: the quick preset on CUDA, then reloaded on both devices
    res, secs = quick(None, [f"train.device={dev_name}"])
    hist = res.history[["train_loss", "val_loss"]].to_numpy()
    check(f"train_run on {dev_name}", res.config["device"].startswith(dev_name) and np.isfinite(hist).all()
          and res.config["precision"] != "fp32",
          run_id=res.run_id, precision=res.config["precision"], seconds=round(secs, 2),
          accuracy=res.metrics["accuracy"], status=res.status)
    run = registry.load_run(res.run_id)
    cols = [f"prob_{c}" for c in run.class_names]
    stored = run.predictions[cols].to_numpy()
    for dev in sorted({"cpu", dev_name}):
        again = run.predict(candles=candles, device=dev)
        diff = float(np.abs(again[cols].to_numpy() - stored).max())
        same_rows = again["timestamp"].equals(run.predictions["timestamp"])
        check(f"reload on {dev} reproduces the stored predictions", same_rows and diff < 1e-4, max_abs_diff=diff)

    # the same config again: how far a GPU run is from repeating itself (cuDNN is set deterministic, but some
    # CUDA backward kernels, e.g. adaptive average pooling, add in a varying order): a figure, not a check
    again, _ = quick(None, [f"train.device={dev_name}"])
    rerun_diff = float(np.abs(again.predictions[cols].to_numpy() - stored).max())
    report["same_config_twice_max_abs_diff"] = rerun_diff
    print(f"[figure] the same config trained twice: largest probability difference {rerun_diff:.3g}, "
          f"accuracy {res.metrics['accuracy']:.4f} vs {again.metrics['accuracy']:.4f}", flush=True)

    # 3: float16 with loss scaling, as on a GPU without bf16
    real = trainer._half_dtype
    trainer._half_dtype = lambda device: torch.float16
    try:
        res16, secs16 = quick(None, [f"train.device={dev_name}"])
    finally:
        trainer._half_dtype = real
    hist16 = res16.history[["train_loss", "val_loss"]].to_numpy()
    check(f"fp16 + GradScaler on {dev_name}", res16.config["precision"] == "fp16" and np.isfinite(hist16).all(),
          seconds=round(secs16, 2), accuracy=res16.metrics["accuracy"])

    if args.cpu_rehearsal:
        return _finish(report, args.out, ok)
    # 4: loop vs bare step on CUDA (prints bench_train's own lines)
    import subprocess

    for model in ("cnn1d", "resnet18_1d", "wavenet"):  # the default, a deep one, a dilated one
        try:
            out = subprocess.run([sys.executable, str(Path(__file__).with_name("bench_train.py")), "--device", "cuda",
                                  "--loop-only", "--model", model], capture_output=True, text=True, timeout=100)
        except subprocess.TimeoutExpired:
            check(f"bench_train loop vs bare, {model}", False, line="timed out after 100 s")
            continue
        print(out.stdout[-1500:], out.stderr[-1500:], flush=True)
        ratio = [ln for ln in out.stdout.splitlines() if "loop / bare" in ln]
        check(f"bench_train loop vs bare, {model}", out.returncode == 0 and bool(ratio),
              line=ratio[0].strip() if ratio else out.stderr[-300:])
    return _finish(report, args.out, ok)


def _finish(report: dict, out: str, ok: bool) -> int:
    report["passed"] = ok
    if out:
        Path(out).write_text(json.dumps(report, indent=2, default=str))
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
