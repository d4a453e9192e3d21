"""`python -m core rf MODEL [--set key=value ...] [--window N] [--json]`: a registered model's analytic
receptive field, layer by layer, with its parameters and multiply-accumulates per sample.

Kept light: torch and the model zoo are imported inside the handler so `python -m core --help` is fast.
"""
from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("rf", help="a model's receptive field per layer, parameters and MACs",
                       description="Walk the layers of a registered model (kernel, stride, dilation, padding) "
                                   "and print the receptive field after each, the total, the parameter count "
                                   "and the multiply-accumulates per sample.")
    p.add_argument("model", help="registered model name (see `python -m core models list`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model setting, repeatable (e.g. --set layers=6 --set kernel_size=3)")
    p.add_argument("--window", type=int, default=64,
                   help="input length in bars (pixels for chart images), default 64")
    p.add_argument("--features", "--in-channels", dest="n_features", type=int, default=15,
                   help="input features (sequence channels; indicator-image columns; order-book price "
                        "levels), default 15")
    p.add_argument("--classes", type=int, default=3, help="number of classes (default 3)")
    p.add_argument("--latency", action="store_true", help="also time one window on the CPU (fastest of 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_rf)


def cmd_rf(args: argparse.Namespace) -> int:
    from core.cli import parse_set
    from core.errors import UserError
    from core.inspect.summary import registry_analysis
    from core.models import get_spec

    if args.window < 1:
        raise UserError("--window must be at least 1")
    if args.n_features < 1 or args.classes < 1:
        raise UserError("--features and --classes must be at least 1")
    config = parse_set(args.set)
    report, summary = registry_analysis(args.model, args.window, args.n_features, args.classes,
                                        latency_runs=10 if args.latency else 0, **config)
    spec = get_spec(args.model)
    keys = ("name", "kernel", "stride", "dilation", "padding", "jump", "receptive_field", "start", "out_length")
    out = {
        "model": args.model,
        "receptive_field": report.receptive_field,
        "layers": [{k: getattr(layer, k) for k in keys} for layer in report.layers],
        "params": summary.params,
        "macs": summary.macs,
        "window": report.input_length,
        "unit": report.unit,
        "jump": report.jump,
        "whole_window": report.whole_window,
        "config": {**spec.defaults, **config},
        "notes": report.notes,
    }
    if args.latency:
        out["latency_ms"] = summary.latency_ms
    if args.json:
        from core.cli import print_json

        print_json(out)
        return 0
    print(f"{args.model}: receptive field {report.receptive_field} {report.unit} "
          f"(window {report.input_length}), {summary.params:,} parameters, {summary.macs:,} MACs per sample")
    print(f"{'layer':40s} {'k':>4s} {'s':>3s} {'d':>5s} {'pad':>5s} {'jump':>5s} {'rf':>6s} {'start':>6s}")
    for layer in report.layers:
        print(f"{layer.name[:40]:40s} {layer.kernel:4d} {layer.stride:3d} {layer.dilation:5d} {layer.padding:5d} "
              f"{layer.jump:5d} {layer.receptive_field:6d} {layer.start:6d}")
    for note in report.notes:
        print(f"note: {note}")
    if args.latency:
        print(f"CPU latency per window: {summary.latency_ms:.2f} ms")
    return 0
