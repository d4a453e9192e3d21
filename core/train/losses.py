"""Loss functions for training: cross-entropy (class weights, label smoothing), focal loss, and the
multi-task loss of the WaveNet head (direction + magnitude + volatility, document 002).

All take logits `(B, K)` and int64 targets `(B,)`; `build_loss(cfg, class_weights)` picks one from a
`TrainConfig`.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.errors import UserError

LOSSES = ("ce", "focal")


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): `alpha_c * (1 - p_t)^gamma * CE`, down-weighting easy examples.

    `weight` plays the role of the per-class alpha (so class weights and focal loss combine the way
    document 000 uses them); `label_smoothing` is applied to the CE term before focusing.
    """

    def __init__(self, gamma: float = 2.0, weight: Optional[torch.Tensor] = None,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if gamma < 0:
            raise UserError(f"focal_gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("weight", weight if weight is not None else None, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # focusing term in float32 even under autocast
        logp = F.log_softmax(logits, dim=1)
        logp_t = logp.gather(1, target[:, None]).squeeze(1)
        # per-sample CE as torch weights it (with label smoothing, each smoothed class by its own weight), so
        # that gamma = 0 is exactly nn.CrossEntropyLoss(weight, label_smoothing)
        ce = F.cross_entropy(logits, target, weight=self.weight, reduction="none",
                             label_smoothing=self.label_smoothing)
        pt = logp_t.exp()
        loss = (1.0 - pt).clamp_min(0.0) ** self.gamma * ce
        if self.weight is not None:
            return loss.sum() / self.weight[target].sum()
        return loss.mean()


class MultiTaskLoss(nn.Module):
    """`w_dir * CE(direction) + w_mag * MSE(magnitude) + w_vol * MSE(volatility)` (document 002: 1/0.5/0.3).

    The regression targets are expected standardised (the trainer scales them with train-split statistics)
    so the three terms are on comparable scales.
    """

    def __init__(self, direction: nn.Module, weights: Sequence[float] = (1.0, 0.5, 0.3)) -> None:
        super().__init__()
        if len(weights) != 3:
            raise UserError("multitask_weights needs three numbers: direction, magnitude, volatility")
        self.direction = direction
        self.w = tuple(float(w) for w in weights)

    def parts(self, out: dict, target: torch.Tensor, magnitude: torch.Tensor,
              volatility: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The direction term (the classification criterion, class-weighted if it is) and the weighted sum of
        the two regression terms (plain means over the samples), apart: averaging over a whole split weighs
        them differently."""
        d = self.direction(out["direction"], target)
        m = F.mse_loss(out["magnitude"].float().reshape(-1), magnitude.float())
        v = F.mse_loss(out["volatility"].float().reshape(-1), volatility.float())
        return d, self.w[1] * m + self.w[2] * v

    def forward(self, out: dict, target: torch.Tensor, magnitude: torch.Tensor,
                volatility: torch.Tensor) -> torch.Tensor:
        d, regression = self.parts(out, target, magnitude, volatility)
        return self.w[0] * d + regression


def balanced_class_weights(y: torch.Tensor | Sequence[int], n_classes: int) -> torch.Tensor:
    """`n / (K * count_c)` per class (sklearn's "balanced"); a class absent from train gets weight 0."""
    y = torch.as_tensor(y, dtype=torch.long)
    counts = torch.bincount(y[y >= 0], minlength=n_classes).double()
    n = counts.sum()
    w = torch.where(counts > 0, n / (n_classes * counts.clamp_min(1)), torch.zeros_like(counts))
    return w.float()


def class_weights_for(setting: Any, labels: Sequence[int], n_classes: int) -> Optional[torch.Tensor]:
    """The loss's class weights for `TrainConfig.class_weights`: "balanced" (from the training `labels`), a list
    of weights as given, or None (unweighted)."""
    if setting == "balanced":
        return balanced_class_weights(labels, n_classes)
    if setting:
        return torch.tensor([float(w) for w in setting], dtype=torch.float32)
    return None


def build_loss(loss: str, n_classes: int, class_weights: Optional[torch.Tensor] = None,
               label_smoothing: float = 0.0, focal_gamma: float = 2.0) -> nn.Module:
    """The classification criterion named by `loss` ("ce" or "focal")."""
    if not 0.0 <= label_smoothing < 1.0:
        raise UserError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if class_weights is not None and len(class_weights) != n_classes:
        raise UserError(f"class_weights has {len(class_weights)} entries but there are {n_classes} classes")
    if loss == "ce":
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
    if loss == "focal":
        return FocalLoss(focal_gamma, class_weights, label_smoothing)
    raise UserError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
