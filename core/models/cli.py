"""`python -m core models list [--json] [--kind KIND]`: the registered models, their input kinds and defaults."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="the model zoo: list registered models")
    sub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    lst = sub.add_parser("list", help="list models with input kind, causal flag and config defaults")
    lst.add_argument("--json", action="store_true", help="print one JSON object")
    lst.add_argument("--kind", default=None, help="only this input kind (sequence, flat, indicator_image, ...)")
    lst.set_defaults(func=cmd_list)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def cmd_list(args: argparse.Namespace) -> int:
    from core.cli import print_json
    from core.errors import UserError
    from core.models import INPUT_KINDS, list_models

    if args.kind is not None and args.kind not in INPUT_KINDS:
        raise UserError(f"unknown input kind {args.kind!r}; choose one of {', '.join(INPUT_KINDS)}")
    specs = list_models(args.kind)
    if args.json:
        print_json({"models": [s.to_dict() for s in specs]})
        return 0
    width = max(len(s.name) for s in specs) if specs else 4
    print(f"{'name':<{width}}  {'input kind':<16} {'causal':<6}  defaults")
    for s in specs:
        defaults = ", ".join(f"{k}={v}" for k, v in s.defaults.items())
        print(f"{s.name:<{width}}  {s.input_kind:<16} {'yes' if s.causal else 'no':<6}  {defaults}")
    return 0
