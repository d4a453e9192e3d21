"""Leakage-safe chronological splits and walk-forward folds over sample end positions.

A sample is the integer position t of the last bar of its input window; it reads bars t-window+1..t and
its label reads t+1..t+horizon. Two samples t1 < t2 share no bar when t2 - t1 >= window + horizon, so
between segments the gap in end positions (the purge) is at least window + horizon: no input window or
label spans two segments.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from core.errors import UserError


@dataclass
class SplitConfig:
    train: float = 0.70
    val: float = 0.15
    test: float = 0.15
    purge: Optional[int] = None  # gap between segments' sample ends; None = window + horizon (the minimum)

    def validate(self) -> "SplitConfig":
        if min(self.train, self.val, self.test) <= 0:
            raise UserError("train, validation and test shares must all be positive")
        if self.train + self.val + self.test > 1.0 + 1e-9:
            raise UserError("train + validation + test shares must add up to at most 1")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def purge_gap(window: int, horizon: int, purge: Optional[int] = None) -> int:
    """The gap in end positions between segments; refuses one too short to stop leakage."""
    need = int(window) + int(horizon)
    if purge is None:
        return need
    if int(purge) < need:
        raise UserError(f"a purge of {purge} bars is too short: windows of {window} bars with a {horizon}-bar "
                        f"horizon need at least {need} bars between segments")
    return int(purge)


def min_rows(window: int, horizon: int, cfg: SplitConfig | None = None) -> int:
    """The fewest rows `purged_chronological_split` accepts: a full window and a label for every sample
    end, two purge gaps, and at least one sample end in each segment at the configured shares."""
    cfg = (cfg or SplitConfig()).validate()
    gap = purge_gap(window, horizon, cfg.purge)
    shares = (cfg.train, cfg.val, cfg.test)
    usable = max(1, int(np.floor(1.0 / min(shares))) - 1)
    while min(int(np.floor(usable * f)) for f in shares) < 1:
        usable += 1
    return usable + 2 * (gap - 1) + int(window) + int(horizon) - 1


def candidate_ends(n_rows: int, window: int, horizon: int) -> np.ndarray:
    """Every end with a full input window and a label inside the data: window-1 .. n_rows-1-horizon."""
    if window < 1 or horizon < 1:
        raise UserError("window and horizon must be at least 1 bar")
    return np.arange(window - 1, n_rows - horizon, dtype=np.int64)


def purged_chronological_split(n_rows: int, window: int, horizon: int,
                               cfg: SplitConfig | None = None) -> dict[str, np.ndarray]:
    """Sample ends for `train`, `val`, `test`, in time order, separated by purge gaps.

    Shares are of the usable ends after the gaps; when they add to less than 1 the oldest ends go unused
    (the test segment always ends at the most recent labelled bar).
    """
    cfg = (cfg or SplitConfig()).validate()
    gap = purge_gap(window, horizon, cfg.purge)
    ends = candidate_ends(n_rows, window, horizon)
    usable = len(ends) - 2 * (gap - 1)
    n_tr, n_va, n_te = (int(np.floor(usable * f)) for f in (cfg.train, cfg.val, cfg.test))
    if usable <= 0 or min(n_tr, n_va, n_te) < 1:
        raise UserError(f"{n_rows} rows are too few for windows of {window} bars, a {horizon}-bar horizon and "
                        f"{gap}-bar purge gaps (they need at least {min_rows(window, horizon, cfg):,} rows): "
                        f"use more candles or a shorter window" + (" or larger shares" if usable > 0 else ""))
    last = ends[-1]
    te = np.arange(last - n_te + 1, last + 1, dtype=np.int64)
    va = np.arange(te[0] - gap - n_va + 1, te[0] - gap + 1, dtype=np.int64)
    tr = np.arange(va[0] - gap - n_tr + 1, va[0] - gap + 1, dtype=np.int64)
    return {"train": tr, "val": va, "test": te}


def walk_forward_folds(n_rows: int, window: int, horizon: int, n_folds: int = 4, mode: str = "expanding",
                       cfg: SplitConfig | None = None,
                       train_size: Optional[int] = None) -> list[dict[str, np.ndarray]]:
    """Walk-forward folds, each a dict like `purged_chronological_split`'s.

    The usable ends are cut into n_folds + 1 equal blocks; fold k tests on block k+1 and fits on what
    comes before it (minus a purge gap): all of it (`expanding`) or only the last `train_size` ends
    (`rolling`, default one block). The fit period's last val/(train+val) share is the validation
    segment, again behind a purge gap.
    """
    cfg = (cfg or SplitConfig()).validate()
    if mode not in ("expanding", "rolling"):
        raise UserError("walk-forward mode must be 'expanding' or 'rolling'")
    if n_folds < 1:
        raise UserError("walk-forward needs at least one fold")
    gap = purge_gap(window, horizon, cfg.purge)
    ends = candidate_ends(n_rows, window, horizon)
    if len(ends) == 0:
        raise UserError(f"{n_rows} rows are too few for a window of {window} and a horizon of {horizon}: "
                        "no sample has both a full window and a label")
    block = len(ends) // (n_folds + 1)
    val_share = cfg.val / (cfg.train + cfg.val)
    folds = []
    for k in range(n_folds):
        start_te = ends[0] + (k + 1) * block
        stop_te = ends[0] + (k + 2) * block if k < n_folds - 1 else ends[-1] + 1
        fit_stop = start_te - gap + 1  # exclusive
        fit_start = int(ends[0])
        if mode == "rolling":
            fit_start = max(fit_start, fit_stop - int(train_size or block))
        n_fit = fit_stop - fit_start - (gap - 1)
        n_va = int(np.floor(n_fit * val_share))
        n_tr = n_fit - n_va
        if block < 1 or n_va < 1 or n_tr < 1:
            raise UserError(f"{n_rows} rows are too few for {n_folds} walk-forward folds with {gap}-bar purge "
                            f"gaps: use more candles or fewer folds")
        va = np.arange(fit_stop - n_va, fit_stop, dtype=np.int64)
        tr = np.arange(fit_start, va[0] - gap + 1, dtype=np.int64)
        folds.append({"train": tr, "val": va, "test": np.arange(start_te, stop_te, dtype=np.int64)})
    return folds


def rows_touched(ends: np.ndarray, window: int, n_rows: int) -> np.ndarray:
    """Boolean mask of the rows any input window ending at `ends` reads."""
    diff = np.zeros(n_rows + 1, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    np.add.at(diff, np.clip(ends - window + 1, 0, None), 1)
    np.add.at(diff, ends + 1, -1)
    return np.cumsum(diff[:-1]) > 0
