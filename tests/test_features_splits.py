"""Purged splits: no input window or label spans two segments; walk-forward folds move forward."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import UserError
from core.features import SplitConfig, purged_chronological_split, rows_touched, walk_forward_folds


def _span(ends, window, horizon):
    return ends.min() - window + 1, ends.max() + horizon  # first input row, last label row


def _assert_disjoint(segs, window, horizon):
    spans = [_span(segs[k], window, horizon) for k in ("train", "val", "test")]
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 < b0, "a window or label spans two segments"
    for k in segs:
        assert np.all(np.diff(segs[k]) == 1)


@pytest.mark.parametrize("window,horizon", [(64, 12), (256, 1), (8, 30)])
def test_chronological_split_is_purged(window, horizon):
    n = 5000
    s = purged_chronological_split(n, window, horizon, SplitConfig())
    _assert_disjoint(s, window, horizon)
    assert s["val"][0] - s["train"][-1] == window + horizon
    assert s["test"][0] - s["val"][-1] == window + horizon
    assert s["train"][0] >= window - 1 and s["test"][-1] == n - 1 - horizon
    total = sum(len(v) for v in s.values())
    assert abs(len(s["train"]) / total - 0.70) < 0.01 and abs(len(s["test"]) / total - 0.15) < 0.01


def test_custom_purge_and_refusals():
    s = purged_chronological_split(3000, 32, 4, SplitConfig(0.6, 0.2, 0.2, purge=100))
    assert s["val"][0] - s["train"][-1] == 100
    with pytest.raises(UserError, match="too short"):
        purged_chronological_split(3000, 32, 4, SplitConfig(purge=10))
    with pytest.raises(UserError, match="too few"):
        purged_chronological_split(200, 64, 12)
    with pytest.raises(UserError, match="add up"):
        purged_chronological_split(3000, 32, 4, SplitConfig(0.8, 0.2, 0.2))


@pytest.mark.parametrize("mode", ["expanding", "rolling"])
def test_walk_forward_folds(mode):
    window, horizon = 32, 6
    folds = walk_forward_folds(6000, window, horizon, n_folds=4, mode=mode)
    assert len(folds) == 4
    for prev, fold in zip(folds, folds[1:]):
        assert fold["test"][0] > prev["test"][-1]  # tests move forward without overlap
        if mode == "expanding":
            assert fold["train"][0] == folds[0]["train"][0] and len(fold["train"]) > len(prev["train"])
        else:
            assert fold["train"][0] > prev["train"][0]
    for f in folds:
        _assert_disjoint(f, window, horizon)
    assert folds[-1]["test"][-1] == 6000 - 1 - horizon


def test_rows_touched():
    m = rows_touched(np.array([5, 6, 20]), 3, 25)
    assert np.flatnonzero(m).tolist() == [3, 4, 5, 6, 18, 19, 20]


def test_walk_forward_on_too_few_rows_is_a_sentence():
    with pytest.raises(UserError, match="50 rows are too few for a window of 64 and a horizon of 12"):
        walk_forward_folds(50, 64, 12)


@pytest.mark.parametrize("window,horizon,cfg", [(64, 12, None), (32, 12, None), (2, 1, None),
                                                (10, 3, SplitConfig(0.5, 0.3, 0.2)),
                                                (5, 5, SplitConfig(0.9, 0.05, 0.05)),
                                                (16, 4, SplitConfig(purge=40))])
def test_min_rows_is_the_fewest_rows_the_split_accepts(window, horizon, cfg):
    """`min_rows` is what the "too few" sentences promise: that many rows split, one fewer is refused."""
    from core.features import min_rows

    n = min_rows(window, horizon, cfg)
    _assert_disjoint(purged_chronological_split(n, window, horizon, cfg), window, horizon)
    with pytest.raises(UserError, match=f"{n - 1} rows are too few .* need at least {n:,} rows"):
        purged_chronological_split(n - 1, window, horizon, cfg)
