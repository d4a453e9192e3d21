"""Training-curve figures: the epoch axis has whole epochs only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.viz.experiments import curves_figure
from core.viz.train import epoch_ticks, history_figure


def _history(n: int) -> pd.DataFrame:
    e = np.arange(1, n + 1)
    return pd.DataFrame({"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "train_accuracy": 0.5 + e / 1e3,
                         "val_accuracy": 0.49 + e / 1e3, "best": e == n})


def _tick_positions(axis, lo: float, hi: float) -> np.ndarray:
    """Where plotly puts the ticks for a linear tick mode over [lo, hi]."""
    assert axis.tickmode == "linear", "plotly would pick fractional epochs (1.2, 1.4, ...) by itself"
    t0, d = float(axis.tick0), float(axis.dtick)
    k = np.arange(np.ceil((lo - t0) / d), np.floor((hi - t0) / d) + 1)
    return t0 + k * d


@pytest.mark.parametrize("n", [1, 2, 5, 12, 13, 40, 300])
def test_history_figure_has_no_fractional_epoch_ticks(n):
    fig = history_figure(_history(n), total_epochs=n)
    for axis in (fig.layout.xaxis, fig.layout.xaxis2):
        ticks = _tick_positions(axis, 0.5, n + 0.5)
        assert len(ticks) >= 1 and np.all(ticks == np.round(ticks))
        assert len(ticks) <= 13  # readable
        assert axis.tickformat == "d"
    if n <= 12:  # short runs: every epoch has its tick
        assert list(_tick_positions(fig.layout.xaxis, 0.5, n + 0.5)) == list(range(1, n + 1))


def test_a_running_history_and_the_compare_curves_use_whole_epochs_too():
    fig = history_figure(_history(2))  # no total yet: the history decides
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickmode == "linear"
    cmp = curves_figure({"a": _history(2), "b": _history(3)})
    assert cmp.layout.xaxis.dtick == 1 and cmp.layout.xaxis2.dtick == 1
    assert epoch_ticks(0)["dtick"] == 1
