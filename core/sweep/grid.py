"""Sweep grids: a YAML or JSON file that names a base configuration and the axes to vary.

```yaml
name: cnn-vs-tcn                 # part of the sweep id and of every run's display name
preset: quick                    # training preset the base starts from (core.train.config.PRESETS)
dataset: synthetic-BTCUSDT-1h    # base dataset (default: the offline market)
model: cnn1d                     # base model (default: the preset's)
model_config: {}                 # applies to every model of the sweep
data: {max_rows: 4000}           # DataConfig keys
train: {epochs: 3}               # TrainConfig keys
rank_by: balanced_accuracy       # out-of-sample metric that ranks the cells
grid:                            # the axes; every combination is one cell = one run
  model: [cnn1d, tcn]
  seed: [0, 1, 2]                # = train.seed
  symbol: [BTC/USDT, ETH/USDT]   # dataset <source>-<SYMBOL>-<timeframe> of the base dataset's source/timeframe
  window: [32, 64]               # = data.window
  train.lr: [0.001, 0.003]       # any config key: model.<k>, data.<k>, train.<k>, or a bare key when unambiguous
```

Axes `dataset` (explicit dataset ids), `source` and `timeframe` are accepted too. Cells are expanded in the
order the axes are written, and every cell is validated (model known, configs valid, model settings known)
before anything runs, so a typo costs nothing. Files are parsed as plain data (`yaml.safe_load`/`json`).
"""
from __future__ import annotations

import copy
import itertools
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from core.errors import UserError

DEFAULT_SOURCE = "synthetic"
DEFAULT_TIMEFRAME = "1h"
MAX_GRID_BYTES = 1_000_000
# metrics a sweep can rank by (on the validation split where it has one), and whether larger is better
RANK_METRICS = {"accuracy": True, "balanced_accuracy": True, "macro_f1": True, "roc_auc": True,
                "log_loss": False, "vs_baseline": True}
# axes with a meaning of their own; every other axis is a config key
SPECIAL_AXES = ("model", "seed", "symbol", "dataset", "source", "timeframe", "window")
# the config keys two of them stand for: written either way they are one axis
FULL_NAMES_OF_SPECIAL = {"train.seed": "seed", "data.window": "window"}
SPECIAL_FULL_NAMES = {short: full for full, short in FULL_NAMES_OF_SPECIAL.items()}


@dataclass
class GridSpec:
    """A parsed grid file (see the module docstring)."""

    name: str = "sweep"
    preset: str = "quick"
    dataset: Optional[str] = None
    model: Optional[str] = None
    model_config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    rank_by: str = "balanced_accuracy"
    max_cells: int = 500

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepCell:
    """One combination of the grid: everything `train_run` needs, plus the axis values that made it."""

    index: int
    params: dict[str, Any]          # axis -> value of this cell (seed included)
    dataset_id: str
    model_name: str
    model_config: dict[str, Any]
    data_config: dict[str, Any]
    train_config: dict[str, Any]
    name: str = ""

    @property
    def seed(self) -> int:
        return int(self.train_config.get("seed", 0))

    @property
    def group(self) -> str:
        """The cell's label without its seed: cells that differ only by seed form one group."""
        return group_label(self.params)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SweepCell":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def group_label(params: dict[str, Any]) -> str:
    parts = [f"{k}={_fmt(v)}" for k, v in params.items() if k != "seed"]
    return ", ".join(parts) or "all"


def _cell_label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


# --------------------------------------------------------------------------------------------- parsing

def parse_grid(obj: Any) -> GridSpec:
    """A GridSpec from plain data (what a YAML/JSON grid file holds); unknown keys are refused."""
    if not isinstance(obj, dict):
        raise UserError("a grid file must hold a mapping with at least a 'grid' section")
    known = {f.name for f in fields(GridSpec)}
    unknown = set(obj) - known
    if unknown:
        raise UserError(f"unknown grid file key(s): {', '.join(sorted(map(str, unknown)))}; known: "
                        f"{', '.join(sorted(known))}")
    spec = GridSpec(**copy.deepcopy(obj))
    for key in ("model_config", "data", "train"):
        if not isinstance(getattr(spec, key), dict):
            raise UserError(f"'{key}' in the grid file must be a mapping of setting -> value")
    if not isinstance(spec.grid, dict) or not spec.grid:
        raise UserError("the grid file needs a 'grid' mapping of axis -> list of values, e.g. seed: [0, 1, 2]")
    axes: dict[str, list[Any]] = {}
    names = [str(a) for a in spec.grid]
    for axis, values in spec.grid.items():
        axis = str(axis)
        short = FULL_NAMES_OF_SPECIAL.get(axis)
        if short is not None:  # the seed (window) however it is spelt: one axis, one label
            if short in names:
                raise UserError(f"the grid has both '{short}' and '{axis}' axes; keep one")
            axis = short
        elif "." not in axis and axis not in SPECIAL_AXES:  # a bare key and its full name: the same setting twice
            both = [f"{ns}.{axis}" for ns in ("model", "data", "train") if f"{ns}.{axis}" in names]
            if both:
                raise UserError(f"the grid has both '{axis}' and '{both[0]}' axes; keep one")
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise UserError(f"the grid axis '{axis}' has no values")
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
            raise UserError(f"the grid axis '{axis}' repeats a value")
        axes[str(axis)] = values
    spec.grid = axes
    if spec.rank_by not in RANK_METRICS:
        raise UserError(f"rank_by must be one of {', '.join(RANK_METRICS)}")
    if not isinstance(spec.name, str) or not spec.name.strip():
        raise UserError("the sweep name must be a non-empty text")
    try:
        spec.max_cells = int(spec.max_cells)
    except (TypeError, ValueError):
        raise UserError("max_cells must be a whole number") from None
    return spec


def load_grid(source: str | Path | bytes, fmt: Optional[str] = None) -> GridSpec:
    """Read a grid from a file path, or from YAML/JSON text or bytes (`fmt`: 'yaml' or 'json', else guessed)."""
    text: str
    if isinstance(source, bytes):
        if len(source) > MAX_GRID_BYTES:
            raise UserError("the grid file is larger than 1 MB; a grid is a few lines of settings")
        try:
            text = source.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError("the grid file is not UTF-8 text") from None
    elif isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and
                                      source.strip().lower().endswith((".yaml", ".yml", ".json"))):
        path = Path(source)
        if not path.is_file():
            raise UserError(f"there is no grid file at {path}")
        if path.stat().st_size > MAX_GRID_BYTES:
            raise UserError("the grid file is larger than 1 MB; a grid is a few lines of settings")
        text = path.read_text(encoding="utf-8")
        fmt = fmt or ("json" if path.suffix.lower() == ".json" else "yaml")
    else:
        text = str(source)
    return parse_grid(_parse_text(text, fmt))


def _parse_text(text: str, fmt: Optional[str]) -> Any:
    if fmt not in (None, "json", "yaml"):
        raise UserError("the grid format must be yaml or json")
    if fmt == "json" or (fmt is None and text.lstrip().startswith("{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"the grid file is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    import yaml

    try:
        return yaml.safe_load(text)  # plain data only: no tags that build Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"the grid file is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def dump_grid(spec: GridSpec) -> str:
    """The grid as YAML text (what the page shows and a user can save as a file)."""
    import yaml

    d = {k: v for k, v in spec.to_dict().items() if v not in (None, {}, [])}
    return yaml.safe_dump(d, sort_keys=False)


# ------------------------------------------------------------------------------------------- expansion

def _default_dataset() -> str:
    from core.data.store import DEFAULT_SYMBOL, DEFAULT_TIMEFRAME, dataset_id

    return dataset_id("synthetic", DEFAULT_SYMBOL, DEFAULT_TIMEFRAME)


def expand_grid(spec: GridSpec) -> list[SweepCell]:
    """Every cell of the grid, validated, in the order the axes are written (the last axis varies fastest)."""
    from core.data.store import dataset_id as make_dataset_id, split_dataset_id  # (a DataError is a UserError)
    from core.errors import DataError
    from core.models import get_spec, list_models, resolve_config
    from core.train.config import apply_overrides, preset, preset_model

    n = 1
    for values in spec.grid.values():
        n *= len(values)
    if n > spec.max_cells:
        raise UserError(f"the grid has {n} cells, more than max_cells={spec.max_cells}; shrink an axis or raise "
                        f"max_cells in the grid file")
    base = preset(spec.preset)
    preset_model_name, preset_mc = preset_model(spec.preset)
    base_model = spec.model or preset_model_name
    registered = {s.name for s in list_models()}

    def model_defaults(name: str) -> dict[str, Any]:
        if name not in registered:
            raise UserError(f"unknown model {name!r} in the grid; registered: {', '.join(sorted(registered))}")
        return dict(get_spec(name).defaults or {})

    # the base data/train configs: preset, then the file's data/train sections
    try:
        _, base_data, base_train = apply_overrides(
            {**{f"data.{k}": v for k, v in spec.data.items()}, **{f"train.{k}": v for k, v in spec.train.items()}},
            {}, base["data"], base["train"])
    except UserError as exc:
        raise UserError(f"the grid file's data/train sections: {exc}") from None
    base_dataset = spec.dataset or _default_dataset()
    b_source, b_symbol, b_tf, b_suffix = split_dataset_id(base_dataset)

    axes = list(spec.grid)
    cells = []
    for index, combo in enumerate(itertools.product(*(spec.grid[a] for a in axes))):
        params = dict(zip(axes, combo))
        model = str(params.get("model", base_model))
        defaults = model_defaults(model)
        mc: dict[str, Any] = dict(preset_mc) if model == preset_model_name else {}
        mc.update(spec.model_config)
        overrides: dict[str, Any] = {}
        source, symbol, tf, explicit_ds = b_source, None, b_tf, None
        for axis, value in params.items():
            if axis == "model":
                continue
            if axis in SPECIAL_FULL_NAMES:  # seed, window: the short names of a setting
                overrides[SPECIAL_FULL_NAMES[axis]] = value
            elif axis == "symbol":
                symbol = str(value)
            elif axis == "source":
                source = str(value)
            elif axis == "timeframe":
                tf = str(value)
            elif axis == "dataset":
                explicit_ds = str(value)
            else:
                overrides[axis] = value
        if explicit_ds is not None and (symbol is not None or "source" in params or "timeframe" in params):
            raise UserError("use either the 'dataset' axis or 'symbol'/'source'/'timeframe' axes, not both")
        if explicit_ds is not None:
            ds = explicit_ds
            split_dataset_id(ds)
        elif symbol is None and "source" not in params and "timeframe" not in params:
            ds = base_dataset
        else:
            try:
                ds = make_dataset_id(source, symbol or b_symbol, tf, b_suffix)
            except (DataError, ValueError) as exc:
                raise UserError(f"grid cell {index}: {exc}") from None
        try:  # types and ranges of every setting: a bad value fails here, before anything runs
            mc_out, d, t = apply_overrides(overrides, mc, copy.deepcopy(base_data), copy.deepcopy(base_train),
                                           model_keys=list(defaults))
            if defaults:
                unknown = sorted(set(mc_out) - set(defaults))
                if unknown:
                    raise UserError(f"model {model!r} has no setting(s) {', '.join(unknown)}; its settings: "
                                    f"{', '.join(sorted(defaults))}")
            if mc_out:
                resolved = resolve_config(model, mc_out)  # the model's own value checks (core.models)
                mc_out = {k: resolved[k] for k in mc_out}
        except UserError as exc:  # name the cell by its axis values: the user finds the bad entry at once
            raise UserError(f"grid cell {index} ({_cell_label(params)}): {exc}") from None
        cell_name = f"{spec.name} #{index} " + group_label(params) + (f" seed={t.seed}" if "seed" in params else "")
        cells.append(SweepCell(index=index, params=params, dataset_id=ds, model_name=model, model_config=mc_out,
                               data_config=asdict(d), train_config=asdict(t), name=cell_name[:100]))
    return cells


__all__ = ["GridSpec", "SweepCell", "RANK_METRICS", "parse_grid", "load_grid", "dump_grid", "expand_grid",
           "group_label", "default_grid_text", "grid_preview"]


def default_grid_text(dataset_id: str) -> str:
    """The grid a new user starts from on the Experiments page: two models x three seeds, small and quick."""
    return (f"name: quick-models\npreset: quick\ndataset: {dataset_id}\n"
            "data: {max_rows: 4000, window: 32}\ntrain: {epochs: 3, n_boot: 200}\nrank_by: balanced_accuracy\n"
            "grid:\n  model: [cnn1d, tcn]\n  seed: [0, 1, 2]\n")


def grid_preview(text: str) -> tuple[GridSpec, list[SweepCell], str]:
    """Parse and expand a grid typed by the user: (spec, cells, "N cells: first names ..."); UserError when
    it is invalid, before anything runs."""
    spec = load_grid(text.encode("utf-8"))
    cells = expand_grid(spec)
    names = "; ".join(c.name for c in cells[:6]) + (" ..." if len(cells) > 6 else "")
    return spec, cells, f"{len(cells)} cells: {names}"
