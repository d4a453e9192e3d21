"""Gramian angular fields (summation and difference) of a window, vectorised over a batch.

A window x_1..x_n is min-max rescaled *within the window* to [-1, 1] (no information from outside it),
turned into angles phi_i = arccos(x_i), and encoded as the n x n matrix
  GASF[i, j] = cos(phi_i + phi_j) = x_i x_j - sqrt(1 - x_i^2) sqrt(1 - x_j^2)
  GADF[i, j] = sin(phi_i - phi_j) = sqrt(1 - x_i^2) x_j - x_i sqrt(1 - x_j^2)
(the same definitions as pyts' GramianAngularField). A window longer than `image_size` is first reduced
by piecewise aggregate approximation (PAA, the mean of equal-width segments).
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from core.errors import UserError

GafMethod = Literal["summation", "difference"]


def _as_batch(x: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
    a = np.asarray(x, dtype=np.float64)
    single = a.ndim == 1
    if single:
        a = a[None]
    if a.ndim != 2:
        raise UserError(f"{what} needs a window (W,) or a batch of windows (N, W); got shape {a.shape}")
    if a.shape[1] < 2:
        raise UserError(f"{what} needs windows of at least 2 values")
    if not np.isfinite(a).all():
        raise UserError(f"{what}: the window contains missing or infinite values")
    return a, single


def paa(x: np.ndarray, output_size: int) -> np.ndarray:
    """Piecewise aggregate approximation of (N, W) windows to (N, output_size) segment means.

    Segments are as equal as integer bounds allow (bounds floor(k W / m)), so W need not divide evenly.
    """
    a = np.asarray(x, dtype=np.float64)
    n_in = a.shape[-1]
    if not 1 <= output_size <= n_in:
        raise UserError(f"image size must be between 1 and the window length {n_in}, got {output_size}")
    if output_size == n_in:
        return a
    bounds = (np.arange(output_size + 1) * n_in) // output_size
    csum = np.concatenate([np.zeros(a.shape[:-1] + (1,)), np.cumsum(a, axis=-1)], axis=-1)
    return (csum[..., bounds[1:]] - csum[..., bounds[:-1]]) / np.diff(bounds)


def rescale_window(x: np.ndarray) -> np.ndarray:
    """Min-max each row of (N, W) into [-1, 1]; a constant row maps to 0 (angle pi/2)."""
    lo = x.min(axis=-1, keepdims=True)
    hi = x.max(axis=-1, keepdims=True)
    span = hi - lo
    out = np.where(span > 0, 2.0 * (x - lo) / np.where(span > 0, span, 1.0) - 1.0, 0.0)
    return np.clip(out, -1.0, 1.0)  # rounding can leave 1 + eps, outside arccos' domain


def gramian_angular_field(
    x: np.ndarray, method: GafMethod = "summation", image_size: int | None = None
) -> np.ndarray:
    """GASF or GADF of a window `(W,)` -> `(S, S)`, or of a batch `(N, W)` -> `(N, S, S)`, float32 in [-1, 1]."""
    if method not in ("summation", "difference"):
        raise UserError(f"GAF method must be 'summation' or 'difference', got {method!r}")
    a, single = _as_batch(x, "a Gramian angular field")
    if image_size is not None:
        a = paa(a, int(image_size))
    c = rescale_window(a)  # cos(phi)
    s = np.sqrt(np.clip(1.0 - c * c, 0.0, None))  # sin(phi) >= 0 as phi in [0, pi]
    if method == "summation":
        g = c[:, :, None] * c[:, None, :] - s[:, :, None] * s[:, None, :]
    else:
        g = s[:, :, None] * c[:, None, :] - c[:, :, None] * s[:, None, :]
    g = g.astype(np.float32)
    return g[0] if single else g
