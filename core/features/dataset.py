"""From candles to a training-ready dataset: features, labels, purged splits, train-only scaling.

`prepare_dataset` is the one path every model family trains on; `WindowDataset` (core.features.windows)
turns its arrays into samples.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from core.errors import UserError
from core.features.labels import LabelConfig, class_names, make_labels
from core.features.presets import PRESETS, compute_features, resolve_features, warmup_bars
from core.features.scaling import ChannelScaler
from core.features.splits import SplitConfig, min_rows, purge_gap, purged_chronological_split, rows_touched


@dataclass
class DatasetConfig:
    preset: Union[str, Sequence[str]] = "resnet15"
    label: LabelConfig = field(default_factory=LabelConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    window: int = 64

    def to_dict(self) -> dict:
        d = asdict(self)
        if not isinstance(self.preset, str):
            d["preset"] = list(self.preset)
        return d


@dataclass
class PreparedData:
    features: np.ndarray              # float32 (T, C), z-scored with the train-only scaler
    feature_names: list[str]
    timestamps: pd.DatetimeIndex      # (T,)
    y: np.ndarray                     # int64 (T,), -1 where undefined
    splits: dict[str, np.ndarray]     # sample end positions for train / val / test
    scaler: ChannelScaler
    class_names: list[str]
    window: int
    candles: pd.DataFrame             # raw candles aligned with `features` (row i = bar i)
    targets: Optional[dict[str, np.ndarray]] = None   # multitask: magnitude, volatility (float32, NaN undef.)
    raw_features: Optional[pd.DataFrame] = None      # unscaled features (for charts)
    labels: Optional[pd.DataFrame] = None            # the full make_labels frame, aligned
    config: Optional[DatasetConfig] = None

    @property
    def n_channels(self) -> int:
        return self.features.shape[1]

    def dataset(self, split: str = "train"):
        """A WindowDataset over one split."""
        from core.features.windows import WindowDataset

        if split not in self.splits:
            raise UserError(f"unknown split {split!r}; choose one of {', '.join(self.splits)}")
        return WindowDataset(self.features, self.y, self.splits[split], self.window, self.targets)


def gap_summary(candles: pd.DataFrame, timeframe: str = "") -> Optional[tuple[int, int, pd.Timestamp]]:
    """(gaps, missing bars, start of the first gap) of the candles, or None when every bar is there (or the
    spacing is no timeframe's, so there is nothing to measure gaps against). `timeframe` defaults to the
    candles' own spacing."""
    from core.data.candles import TIMEFRAMES, bar_seconds, find_gaps, timeframe_name

    if candles is None or len(candles) < 2:
        return None
    timeframe = timeframe if timeframe in TIMEFRAMES else timeframe_name(bar_seconds(candles))
    if timeframe not in TIMEFRAMES:
        return None
    gaps = find_gaps(pd.DatetimeIndex(candles.index), timeframe)
    if not gaps:
        return None
    return len(gaps), sum(g["missing"] for g in gaps), pd.Timestamp(gaps[0]["start"])


def gap_note(candles: pd.DataFrame) -> Optional[str]:
    """A sentence when the candles have holes (None when every bar is there): features, windows and label
    horizons count rows, so across a gap they run as if the bars were consecutive."""
    found = gap_summary(candles)
    if found is None:
        return None
    n_gaps, missing, first = found
    return (f"The candles have {n_gaps:,} gap{'s' if n_gaps != 1 else ''} ({missing:,} missing bar"
            f"{'s' if missing != 1 else ''}, the first at {first:%Y-%m-%d %H:%M} UTC): "
            "indicators, windows and label horizons count rows, so across a gap they run as if the bars were "
            "consecutive (a 12-bar horizon then spans more than 12 bars of time). Fetch the missing bars, or "
            "use a span without gaps.")


def _features_phrase(preset: Union[str, Sequence[str]]) -> str:
    """"the resnet15 features" for a preset (or a list equal to one), else "the 3 chosen features"."""
    names = resolve_features(preset)
    name = preset if isinstance(preset, str) else next((k for k, v in PRESETS.items() if v == names), None)
    if name:
        return f"the {name} features"
    return f"the feature {names[0]}" if len(names) == 1 else f"the {len(names)} chosen features"


def too_few_candles(n_candles: int, cfg: DatasetConfig, warmup_rows: Optional[int] = None) -> Optional[str]:
    """The sentence saying why `n_candles` candles cannot hold these features, window, horizon and split
    (None when they can), counted the way `prepare_dataset` counts: the features' warm-up rows are dropped
    first (`warmup_rows` when known from the candles themselves, else the preset's `warmup_bars` - 1), and the
    rows left must hold the windows, the label horizon, two purge gaps and a sample in every segment.

    Every page and the trainer say "too few" with this one sentence, so a dataset gets one count everywhere."""
    label = cfg.label.validate()
    window, horizon = int(cfg.window), int(label.horizon)
    split = (cfg.split or SplitConfig()).validate()
    warm = max(0, int(warmup_bars(cfg.preset)) - 1 if warmup_rows is None else int(warmup_rows))
    n = max(0, int(n_candles))
    rows = max(0, n - warm)
    need = min_rows(window, horizon, split)
    if rows >= need:
        return None
    feats = _features_phrase(cfg.preset)
    verb = "needs" if feats.startswith("the feature ") else "need"
    if warm:
        left = f"which leaves {rows:,} row{'s' if rows != 1 else ''}" if rows else "which leaves no rows"
        warm_part = f"{feats} {verb} {warm:,} bar{'s' if warm != 1 else ''} of warm-up, {left}"
    else:
        warm_part = f"{feats} {verb} no warm-up"
    gap = purge_gap(window, horizon, split.purge)
    return (f"{n:,} candle{'s' if n != 1 else ''} are too few: {warm_part}, and windows of {window} bars with a "
            f"{horizon}-bar horizon and {gap}-bar purge gaps between train, validation and test need at least "
            f"{need:,} rows ({need + warm:,} candles); use a longer dataset or a shorter window.")


def check_candles(n_candles: int, cfg: DatasetConfig, warmup_rows: Optional[int] = None) -> None:
    """UserError with `too_few_candles`'s sentence when the candles are too few for `cfg`."""
    problem = too_few_candles(n_candles, cfg, warmup_rows)
    if problem:
        raise UserError(problem)


def prepare_dataset(candles: pd.DataFrame, cfg: DatasetConfig) -> PreparedData:
    """Features (warm-up dropped), labels, purged chronological split, z-score fitted on train rows only."""
    label_cfg = cfg.label.validate()
    window = int(cfg.window)
    if window < 2:
        raise UserError("the window must be at least 2 bars")
    names = resolve_features(cfg.preset)
    try:
        raw = compute_features(candles, names)
    except UserError:
        if len(candles):  # not even one row of features: the whole count, warm-up and windows, in one sentence
            check_candles(len(candles), cfg)
        raise
    check_candles(len(candles), cfg, int(raw.attrs.get("warmup_rows", 0)))
    aligned = candles.loc[raw.index]
    # Labels on the full candles (the warm-up only removes leading rows, so values are the same), so a
    # vol_scaled label may use volatility history from inside the warm-up: still the past only.
    labels = make_labels(candles, label_cfg).loc[raw.index]
    n = len(raw)
    splits = purged_chronological_split(n, window, int(label_cfg.horizon), cfg.split)
    y = labels["y"].to_numpy(np.int64)
    # A vol_scaled label is undefined until its volatility window fills: those ends carry no sample.
    splits = {k: v[y[v] >= 0] for k, v in splits.items()}
    for k, v in splits.items():
        if len(v) == 0:
            raise UserError(f"the {k} segment has no labelled samples: use more candles")
    x = raw.to_numpy(np.float64)
    train_rows = rows_touched(splits["train"], window, n)
    scaler = ChannelScaler.fit(x, train_rows, names)
    targets = None
    if label_cfg.kind == "multitask":
        targets = {k: labels[k].to_numpy(np.float32) for k in ("magnitude", "volatility")}
    return PreparedData(
        features=np.ascontiguousarray(scaler.transform(x)), feature_names=names,
        timestamps=pd.DatetimeIndex(raw.index), y=y, splits=splits, scaler=scaler,
        class_names=class_names(label_cfg), window=window, candles=aligned, targets=targets,
        raw_features=raw, labels=labels, config=cfg,
    )
