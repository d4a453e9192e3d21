"""Position sizing: the fraction of equity a new position takes, from the signal's confidence.

- fixed: `fixed_fraction` of equity.
- confidence: base x (confidence - 0.5) x 2 (document 000), base = `fixed_fraction`.
- kelly: f = p - (1 - p) / b with p = confidence and b = `win_loss_ratio`, capped at `kelly_cap` (25 %,
  document 000). Document 000's code writes the b = 1 case as `confidence - 0.5`, which is half of
  2p - 1; we use the formula it states.
- half_kelly: half of the Kelly fraction with the win/loss ratio (document 001: b = 1.5), same cap.
Everything is clipped to [0, max_position]; a fraction of 0 means no trade.
"""
from __future__ import annotations

import numpy as np

from core.backtest.config import BacktestConfig
from core.errors import UserError


def kelly_fraction(p: np.ndarray, b: float) -> np.ndarray:
    """The Kelly bet f* = p - (1 - p) / b (may be negative: no edge)."""
    p = np.asarray(p, dtype=np.float64)
    return p - (1.0 - p) / b


def position_fractions(n: int, confidence: np.ndarray | None, cfg: BacktestConfig) -> np.ndarray:
    """The equity fraction for a position opened on each bar's signal (length n)."""
    if cfg.sizing == "fixed":
        f = np.full(n, cfg.fixed_fraction, dtype=np.float64)
    else:
        if confidence is None:
            raise UserError(f"{cfg.sizing} sizing needs a run's probabilities; rule baselines use fixed sizing")
        p = np.asarray(confidence, dtype=np.float64)
        if p.shape != (n,):
            raise UserError("confidence must have one value per bar")
        if cfg.sizing == "confidence":
            f = cfg.fixed_fraction * (p - 0.5) * 2.0
        elif cfg.sizing == "kelly":
            f = np.minimum(kelly_fraction(p, cfg.win_loss_ratio), cfg.kelly_cap)
        elif cfg.sizing == "half_kelly":
            f = np.minimum(0.5 * kelly_fraction(p, cfg.win_loss_ratio), cfg.kelly_cap)
        else:  # validate() refuses anything else
            raise UserError(f"unknown sizing {cfg.sizing!r}")
        f = np.where(np.isnan(f), 0.0, f)
    return np.clip(f, 0.0, cfg.max_position)
