"""Per-channel z-score fitted on the training rows only, saved with joblib alongside a run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np

from core.errors import UserError
from core.workspace import atomic_write


@dataclass
class ChannelScaler:
    """mean and scale per channel (plain numpy); a channel with no spread gets scale 1."""

    mean: np.ndarray
    scale: np.ndarray
    feature_names: list[str] = field(default_factory=list)
    n_rows: int = 0

    @classmethod
    def fit(cls, features: np.ndarray, rows: np.ndarray | None = None,
            feature_names: list[str] | None = None) -> "ChannelScaler":
        """Fit on `features[rows]` (a boolean mask or positions): pass the training rows only."""
        x = np.asarray(features, dtype=np.float64)
        if rows is not None:
            x = x[rows]
        if len(x) < 2:
            raise UserError("the training segment has too few rows to fit the feature scaler")
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        scale = np.where(std > 1e-12, std, 1.0)
        return cls(mean=mean, scale=scale, feature_names=list(feature_names or []), n_rows=len(x))

    def transform(self, features: np.ndarray) -> np.ndarray:
        """float32 (T, C) z-scores."""
        x = np.asarray(features, dtype=np.float64)
        if x.shape[-1] != len(self.mean):
            raise UserError(f"the scaler was fitted on {len(self.mean)} channels, got {x.shape[-1]}")
        return ((x - self.mean) / self.scale).astype(np.float32)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.scale + self.mean


def save_scaler(scaler: ChannelScaler, path: Path) -> Path:
    """joblib-dump the scaler atomically (the path should come from core.workspace)."""
    return atomic_write(Path(path), lambda tmp: joblib.dump(scaler, tmp))


def load_scaler(path: Path) -> ChannelScaler:
    obj = joblib.load(Path(path))
    if not isinstance(obj, ChannelScaler):
        raise UserError(f"{Path(path).name} does not hold a feature scaler")
    return obj
