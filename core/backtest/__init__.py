"""Backtesting: signals from probabilities or rules, sizing, costs and the source documents' risk rules, a
compiled per-bar engine without look-ahead, and metrics annualised from the timeframe.

Public API (see docs/ARCHITECTURE.md): `BacktestConfig`, `signals_from_probabilities`, `run_backtest`,
`BacktestResult`, `backtest_run(run_id, config=None)`, `backtest_baseline`, `threshold_sweep`.
Heavy pieces load lazily so `import core.backtest` stays cheap.
"""
from __future__ import annotations

from typing import Any

from core.backtest.config import BacktestConfig, make_config
from core.backtest.signals import (BASELINES, baseline_signals, confidence_from_probabilities,
                                   signals_from_probabilities)

_LAZY = {
    "run_backtest": "core.backtest.engine", "BacktestResult": "core.backtest.engine",
    "backtest_run": "core.backtest.api", "backtest_baseline": "core.backtest.api",
    "backtest_predictions": "core.backtest.api", "threshold_sweep": "core.backtest.api",
    "run_threshold_sweep": "core.backtest.api",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'core.backtest' has no attribute {name!r}")


__all__ = ["BacktestConfig", "make_config", "BASELINES", "baseline_signals", "confidence_from_probabilities",
           "signals_from_probabilities", *_LAZY]
