"""`python -m core train ...`, `python -m core runs list|show|rename|delete` and `python -m core transfer`.

Kept light: heavy imports (torch, sklearn, the models) happen inside the handlers so `--help` is fast.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from core.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model on a dataset and save a run",
                       description="Train a model and save a run folder (the same one the Train page makes). "
                                   "--set keys: model.<key>, data.<key>, train.<key> (a bare key works when "
                                   "only one of them has it), e.g. --set data.window=32 --set train.epochs=3.")
    p.add_argument("--dataset", default=None, help="dataset id (default: the offline synthetic market)")
    p.add_argument("--model", default=None, help="model name (default: the preset's model)")
    p.add_argument("--preset", default="quick", help="training preset: quick, resnet, convnext, dilated, chapter")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting")
    p.add_argument("--name", default=None, help="display name of the run")
    p.add_argument("--folds", type=int, default=0,
                   help="walk-forward evaluation over K folds instead of one split (saved under "
                        "workspace/walkforward/, not as a run)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the results")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    r = sub.add_parser("runs", help="list, show, rename or delete training runs")
    rs = r.add_subparsers(dest="runs_command", metavar="ACTION")
    ls = rs.add_parser("list", help="list runs, newest first")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_runs_list)
    sh = rs.add_parser("show", help="show a run's config and metrics")
    sh.add_argument("run_id")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_runs_show)
    rn = rs.add_parser("rename", help="set a run's display name")
    rn.add_argument("run_id")
    rn.add_argument("name")
    rn.add_argument("--json", action="store_true")
    rn.set_defaults(func=cmd_runs_rename)
    de = rs.add_parser("delete", help="delete a run folder")
    de.add_argument("run_id")
    de.add_argument("--json", action="store_true")
    de.set_defaults(func=cmd_runs_delete)
    r.set_defaults(func=lambda a: (r.print_help(), 0)[1])

    # the chart ResNet's transfer vs scratch comparison (the Encodings page's last section)
    p = sub.add_parser("transfer", help="chart ResNet: pre-train on a source, fine-tune vs train from scratch",
                       description="Pre-train chart_resnet18 on a source (dataset:<id>), or start from an earlier "
                                   "run (run:<id>) or a torchvision resnet18 .pth in workspace/pretrained "
                                   "(weights:<file>); fine-tune on the target with the first --freeze stages "
                                   "frozen (1 = stem, 2 = stem + layer1, ...), train the same model from scratch, "
                                   "and record both runs. `transfer list` shows recorded comparisons.")
    p.add_argument("action", nargs="?", default="run", choices=["run", "list"])
    p.add_argument("--target", default=None, help="target dataset id (default: the offline synthetic market)")
    p.add_argument("--source", default=None, help="dataset:<id>, run:<run id> or weights:<file>")
    p.add_argument("--freeze", type=int, default=2, help="frozen stages, 0..5 (default 2)")
    p.add_argument("--size", type=int, default=32, help="chart size in pixels (default 32)")
    p.add_argument("--window", type=int, default=32, help="bars per window (default 32)")
    p.add_argument("--horizon", type=int, default=12)
    p.add_argument("--threshold", type=float, default=0.002)
    p.add_argument("--label", default="direction3")
    p.add_argument("--rows", type=int, default=3000, help="use the last N candles of each dataset (0 = all)")
    p.add_argument("--max-train", type=int, default=1500, help="most recent N training samples (0 = all)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_transfer)


class TerminalProgress:
    """A one-line progress bar on stderr (at most ~10 redraws a second) plus one line per epoch."""

    def __init__(self, stream: Any = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self._last = 0.0
        self._open = False

    def __call__(self, p: Any) -> None:
        now = time.monotonic()
        if p.stage == "batch":
            if now - self._last < 0.1 and p.done != p.total:
                return
            self._last = now
            frac = p.fraction or 0.0
            bar = "#" * int(frac * self.width)
            self.stream.write(f"\r[{bar:<{self.width}}] {frac * 100:5.1f}% {p.message} "
                              f"loss {p.metrics.get('loss', float('nan')):.4f}   ")
            self._open = True
        else:
            if self._open:
                self.stream.write("\n")
                self._open = False
            self.stream.write(f"{p.stage}: {p.message}\n")
        self.stream.flush()


def resolve_configs(model: str | None, preset_name: str, pairs: list[str]) -> tuple[str, dict, Any, Any]:
    """(model_name, model_config, DataConfig, TrainConfig) from a preset, --model and --set pairs."""
    from core.cli import parse_set
    from core.models import get_spec
    from core.train.config import apply_overrides, preset, preset_model

    p = preset(preset_name)
    default_model, default_config = preset_model(preset_name)
    model_name = model or default_model
    model_config = default_config if model_name == default_model else {}
    try:
        spec = get_spec(model_name)
    except KeyError as exc:
        raise UserError(f"unknown model {model_name!r}; see `python -m core models list`") from exc
    keys = list((getattr(spec, "defaults", None) or {}).keys())
    mc, data, train = apply_overrides(parse_set(pairs), model_config, p["data"], p["train"], keys)
    return model_name, mc, data, train


def cmd_train(args: argparse.Namespace) -> int:
    from core.cli import ctrl_c_cancels, print_json
    from core.progress import CancelToken

    if args.folds and args.folds < 2:  # 0 (the default) means one split; walk-forward needs 2 folds or more
        raise UserError(f"--folds must be 2 or more (got {args.folds}): a walk-forward evaluation needs at "
                        f"least two folds; leave --folds out for one train/test split")
    model_name, mc, data, train = resolve_configs(args.model, args.preset, args.set)
    bar = None if args.quiet else TerminalProgress()
    cancel = CancelToken()
    if args.folds:
        from core.train.evaluate import walk_forward

        with ctrl_c_cancels(cancel, "nothing is saved (the folds only make sense together)"):
            wf = walk_forward(args.dataset, model_name, mc, data, train, k=args.folds, progress=bar,
                              name=args.name, cancel=cancel)
        if args.json:
            print_json(wf.summary())
        else:
            print(wf.text())
            print(f"saved as walk-forward {wf.wf_id} (the Train page shows it)")
        return 0
    from core.train.trainer import train_run, verdict_text

    with ctrl_c_cancels(cancel, "the run is saved with its best epoch so far, as the app's Stop does"):
        res = train_run(args.dataset, model_name, mc, data, train, progress=bar, name=args.name, cancel=cancel)
    if args.json:
        print_json(res.summary())
        return 0
    m = res.metrics
    print(f"run {res.run_id} ({res.status}) saved in {res.path}")
    print(f"test: accuracy {m['accuracy']:.3f}  balanced {m['balanced_accuracy']:.3f}  macro F1 "
          f"{m['macro_f1']:.3f}  ROC AUC {m['roc_auc']:.3f}  log loss {m['log_loss']:.3f}  (n={m['n']})")
    for name, b in res.baselines.items():
        print(f"  {name:<9} accuracy {b['accuracy']:.3f}  balanced {b['balanced_accuracy']:.3f}  "
              f"macro F1 {b['macro_f1']:.3f}  ({b['description']})")
    for head, h in (m.get("heads") or {}).items():
        print(f"  {head} head: MAE {h['mae']:.5f} (training mean {h['mae_train_mean']:.5f})  RMSE {h['rmse']:.5f}  "
              f"correlation {h['corr']:.3f}")
    if res.vs_best_baseline:
        print(verdict_text(res.vs_best_baseline))
    for warning in res.warnings:
        print(f"warning: {warning}")
    return 0


def cmd_runs_list(args: argparse.Namespace) -> int:
    from core.cli import print_json
    from core.train.runs import damaged_runs, runs_table

    df, broken = runs_table(), damaged_runs()
    if args.json:
        print_json({"runs": df.to_dict(orient="records"),
                    "damaged": [{"run_id": r, "problem": why} for r, why in broken]})
        return 0
    if df.empty:
        print("no runs yet: python -m core train")
    else:
        cols = [c for c in ("run_id", "name", "status", "model_name", "dataset_id", "accuracy", "macro_f1",
                            "vs_baseline") if c in df]
        print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for r, why in broken:
        print(f"damaged: {r}: {why} (python -m core runs delete {r})")
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    import json

    from core.cli import print_json
    from core.train.runs import load_run

    run = load_run(args.run_id)
    obj = {"run_id": run.run_id, "config": run.config, "metrics": run.metrics,
           "history": run.history.to_dict(orient="records"), "n_predictions": len(run.predictions)}
    if args.json:
        print_json(obj)
    else:
        print(json.dumps({"config": run.config, "metrics": run.metrics}, indent=2, default=str))
    return 0


def cmd_runs_rename(args: argparse.Namespace) -> int:
    from core.cli import print_json
    from core.train.runs import rename_run

    rename_run(args.run_id, args.name)
    if args.json:
        print_json({"run_id": args.run_id, "name": args.name})
    else:
        print(f"renamed {args.run_id} to {args.name!r}")
    return 0


def cmd_runs_delete(args: argparse.Namespace) -> int:
    from core.cli import print_json
    from core.train.runs import delete_run

    delete_run(args.run_id)
    if args.json:
        print_json({"deleted": args.run_id})
    else:
        print(f"deleted {args.run_id}")
    return 0


def cmd_transfer(args: Any) -> int:
    from core.cli import print_json
    from core.train import transfer as tr

    if args.action == "list":
        recs = tr.list_comparisons()
        if args.json:
            print_json({"comparisons": recs})
        else:
            for r in recs:
                print(f"{r['id']}  {r['target_dataset_id']} from {r['source']}  frozen {r['freeze_stages']}  "
                      f"fine-tuned {r['finetuned_run_id']}  scratch {r['scratch_run_id']}")
        return 0
    if not args.source:
        raise UserError("give --source dataset:<id>, run:<run id> or weights:<file>")
    target = args.target
    if target is None:
        from core.data.store import ensure_default_dataset

        target = ensure_default_dataset()
    spec = tr.transfer_spec(target, args.source, args.freeze, window=args.window, label=args.label,
                            horizon=args.horizon, threshold=args.threshold, rows=args.rows, size=args.size,
                            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            max_train=args.max_train)
    progress = None
    if not args.quiet:
        progress = TerminalProgress()
    res = tr.transfer_vs_scratch(spec, progress=progress)
    record = next(r for r in tr.list_comparisons() if r["id"] == res.record_id)
    table, interval = tr.comparison_table(record), tr.comparison_interval(record)
    if args.json:
        print_json({"record_id": res.record_id, "source_run_id": res.source_run_id,
                    "finetuned_run_id": res.finetuned_run_id, "scratch_run_id": res.scratch_run_id,
                    "table": {c: {k: v for k, v in table[c].items()} for c in table.columns},
                    "fine_tuned_vs_scratch": interval, "source_overlap": record.get("source_overlap")})
    else:
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
        print(interval["verdict"])
        if record.get("source_overlap"):
            print(f"warning: {record['source_overlap']}")
    return 0
