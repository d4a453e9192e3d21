"""Recurrence plots of a window, vectorised over a batch.

The window is z-scored within itself (so plots of different price levels compare), optionally embedded in
`dimension` dimensions with `time_delay` (Takens), and the plot is the matrix of pairwise Euclidean
distances between the states. With a threshold it becomes binary: R[i, j] = 1 when the states are within
`threshold` (absolute) or within the given `percentage` of the largest distance in the window.
"""
from __future__ import annotations

import numpy as np

from core.encodings.gaf import _as_batch
from core.errors import UserError


def embed(x: np.ndarray, dimension: int = 1, time_delay: int = 1) -> np.ndarray:
    """Time-delay embedding of (N, W) windows -> (N, W - (dimension - 1) * time_delay, dimension)."""
    if dimension < 1 or time_delay < 1:
        raise UserError("embedding dimension and time delay must be at least 1")
    n_states = x.shape[1] - (dimension - 1) * time_delay
    if n_states < 2:
        raise UserError(f"a window of {x.shape[1]} values is too short for dimension {dimension} and "
                        f"delay {time_delay}")
    idx = np.arange(n_states)[:, None] + np.arange(dimension)[None, :] * time_delay
    return x[:, idx]


def recurrence_plot(
    x: np.ndarray,
    dimension: int = 1,
    time_delay: int = 1,
    threshold: float | None = None,
    percentage: float | None = None,
) -> np.ndarray:
    """Recurrence plot of a window `(W,)` -> `(S, S)` or a batch `(N, W)` -> `(N, S, S)`, float32.

    Without a threshold the plot holds distances scaled to [0, 1] by the window's largest distance
    (0 = the same state). With `threshold` (in z-score units) or `percentage` (0..100 of the largest
    distance) it is binary, 1 where the states recur.
    """
    if threshold is not None and percentage is not None:
        raise UserError("give a recurrence threshold or a percentage, not both")
    if percentage is not None and not 0 <= percentage <= 100:
        raise UserError(f"recurrence percentage must be between 0 and 100, got {percentage}")
    a, single = _as_batch(x, "a recurrence plot")
    sd = a.std(axis=1, keepdims=True)
    z = (a - a.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    states = embed(z, dimension, time_delay)  # (N, S, d)
    diff = states[:, :, None, :] - states[:, None, :, :]
    dist = np.sqrt(np.einsum("nijd,nijd->nij", diff, diff))
    dmax = dist.max(axis=(1, 2), keepdims=True)
    if threshold is not None:
        out = dist <= threshold
    elif percentage is not None:
        out = dist <= (percentage / 100.0) * dmax
    else:
        out = dist / np.where(dmax > 0, dmax, 1.0)
    out = out.astype(np.float32)
    return out[0] if single else out
