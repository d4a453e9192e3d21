"""Sliding input windows as zero-copy views; a sample or batch is copied only when it is drawn.

`sliding_window_view` over a (T, C) float32 array gives a (T-window+1, C, window) view that shares the
array's memory: 525,600 rows x 20 channels x 256 steps cost the 42 MB of the features, not 10.7 GB.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from core.errors import UserError


def window_view(features: np.ndarray, window: int) -> np.ndarray:
    """(T-window+1, C, window) read-only view; element i is the window ending at row i+window-1."""
    return np.lib.stride_tricks.sliding_window_view(features, window, axis=0)


class WindowDataset(Dataset):
    """Samples ending at `ends`: item i = (x float32 (C, window), y int64) for the window ending at ends[i].

    With `targets` (multitask: name -> (T,) float array), y is a dict {"direction": class,
    name: float32...}, which torch's default collate stacks per key.
    """

    def __init__(self, features: np.ndarray, y: np.ndarray, ends: np.ndarray, window: int,
                 targets: Optional[Mapping[str, np.ndarray]] = None):
        feats = np.asarray(features)
        if feats.ndim != 2:
            raise UserError("features must be a (rows, channels) array")
        if feats.dtype != np.float32 or not feats.flags.c_contiguous:
            feats = np.ascontiguousarray(feats, dtype=np.float32)  # one copy here, none per sample
        window = int(window)
        if window < 1 or window > len(feats):
            raise UserError(f"a window of {window} bars does not fit {len(feats)} rows")
        ends = np.asarray(ends, dtype=np.int64).ravel()
        if len(ends) and (ends.min() < window - 1 or ends.max() >= len(feats)):
            raise UserError(f"sample ends must lie in {window - 1}..{len(feats) - 1} for {window}-bar windows")
        self.features = feats
        self.y = np.asarray(y, dtype=np.int64)
        if len(self.y) != len(feats):
            raise UserError("labels and features have different lengths")
        self.ends = ends
        self.window = window
        self.targets = {k: np.asarray(v, dtype=np.float32) for k, v in (targets or {}).items()}
        self._view = window_view(feats, window)

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def n_channels(self) -> int:
        return self.features.shape[1]

    def __getitem__(self, i: int):
        t = int(self.ends[i])
        x = torch.from_numpy(np.ascontiguousarray(self._view[t - self.window + 1]))
        y = torch.tensor(self.y[t], dtype=torch.int64)
        if self.targets:
            ys = {"direction": y}
            ys.update({k: torch.tensor(v[t]) for k, v in self.targets.items()})
            return x, ys
        return x, y

    def batch(self, idx: np.ndarray):
        """(B, C, window) and (B,) for sample indices `idx`, gathered in one numpy take (with multitask
        targets, a dict of direction, magnitude and volatility for the second, as `__getitem__` gives)."""
        t = self.ends[np.asarray(idx, dtype=np.int64)]
        x = self._view[t - self.window + 1]  # fancy indexing copies just this batch
        y = torch.from_numpy(self.y[t].copy())
        if self.targets:
            y = {"direction": y, **{k: torch.from_numpy(np.asarray(v)[t].copy()) for k, v in self.targets.items()}}
        return torch.from_numpy(np.ascontiguousarray(x)), y
