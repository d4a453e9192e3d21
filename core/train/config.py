"""Training and data configuration dataclasses, the presets from the source documents, and `--set` parsing.

A run is fully described by `(dataset_id, model_name, model_config, DataConfig, TrainConfig)`; all are
JSON-able and stored in the run's config.json. Presets:
- `quick` (default): a small CNN on 64-bar windows for a few epochs: results in well under a minute on
  2 CPU cores for the offline market's 2 years of 1h candles.
- `resnet` (document 000): AdamW lr 1e-3, wd 1e-4, batch 64, 100 epochs, cosine to 1e-6, patience 15,
  min_delta 1e-4, class weights [1.2, 0.8, 1.2], 256-bar windows of 15 features, noise (sigma 0.01) / warp /
  scaling 0.9-1.1.
- `convnext` (001): lr 4e-4, batch 32, 100 epochs, wd 0.05, 5 warm-up epochs, label smoothing 0.1, drop
  path 0.1, layer scale 1e-6, cross-entropy weighted by class frequency ("balanced"), all four
  augmentations. As in ConvNeXt's own recipe (the document is silent), the decay skips biases, norm gains and
  the layer-scale gammas: at 0.05 it would pull the 1e-6 gammas and the LayerNorms towards zero.
- `dilated` (002): WaveNet with the multi-task head, loss weights 1 / 0.5 / 0.3, 512-bar windows, next-bar
  direction with a 0.1 % threshold, magnitude |return|. One departure: the volatility target is the
  realised volatility of the bars ahead; the document's is that of the input window, which the model
  already sees.
- `chapter` (004): 64-bar windows of 6 indicators, binary labels, batch 32, 80 epochs, patience 12 (the
  multi-scale CNN of the chapter), Keras's AdamW as the chapter calls it: a constant lr 5e-4, weight decay
  0.004, early stopping with min_delta 0.
Where a document is silent the trainer's defaults fill in (among them gradient clipping at norm 1 and, for
`dilated`, the epochs, batch, lr and patience); the preset lists those values too.

`--set` keys are namespaced `model.<key>`, `data.<key>`, `train.<key>`; a bare key is accepted when only
one namespace has it (see `apply_overrides`).
"""
from __future__ import annotations

import copy
import json
import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional, Sequence, Union, get_args, get_origin, get_type_hints

from core.errors import UserError


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    decay_norms_and_biases: bool = True  # False: no weight decay on 1-D parameters (biases, norm gains, layer scale)
    warmup: float = 1.0              # warm-up length in epochs (linear from lr/100 to lr)
    min_lr: float = 1e-6             # cosine floor
    patience: int = 5                # epochs without improvement of `monitor` before stopping (0 = never)
    min_delta: float = 1e-4
    monitor: str = "val_loss"        # or "val_accuracy", "val_macro_f1"
    clip: float = 1.0                # max gradient norm (0 = off)
    loss: str = "ce"                 # "ce" or "focal"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.0
    class_weights: Union[None, str, list[float]] = None  # None, "balanced" (from train), or one per class
    multitask_weights: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.3])
    noise_std: float = 0.0           # augmentations (train batches only)
    scale_min: float = 1.0
    scale_max: float = 1.0
    time_warp: float = 0.0
    window_slice: float = 0.0
    augment_p: float = 0.5
    seed: int = 0
    device: str = "auto"             # "auto" (CUDA when present), "cpu", "cuda"
    amp: bool = True                 # mixed precision on CUDA
    baselines: list[str] = field(default_factory=lambda: ["majority", "logistic"])
    baseline_features: str = "summary"  # "summary" or "flat" (see core.train.baselines)
    n_boot: int = 1000
    compare_metric: str = "accuracy"  # headline metric of the comparison with the best baseline
    eval_batch_size: int = 512
    max_train_samples: Optional[int] = None  # keep only the most recent N training samples

    def class_weight_choices(self) -> list[str]:
        """How a user can weight the classes: none, balanced (from the train split's counts), the preset's own
        list when it has one, and custom (a number per class, typed in)."""
        return ["none", "balanced"] + (["preset"] if isinstance(self.class_weights, list) else []) + ["custom"]

    def class_weight_choice(self) -> str:
        """The current setting among `class_weight_choices`."""
        return "preset" if isinstance(self.class_weights, list) else ("balanced" if self.class_weights else "none")

    def choose_class_weights(self, choice: str, custom: str = "", class_names: Sequence[str] = ()) -> None:
        """Apply one of `class_weight_choices` ("preset" keeps the preset's list; "custom" reads `custom`, one
        number per class of `class_names`, e.g. "1.2, 0.8, 1.2"; a UserError says what is wrong with it)."""
        if choice in ("none", "balanced"):
            self.class_weights = None if choice == "none" else "balanced"
        elif choice == "custom":
            parts = [p for p in str(custom).replace(";", ",").replace(" ", ",").split(",") if p]
            try:
                weights = [float(p) for p in parts]
            except ValueError:
                raise UserError(f"class weights must be numbers separated by commas, got {custom!r}") from None
            if class_names and len(weights) != len(class_names):
                raise UserError(f"give one class weight for each of the {len(class_names)} classes "
                                f"({', '.join(class_names)}), got {len(weights)}")
            self.class_weights = weights

    @property
    def augments(self) -> bool:
        """Whether any train-only augmentation is on."""
        return bool(self.noise_std or self.time_warp or self.window_slice or self.scale_min != 1.0
                    or self.scale_max != 1.0)

    def without_augmentation(self) -> None:
        """Turn every augmentation off (noise, magnitude scaling, time warping, window slicing)."""
        self.noise_std, self.scale_min, self.scale_max, self.time_warp, self.window_slice = 0.0, 1.0, 1.0, 0.0, 0.0

    def validate(self, new_run: bool = True) -> "TrainConfig":
        """Refuse settings that are not usable, in sentences. `new_run=False` (a stored or imported run's
        config) skips the rules for starting a training that are newer than some saved runs (seed range,
        at least MIN_BOOT resamples, multi-task weights)."""
        coerce_fields(self)
        if self.epochs < 1:
            raise UserError("epochs must be at least 1")
        if self.batch_size < 1:
            raise UserError("batch_size must be at least 1")
        if not self.lr > 0:
            raise UserError("the learning rate (lr) must be positive")
        if self.monitor not in ("val_loss", "val_accuracy", "val_macro_f1"):
            raise UserError("monitor must be val_loss, val_accuracy or val_macro_f1")
        if self.compare_metric not in ("accuracy", "balanced_accuracy", "macro_f1"):
            raise UserError("compare_metric must be accuracy, balanced_accuracy or macro_f1")
        if self.loss not in ("ce", "focal"):
            raise UserError(f"unknown loss {self.loss!r}; choose ce or focal")
        if not (0 < self.scale_min <= self.scale_max):
            raise UserError("scale_min must be positive and at most scale_max")
        if not 0 <= self.window_slice < 1:
            raise UserError("window_slice must be a fraction in [0, 1)")
        if isinstance(self.class_weights, str) and self.class_weights != "balanced":
            raise UserError("class_weights must be 'balanced', a list of numbers, or empty")
        if isinstance(self.class_weights, list) and not all(math.isfinite(w) and w > 0 for w in self.class_weights):
            # a weight of 0 makes a batch of only that class a 0/0 loss (NaN), as PyTorch averages by the weights
            raise UserError(f"class_weights must be positive numbers, got {self.class_weights}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise UserError("device must be auto, cpu or cuda")
        from core.train.baselines import BASELINES

        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise UserError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
        for name in ("weight_decay", "warmup", "min_lr", "patience", "min_delta", "clip", "noise_std", "time_warp"):
            if getattr(self, name) < 0:
                raise UserError(f"train.{name} must be zero or more, got {getattr(self, name)!r}")
        if not 0 <= self.augment_p <= 1:
            raise UserError(f"train.augment_p must be a probability in [0, 1], got {self.augment_p!r}")
        if self.eval_batch_size < 1:
            raise UserError(f"train.eval_batch_size must be at least 1, got {self.eval_batch_size!r}")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise UserError("train.max_train_samples must be empty (all samples) or a positive whole number, "
                            f"got {self.max_train_samples!r}")
        if not new_run:
            return self
        if not 0 <= self.seed <= 2**32 - 3:  # np.random.seed's range (< 2**32), with room for seed + 1, + 2
            raise UserError(f"train.seed must be a whole number from 0 to {2**32 - 3}, got {self.seed!r}")
        if self.n_boot < MIN_BOOT:  # fewer resamples give no confidence interval worth the name
            raise UserError(f"train.n_boot must be at least {MIN_BOOT} bootstrap resamples, got {self.n_boot!r}")
        w = list(self.multitask_weights)
        if len(w) != 3 or not all(math.isfinite(v) and v >= 0 for v in w) or not sum(w) > 0:
            raise UserError("train.multitask_weights must be three numbers of zero or more (direction, magnitude, "
                            f"volatility), not all zero, got {self.multitask_weights!r}")
        return self


MIN_BOOT = 100  # the fewest bootstrap resamples a confidence interval is computed from


@dataclass
class DataConfig:
    preset: Union[str, list[str]] = "resnet15"  # feature preset (core.features.PRESETS) or a list of features
    window: int = 64
    label: str = "direction3"        # LabelConfig.kind
    horizon: int = 12
    threshold: float = 0.002
    k: float = 1.0                   # vol_scaled labels: threshold = k * rolling volatility
    vol_window: Optional[int] = None
    train: float = 0.70
    val: float = 0.15
    test: float = 0.15
    purge: Optional[int] = None      # gap between splits in bars (None = horizon + window, the default)
    max_rows: Optional[int] = None   # keep only the most recent N candles
    encoding: dict[str, Any] = field(default_factory=dict)  # make_dataset(...) options for image models

    def validate(self) -> "DataConfig":
        coerce_fields(self)
        if self.window < 2:
            raise UserError("the window must be at least 2 bars")
        if self.horizon < 1:
            raise UserError("the horizon must be at least 1 bar")
        if min(self.train, self.val, self.test) <= 0 or self.train + self.val + self.test > 1.0 + 1e-9:
            raise UserError(f"the train, validation and test shares must be positive and sum to at most 1; "
                            f"they are {self.train:g} + {self.val:g} + {self.test:g} = "
                            f"{self.train + self.val + self.test:g}.")
        if self.max_rows is not None and self.max_rows < 1:
            raise UserError(f"data.max_rows must be empty (all rows) or a positive whole number, got {self.max_rows!r}")
        return self

    def class_names(self) -> list[str]:
        """The classes this label kind predicts, in order (down, flat, up; or down, up for binary)."""
        from core.features.labels import LabelConfig, class_names

        return class_names(LabelConfig(kind=self.label))

    def check_fits(self, dataset_rows: int) -> None:
        """A UserError when a dataset of `dataset_rows` candles (cut to `max_rows`) cannot hold the features'
        warm-up, the window, horizon, purge gaps and all three splits: said before training starts, in the
        sentence the Indicators and Encodings pages use (core.features.too_few_candles)."""
        from core.features import check_candles

        check_candles(min(int(dataset_rows), int(self.max_rows or dataset_rows)), to_dataset_config(self))


def to_dataset_config(d: DataConfig) -> Any:
    """The core.features DatasetConfig for a DataConfig."""
    from core.features import DatasetConfig, LabelConfig, SplitConfig

    label_kw: dict[str, Any] = {"kind": d.label, "horizon": d.horizon, "threshold": d.threshold, "k": d.k}
    if d.vol_window is not None:
        label_kw["vol_window"] = d.vol_window
    split = SplitConfig(train=d.train, val=d.val, test=d.test, purge=d.purge)
    return DatasetConfig(preset=d.preset, label=LabelConfig(**label_kw), split=split, window=d.window)


def _field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def from_dict(cls: type, data: dict[str, Any] | None) -> Any:
    """Build a dataclass from a dict, rejecting unknown keys and values of the wrong type with a clear
    sentence (values are converted to the field types, see `coerce_fields`)."""
    data = dict(data or {})
    unknown = set(data) - _field_names(cls)
    if unknown:
        raise UserError(f"unknown {cls.__name__} setting(s): {', '.join(sorted(unknown))}; known: "
                        f"{', '.join(sorted(_field_names(cls)))}")
    return coerce_fields(cls(**data))


# --------------------------------------------------------------------------------------- value types
# Settings arrive as Python values (pages), JSON-parsed `--set` text (CLI: `abc` stays a string) or YAML
# (sweep grids). `coerce_fields` converts each to its dataclass field's type, or raises a UserError naming
# the setting ("train.epochs must be a whole number, got 'abc'").

_NAMESPACES = {"DataConfig": "data", "TrainConfig": "train"}
_NONE_TEXT = ("", "none", "null")
_HINTS: dict[type, dict[str, Any]] = {}


def _describe(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin is Union:
        opts = [_describe(a) for a in args if a is not type(None)] + (["empty (null)"] if type(None) in args else [])
        return ", ".join(opts[:-1]) + " or " + opts[-1] if len(opts) > 1 else opts[0]
    if origin is list:
        return "a list of numbers" if args and args[0] in (int, float) else "a list of names"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "text"
    if tp is dict or origin is dict:
        return 'a mapping (JSON object text such as {"size": 32})'
    return str(tp)


def coerce_value(label: str, tp: Any, value: Any) -> Any:
    """`value` converted to the type `tp` (int, float, bool, str, list[...], dict[...], Optional/Union of
    those), or a UserError "<label> must be <kind>, got <value>". Whole numbers refuse 16.5 and 'abc', numbers
    must be finite, booleans read true/false/1/0/yes/no, a text for a list of names is split on commas, a text
    for a mapping is read as a JSON object."""
    def bad() -> UserError:
        return UserError(f"{label} must be {_describe(tp)}, got {value!r}")

    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin is Union:
        if type(None) in args and (value is None or (isinstance(value, str) and value.strip().lower() in _NONE_TEXT)):
            return None
        options = [a for a in args if a is not type(None)]
        if isinstance(value, str) and str in options:  # text stays text (e.g. a preset name, "balanced")
            lists = [a for a in options if get_origin(a) is list]
            if lists and value.strip().startswith("["):  # ... unless it is a JSON list such as "[1, 2, 1]"
                return coerce_value(label, lists[0], value)
            return value
        for opt in options:
            try:
                return coerce_value(label, opt, value)
            except UserError:
                continue
        raise bad()
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        if isinstance(value, numbers.Real) and value in (0, 1):
            return bool(value)
        raise bad()
    if tp is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, numbers.Integral):
            return int(value)
        number: Any = value
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    raise bad() from None
        if isinstance(number, numbers.Real) and math.isfinite(number) and float(number).is_integer():
            return int(number)
        raise bad()
    if tp is float:
        if isinstance(value, bool):
            raise bad()
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise bad() from None
        if isinstance(number, numbers.Real) and math.isfinite(number):
            return float(number)
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    if origin is list:
        item = args[0] if args else Any
        items = value
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    items = json.loads(text)
                except json.JSONDecodeError:
                    raise bad() from None
            else:
                items = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
        if isinstance(items, tuple):
            items = list(items)
        if not isinstance(items, list):
            raise bad()
        try:
            return [coerce_value(label, item, v) for v in items]
        except UserError:
            raise bad() from None
    if tp is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, str):
            if value.strip() == "":
                return {}
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                raise bad() from None
            if isinstance(parsed, dict):
                return parsed
        raise bad()
    return value


def coerce_fields(obj: Any) -> Any:
    """Convert every field of the DataConfig/TrainConfig `obj` to its declared type in place (see
    `coerce_value`); returns `obj`. The first bad value raises a UserError naming `data.<key>`/`train.<key>`."""
    cls = type(obj)
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    hints = _HINTS[cls]
    ns = _NAMESPACES.get(cls.__name__, cls.__name__)
    for f in fields(obj):
        setattr(obj, f.name, coerce_value(f"{ns}.{f.name}", hints[f.name], getattr(obj, f.name)))
    return obj


# Model names are those of core.models; each preset names the document's architecture.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "description": "small 1D CNN, 64-bar windows, 6 epochs: results in well under a minute on 2 idle CPU cores",
        "model": "cnn1d", "model_config": {},
        "data": {"preset": "resnet15", "window": 64, "label": "direction3", "horizon": 12, "threshold": 0.002},
        "train": {"epochs": 6, "batch_size": 128, "lr": 2e-3, "weight_decay": 1e-4, "warmup": 1,
                  "patience": 3, "noise_std": 0.02, "scale_min": 0.9,
                  "scale_max": 1.1},
    },
    "resnet": {
        "description": "document 000: 1D ResNet-18, 15 features x 256 steps, AdamW + cosine, class weights",
        "model": "resnet18_1d", "model_config": {"width": 64, "dropout": 0.3},
        "data": {"preset": "resnet15", "window": 256, "label": "direction3", "horizon": 12, "threshold": 0.002},
        "train": {"epochs": 100, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "warmup": 0,
                  "min_lr": 1e-6, "patience": 15, "min_delta": 1e-4, "class_weights": [1.2, 0.8, 1.2],
                  "noise_std": 0.01, "scale_min": 0.9, "scale_max": 1.1, "time_warp": 0.2},
    },
    "convnext": {
        "description": "document 001: ConvNeXt-1D Tiny, AdamW 4e-4, wd 0.05, 5 warm-up epochs, label smoothing",
        "model": "convnext1d_tiny", "model_config": {"drop_path": 0.1, "layer_scale_init": 1e-6},
        "data": {"preset": "convnext", "window": 256, "label": "direction3", "horizon": 12, "threshold": 0.002},
        "train": {"epochs": 100, "batch_size": 32, "lr": 4e-4, "weight_decay": 0.05, "decay_norms_and_biases": False,
                  "warmup": 5,
                  "label_smoothing": 0.1, "class_weights": "balanced", "patience": 15, "noise_std": 0.03,
                  "scale_min": 0.9, "scale_max": 1.1, "time_warp": 0.2, "window_slice": 0.1},
    },
    "dilated": {
        "description": "document 002: WaveNet (dilations 1..128) with direction + magnitude + volatility heads",
        "model": "wavenet_multitask", "model_config": {},
        "data": {"preset": "dilated5", "window": 512, "label": "multitask", "horizon": 1, "threshold": 0.001},
        "train": {"epochs": 50, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "warmup": 1,
                  "patience": 10, "multitask_weights": [1.0, 0.5, 0.3]},
    },
    "chapter": {
        "description": "document 004: multi-scale CNN on 64 bars of 6 indicators, binary up/down",
        "model": "multiscale_cnn", "model_config": {},
        "data": {"preset": "chapter6", "window": 64, "label": "binary", "horizon": 1, "threshold": 0.0},
        "train": {"epochs": 80, "batch_size": 32, "lr": 5e-4, "min_lr": 5e-4, "weight_decay": 0.004, "warmup": 0,
                  "patience": 12, "min_delta": 0.0},
    },
}


def preset(name: str) -> dict[str, Any]:
    """A deep copy of a preset: {"model", "model_config", "data": DataConfig, "train": TrainConfig}."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    p = copy.deepcopy(PRESETS[name])
    return {"model": p["model"], "model_config": p["model_config"], "description": p["description"],
            "data": from_dict(DataConfig, p["data"]), "train": from_dict(TrainConfig, p["train"])}


def apply_overrides(overrides: dict[str, Any], model_config: dict[str, Any], data: DataConfig,
                    train: TrainConfig, model_keys: Sequence[str] = ()) -> tuple[dict[str, Any], DataConfig, TrainConfig]:
    """Apply `--set` pairs. `model.x`, `data.x`, `train.x` address one config; a bare key goes to the only
    config that has it (`model_keys` are the model's known config keys); an ambiguous or unknown bare key
    is an error naming the choices."""
    model_config = dict(model_config)
    d, t = asdict(data), asdict(train)
    dkeys, tkeys = _field_names(DataConfig), _field_names(TrainConfig)
    for key, value in overrides.items():
        ns, _, name = key.partition(".")
        if not name:
            ns, name = "", key
        if ns == "":
            owners = [o for o, ok in (("model", name in model_keys), ("data", name in dkeys),
                                      ("train", name in tkeys)) if ok]
            if len(owners) > 1:
                raise UserError(f"--set {name} is ambiguous: write {' or '.join(o + '.' + name for o in owners)}")
            if not owners:
                raise UserError(f"--set {name}: unknown key; use model.{name} for a model setting, or one of "
                                f"data.<{'|'.join(sorted(dkeys))}> / train.<key>")
            ns = owners[0]
        if ns == "model":
            model_config[name] = value
        elif ns == "data":
            if name not in dkeys:
                raise UserError(f"unknown data setting {name!r}; known: {', '.join(sorted(dkeys))}")
            d[name] = value
        elif ns == "train":
            if name not in tkeys:
                raise UserError(f"unknown train setting {name!r}; known: {', '.join(sorted(tkeys))}")
            t[name] = value
        else:
            raise UserError(f"--set {key}: the prefix must be model., data. or train.")
    return model_config, from_dict(DataConfig, d).validate(), from_dict(TrainConfig, t).validate()


def preset_model(name: str) -> tuple[str, dict[str, Any]]:
    """The registered model a preset trains and its model config (checked against the model's settings)."""
    from core.models import get_spec, list_models

    p = PRESETS[name] if name in PRESETS else preset(name)
    if p["model"] not in {s.name for s in list_models()}:
        raise UserError(f"the {name!r} preset trains {p['model']!r}, which is not a registered model; "
                        f"pick one with --model")
    known = set(get_spec(p["model"]).defaults or {})
    unknown = sorted(set(p["model_config"]) - known)
    if unknown:
        raise UserError(f"the {name!r} preset sets {', '.join(unknown)}, which {p['model']} does not have")
    return p["model"], dict(p["model_config"])


def model_start_config(preset_name: str, model_name: str) -> dict[str, Any]:
    """The settings `model_name` starts from under a preset: its registered defaults, with the preset's own
    values when the preset trains this very model."""
    from core.models import get_spec

    config = dict(get_spec(model_name).defaults or {})
    p = PRESETS.get(preset_name) or {}
    if p.get("model") == model_name:
        config.update(p.get("model_config") or {})
    return config


def parse_model_value(key: str, default: Any, raw: Any) -> Any:
    """A model setting entered as text (lists, dicts, None defaults) read back as JSON, with a clear
    sentence when it does not parse; other values pass through."""
    import json

    if not isinstance(raw, str) or isinstance(default, str):
        return raw
    text = raw.strip()
    if text == "" and default is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"model setting {key!r}: {raw!r} is not valid JSON (e.g. [64, 128] or null)") from exc
    if isinstance(default, (list, tuple)) and not isinstance(value, list):
        raise UserError(f"model setting {key!r} must be a list such as {json.dumps(list(default))}")
    return value


def loss_name(train: Any, multitask: bool = False) -> str:
    """The training loss in words (the curves' loss is this one, not the test log loss). `train` is a
    TrainConfig or a saved run's train_config dict."""
    if isinstance(train, dict):
        from types import SimpleNamespace

        train = SimpleNamespace(**{**asdict(TrainConfig()), **train})
    name = f"focal loss (gamma {train.focal_gamma:g})" if train.loss == "focal" else "cross-entropy"
    if train.class_weights:  # the plotted losses are the weighted ones
        name = "class-weighted " + name
    name += f" with label smoothing {train.label_smoothing:g}" if train.label_smoothing else ""
    if multitask:
        w = list(getattr(train, "multitask_weights", None) or [1.0, 0.5, 0.3])
        return f"multi-task loss: {w[0]:g} x {name} + {w[1]:g} x magnitude MSE + {w[2]:g} x volatility MSE"
    return name
