"""Backtest figures: the threshold sweep's two axes read as round numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.viz.backtest import sweep_figure


def _sweep() -> pd.DataFrame:
    thr = np.round(np.arange(0.34, 0.91, 0.02), 2)
    sharpe = np.where(thr <= 0.66, np.clip((thr - 0.5) * 40, -10, 3.2), np.nan)
    ret = np.clip((thr - 0.5) * 1.5, -0.688, 0.22)
    return pd.DataFrame({"threshold": thr, "sharpe": sharpe, "total_return": ret,
                         "n_trades": np.arange(len(thr))[::-1] * 3})


def test_return_axis_lets_plotly_pick_round_ticks():
    """tickmode 'sync' put the right axis' ticks on the left axis' grid: -68.8, -55.8, ..., 22.0."""
    sweep = _sweep()
    fig = sweep_figure(sweep, chosen=0.6)
    right = fig.layout.yaxis2
    assert right.overlaying == "y" and right.side == "right"
    # explicitly "auto": plotly.js 4 defaults an overlaying axis to "sync" (and this test failed with "sync")
    assert right.tickmode == "auto", right.tickmode
    assert right.tickvals is None and right.dtick is None and right.range is None
    assert not right.tickformat  # no forced one-decimal labels
    assert right.showgrid is False  # one set of grid lines (the Sharpe axis'): the chart stays readable
    left = fig.layout.yaxis
    assert left.tickmode in (None, "auto") and left.tickvals is None
    assert [t.name for t in fig.data] == ["Sharpe", "total return %"] and fig.data[1].yaxis == "y2"
    np.testing.assert_allclose(fig.data[1].y, sweep["total_return"] * 100)  # in percent, as the axis says
