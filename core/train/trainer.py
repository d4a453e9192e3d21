"""The training loop and `train_run`, which turns (dataset, model, configs) into a saved run.

Loop (`fit`): AdamW; per-step learning rate with a linear warm-up and a cosine decay to `min_lr`; gradient
clipping; class weights; CE / focal / label smoothing, or the multi-task loss when the model returns a dict;
augmentations on train batches only; early stopping on a validation metric with the best weights restored.
Mixed precision: on CUDA (with `amp`) the training steps and the validation loss run under `torch.autocast`,
in bfloat16 where the GPU supports it, else in float16 with a GradScaler. The predictions a run stores (and every
later prediction from it) are computed in float32 (on CUDA with TF32 off), so a reloaded run reproduces them
on the same device and matches a CPU reload to float32 rounding.
`AMP_DEVICE_TYPES` lists the device types that get autocast; CPU is not among them (bf16 autocast is slower than
float32 on most CPUs), but the tests add it to run the same mixed-precision code on a machine without a GPU.

Progress: `Progress("batch", ...)` after each step (metrics: epoch, loss) and `Progress("epoch", ...)` after
each epoch (metrics: epoch, train_loss, train_accuracy, val_loss, val_accuracy, val_macro_f1, lr, seconds,
samples_per_second). The CancelToken is checked before every batch; a cancelled fit ends with the best
weights so far and status "stopped". A non-finite loss ends it with status "failed: ...".

Data path: sequence models read windows straight out of one float32 `(T, C)` tensor through an `unfold`
view (no per-sample Python, no DataLoader workers); image models read whole batches from the
`core.encodings.datasets` Dataset through its batched `__getitems__`.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from core.errors import UserError
from core.models.blocks import private_rng, seeded_init
from core.progress import CancelToken, Cancelled, Progress, ProgressCallback
from core.train.augment import AugmentSettings, augment_batch
from core.features.dataset import gap_note
from core.train.config import DataConfig, TrainConfig, from_dict, to_dataset_config
from core.train.losses import MultiTaskLoss, build_loss, class_weights_for
from core.train.metrics import FAST_METRICS


# ------------------------------------------------------------------------------------------- batch sources

class BatchSource:
    """Something the loop can draw batches from: `len()`, `labels` (int64 numpy), `get(idx) -> dict`."""

    labels: np.ndarray
    time_axis: Optional[int] = None  # the tensor axis that is time, for augmentations (None = no augment)

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError


class TensorSource(BatchSource):
    """Samples already materialised as a tensor `x (N, ...)` with labels `y (N,)` (tests, small data)."""

    def __init__(self, x: torch.Tensor, y: Any, extra: Optional[dict[str, Any]] = None,
                 time_axis: Optional[int] = 2) -> None:
        self.x = torch.as_tensor(x, dtype=torch.float32)
        self.labels = np.asarray(y, dtype=np.int64)
        self.extra = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in (extra or {}).items()}
        self.time_axis = time_axis if self.x.dim() == 3 else None

    def get(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        out = {"x": self.x[i].to(device, non_blocking=True),
               "y": torch.from_numpy(self.labels[idx]).to(device, non_blocking=True)}
        for k, v in self.extra.items():
            out[k] = v[i].to(device, non_blocking=True)
        return out


class WindowSource(BatchSource):
    """Windows `(C, window)` ending at `ends`, gathered per batch from one `(T, C)` float32 tensor.

    `feats.unfold(0, window, 1)` is a strided view `(T - window + 1, C, window)`; indexing it with the
    batch's window starts makes one contiguous `(B, C, window)` copy, which is all the work a batch costs.
    """

    def __init__(self, features: torch.Tensor, y: np.ndarray, ends: np.ndarray, window: int,
                 extra: Optional[dict[str, np.ndarray]] = None) -> None:
        self.window = int(window)
        self.ends = np.asarray(ends, dtype=np.int64)
        if self.ends.size and (self.ends.min() < window - 1 or self.ends.max() >= features.shape[0]):
            raise UserError("sample windows run outside the data; check the window length")
        self.views = features.unfold(0, self.window, 1)
        self.labels = np.asarray(y, dtype=np.int64)[self.ends]
        self.extra = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)[self.ends]) for k, v in (extra or {}).items()}
        self.time_axis = 2

    def get(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        starts = torch.from_numpy(self.ends[idx] - (self.window - 1)).to(self.views.device, non_blocking=True)
        out = {"x": self.views[starts].to(device, non_blocking=True),
               "y": torch.from_numpy(self.labels[idx]).to(device, non_blocking=True)}
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        for k, v in self.extra.items():
            out[k] = v[i].to(device, non_blocking=True)
        return out


# Inputs the augmentations leave alone: rendered charts and order-book pictures have no time axis to warp,
# slice or scale along (the indicator image's columns are bars, so it is augmented like a sequence).
UNAUGMENTED_INPUTS = ("chart_image", "orderbook_image")


class DatasetSource(BatchSource):
    """Batches from a torch Dataset of `(x, y)` (the image datasets), using `__getitems__` when present."""

    def __init__(self, dataset: Any, labels: np.ndarray, extra: Optional[dict[str, np.ndarray]] = None,
                 time_axis: Optional[int] = None) -> None:
        self.ds = dataset
        self.labels = np.asarray(labels, dtype=np.int64)
        self.extra = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in (extra or {}).items()}
        self.time_axis = time_axis

    def get(self, idx: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        if hasattr(self.ds, "_render") and hasattr(self.ds, "ends"):
            # core.encodings.datasets renders a whole batch into one array: skip the per-item tuples
            x = torch.from_numpy(np.ascontiguousarray(self.ds._render(self.ds.ends[np.asarray(idx)]))).float()
        else:
            items = self.ds.__getitems__(list(map(int, idx))) if hasattr(self.ds, "__getitems__") else \
                [self.ds[int(i)] for i in idx]
            x = torch.stack([torch.as_tensor(it[0]) for it in items]).float()
        out = {"x": x.to(device, non_blocking=True),
               "y": torch.from_numpy(self.labels[idx]).to(device, non_blocking=True)}
        i = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        for k, v in self.extra.items():
            out[k] = v[i].to(device, non_blocking=True)
        return out


# ------------------------------------------------------------------------------------------------ the loop

@dataclass
class FitResult:
    history: pd.DataFrame
    best_epoch: int                 # 1-based; 0 when no epoch finished
    status: str                     # "completed", "early_stopped", "stopped", "failed: ..."
    train_seconds: float
    samples_per_second: float       # training-phase throughput (data + step), over all epochs
    class_weights: Optional[list[float]] = None
    precision: str = "fp32"         # of the training steps: "fp32", "bf16" or "fp16" (with loss scaling)
    skipped_steps: int = 0          # fp16 steps the GradScaler skipped for inf/NaN gradients


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW's parameter groups: all parameters decayed (the documents' and Keras's way), or, with
    `cfg.decay_norms_and_biases` off, none of the 1-D ones (biases, norm gains, ConvNeXt's layer-scale gammas),
    as in timm and ConvNeXt's own training."""
    params = list(model.parameters())
    if cfg.decay_norms_and_biases:
        return [{"params": params}]
    return [{"params": [p for p in params if p.ndim > 1]},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of the base lr: linear warm-up from 1 % to 100 %, then cosine down to `min_ratio`."""
    if warmup_steps > 0 and step < warmup_steps:
        return 0.01 + 0.99 * step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _direction(out: Any) -> torch.Tensor:
    return out["direction"] if isinstance(out, dict) else out


AMP_DEVICE_TYPES: tuple[str, ...] = ("cuda",)
PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def _half_dtype(device: torch.device) -> torch.dtype:
    """The autocast dtype of `device`: bfloat16 where supported (no loss scaling needed), else float16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def amp_dtype(device: torch.device, cfg: Optional[TrainConfig]) -> Optional[torch.dtype]:
    """The mixed-precision dtype of training on `device` under `cfg`, or None for float32."""
    if cfg is None or not cfg.amp or device.type not in AMP_DEVICE_TYPES:
        return None
    return _half_dtype(device)


def _autocast(device: torch.device, cfg: Optional[TrainConfig]):
    dtype = amp_dtype(device, cfg)
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def _true_fp32(device: torch.device) -> Iterator[None]:
    """On CUDA, convolutions and matmuls in real float32 inside (cuDNN would otherwise use TF32, a 10-bit
    mantissa, for float32 convolutions): stored predictions then match a CPU reload to float32 rounding."""
    if device.type != "cuda":
        yield
        return
    conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, mm


def features_on(prepared: Any, input_kind: str, device: torch.device) -> torch.Tensor:
    """The run's features as one float32 `(T, C)` tensor; on a GPU, sequence batches are then gathered there."""
    feats = torch.from_numpy(np.ascontiguousarray(prepared.features, dtype=np.float32))
    if device.type != "cpu" and input_kind in ("sequence", "flat"):
        feats = feats.to(device)
    return feats


def resolve_device(cfg: TrainConfig) -> torch.device:
    from core.device import best_device

    if cfg.device == "auto":
        return best_device()
    if str(cfg.device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for but no CUDA GPU is available; use device=auto or cpu")
    return torch.device(cfg.device)


@torch.no_grad()
def predict_outputs(model: nn.Module, src: BatchSource, device: torch.device, batch_size: int = 512,
                    cfg: Optional[TrainConfig] = None) -> dict[str, np.ndarray]:
    """Class probabilities (float64 of the float32 softmax) and, for multi-task models, the regression
    outputs, for every sample of `src` in order, computed in float32 whatever precision training used.
    Same batch size -> bit-identical results on CPU. (`cfg` is kept for callers; it no longer matters.)"""
    model.eval()
    probs, extra = [], {}
    n = len(src)
    for s in range(0, n, batch_size):
        idx = np.arange(s, min(n, s + batch_size))
        b = src.get(idx, device)
        with _true_fp32(device):
            out = model(b["x"])
        probs.append(torch.softmax(_direction(out).float(), dim=1).cpu().numpy())
        if isinstance(out, dict):
            for k in ("magnitude", "volatility"):
                if k in out:
                    extra.setdefault(k, []).append(out[k].float().reshape(-1).cpu().numpy())
    result = {"proba": np.concatenate(probs).astype(np.float64) if probs else np.zeros((0, 0))}
    for k, v in extra.items():
        result[k] = np.concatenate(v).astype(np.float64)
    return result


def _evaluate_loss(model: nn.Module, src: BatchSource, criterion: nn.Module, device: torch.device,
                   cfg: TrainConfig, multitask: bool, k: int,
                   class_weights: Optional[torch.Tensor] = None) -> dict[str, float]:
    """Validation loss over the whole split (a class-weighted loss is a weighted mean over all samples, not a
    mean of batch means: a batch holding only a zero-weight class has no loss of its own; the multi-task
    regression terms are plain means over the samples), and metrics."""
    model.eval()
    total, n, weight_sum, regression, preds = 0.0, 0, 0.0, 0.0, []
    with torch.no_grad():
        for s in range(0, len(src), cfg.eval_batch_size):
            idx = np.arange(s, min(len(src), s + cfg.eval_batch_size))
            b = src.get(idx, device)
            with _autocast(device, cfg):
                out = model(b["x"])
            if multitask:
                loss, reg = criterion.parts(out, b["y"], b["magnitude"], b["volatility"])
                regression += float(reg) * len(idx)
            else:
                loss = criterion(_direction(out).float(), b["y"])
            w = len(idx) if class_weights is None else float(class_weights.to(b["y"].device)[b["y"]].sum())
            if w > 0:
                total += float(loss) * w
                weight_sum += w
            n += len(idx)
            preds.append(_direction(out).argmax(1).cpu().numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    y = src.labels
    direction = total / weight_sum if weight_sum > 0 else float("nan")
    val_loss = criterion.w[0] * direction + regression / max(1, n) if multitask else direction
    return {"val_loss": val_loss,
            "val_accuracy": FAST_METRICS["accuracy"](y, pred, k) if n else float("nan"),
            "val_macro_f1": FAST_METRICS["macro_f1"](y, pred, k) if n else float("nan")}


def fit(model: nn.Module, train_src: BatchSource, val_src: BatchSource, cfg: TrainConfig, n_classes: int,
        device: Optional[torch.device] = None, progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None, dropout_rng: Optional[torch.Generator] = None) -> FitResult:
    """Train `model` in place; on return it holds the best weights (by `cfg.monitor` on `val_src`).

    Dropout and drop-path draw from `dropout_rng` (default: a generator seeded from `cfg.seed`), never from
    torch's global generator, which other jobs of the process share."""
    cfg.validate()
    device = device or resolve_device(cfg)
    if len(train_src) < 2:
        raise UserError("there are fewer than 2 training samples: use a longer dataset or a shorter window")
    if len(val_src) < 1:
        raise UserError("the validation split is empty: use a longer dataset or a larger val share")
    model.to(device)
    if device.type == "cuda":  # the same config gives the same numbers on a GPU too, as far as cuDNN allows
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    multitask = "magnitude" in getattr(train_src, "extra", {})
    weights = class_weights_for(cfg.class_weights, train_src.labels, n_classes)
    if weights is not None and len(val_src) and float(weights[torch.as_tensor(val_src.labels)].sum()) == 0:
        raise UserError("every validation sample is of a class with class weight 0 (with 'balanced' weights: a "
                        "class the training samples lack), so the validation loss is undefined; use no class "
                        "weights, or a longer dataset")
    crit = build_loss(cfg.loss, n_classes, weights, cfg.label_smoothing, cfg.focal_gamma)
    if multitask:
        crit = MultiTaskLoss(crit, cfg.multitask_weights)
    crit = crit.to(device)
    opt = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(train_src)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    if n % bs == 1:  # a batch of one breaks BatchNorm in train mode: drop it (a different one each epoch)
        steps_per_epoch -= 1
    total_steps = steps_per_epoch * cfg.epochs
    warm = int(round(cfg.warmup * steps_per_epoch))
    min_ratio = min(1.0, cfg.min_lr / cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, warm, min_ratio))
    half = amp_dtype(device, cfg)
    scaler = torch.amp.GradScaler(device.type) if half == torch.float16 else None
    aug = AugmentSettings(cfg.noise_std, cfg.scale_min, cfg.scale_max, cfg.time_warp, cfg.window_slice,
                          cfg.augment_p)
    do_aug = aug.active and train_src.time_axis is not None
    g_shuffle = np.random.default_rng(cfg.seed + 1)
    g_aug = torch.Generator(device=device).manual_seed(cfg.seed + 2)
    g_drop = dropout_rng if dropout_rng is not None else torch.Generator(device=device).manual_seed(cfg.seed + 3)

    better = (lambda a, b: a < b - cfg.min_delta) if cfg.monitor == "val_loss" else \
        (lambda a, b: a > b + cfg.min_delta)
    best_val: Optional[float] = None
    best_state: Optional[dict[str, torch.Tensor]] = None
    best_epoch, bad_epochs = 0, 0
    rows: list[dict[str, Any]] = []
    status = "completed"
    t_train, n_seen = 0.0, 0
    step, skipped = 0, 0
    t0 = time.perf_counter()
    with private_rng(g_drop):  # (dropout and drop-path of this run's model, in this thread)
        try:
            for epoch in range(1, cfg.epochs + 1):
                model.train()
                te = time.perf_counter()
                order = g_shuffle.permutation(n)
                loss_sum, correct, seen = 0.0, 0, 0
                for bi in range(steps_per_epoch):
                    if cancel is not None:
                        cancel.raise_if_cancelled()
                    idx = order[bi * bs:(bi + 1) * bs]
                    b = train_src.get(idx, device)
                    x = b["x"]
                    if do_aug:
                        x = _augment(x, train_src.time_axis, aug, g_aug)
                    with _autocast(device, cfg):
                        out = model(x)
                        logits = _direction(out)
                        loss = crit(out, b["y"], b["magnitude"], b["volatility"]) if multitask else \
                            crit(logits.float(), b["y"])
                    lv = float(loss.detach())
                    if not math.isfinite(lv):
                        raise _NonFinite(epoch, bi + 1, lv)
                    opt.zero_grad(set_to_none=True)
                    lr_used = opt.param_groups[0]["lr"]  # the rate of this step (the schedule moves after it)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        scaler.unscale_(opt)
                    else:
                        loss.backward()
                    if cfg.clip and cfg.clip > 0:
                        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                    stepped = True
                    if scaler is not None:
                        before = scaler.get_scale()
                        scaler.step(opt)
                        scaler.update()
                        stepped = scaler.get_scale() >= before  # the scale drops only when the step was skipped
                        skipped += not stepped
                    else:
                        opt.step()
                    if stepped:  # the schedule counts the optimizer's real steps
                        sched.step()
                    step += 1
                    loss_sum += lv * len(idx)
                    correct += int((logits.detach().argmax(1) == b["y"]).sum())
                    seen += len(idx)
                    if progress is not None:
                        progress(Progress("batch", step, total_steps,
                                          f"epoch {epoch}/{cfg.epochs} batch {bi + 1}/{steps_per_epoch}",
                                          {"epoch": epoch, "loss": lv}))
                train_time = time.perf_counter() - te
                t_train += train_time
                n_seen += seen
                val = _evaluate_loss(model, val_src, crit, device, cfg, multitask, n_classes, weights)
                row = {"epoch": epoch, "train_loss": loss_sum / max(1, seen),
                       "train_accuracy": correct / max(1, seen), **val, "lr": lr_used,
                       "seconds": time.perf_counter() - te, "samples_per_second": seen / max(train_time, 1e-9)}
                if not math.isfinite(row["val_loss"]):
                    raise _NonFinite(epoch, 0, row["val_loss"])
                score = row[cfg.monitor]
                improved = best_val is None or better(score, best_val)
                if improved:
                    best_val, best_epoch, bad_epochs = score, epoch, 0
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                else:
                    bad_epochs += 1
                row["best"] = improved
                rows.append(row)
                if progress is not None:
                    progress(Progress("epoch", epoch, cfg.epochs,
                                      f"epoch {epoch}/{cfg.epochs}: val_loss {row['val_loss']:.4f}, "
                                      f"val_accuracy {row['val_accuracy']:.3f}", dict(row)))
                if cfg.patience and bad_epochs >= cfg.patience:
                    status = "early_stopped"
                    break
        except Cancelled:
            status = "stopped"
        except _NonFinite as exc:
            status = f"failed: {exc}"
    if best_state is not None:
        model.load_state_dict(best_state)
    elif status == "stopped":
        raise Cancelled("training was stopped before the first epoch finished; nothing to keep")
    elif status.startswith("failed"):
        raise UserError(f"training {status[8:]}. Nothing was saved; try a lower learning rate, "
                        f"gradient clipping (train.clip=1) or fewer/other features.")
    return FitResult(history=pd.DataFrame(rows), best_epoch=best_epoch, status=status,
                     train_seconds=time.perf_counter() - t0, samples_per_second=n_seen / max(t_train, 1e-9),
                     class_weights=None if weights is None else [float(w) for w in weights],
                     precision=PRECISION_NAMES[half], skipped_steps=skipped)


class _NonFinite(Exception):
    def __init__(self, epoch: int, batch: int, value: float) -> None:
        where = f"epoch {epoch} batch {batch}" if batch else f"epoch {epoch} (validation)"
        super().__init__(f"loss became {'NaN' if math.isnan(value) else value} at {where}")


def _augment(x: torch.Tensor, time_axis: int, aug: AugmentSettings, g: torch.Generator) -> torch.Tensor:
    """Bring the time axis last as (B, C', T), augment, and restore the layout."""
    if x.dim() == 3 and time_axis == 2:
        return augment_batch(x, aug, g)
    moved = x.movedim(time_axis, -1)
    shape = moved.shape
    flat = moved.reshape(shape[0], -1, shape[-1])
    return augment_batch(flat, aug, g).reshape(shape).movedim(-1, time_axis)


# ------------------------------------------------------------------------------------- runs from datasets

def model_label_problem(model_name: str, multitask_model: bool, label: str) -> Optional[str]:
    """Why a model cannot learn from a label kind (None when it can): a multi-task model needs the multitask
    labels (direction, magnitude and volatility targets)."""
    if multitask_model and label != "multitask":
        return (f"The model {model_name} answers direction, magnitude and volatility: it needs the multitask "
                f"label (the Label box, or data.label=multitask on the command line), not {label}")
    return None


def check_run_settings(model_name: str, data: DataConfig, train: TrainConfig,
                       dataset_rows: Optional[int] = None) -> None:
    """A UserError for anything about a run's settings that can be said before any work starts: a model that
    cannot learn from the label kind, invalid data or training settings, and (given the dataset's candle
    count) a window, horizon and split the data cannot hold. The Train page calls it as settings change."""
    from core.models import get_spec

    mismatch = model_label_problem(model_name, get_spec(model_name).multitask, data.label)
    if mismatch:
        raise UserError(mismatch)
    train.validate()
    data.validate()
    if dataset_rows is not None:
        data.check_fits(dataset_rows)


def model_label_note(model_name: str, multitask_model: bool, label: str) -> Optional[str]:
    """What a one-head model does with the multitask labels (None otherwise): it learns the direction only."""
    if label == "multitask" and not multitask_model:
        return (f"{model_name} has one head: with the multitask label it learns the direction classes only "
                f"(wavenet_multitask also learns magnitude and volatility).")
    return None


def _valid_ends(prepared: Any, split: str) -> np.ndarray:
    ends = np.asarray(prepared.splits[split], dtype=np.int64)
    return ends[np.asarray(prepared.y)[ends] >= 0]  # never train or score on undefined labels


def target_scaling(prepared: Any) -> Optional[dict[str, list[float]]]:
    """Mean/std of the multi-task regression targets over the train samples (None if not multi-task)."""
    targets = getattr(prepared, "targets", None) or {}
    if not ("magnitude" in targets and "volatility" in targets):
        return None
    ends = _valid_ends(prepared, "train")
    out = {}
    for k in ("magnitude", "volatility"):
        v = np.asarray(targets[k], dtype=np.float64)[ends]
        v = v[np.isfinite(v)]
        mu = float(v.mean()) if v.size else 0.0
        sd = float(v.std()) if v.size and v.std() > 0 else 1.0
        out[k] = [mu, sd]
    return out


def build_source(prepared: Any, input_kind: str, split: str, encoding: Optional[dict[str, Any]] = None,
                 scaling: Optional[dict[str, list[float]]] = None, ends: Optional[np.ndarray] = None,
                 features_tensor: Optional[torch.Tensor] = None) -> BatchSource:
    """The batch source of one split for a model of `input_kind`."""
    ends = _valid_ends(prepared, split) if ends is None else np.asarray(ends, dtype=np.int64)
    extra = None
    if scaling:
        extra = {}
        for k, (mu, sd) in scaling.items():
            v = (np.asarray(prepared.targets[k], dtype=np.float64) - mu) / sd
            extra[k] = np.nan_to_num(v, nan=0.0).astype(np.float32)
    window = int(prepared.window)
    if input_kind in ("sequence", "flat"):
        feats = features_tensor if features_tensor is not None else \
            torch.from_numpy(np.ascontiguousarray(prepared.features, dtype=np.float32))
        return WindowSource(feats, prepared.y, ends, window, extra)
    from core.encodings.datasets import make_dataset

    ds = make_dataset(prepared, ends, input_kind, **(encoding or {}))
    labels = np.asarray(prepared.y, dtype=np.int64)[ends]
    ex = {k: v[ends] for k, v in extra.items()} if extra else None
    return DatasetSource(ds, labels, ex, time_axis=None if input_kind in UNAUGMENTED_INPUTS else 2)


def _load_candles(dataset_id: str) -> pd.DataFrame:
    from core.data.store import load_candles

    return load_candles(dataset_id)


def run_candles(config: dict[str, Any], candles: pd.DataFrame) -> pd.DataFrame:
    """The candles a run learns from: the dataset's last `max_rows` when it is trained, and for a saved run
    exactly the span it was trained on (`data_span`), however the dataset has grown since. Without that, an
    extended dataset would move the split and the scaler: a reload would call training windows "test"."""
    span = config.get("data_span")
    if span:
        start, end = (pd.Timestamp(t) for t in span)
        idx = candles.index
        return candles.iloc[idx.searchsorted(start, "left"):idx.searchsorted(end, "right")]
    rows = (config.get("data_config") or {}).get("max_rows")
    return candles.iloc[-int(rows):] if rows else candles


def data_span(candles: pd.DataFrame) -> dict[str, Any]:
    """What a saved run records of its candles, for `run_candles` and `changed_candles_note`."""
    from core.data.candles import candles_digest

    return {"data_span": [str(candles.index[0]), str(candles.index[-1])], "data_rows": int(len(candles)),
            "data_digest": candles_digest(candles)}


def changed_candles_note(config: dict[str, Any], candles: pd.DataFrame, what: str = "run") -> Optional[str]:
    """None when the dataset still holds the candles a saved run (or walk-forward evaluation) learnt from;
    else a sentence saying they changed. Runs saved before runs recorded a fingerprint get None."""
    from core.data.candles import candles_digest

    want = config.get("data_digest")
    if not want or not config.get("data_span"):
        return None
    now = run_candles(config, candles)
    if len(now) and candles_digest(now) == want:
        return None
    start, end = (pd.Timestamp(t) for t in config["data_span"])
    return (f"The dataset {config.get('dataset_id')!r} no longer holds the candles this {what} learnt from "
            f"({start:%Y-%m-%d} to {end:%Y-%m-%d}): it was replaced or corrected since (other prices or rows). "
            "Its predictions were made on the old candles, so anything computed here from today's candles "
            "(trades, inputs) does not show what the model saw.")


def prepare_for_run(config: dict[str, Any], candles: Optional[pd.DataFrame] = None) -> Any:
    """PreparedData for a run config (`dataset_id` + `data_config`, and `data_span` for a saved run)."""
    from core.features import prepare_dataset

    data = from_dict(DataConfig, config.get("data_config") or {}).validate()
    if candles is None:
        candles = _load_candles(config["dataset_id"])
    candles = run_candles(config, candles)
    if config.get("data_span") and len(candles) == 0:
        raise UserError(f"the dataset {config['dataset_id']!r} no longer holds the candles this run was trained "
                        f"on ({config['data_span'][0]} to {config['data_span'][1]})")
    return prepare_dataset(candles, to_dataset_config(data))


def predictions_for(model: nn.Module, prepared: Any, config: dict[str, Any], split: str = "test",
                    device: str | torch.device = "cpu", src: Optional[BatchSource] = None) -> pd.DataFrame:
    """The predictions table of one split: timestamp (UTC), y_true, prob_<class>..., split. `src` is the
    split's batch source when the caller already built it (training), else it is built here (reload)."""
    train = from_dict(TrainConfig, config.get("train_config") or {})
    if src is None:
        src = build_source(prepared, config["input_kind"], split,
                           (config.get("data_config") or {}).get("encoding"), config.get("targets_scaling"))
    out = predict_outputs(model, src, torch.device(device), train.eval_batch_size, train)
    ends = _valid_ends(prepared, split)
    ts = pd.DatetimeIndex(np.asarray(prepared.timestamps)[ends])
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    df = pd.DataFrame({"timestamp": ts, "y_true": np.asarray(prepared.y, dtype=np.int64)[ends]})
    for i, name in enumerate(config["class_names"]):
        df[f"prob_{name}"] = out["proba"][:, i]
    for k in ("magnitude", "volatility"):
        if k in out and config.get("targets_scaling"):
            mu, sd = config["targets_scaling"][k]
            df[f"pred_{k}"] = out[k] * sd + mu  # back in the target's own units
    df["split"] = split
    return df


@dataclass
class RunResult:
    run_id: str
    path: Any
    status: str
    metrics: dict[str, Any]
    val_metrics: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    vs_best_baseline: dict[str, Any]
    history: pd.DataFrame
    config: dict[str, Any]
    predictions: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The `--json` object of `python -m core train`."""
        return {"run_id": self.run_id, "status": self.status, "path": str(self.path),
                "model_name": self.config["model_name"], "dataset_id": self.config["dataset_id"],
                "metrics": self.metrics, "val_metrics": self.val_metrics, "baselines": self.baselines,
                "vs_best_baseline": self.vs_best_baseline,
                "best_epoch": self.config.get("best_epoch"), "epochs_run": len(self.history),
                "train_seconds": self.config.get("train_seconds"), "device": self.config.get("device"),
                "precision": self.config.get("precision", "fp32"), "warnings": self.warnings}


def compare_to_baselines(y: np.ndarray, proba: np.ndarray, baselines: dict[str, np.ndarray], n_classes: int,
                         horizon: int = 1, n_boot: int = 1000, seed: int = 0,
                         headline: str = "accuracy") -> dict[str, Any]:
    """CNN minus the best baseline (chosen per metric, on the test set: the hardest comparison for the CNN)
    with paired block-bootstrap intervals; `beats` is True only when the whole 95 % interval is above 0."""
    from core.train.metrics import paired_block_bootstrap

    if not baselines:
        return {}
    y = np.asarray(y, dtype=np.int64)
    pred = np.asarray(proba).argmax(1)
    per_metric = {}
    for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
        f = FAST_METRICS[metric]
        scores = {name: f(y, p.argmax(1), n_classes) for name, p in baselines.items()}
        best = max(scores, key=lambda k: (scores[k], k == "logistic"))
        bs = paired_block_bootstrap(y, pred, baselines[best].argmax(1), n_classes, metric,
                                    horizon=horizon, n_boot=n_boot, seed=seed)
        bs.update(baseline=best, cnn=f(y, pred, n_classes), baseline_value=scores[best],
                  beats=bool(bs["ci_low"] > 0), worse=bool(bs["ci_high"] < 0))
        per_metric[metric] = bs
    head = dict(per_metric[headline])
    head["others"] = {k: v for k, v in per_metric.items() if k != headline}
    return readable_verdicts(head)


METRIC_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1"}


def _verdict(b: dict[str, Any], head_baseline: Optional[str] = None) -> str:
    """One metric's comparison as a sentence, the metric named as people write it ("macro F1"); when its best
    baseline is not the headline's (the best baseline is chosen per metric), the sentence says so instead of
    naming a second "best" baseline."""
    m = METRIC_NAMES.get(str(b.get("metric")), str(b.get("metric", "")).replace("_", " "))
    base = b.get("baseline")
    ci = (f"{int(round(b.get('confidence', 0.95) * 100))} % CI {b['ci_low'] * 100:+.1f} to "
          f"{b['ci_high'] * 100:+.1f} points")
    d = f"{b['diff'] * 100:+.1f} points"
    if head_baseline is not None and base != head_baseline:
        who = f"On {m}, where the best baseline is {base} rather than {head_baseline}, the model"
        if b.get("beats"):
            return f"{who} beats it: {d} ({ci})."
        if b.get("worse"):
            return f"{who} is worse: {d} ({ci})."
        return f"{who} does not clearly beat it: {d} is within noise ({ci})."
    if b.get("beats"):
        return f"The model beats the best baseline ({base}) on {m}: {d} ({ci})."
    if b.get("worse"):
        return f"The model is worse than the best baseline ({base}) on {m}: {d} ({ci})."
    return f"The model does not clearly beat the best baseline ({base}) on {m}: {d} is within noise ({ci})."


def readable_verdicts(vs: dict[str, Any]) -> dict[str, Any]:
    """`vs` (from `compare_to_baselines`, or one saved by an older version) with its verdict sentences made by
    `_verdict`: the headline's, and each other metric's, saying when that metric's best baseline is another
    one. A new dict; `vs` is left as it was."""
    if not vs or not all(k in vs for k in ("metric", "diff", "ci_low", "ci_high")):
        return vs
    out = dict(vs, verdict=_verdict(vs))
    if "others" in vs:
        out["others"] = {k: dict(o, verdict=_verdict(dict(o, metric=o.get("metric", k)), vs.get("baseline")))
                         if isinstance(o, dict) and all(x in o for x in ("diff", "ci_low", "ci_high")) else o
                         for k, o in (vs.get("others") or {}).items()}
    return out


def verdict_text(vs: dict[str, Any]) -> str:
    """The headline verdict, plus the verdict of every other compared metric whose interval lies wholly on
    one side of zero: "within noise on accuracy" must not hide "worse beyond noise on macro F1"."""
    if not vs or not vs.get("verdict"):
        return ""
    extra = [o["verdict"] for o in (vs.get("others") or {}).values()
             if o.get("verdict") and (o.get("beats") or o.get("worse"))]
    return " ".join([vs["verdict"], *extra])


def verdict_is_good(vs: dict[str, Any]) -> bool:
    """True (a green box) only when the CNN beats the best baseline on the headline metric and is worse on
    none of the others: "beats on accuracy, worse on macro F1" is not a success to colour green."""
    return bool(vs and vs.get("beats")) and not any(o.get("worse") for o in (vs.get("others") or {}).values())


@dataclass
class Scored:
    """What training on one PreparedData gives, before anything is saved."""

    model: nn.Module
    fit: FitResult
    predictions: pd.DataFrame          # the test split
    proba: np.ndarray
    y_test: np.ndarray
    metrics: dict[str, Any]
    val_metrics: dict[str, Any]
    baseline_proba: dict[str, np.ndarray]
    baselines: dict[str, dict[str, Any]]
    config: dict[str, Any]
    n_samples: dict[str, int]
    warnings: list[str] = field(default_factory=list)  # said beside the results (run_warnings)


def _continue_stream(device: torch.device) -> torch.Generator:
    """A generator for `device` in the state torch's global one is in now (call it inside `seeded_init`)."""
    g = torch.Generator(device=device)
    g.set_state(torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state())
    return g


def fit_and_score(prepared: Any, config: dict[str, Any], data: DataConfig, train: TrainConfig, input_kind: str,
                  progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                  stage: Optional[Callable[[str, str], None]] = None, with_baselines: bool = True,
                  init: Optional[Callable[[nn.Module], dict[str, Any]]] = None) -> Scored:
    """Build the model, train it on `prepared`'s train/val splits, score the test split and the baselines.

    `config` holds dataset_id, model_name, model_config, data_config, train_config; a copy is returned
    completed with class_names, input_kind, feature_names, in_channels, targets_scaling, device.
    `init(model) -> dict`, when given, runs between creating the model and training it (transfer learning:
    load starting weights, freeze stages); what it returns is stored in the config as `transfer`.
    """
    from core.models import create_model
    from core.train.baselines import fit_baselines
    from core.train.metrics import classification_metrics, regression_metrics

    stage = stage or (lambda s, m: None)
    model_name, model_config = config["model_name"], dict(config.get("model_config") or {})
    class_names = [str(c) for c in prepared.class_names]
    n_classes = len(class_names)
    train_ends = _valid_ends(prepared, "train")[-int(train.max_train_samples):] if train.max_train_samples \
        else None
    scaling = target_scaling(prepared) if data.label == "multitask" else None
    device = resolve_device(train)
    feats = features_on(prepared, input_kind, device)
    src = {s: build_source(prepared, input_kind, s, data.encoding, scaling,
                           train_ends if s == "train" else None, feats) for s in ("train", "val", "test")}
    if len(src["test"]) < 1:
        raise UserError("the test split is empty: use a longer dataset or a larger test share")
    sample = src["train"].get(np.arange(min(2, len(src["train"]))), torch.device("cpu"))["x"]
    in_channels = int(sample.shape[1])
    if init is not None:
        stage("init", "loading starting weights")
    with seeded_init(train.seed):  # the same seed -> the same initial weights, whatever else runs
        try:
            model = create_model(model_name, in_channels, n_classes, **model_config)
        except TypeError as exc:
            raise UserError(f"model {model_name!r} does not accept these settings: {exc}") from exc
        # dropout goes on from where the seeded stream stands after the initial weights (as it did when it
        # drew from the global generator), in a generator of the run's own
        drop_rng = _continue_stream(device)
        if init is not None:  # inside too: what it draws (a new head) comes from the run's seed alone
            config = dict(config, transfer=init(model))
    with torch.no_grad():
        probe = model.eval()(sample)
    if isinstance(probe, dict) and scaling is None:
        raise UserError(model_label_problem(model_name, True, data.label))
    if scaling is not None and not isinstance(probe, dict):
        # multitask labels with a single-head model: it learns the direction classes only
        scaling = None
        for s in src.values():
            s.extra = {}

    stage("train", f"training {model_name} on {len(src['train'])} samples")
    fr = fit(model, src["train"], src["val"], train, n_classes, device, progress, cancel, drop_rng)

    stage("evaluate", "scoring the test split")
    config = dict(config, class_names=class_names, input_kind=input_kind,
                  feature_names=list(prepared.feature_names), in_channels=in_channels,
                  targets_scaling=scaling, device=str(device), precision=fr.precision)
    preds = predictions_for(model, prepared, config, "test", device, src["test"])
    val_preds = predict_outputs(model, src["val"], device, train.eval_batch_size, train)["proba"]
    y_test = preds["y_true"].to_numpy()
    proba = preds[[f"prob_{c}" for c in class_names]].to_numpy()
    metrics = classification_metrics(y_test, proba, class_names)
    if scaling is not None:  # the multi-task heads, in the targets' own units
        test_ends = _valid_ends(prepared, "test")
        metrics["heads"] = {k: regression_metrics(np.asarray(prepared.targets[k])[test_ends],
                                                  preds[f"pred_{k}"].to_numpy(), scaling[k][0]) for k in scaling}
    val_metrics = classification_metrics(src["val"].labels, val_preds, class_names)
    bl_proba: dict[str, np.ndarray] = {}
    baselines: dict[str, dict[str, Any]] = {}
    if with_baselines and train.baselines:
        stage("baselines", f"fitting baselines: {', '.join(train.baselines)}")
        base_train = train_ends if train_ends is not None else _valid_ends(prepared, "train")
        bl = fit_baselines(prepared.features, prepared.y, base_train, _valid_ends(prepared, "test"),
                           int(prepared.window), n_classes, train.baselines, train.seed, train.baseline_features,
                           val_ends=_valid_ends(prepared, "val"))
        bl_proba = {k: b.proba for k, b in bl.items()}
        baselines = {k: dict(classification_metrics(y_test, b.proba, class_names), description=b.description)
                     for k, b in bl.items()}
    return Scored(model, fr, preds, proba, y_test, metrics, val_metrics, bl_proba, baselines, config,
                  {s: len(v) for s, v in src.items()},
                  run_warnings(src["train"].labels, proba.argmax(1), class_names, data, train,
                               gap_note(prepared.candles)))


# A model that answers one class for this share of the test bars or more is said to be (nearly) constant.
CONSTANT_SHARE = 0.98


def run_warnings(train_labels: np.ndarray, test_pred: np.ndarray, class_names: list[str], data: DataConfig,
                 train: TrainConfig, gaps: Optional[str] = None) -> list[str]:
    """Sentences on what makes a run's numbers mean less than they seem: a class with no training sample
    (the model cannot learn it; at threshold 0 that is "flat", which needs an exactly unchanged price), a
    model that gives one answer for (nearly) every test bar, a batch larger than the training split, and
    `gaps` (core.features.gap_note: holes in the candles the windows and horizons run across)."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=len(class_names))
    out = []
    for name, count in zip(class_names, counts):
        if count == 0:
            hint = (": at threshold 0 a flat bar needs an exactly unchanged price; raise the threshold or use "
                    "binary labels" if name == "flat" and not data.threshold else "")
            out.append(f"Class '{name}' has no training samples, so the model cannot learn it{hint}.")
    pred = np.asarray(test_pred, dtype=np.int64)
    if pred.size:
        top = np.bincount(pred, minlength=len(class_names))
        share = top.max() / pred.size
        if share >= CONSTANT_SHARE:
            out.append(f"The model answers '{class_names[int(top.argmax())]}' for {share:.0%} of the test bars: "
                       f"nearly a constant answer, whatever its accuracy (like the majority baseline, it has "
                       f"learned the class balance rather than the market).")
    n_train = int(counts.sum())
    if train.batch_size > n_train:
        out.append(f"The batch size ({train.batch_size:,}) is larger than the {n_train:,} training samples: one "
                   f"optimiser step per epoch, so the model hardly trains.")
    if gaps:
        out.append(gaps)
    return out


def train_run(dataset_id: Optional[str], model_name: str, model_config: Optional[dict[str, Any]] = None,
              data_config: DataConfig | dict[str, Any] | None = None,
              train_config: TrainConfig | dict[str, Any] | None = None,
              progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
              name: Optional[str] = None, candles: Optional[pd.DataFrame] = None,
              init: Optional[Callable[[nn.Module], dict[str, Any]]] = None) -> RunResult:
    """Prepare the data, train, evaluate against baselines on the same test split, and save the run.

    `dataset_id=None` uses the offline market (`ensure_default_dataset`). `candles` may be passed to skip
    loading (they must be the dataset's candles). A stopped run (cancel) is saved with status "stopped".
    `init(model) -> dict` runs between model creation and training (see `fit_and_score`).
    """
    from core.train import runs as registry

    name = registry.check_name(name) or None  # refused before training, not after
    data, train, model_config, dataset_id, input_kind = _resolve(dataset_id, model_name, model_config,
                                                                  data_config, train_config)
    stage = _stager(progress, cancel)
    stage("prepare", f"preparing {dataset_id}: features {data.preset}, window {data.window}, "
                     f"labels {data.label} h={data.horizon}")
    config: dict[str, Any] = {"dataset_id": dataset_id, "model_name": model_name, "model_config": model_config,
                              "data_config": asdict(data), "train_config": asdict(train)}
    candles = run_candles(config, candles if candles is not None else _load_candles(dataset_id))
    book = order_book_record(data.encoding) if input_kind == "orderbook_image" else {}
    prepared = prepare_for_run(config, candles)
    sc = fit_and_score(prepared, config, data, train, input_kind, progress, cancel, stage, init=init)
    fr, preds = sc.fit, sc.predictions
    vs = compare_to_baselines(sc.y_test, sc.proba, sc.baseline_proba, len(sc.config["class_names"]),
                              data.horizon, train.n_boot, train.seed, train.compare_metric)
    config = sc.config
    n_params = int(sum(p.numel() for p in sc.model.parameters()))
    config.update(status=fr.status, created_at=datetime_now(), name=name or "", n_params=n_params,
                  best_epoch=fr.best_epoch, train_seconds=fr.train_seconds, class_weights_used=fr.class_weights,
                  n_samples=sc.n_samples,
                  test_start=str(preds["timestamp"].iloc[0]), test_end=str(preds["timestamp"].iloc[-1]),
                  **data_span(candles), **book,
                  versions={"torch": torch.__version__, "numpy": np.__version__})
    run_id = registry.new_run_id(model_name, {k: config[k] for k in
                                              ("dataset_id", "model_config", "data_config", "train_config",
                                               "transfer") if k in config})
    config["name"] = name or run_id
    metrics_doc = {"status": fr.status, "metrics": sc.metrics, "val_metrics": sc.val_metrics,
                   "baselines": sc.baselines, "vs_best_baseline": vs, "best_epoch": fr.best_epoch,
                   "epochs_run": len(fr.history), "train_seconds": fr.train_seconds,
                   "samples_per_second": fr.samples_per_second, "warnings": sc.warnings}
    state = {k: v.detach().cpu() for k, v in sc.model.state_dict().items()}
    path = registry.save_run(run_id, config, fr.history, metrics_doc, state, prepared.scaler, preds)
    if fr.status.startswith("failed"):
        raise UserError(f"training {fr.status}; the best weights before that (epoch {fr.best_epoch}) were "
                        f"saved as run {run_id}. Try a lower learning rate or gradient clipping (train.clip=1).")
    if progress is not None:
        progress(Progress("done", 1, 1, f"saved run {run_id} ({fr.status})", {"run_id": run_id}))
    return RunResult(run_id, path, fr.status, sc.metrics, sc.val_metrics, sc.baselines, vs, fr.history, config,
                     preds, sc.warnings)


def _resolve(dataset_id: Optional[str], model_name: str, model_config: Optional[dict[str, Any]],
             data_config: Any, train_config: Any) -> tuple[DataConfig, TrainConfig, dict[str, Any], str, str]:
    from core.models import get_spec

    data = data_config if isinstance(data_config, DataConfig) else from_dict(DataConfig, data_config)
    train = train_config if isinstance(train_config, TrainConfig) else from_dict(TrainConfig, train_config)
    data.validate()
    train.validate()
    if dataset_id is None:
        from core.data.store import ensure_default_dataset

        dataset_id = ensure_default_dataset()
    try:
        spec = get_spec(model_name)
    except KeyError as exc:
        raise UserError(f"unknown model {model_name!r}; see `python -m core models list`") from exc
    mismatch = model_label_problem(model_name, spec.multitask, data.label)
    if mismatch:  # said before the data is prepared (the page says it before Start)
        raise UserError(mismatch)
    if spec.input_kind == "orderbook_image":
        data = replace(data, encoding=default_order_book(dataset_id, data.encoding))
    return data, train, dict(model_config or {}), dataset_id, spec.input_kind


def default_order_book(dataset_id: str, encoding: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The encoding options of an order-book model: the book named in `encoding` (`book_id`), else the
    dataset's own book `<dataset_id>-book` (what the Data page records or simulates for a market), with the
    staleness limit written out (`max_staleness_bars`, DEFAULT_STALENESS_BARS unless given) so the saved run
    says which candles counted as covered. A book of another market than the dataset's is refused."""
    from core.data.orderbook import book_id_for, order_book_info, same_market
    from core.encodings.datasets import DEFAULT_STALENESS_BARS, check_encoding_keys, heatmap_options
    from core.errors import DataError

    enc = dict(encoding or {})
    check_encoding_keys("orderbook_image", enc)  # a misspelt key is said before the data is prepared
    heatmap_options(enc.get("heatmap"))  # a bad heatmap dict too
    if "max_staleness_seconds" not in enc:
        enc.setdefault("max_staleness_bars", DEFAULT_STALENESS_BARS)
    if enc.get("order_book") is not None:
        return enc
    book_id = enc.get("book_id") or book_id_for(dataset_id)
    try:
        info = order_book_info(book_id)
    except (DataError, ValueError) as exc:
        raise UserError(f"an order-book model needs order-book snapshots for {dataset_id}: there is no book "
                        f"'{book_id}'. Record or simulate one on the Data page (or `python -m core data`), "
                        "or pass --set 'data.encoding={\"book_id\": \"ID\"}'.") from exc
    symbol = _dataset_symbol(dataset_id)
    if symbol is not None and not same_market(info.symbol, symbol):
        raise UserError(f"the order book '{book_id}' is of {info.symbol}, not of {symbol} like the dataset "
                        f"{dataset_id}: an order-book model must read the book of the market it predicts. "
                        f"Record or simulate a {symbol} book on the Data page.")
    enc["book_id"] = book_id
    return enc


def _dataset_symbol(dataset_id: str) -> Optional[str]:
    """The stored dataset's symbol, or None when it is not stored (candles given directly)."""
    from core.data.store import dataset_info
    from core.errors import DataError

    try:
        return dataset_info(dataset_id).symbol
    except (DataError, ValueError, OSError, KeyError):
        return None


def order_book_record(encoding: Optional[dict[str, Any]]) -> dict[str, Any]:
    """What a saved order-book run records of the stored book it reads (`order_book`: id, snapshot count,
    first and last time, fingerprint), for `changed_book_note`; {} for a book given as a table."""
    from core.data.orderbook import book_record

    book_id = (encoding or {}).get("book_id")
    if not book_id or (encoding or {}).get("order_book") is not None:
        return {}
    return {"order_book": book_record(book_id)}


def changed_book_note(config: dict[str, Any], what: str = "run") -> Optional[str]:
    """None when the stored order book still holds the snapshots a saved order-book run learnt from (or the
    run recorded none: other models, runs saved before runs recorded their book); else a sentence saying the
    book was replaced or removed since."""
    from core.data.orderbook import book_record
    from core.errors import DataError

    rec = config.get("order_book")
    if not isinstance(rec, dict) or not rec.get("book_id") or not rec.get("digest"):
        return None
    book_id = rec["book_id"]

    def span(n: Any, start: Any, end: Any) -> str:
        fmt = (lambda t: "?" if t is None else f"{pd.Timestamp(t):%Y-%m-%d %H:%M}")
        return f"{int(n or 0):,} snapshots, {fmt(start)} to {fmt(end)}"

    was = span(rec.get("snapshots"), rec.get("start"), rec.get("end"))
    try:
        current = book_record(book_id)  # what a run would record of the book today
    except DataError:
        return (f"The order book {book_id!r} this {what} learnt from ({was}) is no longer stored or cannot be "
                "read: record or simulate it again to use the run.")
    if all(current.get(k) == rec.get(k) for k in current):
        return None
    now = span(current["snapshots"], current["start"], current["end"])
    how = f"the same {now} but other prices or sizes" if now == was else f"it had {was}, it now has {now}"
    return (f"The order book {book_id!r} no longer holds the snapshots this {what} learnt from ({how}): it was "
            "recorded or simulated again since. Its predictions were made on the old book, so anything computed "
            "here from today's book (inputs, predictions) does not show what the model saw.")


def _stager(progress: Optional[ProgressCallback], cancel: Optional[CancelToken]) -> Callable[[str, str], None]:
    def stage(s: str, msg: str) -> None:
        # once training has ended (even by Stop), evaluating and saving must go on: the run stays usable
        if cancel is not None and s in ("prepare", "train"):
            cancel.raise_if_cancelled()
        if progress is not None:
            progress(Progress(s, 0, None, msg))
    return stage


def datetime_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
