"""`python -m core sweep --grid FILE [--jobs N] [--backend loky|ray|dask] [--address ADDR] [--json]`,
`python -m core sweep --list`, `python -m core sweep --show SWEEP_ID`, and run zips:
`python -m core archive export RUN_ID OUT.zip` / `python -m core archive import FILE.zip`.

Kept light: joblib, torch and the models load inside the handlers.
"""
from __future__ import annotations

import sys
from typing import Any

from core.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("sweep", help="train a grid of runs in parallel (joblib: local processes, Ray or Dask)",
                       description="Train every cell of a grid (models x seeds x symbols x windows x any config "
                                   "key, from a YAML or JSON file) as a run of the registry, N at a time, and "
                                   "rank the cells by out-of-sample metrics with their spread across seeds. "
                                   "See core/sweep/grid.py for the file format and core/sweep/example_grid.yaml "
                                   "for an example.")
    p.add_argument("--grid", metavar="FILE", help="grid file (.yaml, .yml or .json)")
    p.add_argument("--jobs", type=int, default=2, help="cells trained at the same time (default 2)")
    p.add_argument("--backend", default="loky", choices=["loky", "ray", "dask"],
                   help="joblib backend: loky = processes on this machine (default), ray, dask")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (e.g. ray://head:10001 or auto) or Dask scheduler address; "
                        "default: a local instance for the sweep")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    from core.sweep.grid import RANK_METRICS  # plain data: checked before anything trains

    p.add_argument("--rank-by", default=None, choices=list(RANK_METRICS),
                   help="metric that ranks the cells (default: the grid's rank_by)")
    p.add_argument("--list", action="store_true", help="list past sweeps")
    p.add_argument("--show", metavar="SWEEP_ID", help="show a past sweep's ranking")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_sweep)

    a = sub.add_parser("archive", help="export a run as a zip, or import a run zip (checked as untrusted)")
    acts = a.add_subparsers(dest="archive_command", metavar="ACTION")
    ex = acts.add_parser("export", help="write a run as a zip file")
    ex.add_argument("run_id")
    ex.add_argument("out", help="the zip file to write (a path inside the workspace)")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_export)
    im = acts.add_parser("import", help="add a run zip to the registry (nothing in it is unpickled)")
    im.add_argument("file")
    im.add_argument("--json", action="store_true")
    im.set_defaults(func=cmd_import)
    a.set_defaults(func=lambda args: (a.print_help(), 0)[1])


def _progress_printer(stream: Any = None) -> Any:
    stream = stream or sys.stderr
    last = [""]

    def show(p: Any) -> None:
        if p.message and p.message != last[0]:
            last[0] = p.message
            print(f"[sweep] {p.message}", file=stream, flush=True)

    return show


def cmd_sweep(args: Any) -> int:
    from core.cli import ctrl_c_cancels, print_json
    from core.progress import CancelToken
    from core.sweep import runner

    if args.list:
        sweeps = runner.list_sweeps()
        if args.json:
            print_json({"sweeps": sweeps})
        else:
            for s in sweeps:
                print(f"{s.get('sweep_id')}  {s.get('status')}  {s.get('n_cells')} cells  {s.get('backend')}")
        return 0
    if args.show:
        res = runner.load_sweep(args.show)
    else:
        if not args.grid:
            raise UserError("give a grid file: python -m core sweep --grid FILE (see core/sweep/grid.py)")
        if args.threads < 1:
            raise UserError("--threads must be at least 1 (torch threads per worker)")
        cancel = CancelToken()
        with ctrl_c_cancels(cancel, "no new cell starts; running cells stop at their next batch and are saved "
                                    "with their best epoch so far, as the page's Cancel does"):
            res = runner.run_sweep(args.grid, jobs=args.jobs, backend=args.backend, address=args.address,
                                   progress=None if (args.quiet or args.json) else _progress_printer(),
                                   threads=args.threads, cancel=cancel)
    if args.rank_by:
        res.spec["rank_by"] = args.rank_by
    if args.json:
        print_json(res.to_json())
        return 0 if res.status != "failed" else 1
    summ = res.summary()
    print(f"sweep {res.sweep_id}: {res.status}, {len(res.plan)} cells, {res.backend} x {res.jobs}, "
          f"{res.seconds:.1f} s")
    if summ.empty:
        print("no cell finished")
    else:
        print(summ[runner.summary_columns(summ, res.rank_by)].rename(columns=runner.SUMMARY_LABELS)
              .to_string(index=False))
        print(runner.ranking_note(summ, res.rank_by))
    failed = [c for c in res.cells if c.get("status") in ("failed", "cancelled")]
    for c in failed:
        print(f"cell {c['index']}: {c['status']}: {c.get('error')}", file=sys.stderr)
    return 0 if res.status != "failed" else 1


def cmd_export(args: Any) -> int:
    from core.cli import print_json
    from core.train.archive import export_run_zip

    from core.workspace import output_path

    data = export_run_zip(args.run_id, output_path(args.out, "the zip file", ".zip"))
    if args.json:
        print_json({"run_id": args.run_id, "path": args.out, "bytes": len(data)})
    else:
        print(f"wrote {args.out} ({len(data) / 1e6:.2f} MB)")
    return 0


def cmd_import(args: Any) -> int:
    from core.cli import print_json
    from core.train.archive import import_run_zip

    rid = import_run_zip(args.file)
    if args.json:
        print_json({"run_id": rid})
    else:
        print(f"imported as run {rid}")
    return 0
