"""Training: configs and presets, losses, augmentations, the loop, the run registry, honest evaluation.

`from core.train import TrainConfig, DataConfig, train_run` - torch-heavy modules load on first use, so
`python -m core --help` stays fast.
"""
from core.train.config import PRESETS, DataConfig, TrainConfig, preset


def __getattr__(name: str):
    if name in ("train_run", "RunResult", "fit"):
        from core.train import trainer

        return getattr(trainer, name)
    if name in ("list_runs", "load_run", "rename_run", "delete_run", "LoadedRun"):
        from core.train import runs

        return getattr(runs, name)
    if name in ("walk_forward", "WalkForwardResult"):
        from core.train import evaluate

        return getattr(evaluate, name)
    raise AttributeError(f"module 'core.train' has no attribute {name!r}")


__all__ = ["PRESETS", "DataConfig", "TrainConfig", "preset", "train_run", "RunResult", "fit", "list_runs",
           "load_run", "rename_run", "delete_run", "LoadedRun", "walk_forward", "WalkForwardResult"]
