"""Time-series augmentations applied to training batches only (documents 000 and 001).

Each works on a whole batch `x` of shape `(B, C, T)` at once (vectorised, on the batch's device) and
draws its randomness from a seeded `torch.Generator`, so a run is reproducible:
- Gaussian noise ("jittering"): `x + N(0, std^2)`.
- magnitude scaling: every sample multiplied by one factor drawn from U(lo, hi) (default 0.9 to 1.1).
- time warping: the time axis is resampled along a smooth, monotone random path (a few random speed
  knots, linearly interpolated and integrated) that keeps the first and last bar in place.
- window slicing: the oldest part of the window is dropped and replaced by edge padding. The crop is
  taken from the start, never the end, because the last bar is the one the prediction is anchored to
  (cropping the end would show the model an older "now").
Each augmentation hits a sample with probability `p`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentSettings:
    noise_std: float = 0.0
    scale_min: float = 1.0
    scale_max: float = 1.0
    time_warp: float = 0.0      # std of the random speed knots (0.2 = +-20 % local speed changes)
    window_slice: float = 0.0   # largest fraction of the window that may be cropped away
    p: float = 0.5

    @property
    def active(self) -> bool:
        return (self.noise_std > 0 or self.scale_min != 1.0 or self.scale_max != 1.0
                or self.time_warp > 0 or self.window_slice > 0)


def _mask(b: int, p: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(b, generator=g, device=device) < p)


def gaussian_noise(x: torch.Tensor, std: float, g: torch.Generator, p: float = 1.0) -> torch.Tensor:
    m = _mask(x.shape[0], p, g, x.device).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    noise = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return noise.mul_(m * std).add_(x)  # in place on the fresh noise tensor: one allocation


def magnitude_scale(x: torch.Tensor, lo: float, hi: float, g: torch.Generator, p: float = 1.0) -> torch.Tensor:
    b = x.shape[0]
    f = lo + (hi - lo) * torch.rand(b, generator=g, device=x.device, dtype=x.dtype)
    f = torch.where(_mask(b, p, g, x.device), f, torch.ones_like(f))
    return x * f.view(-1, *([1] * (x.dim() - 1)))


def _resample(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of `x (B, C, T)` at fractional time positions `pos (B, T)`."""
    t = x.shape[-1]
    pos = pos.clamp(0, t - 1)
    i0 = pos.floor().long().clamp(0, t - 1)
    i1 = (i0 + 1).clamp(max=t - 1)
    w = (pos - i0.to(pos.dtype)).unsqueeze(1).to(x.dtype)
    c = x.shape[1]
    x0 = x.gather(2, i0.unsqueeze(1).expand(-1, c, -1))
    x1 = x.gather(2, i1.unsqueeze(1).expand(-1, c, -1))
    return x0 + w * (x1 - x0)


def time_warp(x: torch.Tensor, strength: float, g: torch.Generator, p: float = 1.0,
              knots: int = 4) -> torch.Tensor:
    b, _, t = x.shape
    if t < 3:
        return x
    speed = 1.0 + strength * torch.randn(b, knots, generator=g, device=x.device)
    speed = speed.clamp_min(0.1)
    speed = F.interpolate(speed.unsqueeze(1), size=t - 1, mode="linear", align_corners=True).squeeze(1)
    path = torch.cat([torch.zeros(b, 1, device=x.device), speed.cumsum(1)], dim=1)
    path = path / path[:, -1:] * (t - 1)  # first bar stays at 0, last at t-1
    ident = torch.arange(t, device=x.device, dtype=path.dtype).expand(b, t)
    path = torch.where(_mask(b, p, g, x.device)[:, None], path, ident)
    return _resample(x, path)


def window_slice(x: torch.Tensor, max_fraction: float, g: torch.Generator, p: float = 1.0) -> torch.Tensor:
    b, _, t = x.shape
    crop = (torch.rand(b, generator=g, device=x.device) * max_fraction * t).floor().long()
    crop = torch.where(_mask(b, p, g, x.device), crop, torch.zeros_like(crop)).clamp(max=t - 1)
    idx = torch.maximum(torch.arange(t, device=x.device).expand(b, t), crop[:, None])
    return x.gather(2, idx.unsqueeze(1).expand(-1, x.shape[1], -1))


def augment_batch(x: torch.Tensor, s: AugmentSettings, g: torch.Generator) -> torch.Tensor:
    """Apply the configured augmentations to a `(B, C, T)` batch (returns a new tensor)."""
    if s.window_slice > 0:
        x = window_slice(x, s.window_slice, g, s.p)
    if s.time_warp > 0:
        x = time_warp(x, s.time_warp, g, s.p)
    if s.scale_min != 1.0 or s.scale_max != 1.0:
        x = magnitude_scale(x, s.scale_min, s.scale_max, g, s.p)
    if s.noise_std > 0:
        x = gaussian_noise(x, s.noise_std, g, s.p)
    return x
