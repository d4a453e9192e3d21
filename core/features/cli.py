"""`python -m core features`: compute a preset's features (optionally with labels) and save them as parquet.

Kept light: pandas and the indicators are imported inside the handler so `python -m core --help` is fast.
"""
from __future__ import annotations

import argparse
from typing import Any

from core.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("features", help="compute features (and labels) for a dataset, save them as parquet",
                       description="Compute a feature preset (or your own list) for a dataset; warm-up rows "
                                   "are dropped. The output file is written inside the workspace.")
    p.add_argument("--dataset", default=None, help="dataset id (default: the offline synthetic market)")
    p.add_argument("--preset", default="resnet15", help="resnet15, convnext, dilated5 or chapter6")
    p.add_argument("--features", default=None, help="comma-separated feature names (instead of --preset)")
    p.add_argument("--label", default=None, help="also add labels: direction3, binary, vol_scaled, multitask (the "
                                                 "last horizon rows have none: label -1, fwd_return NaN)")
    p.add_argument("--horizon", type=int, default=12, help="label horizon in bars (default 12)")
    p.add_argument("--threshold", type=float, default=0.002,
                   help="direction threshold of direction3 and multitask (default 0.002 = 0.2 %%)")
    p.add_argument("--k", type=float, default=1.0, help="vol_scaled: threshold = k x sigma x sqrt(horizon)")
    p.add_argument("--vol-window", type=int, default=100, help="vol_scaled: bars of the rolling sigma (default 100)")
    p.add_argument("--out", default=None, help="FILE.parquet, relative to the workspace")
    p.add_argument("--list", action="store_true", help="list the presets and features and exit")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_features)


def cmd_features(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.cli import print_json
    from core.features import PRESETS, LabelConfig, available_features, compute_features, make_labels
    from core.workspace import atomic_write, output_path

    if args.list:
        info = {"presets": PRESETS, "features": available_features()}
        if args.json:
            print_json(info)
        else:
            for name, names in PRESETS.items():
                print(f"{name}: {', '.join(names)}")
            for name, desc in available_features().items():
                print(f"  {name:15s} {desc}")
        return 0
    if not args.out:
        raise UserError("give --out FILE.parquet (a path inside the workspace)")
    out = output_path(args.out, "--out", ".parquet")
    from core.data.store import ensure_default_dataset, exists, load_candles

    dataset = args.dataset or ensure_default_dataset()
    if not exists(dataset):
        raise UserError(f"there is no dataset {dataset!r}; list them with `python -m core data list`")
    candles = load_candles(dataset)
    if args.features is not None and not args.features.strip(","):
        raise UserError("--features is empty: give comma-separated feature names, or leave it out for --preset")
    choice: Any = [s.strip() for s in args.features.split(",") if s.strip()] if args.features else args.preset
    feats = compute_features(candles, choice)
    table = feats.copy()
    if args.label:
        labels = make_labels(candles, LabelConfig(kind=args.label, horizon=args.horizon, threshold=args.threshold,
                                                  k=args.k, vol_window=args.vol_window)).loc[feats.index]
        for col in labels.columns:
            table[col if col != "y" else "label"] = labels[col]
    table.attrs = {}
    atomic_write(out, lambda tmp: table.to_parquet(tmp, engine="pyarrow", index=True))
    result = {"dataset": dataset, "preset": args.preset if not args.features else None,
              "features": list(feats.columns), "rows": len(table), "warmup_rows": feats.attrs.get("warmup_rows"),
              "start": str(table.index[0]), "end": str(table.index[-1]),
              "label": args.label, "path": str(Path(out))}
    if args.json:
        print_json(result)
    else:
        print(f"{len(table)} rows x {len(feats.columns)} features ({result['warmup_rows']} warm-up rows dropped) "
              f"-> {out}")
    return 0
