"""Transfer learning for the chart ResNet: pre-train on a source, fine-tune on the target with the early
stages frozen, and train the same model from scratch on the same target split for an honest comparison.

Sources of the starting weights:
- `dataset:<id>`: pre-train the model on another dataset (another symbol, timeframe, or the offline market)
  with the same data settings; the source run is a real run in the registry.
- `run:<run_id>`: reuse an earlier run of the same model (e.g. a source run of a previous comparison).
- `weights:<file>`: a torchvision resnet18 state_dict (`.pth`) placed in `workspace/pretrained/`
  (loaded with `torch.load(weights_only=True)` by `core.models.load_torchvision_weights`).
The classification head (`fc`) is always new for the target's classes. Frozen stages keep their weights
*and* their batch-norm statistics (their BatchNorm layers stay in eval mode while the rest trains), so a
frozen stage really is a fixed feature extractor from the source.

Both target runs (fine-tuned and scratch) go through the same data preparation, the same `fit` loop,
the same test split and the same baselines as `train_run`, and are saved in the run registry; a small
record `workspace/transfer/<id>.json` ties the three runs together for the Encodings page.

The fine-tuned run is a plain `train_run` with an `init` step between creating the model and training it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd
import torch
from torch import nn

from core.errors import UserError
from core.progress import CancelToken, Progress, ProgressCallback
from core.train.config import DataConfig, TrainConfig, from_dict
from core.workspace import atomic_write_json, read_json, safe_name, ws_path, workspace_root

PRETRAINED_DIR = "pretrained"
RECORDS_DIR = "transfer"
# torchvision's published ImageNet resnet18 files carry the start of their SHA-256 in their names
# (resnet18-f37072fd.pth, and the pre-0.13 resnet18-5c106cde.pth): photographs, never prices
TORCHVISION_RESNET18_SHA256 = ("f37072fd", "5c106cde")
DEFAULT_MODEL = "chart_resnet18"
HEAD_PREFIXES = ("fc.",)


# ------------------------------------------------------------------------------------------ weight files

def pretrained_dir() -> Path:
    d = ws_path(PRETRAINED_DIR)
    d.mkdir(parents=True, exist_ok=True)
    return d


def list_weight_files() -> list[str]:
    """File names of the `.pth`/`.pt` state_dicts placed in `workspace/pretrained/`."""
    return sorted(p.name for p in pretrained_dir().iterdir()
                  if p.is_file() and p.suffix in (".pth", ".pt") and not p.name.startswith("."))


def is_torchvision_imagenet(name: str) -> bool:
    """Whether the weights file is torchvision's own ImageNet resnet18, recognised by its SHA-256 whatever the
    file is called."""
    import hashlib

    digest = hashlib.sha256()
    with open(weight_file(name), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest().startswith(TORCHVISION_RESNET18_SHA256)


def weights_file_note(name: str, target_config: dict[str, Any], imagenet: bool) -> Optional[str]:
    """None for torchvision's ImageNet weights (`imagenet`), else a sentence: the app cannot tell what a file
    made elsewhere was trained on, and weights fitted on market data over the target's test period would
    flatter the fine-tuned model's test score."""
    if imagenet:
        return None
    start = target_config.get("test_start")
    period = f" (from {pd.Timestamp(start):%Y-%m-%d})" if start else ""
    return (f"Cannot tell what {name} was trained on: it is not torchvision's published ImageNet resnet18. If it "
            f"was fitted on market data that covers the target's test period{period}, the fine-tuned model's test "
            "score is flattered; use weights whose training ended before that period.")


def weight_file(name: str) -> Path:
    try:
        safe_name(name)
    except ValueError:
        raise UserError(f"{name!r} is not a valid weights file name") from None
    path = pretrained_dir() / name
    if not path.is_file():
        raise UserError(f"there is no weights file {name!r} in {pretrained_dir()}; place a torchvision "
                        f"resnet18 .pth there first")
    return path


# --------------------------------------------------------------------------------------- init and freeze

def _models_helper(name: str) -> Callable[..., Any]:
    """A chart-ResNet helper from the model registry (exported by core.models or its chart_resnet module)."""
    import core.models as models

    fn = getattr(models, name, None)
    if fn is None:
        from core.models import chart_resnet

        fn = getattr(chart_resnet, name)
    return fn


def _is_head(key: str) -> bool:
    return key.startswith(HEAD_PREFIXES)


def init_from_state_dict(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> dict[str, Any]:
    """Copy every tensor of `state` whose name and shape match the model's, except the head.

    Raises a UserError when nothing but the head would load (a different architecture or width).
    """
    own = model.state_dict()
    loaded, skipped = [], []
    for k, v in state.items():
        if _is_head(k):
            continue
        if k in own and tuple(own[k].shape) == tuple(v.shape):
            loaded.append(k)
        else:
            skipped.append(k)
    body = [k for k in own if not _is_head(k)]
    if not loaded:
        raise UserError(f"no weights of {what} fit this model (different architecture or width)")
    missing = [k for k in body if k not in loaded]
    if missing:
        raise UserError(f"{what} does not cover this model: {len(missing)} of {len(body)} tensors are missing or "
                        f"have other shapes (e.g. {missing[0]}); use the same model settings (width) as the source")
    with torch.no_grad():
        for k in loaded:
            own[k].copy_(state[k].to(own[k].dtype))
    return {"loaded_tensors": len(loaded), "skipped_tensors": len(skipped)}


def init_from_run(model: nn.Module, run_id: str) -> dict[str, Any]:
    """Start from the body of an earlier run's best weights (the run's model.pt)."""
    from core.train import runs as registry

    folder = registry.run_path(run_id)
    if not (folder / "model.pt").is_file():
        raise UserError(f"run {run_id!r} has no saved weights (model.pt)")
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    return init_from_state_dict(model, state, f"run {run_id}")


def init_from_weights_file(model: nn.Module, name: str) -> dict[str, Any]:
    """Start from a torchvision resnet18 state_dict in workspace/pretrained (all but `fc`)."""
    path = weight_file(name)
    load_torchvision_weights = _models_helper("load_torchvision_weights")
    try:
        out = load_torchvision_weights(model, path.relative_to(workspace_root()))
    except UserError:
        raise
    except (RuntimeError, KeyError, ValueError, AttributeError) as exc:
        raise UserError(f"{name} is not a torchvision resnet18 state_dict for this model: {exc}") from None
    return {"weights_file": name, "loaded_tensors": int(out.get("loaded", 0))}


def freeze_early_stages(model: nn.Module, n: int) -> list[str]:
    """Freeze the first `n` stages of the chart ResNet (0 = none, 1 = the stem, 2 = stem + layer1, ...,
    5 = everything but the head) with `core.models.freeze_stages`: frozen parameters stop learning and
    their BatchNorm layers keep the source's statistics. Returns the names of the frozen parameters."""
    freeze_stages = _models_helper("freeze_stages")
    n = int(n)
    if n:
        try:
            freeze_stages(model, n)
        except AttributeError:
            raise UserError("this model has no ResNet stages to freeze; use freeze 0") from None
    return [nm for nm, p in model.named_parameters() if not p.requires_grad]


# ----------------------------------------------------------------------------------------- one target run

def _configs(data_config: Any, train_config: Any) -> tuple[DataConfig, TrainConfig]:
    data = data_config if isinstance(data_config, DataConfig) else from_dict(DataConfig, data_config)
    train = train_config if isinstance(train_config, TrainConfig) else from_dict(TrainConfig, train_config)
    data.validate()
    train.validate()
    if data.label == "multitask":
        raise UserError("transfer learning here is for classification labels; pick direction3, binary or "
                        "vol_scaled")
    return data, train


def train_with_init(
    dataset_id: str,
    model_name: str,
    model_config: Optional[dict[str, Any]],
    data_config: DataConfig | dict[str, Any],
    train_config: TrainConfig | dict[str, Any],
    init: Optional[Callable[[nn.Module], dict[str, Any]]] = None,
    freeze_stages: int = 0,
    transfer_info: Optional[dict[str, Any]] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    name: Optional[str] = None,
    candles: Optional[pd.DataFrame] = None,
) -> Any:
    """`train_run` with a step between creating the model and training it: `init(model)` loads starting
    weights, then the stem and the first `freeze_stages` stages are frozen. Saved as a normal run whose
    config carries `transfer` (what was loaded, what was frozen). Returns the trainer's RunResult."""
    from core.train.trainer import train_run

    data, train = _configs(data_config, train_config)
    info = dict(transfer_info or {})

    def _init(model: nn.Module) -> dict[str, Any]:
        if init is not None:
            info.update(init(model))
        frozen = freeze_early_stages(model, freeze_stages)
        info.update(freeze_stages=int(freeze_stages), frozen_tensors=len(frozen),
                    trainable_params=int(sum(p.numel() for p in model.parameters() if p.requires_grad)))
        return info

    return train_run(dataset_id, model_name, model_config, data, train, progress=progress, cancel=cancel,
                     name=name, candles=candles, init=_init)


# ----------------------------------------------------------------------------------- the whole comparison

@dataclass
class TransferSpec:
    """What to compare. `source` is `dataset:<id>`, `run:<run_id>` or `weights:<file in workspace/pretrained>`."""

    target_dataset_id: str
    source: str
    freeze_stages: int = 1
    model_name: str = DEFAULT_MODEL
    model_config: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)          # target runs (fine-tune and scratch)
    source_train: Optional[TrainConfig] = None                       # pre-training (default: `train`)

    def parsed_source(self) -> tuple[str, str]:
        kind, _, ref = str(self.source).partition(":")
        if kind not in ("dataset", "run", "weights") or not ref:
            raise UserError("the source must be 'dataset:<id>', 'run:<run id>' or 'weights:<file>'")
        return kind, ref


def transfer_spec(target_dataset_id: str, source: str, freeze_stages: int = 2, *, preset: str = "chapter6",
                  window: int = 32, label: str = "direction3", horizon: int = 12, threshold: float = 0.002,
                  rows: int = 0, size: int = 32, epochs: int = 3, batch_size: int = 64, lr: float = 1e-3,
                  seed: int = 0, max_train: int = 0) -> TransferSpec:
    """The comparison from the settings a user picks (the Encodings page and `python -m core transfer`):
    `rows`/`max_train` 0 mean all; patience is a third of the epochs (at least 2); the baselines are the
    majority class and logistic regression. The source is checked before anything runs."""
    spec = TransferSpec(
        target_dataset_id=target_dataset_id, source=source, freeze_stages=int(freeze_stages),
        data=DataConfig(preset=preset, window=int(window), label=label, horizon=int(horizon),
                        threshold=float(threshold), max_rows=int(rows) or None, encoding={"size": int(size)}),
        train=TrainConfig(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), seed=int(seed),
                          patience=max(2, int(epochs) // 3), baselines=["majority", "logistic"],
                          max_train_samples=int(max_train) or None))
    spec.parsed_source()
    return spec


def source_runs() -> list[Any]:
    """Earlier runs of the chart model a comparison can start from (failed ones left out), newest first."""
    from core.train.runs import list_runs

    return [r for r in list_runs() if r.model_name == DEFAULT_MODEL and r.status != "failed"]


@dataclass
class TransferResult:
    record_id: str
    source_run_id: Optional[str]
    finetuned_run_id: str
    scratch_run_id: str
    metrics: dict[str, dict[str, Any]]  # "fine-tuned" / "scratch" -> test metrics


class _Stages:
    """Relays progress with the phase named, and a fraction over the whole comparison."""

    def __init__(self, progress: Optional[ProgressCallback], n_phases: int) -> None:
        self.progress, self.n, self.i, self.name = progress, n_phases, 0, ""

    def start(self, name: str) -> None:
        self.name = name
        if self.progress is not None:
            self.progress(Progress("phase", self.i, self.n, name))
        self.i += 1

    def __call__(self, p: Progress) -> None:
        if self.progress is None:
            return
        msg = f"{self.name}: {p.message}" if p.message else self.name
        if p.stage == "batch" and p.total:
            frac = (self.i - 1 + p.done / p.total) / self.n
            self.progress(Progress("batch", int(frac * 1000), 1000, msg, p.metrics))
        else:
            self.progress(Progress(p.stage, p.done, p.total, msg, p.metrics))


def transfer_vs_scratch(spec: TransferSpec, progress: Optional[ProgressCallback] = None,
                        cancel: Optional[CancelToken] = None) -> TransferResult:
    """Pre-train (if the source is a dataset), fine-tune on the target with early stages frozen, train the
    same model from scratch on the target, and record the three runs together."""
    from core.models import get_spec
    from core.train.trainer import train_run

    kind, ref = spec.parsed_source()
    try:
        ik = get_spec(spec.model_name).input_kind
    except KeyError as exc:
        raise UserError(f"unknown model {spec.model_name!r}") from exc
    if ik != "chart_image":
        raise UserError(f"transfer vs scratch is for chart models; {spec.model_name} reads {ik}")
    if kind == "dataset" and ref == spec.target_dataset_id:
        raise UserError("the source dataset is the target itself: pick another symbol, timeframe or the "
                        "offline market as the source")
    data, train = _configs(spec.data, spec.train)
    model_config = dict(spec.model_config or {})
    phases = _Stages(progress, 3 if kind == "dataset" else 2)
    source_run_id: Optional[str] = None
    imagenet = False
    if kind == "dataset":
        phases.start(f"pre-training on {ref}")
        src = train_run(ref, spec.model_name, model_config, data, spec.source_train or train,
                        progress=phases, cancel=cancel, name=f"source: {spec.model_name} on {ref}")
        source_run_id = src.run_id
        source_desc = f"dataset:{ref} (run {source_run_id})"
        init: Callable[[nn.Module], dict[str, Any]] = lambda m: init_from_run(m, source_run_id)  # noqa: E731
    elif kind == "run":
        from core.train.runs import load_run

        src_cfg = load_run(ref).config
        if src_cfg.get("model_name") != spec.model_name:
            raise UserError(f"run {ref} is a {src_cfg.get('model_name')}, not a {spec.model_name}")
        source_run_id = ref
        source_desc = f"run:{ref}"
        # the body learnt its inputs at the source's scale: fine-tuning (and its scratch twin) keep it
        model_config.setdefault("input_norm", (src_cfg.get("model_config") or {}).get("input_norm", "none"))
        init = lambda m: init_from_run(m, ref)  # noqa: E731
    else:
        imagenet = is_torchvision_imagenet(ref)  # (fails before any training when the file is missing)
        # torchvision's weights were trained on ImageNet-standardised inputs: the charts get the same scale
        # (the scratch twin too, so the two differ only in their starting weights)
        model_config.setdefault("input_norm", "imagenet")
        source_desc = f"weights:{ref}"
        init = lambda m: init_from_weights_file(m, ref)  # noqa: E731

    phases.start(f"fine-tuning on {spec.target_dataset_id}")
    info = {"source": source_desc, "source_run_id": source_run_id}
    if kind == "weights":  # a later fine-tuning from this run follows the chain back to here (source_overlap)
        info["weights_imagenet"] = imagenet
    ft = train_with_init(spec.target_dataset_id, spec.model_name, model_config, data, train, init,
                         spec.freeze_stages, info, progress=phases, cancel=cancel,
                         name=f"fine-tuned: {spec.model_name} from {source_desc.split(' ')[0]}, "
                              f"{spec.freeze_stages} stage(s) frozen")
    phases.start(f"training from scratch on {spec.target_dataset_id}")
    sc = train_run(spec.target_dataset_id, spec.model_name, model_config, data, train,
                   progress=phases, cancel=cancel, name=f"scratch: {spec.model_name} (transfer baseline)")
    if source_run_id is not None:
        from core.train.runs import load_run

        overlap = source_overlap(dict(load_run(source_run_id).config, run_id=source_run_id), ft.config)
    else:
        overlap = weights_file_note(ref, ft.config, imagenet)
    record_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{ft.run_id[-6:]}"
    record = {"id": record_id, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "target_dataset_id": spec.target_dataset_id, "source": source_desc,
              "source_run_id": source_run_id, "finetuned_run_id": ft.run_id, "scratch_run_id": sc.run_id,
              "freeze_stages": int(spec.freeze_stages), "model_name": spec.model_name, "source_overlap": overlap,
              "model_config": model_config, "data_config": asdict(data), "train_config": asdict(train)}
    atomic_write_json(_records_dir() / f"{safe_name(record_id)}.json", record)
    return TransferResult(record_id, source_run_id, ft.run_id, sc.run_id,
                          {"fine-tuned": ft.metrics, "scratch": sc.metrics})


def _records_dir() -> Path:
    d = ws_path(RECORDS_DIR)
    d.mkdir(parents=True, exist_ok=True)
    return d


def list_comparisons() -> list[dict[str, Any]]:
    """Recorded comparisons, newest first (records whose files cannot be read are skipped)."""
    out = []
    for p in _records_dir().glob("*.json"):
        try:
            out.append(read_json(p))
        except (OSError, ValueError):
            continue
    out.sort(key=lambda r: str(r.get("created_at", "")), reverse=True)
    return out


COMPARE_KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss")


def comparison_table(record: dict[str, Any]) -> pd.DataFrame:
    """Test metrics of the fine-tuned and the scratch run side by side (and their difference), read from the
    registry; a run deleted since is reported as a UserError naming it."""
    from core.train.runs import load_run

    cols = {}
    for label, key in (("fine-tuned", "finetuned_run_id"), ("scratch", "scratch_run_id")):
        rid = record.get(key)
        try:
            run = load_run(rid)
        except UserError:
            raise UserError(f"the {label} run {rid} of this comparison was deleted") from None
        m = run.metrics.get("metrics") or {}
        cols[label] = [m.get(k) for k in COMPARE_KEYS] + [run.metrics.get("best_epoch"),
                                                          run.metrics.get("train_seconds")]
    # wall-clock seconds: other work on the machine counts in them, so they compare speed only roughly
    df = pd.DataFrame(cols, index=[*COMPARE_KEYS, "best_epoch", "train seconds (wall clock)"])
    a = pd.to_numeric(df["fine-tuned"], errors="coerce")
    b = pd.to_numeric(df["scratch"], errors="coerce")
    df["fine-tuned - scratch"] = a - b
    df.index.name = "metric"
    return df


def comparison_interval(record: dict[str, Any], metric: str = "accuracy") -> dict[str, Any]:
    """Fine-tuned minus scratch on `metric`, with the paired block-bootstrap interval the Train page uses
    against baselines (both runs predict the same test windows; blocks at least the label horizon), and a
    plain verdict. One seed each: the interval covers the test sample's noise, not the training seed's."""
    import numpy as np

    from core.train.metrics import paired_block_bootstrap
    from core.train.runs import load_run

    preds = {}
    for label, key in (("fine-tuned", "finetuned_run_id"), ("scratch", "scratch_run_id")):
        try:
            preds[label] = load_run(record.get(key)).predictions
        except UserError:
            raise UserError(f"the {label} run {record.get(key)} of this comparison was deleted") from None
    both = preds["fine-tuned"].merge(preds["scratch"], on="timestamp", suffixes=("_ft", "_sc"))
    if both.empty or not (both["y_true_ft"] == both["y_true_sc"]).all():
        raise UserError("the two runs of this comparison were not scored on the same test windows")
    names = [c[len("prob_"):-3] for c in both if c.startswith("prob_") and c.endswith("_ft")]
    ft = both[[f"prob_{n}_ft" for n in names]].to_numpy().argmax(1)
    sc = both[[f"prob_{n}_sc" for n in names]].to_numpy().argmax(1)
    train = record.get("train_config") or {}
    b = paired_block_bootstrap(both["y_true_ft"].to_numpy(np.int64), ft, sc, len(names), metric,
                               horizon=int((record.get("data_config") or {}).get("horizon", 1)),
                               n_boot=int(train.get("n_boot", 1000)), seed=int(train.get("seed", 0)))
    ci = f"{int(round(b['confidence'] * 100))} % CI {b['ci_low'] * 100:+.1f} to {b['ci_high'] * 100:+.1f} points"
    d, m = f"{b['diff'] * 100:+.1f} points", metric.replace("_", " ")
    if b["ci_low"] > 0:
        b["verdict"] = f"Fine-tuning beats training from scratch on {m}: {d} ({ci})."
    elif b["ci_high"] < 0:
        b["verdict"] = f"Fine-tuning is worse than training from scratch on {m}: {d} ({ci})."
    else:
        b["verdict"] = f"Fine-tuning does not clearly beat training from scratch on {m}: {d} is within noise ({ci})."
    b["beats"], b["worse"] = bool(b["ci_low"] > 0), bool(b["ci_high"] < 0)
    return b


def source_overlap(source_config: dict[str, Any], target_config: dict[str, Any],
                   load: Optional[Callable[[str], Any]] = None) -> Optional[str]:
    """A sentence when the source run may have trained on bars of the target's test period, or when that
    cannot be told (None when it did not). Markets move together: a source fitted on, say, ETH over the months
    the BTC target is tested on has seen that period, and the fine-tuned model's test score would be
    flattered. A run's training rows end before its validation and test rows, so its `test_start` bounds them
    from above (a conservative check). A source that was itself fine-tuned from another run carries that
    run's training too: the chain of `transfer.source_run_id` is followed (`load` reads a run, by default
    from the registry)."""
    if load is None:
        from core.train.runs import load_run as load
    tgt_start = target_config.get("test_start")
    if not tgt_start:
        return None  # a target without a test split has no test score to flatter
    tgt = pd.Timestamp(tgt_start)
    cfg, seen = source_config, set()
    for hop in range(50):  # a chain of fine-tunings, never a cycle
        end = cfg.get("test_start")
        if not end:
            which = f"run {cfg.get('run_id')}" if cfg.get("run_id") else "the source run"
            return (f"Cannot tell whether {which} trained on the target's test period (from {tgt:%Y-%m-%d}): it "
                    "records no test period. Treat the fine-tuned model's test score with care.")
        if pd.Timestamp(end) > tgt:
            via = f" (through its own pre-training, run {cfg.get('run_id')})" if hop else ""
            return (f"The source run {source_config.get('run_id', '')} ({source_config.get('dataset_id')}) may "
                    f"have trained{via} on bars up to {pd.Timestamp(end):%Y-%m-%d}, inside the target's test "
                    f"period (from {tgt:%Y-%m-%d}): the fine-tuned model may have seen that period in another "
                    "market, which would flatter its test score. Pre-train on a span that ends before the "
                    "target's test.")
        hop_from = cfg.get("transfer") or {}
        if str(hop_from.get("source", "")).startswith("weights:") and not hop_from.get("weights_imagenet"):
            which = f"run {cfg.get('run_id')}" if cfg.get("run_id") else "the source run"
            return (f"Cannot tell whether {which} saw the target's test period (from {tgt:%Y-%m-%d}): it started "
                    f"from the weights file {hop_from['source'][len('weights:'):]}, whose training the app does not "
                    "know. Treat the fine-tuned model's test score with care.")
        parent = hop_from.get("source_run_id")
        if not parent or parent in seen:
            return None
        seen.add(parent)
        try:
            cfg = dict(load(parent).config, run_id=parent)
        except UserError:
            return (f"Cannot tell whether the source's own pre-training (run {parent}, deleted since) trained on "
                    f"the target's test period (from {tgt:%Y-%m-%d}). Treat the fine-tuned model's test score "
                    "with care.")
    return None


def comparison_metrics(t: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{"fine-tuned": {...}, "scratch": {...}} test metrics of a `comparison_table` (for the bar figure)."""
    return {c: {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
                for k, v in t[c].items() if k in COMPARE_KEYS} for c in ("fine-tuned", "scratch")}


def workspace_hint() -> str:
    """Where a user puts torchvision weights (for the page's help text)."""
    return str(Path(workspace_root()) / PRETRAINED_DIR)
