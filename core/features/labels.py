"""Labels: what a sample should predict, looking only at bars after its window.

A sample ending at bar t (its input window is t-window+1..t) is labelled from bars t+1..t+horizon. Where the
horizon runs past the last bar, the class is -1 and float targets are NaN: never guessed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import pandas as pd

from core.errors import UserError

LABEL_KINDS = ("direction3", "binary", "vol_scaled", "multitask")


@dataclass
class LabelConfig:
    """direction3: down/flat/up when the horizon return is below -threshold / within / above +threshold.
    binary: up when the horizon return is > 0 (horizon=1 is the chapter's next-bar label).
    vol_scaled: like direction3 with threshold = k x sigma x sqrt(horizon), sigma the std of the last
    `vol_window` one-bar log returns up to and including bar t (past only).
    multitask: direction3 classes plus `magnitude` (the size of the horizon return, |r|, as document 002
    has it; the direction head carries the sign) and `volatility` (realised: the root-mean-square of the
    one-bar log returns over t+1..t+horizon; document 002 takes the input window's, which the model sees)."""

    kind: str = "direction3"
    horizon: int = 12
    threshold: float = 0.002
    k: float = 1.0
    vol_window: Optional[int] = 100

    def validate(self) -> "LabelConfig":
        if self.kind not in LABEL_KINDS:
            raise UserError(f"unknown label kind {self.kind!r}; choose one of {', '.join(LABEL_KINDS)}")
        if int(self.horizon) < 1:
            raise UserError("the label horizon must be at least 1 bar")
        if self.kind in ("direction3", "multitask") and not self.threshold >= 0:
            raise UserError("the label threshold must be zero or positive (0.002 = 0.2 %)")
        if self.kind == "vol_scaled":
            if not self.k > 0:
                raise UserError("k (the volatility multiple) must be positive")
            if self.vol_window is None or int(self.vol_window) < 2:
                raise UserError("the volatility window must be at least 2 bars")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def class_names(cfg: LabelConfig) -> list[str]:
    return ["down", "up"] if cfg.kind == "binary" else ["down", "flat", "up"]


def forward_return(close: np.ndarray, horizon: int) -> np.ndarray:
    """close[t+h] / close[t] - 1, NaN where t+h is past the end."""
    out = np.full(len(close), np.nan)
    if len(close) > horizon:
        out[:-horizon] = close[horizon:] / close[:-horizon] - 1.0
    return out


def _three_class(r: np.ndarray, thr: np.ndarray | float) -> np.ndarray:
    y = np.full(len(r), -1, dtype=np.int64)
    ok = np.isfinite(r) & np.isfinite(thr)
    y[ok] = 1
    y[ok & (r > thr)] = 2
    y[ok & (r < -np.asarray(thr))] = 0
    return y


def make_labels(candles: pd.DataFrame, cfg: LabelConfig) -> pd.DataFrame:
    """Columns: `y` (int64 class, -1 undefined), `fwd_return`; multitask adds `magnitude`, `volatility`;
    vol_scaled adds `threshold` (the per-bar threshold used)."""
    cfg.validate()
    if "close" not in candles.columns:
        raise UserError("the candles have no 'close' column")
    h = int(cfg.horizon)
    close = candles["close"].to_numpy(np.float64)
    r = forward_return(close, h)
    out = pd.DataFrame(index=candles.index)
    if cfg.kind == "binary":
        y = np.where(np.isfinite(r), (r > 0).astype(np.int64), -1)
    elif cfg.kind == "vol_scaled":
        logret = np.log(close[1:] / close[:-1])
        w = int(cfg.vol_window)  # type: ignore[arg-type]
        sigma = np.r_[np.nan, pd.Series(logret).rolling(w, min_periods=w).std().to_numpy()]
        thr = cfg.k * sigma * np.sqrt(h)
        y = _three_class(r, thr)
        out["threshold"] = thr
    else:
        y = _three_class(r, float(cfg.threshold))
    out["y"] = y.astype(np.int64)
    out["fwd_return"] = r
    if cfg.kind == "multitask":
        lr = np.r_[np.log(close[1:] / close[:-1]), np.nan]  # lr[t] = log(close[t+1]/close[t])
        sq = pd.Series(lr ** 2).rolling(h, min_periods=h).mean().to_numpy()
        vol = np.full(len(close), np.nan)
        if len(close) > h:
            vol[:-h] = np.sqrt(sq[h - 1:-1])  # mean of lr[t..t+h-1]: bars t+1..t+h
        out["magnitude"] = np.abs(r)
        out["volatility"] = vol
    return out


def class_balance(y: np.ndarray | pd.Series, names: list[str] | None = None) -> pd.DataFrame:
    """Count and share of each class among defined labels (y >= 0)."""
    y = np.asarray(y)
    y = y[y >= 0]
    k = int(max(len(names) if names else 0, (y.max() + 1) if len(y) else 0))
    counts = np.bincount(y.astype(np.int64), minlength=k) if k else np.zeros(0, np.int64)
    idx = names if names and len(names) == k else [str(i) for i in range(k)]
    total = counts.sum()
    return pd.DataFrame({"count": counts, "share": counts / total if total else np.zeros(k)}, index=idx)
