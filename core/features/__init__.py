"""Features, labels, leakage-safe splits, train-only scaling and zero-copy windows (see ARCHITECTURE.md).

Names are imported lazily (PEP 562) so that `python -m core --help`, which imports `core.features.cli`,
does not pay for pandas, ta and torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "core.features.dataset": ["DatasetConfig", "PreparedData", "check_candles", "gap_note", "prepare_dataset",
                              "too_few_candles"],
    "core.features.indicators": ["adx", "atr", "available_features", "keltner", "rolling_vwap", "true_range"],
    "core.features.labels": ["LABEL_KINDS", "LabelConfig", "class_balance", "class_names", "make_labels"],
    "core.features.presets": ["PRESET_DESCRIPTIONS", "PRESETS", "compute_features", "resolve_features",
                              "warmup_bars"],
    "core.features.scaling": ["ChannelScaler", "load_scaler", "save_scaler"],
    "core.features.splits": ["SplitConfig", "candidate_ends", "min_rows", "purge_gap", "purged_chronological_split",
                             "rows_touched", "walk_forward_folds"],
    "core.features.windows": ["WindowDataset", "window_view"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'core.features' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
