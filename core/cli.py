"""`python -m core ...`: the app's jobs without the browser.

Each area registers its own sub-commands from `core/<area>/cli.py` via `register(subparsers)`; those
modules stay light (heavy imports happen inside the handlers) so `--help` is fast. A handler returns an
exit code. Commands that report results take `--json` and then print exactly one JSON object on stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import threading
from typing import Any, Iterator, Sequence

from core.errors import UserError
from core.progress import Cancelled

# Areas in the order they appear in --help. A missing module is skipped, so areas can land one by one.
AREAS = ["data", "features", "models", "inspect", "train", "backtest", "sweep", "live"]


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (NaN/inf become null)."""
    import math

    def clean(o: Any) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if hasattr(o, "item") and callable(o.item):  # numpy scalars
            try:
                return clean(o.item())
            except Exception:
                return str(o)
        return o

    sys.stdout.write(json.dumps(clean(obj), default=str) + "\n")
    sys.stdout.flush()


def parse_set(pairs: Sequence[str] | None) -> dict[str, Any]:
    """Parse `--set key=value` pairs; values are read as JSON when they parse, else kept as strings."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UserError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


@contextlib.contextmanager
def ctrl_c_cancels(cancel: Any, what: str) -> Iterator[None]:
    """Inside the block the first Ctrl-C sets `cancel` (a CancelToken) and says `what` happens then, so a long
    job ends the way the app's Stop button ends it (a training run keeps its best epoch); a second Ctrl-C
    quits at once. Outside the main thread (no signal handlers there) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        # os.write, not print: the progress bar may be inside a buffered write to stderr right now
        os.write(2, f"\nstopping: {what} (Ctrl-C again to quit at once)\n".encode())

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="CNN Trading Lab command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for area in AREAS:
        try:
            mod = importlib.import_module(f"core.{area}.cli")
        except ModuleNotFoundError as exc:
            if exc.name in (f"core.{area}", f"core.{area}.cli"):
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Cancelled as exc:  # Ctrl-C under ctrl_c_cancels, before there was anything to keep
        print(f"stopped: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
