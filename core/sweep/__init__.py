"""Sweeps: a grid over models x seeds x symbols x windows (and any config key), each cell a run in the
registry, run in parallel through joblib (local processes by default, a Ray or Dask cluster on request).

`from core.sweep import load_grid, expand_grid, run_sweep` - the runner imports joblib/torch lazily, so
`python -m core --help` stays fast.
"""
from core.sweep.grid import GridSpec, SweepCell, expand_grid, load_grid, parse_grid


def __getattr__(name: str):
    if name in ("run_sweep", "SweepResult", "list_sweeps", "load_sweep", "summarize", "BACKENDS"):
        from core.sweep import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'core.sweep' has no attribute {name!r}")


__all__ = ["GridSpec", "SweepCell", "expand_grid", "load_grid", "parse_grid", "run_sweep", "SweepResult",
           "list_sweeps", "load_sweep", "summarize", "BACKENDS"]
