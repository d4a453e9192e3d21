"""`python -m core transfer ...`: the chart ResNet's transfer vs scratch comparison without the browser,
and `python -m core transfer list` for the recorded comparisons (the Encodings page's last section).

Kept light: torch and the models load inside the handlers.
"""
from __future__ import annotations

from typing import Any

from core.errors import UserError


def register(sub: Any) -> None:
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
    from core.train.config import DataConfig, TrainConfig

    target = args.target
    if target is None:
        from core.data.store import ensure_default_dataset

        target = ensure_default_dataset()
    spec = tr.TransferSpec(
        target_dataset_id=target, source=args.source, freeze_stages=args.freeze,
        data=DataConfig(preset="chapter6", window=args.window, label=args.label, horizon=args.horizon,
                        threshold=args.threshold, max_rows=args.rows or None, encoding={"size": args.size}),
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                          patience=max(2, args.epochs // 3), baselines=["majority", "logistic"],
                          max_train_samples=args.max_train or None))
    progress = None
    if not args.quiet:
        from core.train.cli import TerminalProgress

        progress = TerminalProgress()
    res = tr.transfer_vs_scratch(spec, progress=progress)
    table = tr.comparison_table(next(r for r in tr.list_comparisons() if r["id"] == res.record_id))
    if args.json:
        print_json({"record_id": res.record_id, "source_run_id": res.source_run_id,
                    "finetuned_run_id": res.finetuned_run_id, "scratch_run_id": res.scratch_run_id,
                    "table": {c: {k: v for k, v in table[c].items()} for c in table.columns}})
    else:
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0
