"""Experiments: every run in one table (filter, sort), several runs compared (curves, metric bars, equity),
rename / delete / export a run as a zip, import a zip (checked as untrusted), and sweeps over a grid run in
the background with progress per cell and Cancel. Thin: widgets in, core calls, figures from
core.viz.experiments out."""
from __future__ import annotations

import os
import streamlit as st

from ui.common import (column_config, distinct_labels, keep_settings, page_setup, pick_saved, sentence, session_id,
                       show_error)
from ui.jobs import get_job, start_job

dataset_id = page_setup("Experiments")
# filters, sort, picked runs, the grid and the sweep settings survive a visit to another page (not buttons,
# uploads, a rename being typed or a delete confirmation; runs handed over by another page still win below)
_keep = keep_settings("exp_kept_settings", (
    "exp_filter", "exp_models", "exp_datasets", "exp_status", "exp_sort", "exp_asc", "exp_pick", "exp_equity",
    "exp_manage", "exp_grid", "exp_jobs", "exp_backend", "exp_address", "exp_sweep_pick", "exp_rank_by"))
sid = session_id()

from core.data.store import dataset_version
from core.sweep import compare, runner
from core.sweep.grid import RANK_METRICS, default_grid_text, grid_preview
from core.train import runs as registry
from core.train.archive import export_run_zip, import_run_zip
from core.viz import experiments as vx

SWEEP_JOB = "sweep"


@st.cache_data(max_entries=32, show_spinner=False)
def _equity(run_id: str, stamp: float, version: int):
    """Out-of-sample equity and buy and hold of a run (default backtest settings) and its note when the dataset
    changed since training; `stamp` (the weights) and `version` (the dataset's candles) invalidate."""
    res = compare.run_backtest_for(run_id)
    return res.equity, res.benchmark_equity, res.note


st.title("Experiments")
st.caption("Every saved run, its out-of-sample (test split) metrics beside the best simple baseline, and "
           "backtest figures once computed. Sweeps train a grid of runs in parallel.")
tab_runs, tab_sweeps, tab_import = st.tabs(["Runs", "Sweeps", "Import a run"])

# ------------------------------------------------------------------------------------------------ runs
with tab_runs:
    table = compare.runs_overview()
    if table.empty:
        st.info("No runs yet: train one on the Train page, run a sweep (Sweeps tab), or import a run zip.")
    else:
        if set(st.session_state.get("exp_pick_request", [])) & set(table["run_id"]):
            for k in ("exp_filter", "exp_models", "exp_datasets", "exp_status"):  # kept filters must not hide
                st.session_state.pop(k, None)                                     # the runs handed over
        f1, f2, f3, f4 = st.columns([2, 2, 2, 1])
        text = f1.text_input("Filter (name, id, model, dataset)", key="exp_filter")
        every = {"placeholder": "all"}
        models = f2.multiselect("Models", sorted(table["model"].dropna().unique()), key="exp_models", **every)
        datasets = f3.multiselect("Datasets", sorted(table["dataset"].dropna().unique()), key="exp_datasets", **every)
        statuses = f4.multiselect("Status", sorted(table["status"].dropna().unique()), key="exp_status",
                                  format_func=registry.status_words, **every)
        s1, s2 = st.columns([3, 1])
        def _sort_changed() -> None:  # a keyed toggle keeps its value: set the natural order per column
            st.session_state["exp_asc"] = st.session_state["exp_sort"] in compare.LOW_FIRST

        sort_by = s1.selectbox("Sort by", compare.SORT_COLUMNS, key="exp_sort", on_change=_sort_changed)
        ascending = s2.toggle("Ascending", value=False, key="exp_asc")
        view = compare.filter_overview(table, text, models, datasets, statuses, sort_by, ascending)
        st.caption(f"{len(view)} of {len(table)} runs. {compare.OVERVIEW_NOTE}")
        st.dataframe(view.assign(status=view["status"].map(registry.status_words)), hide_index=True,
                     key="exp_table", placeholder="", column_config=column_config(compare.OVERVIEW_COLUMNS))

        # ------------------------------------------------------------------------------ compare
        st.subheader("Compare runs")
        ids = view["run_id"].tolist()
        labels = dict(zip(table["run_id"], table["name"].astype(str) + " · " + table["model"].astype(str)))
        labels = distinct_labels(labels)  # two alike would collapse into one option
        want = [r for r in st.session_state.get("exp_pick_request", []) if r in ids]
        if want:  # e.g. "compare this sweep's runs": pushed into the widget once
            st.session_state["exp_pick"] = want
            st.session_state.pop("exp_pick_request", None)
        picked = st.multiselect("Runs to compare", ids, key="exp_pick", format_func=lambda r: labels.get(r, r),
                                max_selections=12, placeholder="pick two or more runs from the table above")
        if picked:
            try:
                note = compare.comparability_note(picked)  # other data, targets or test spans
                if note:
                    st.warning(note)
                curves, losses = compare.training_curves(picked)
                st.plotly_chart(vx.curves_figure(curves, losses=losses), width="stretch", key="exp_curves")
                st.plotly_chart(vx.metric_bars(compare.metrics_of(picked)), width="stretch", key="exp_bars")
            except Exception as exc:  # noqa: BLE001
                show_error(exc)
            if compare.backtest_available():
                if st.toggle("Out-of-sample equity (backtest each run on its test split, default settings)",
                             key="exp_equity"):
                    fresh = [r for r in picked if compare.cached_backtest(r) is None]
                    ds_of = dict(zip(table["run_id"], table["dataset"]))
                    with st.spinner("Backtesting..."):
                        curves, bench, notes = compare.equity_curves(picked, lambda rid: _equity(
                            rid, registry.weights_stamp(rid), dataset_version(str(ds_of.get(rid)))))
                    for note in notes:
                        st.warning(note)
                    if curves:
                        st.plotly_chart(vx.equity_figure(curves, bench), width="stretch", key="exp_equity_fig")
                    if any(compare.cached_backtest(r) is not None for r in fresh):
                        st.rerun()  # the table above was drawn before these backtests: show their figures
            else:
                st.caption("Equity curves need core.backtest, which is not available in this copy of the app.")

        # ------------------------------------------------------------------------------- manage
        st.subheader("Manage a run")
        rid = st.selectbox("Run", table["run_id"].tolist(), key="exp_manage", format_func=lambda r: labels.get(r, r))
        row = table.set_index("run_id").loc[rid]
        m1, m2 = st.columns([3, 2], vertical_alignment="bottom")
        m3 = m2.container(horizontal=True)  # the two buttons at their own width: in fifths "Rena..." and "Expor..."
        new_name = m1.text_input("Name", str(row["name"])[:registry.MAX_NAME], key=f"exp_rename_{rid}",
                                 max_chars=registry.MAX_NAME)
        if m3.button("Rename", key="exp_rename_btn", icon=":material/edit:"):
            try:
                registry.rename_run(rid, new_name)
                st.rerun()
            except Exception as exc:  # noqa: BLE001
                show_error(exc)
        m3.download_button("Export zip", data=lambda rid=rid: export_run_zip(rid), file_name=f"{rid}.zip",
                           mime="application/zip", key="exp_export", on_click="ignore", icon=":material/download:")
        d1, d2 = st.columns([3, 1])
        sure = d1.checkbox(f"Yes, delete run {rid} and its files", key=f"exp_delete_sure_{rid}")
        if d2.button("Delete", key="exp_delete_btn", disabled=not sure, icon=":material/delete:"):
            try:
                registry.delete_run(rid)
                st.session_state.pop("exp_manage", None)
                st.rerun()
            except Exception as exc:  # noqa: BLE001
                show_error(exc)

    broken = registry.damaged_runs()
    if broken:
        with st.expander(f"Damaged runs ({len(broken)}): left out of every page; delete them here", expanded=True):
            for bad_id, why in broken:
                b1, b2 = st.columns([5, 1])
                b1.markdown(f"`{bad_id}`: {why}")
                if b2.button("Delete", key=f"exp_delete_damaged_{bad_id}", icon=":material/delete:"):
                    registry.delete_run(bad_id)
                    st.rerun()

# ---------------------------------------------------------------------------------------------- sweeps
with tab_sweeps:
    st.markdown("A grid over models x seeds x symbols x windows (and any config key, e.g. `train.lr`); each "
                "cell is a run in the registry. Cells train in parallel worker processes; several seeds per "
                "setting show how much of a difference is noise.")
    up = st.file_uploader("Load a grid file (YAML or JSON)", type=["yaml", "yml", "json"], key="exp_grid_file")
    if up is not None and st.session_state.get("_exp_grid_loaded") != up.file_id:
        st.session_state["_exp_grid_loaded"] = up.file_id
        st.session_state["exp_grid"] = up.getvalue().decode("utf-8", errors="replace")
    grid_text = st.text_area("Grid (YAML or JSON)", default_grid_text(dataset_id), height=260, key="exp_grid")
    c1, c2, c3 = st.columns(3)
    jobs = int(c1.number_input("Parallel workers", 1, max(1, os.cpu_count() or 1) * 4, 2, key="exp_jobs"))
    backend = c2.selectbox("Backend", list(runner.BACKENDS), key="exp_backend",
                           help="loky: processes on this machine; ray / dask: a local instance, or a cluster at "
                                "the address")
    address = c3.text_input("Cluster address (ray / dask, optional)", key="exp_address",
                            disabled=backend == "loky").strip() or None
    cells = None
    try:
        spec, cells, preview = grid_preview(grid_text)
        st.caption(preview)
    except Exception as exc:  # noqa: BLE001 - an invalid grid is shown, nothing starts
        show_error(exc)
    job = get_job(sid, SWEEP_JOB)
    running = job is not None and not job.done
    if st.button("Start sweep", type="primary", key="exp_sweep_start", disabled=running or cells is None,
                 icon=":material/play_arrow:"):
        st.session_state["exp_sweep_plan"] = [c.to_dict() for c in cells]
        job = start_job(sid, SWEEP_JOB, runner.run_sweep, spec=spec, jobs=jobs, backend=backend, address=address)
    job = get_job(sid, SWEEP_JOB)
    running = job is not None and not job.done  # again: the click above may have started it

    # polls once a second while a sweep runs; an idle page does not rerun
    @st.fragment(run_every="1s" if running else None)
    def sweep_live() -> None:
        job = get_job(sid, SWEEP_JOB)
        if job is None:
            return
        events, latest = job.snapshot()
        last = latest.get("sweep")
        plan = st.session_state.get("exp_sweep_plan", [])
        if not job.done:
            st.progress((last.fraction if last else None) or 0.0, text=last.message if last else "starting...")
            if st.button("Cancel sweep", key="exp_sweep_cancel", icon=":material/stop:"):
                job.stop()
            st.caption("Cancel: cells that have not started are skipped; running cells stop at their next "
                       "batch and keep their best checkpoint so far.")
        if last is not None:
            st.dataframe(vx.sweep_progress_table(last.metrics.get("cells", {}), plan), hide_index=True,
                         key="exp_sweep_cells", column_config={"progress": st.column_config.ProgressColumn(
                             "progress", min_value=0, max_value=100, format="%d%%")})
        if job.done and st.session_state.get("_exp_sweep_seen") != job.started_at:
            st.session_state["_exp_sweep_seen"] = job.started_at
            if job.result is not None:
                st.session_state["exp_sweep_pick"] = job.result.sweep_id
            st.rerun(scope="app")
        if job.done and job.error:
            st.error(sentence(job.error))
        elif job.done and job.result is not None:
            (st.success if job.result.status == "completed" else st.warning)(job.result.outcome())

    sweep_live()

    st.divider()
    st.subheader("Sweep results")
    choices = runner.sweep_choices()
    if not choices:
        st.info("No sweeps yet.")
    else:
        pick = pick_saved("Sweep", choices, "exp_sweep_pick")
        try:
            res = runner.load_sweep(pick)
            ranks = list(RANK_METRICS)
            rank_by = st.selectbox("Rank by", ranks, index=ranks.index(res.rank_by), key="exp_rank_by")
            cells_df = res.table()
            summ = res.summary(rank_by)
            st.caption(res.caption())
            (st.caption if summ.attrs.get("ranked_on") == "validation" else st.warning)(
                runner.ranking_note(summ, rank_by))
            st.dataframe(summ[runner.summary_columns(summ, rank_by)], hide_index=True, key="exp_sweep_summary",
                         column_config={**runner.SUMMARY_LABELS, "vs_baseline_mean": st.column_config.NumberColumn(
                             "CNN - best baseline (accuracy, mean)", format="%+.3f",
                             help="test accuracy of the CNN minus the best baseline's on the same split, "
                                  "averaged over the seeds (0.010 = 1 point)")})
            st.plotly_chart(vx.sweep_figure(summ, cells_df, rank_by), width="stretch", key="exp_sweep_fig")
            with st.expander("All cells"):
                st.dataframe(cells_df.assign(status=cells_df["status"].map(registry.status_words)),
                             hide_index=True, key="exp_sweep_table")
            run_ids = res.saved_run_ids()
            if run_ids and st.button("Compare this sweep's runs (Runs tab)", key="exp_sweep_compare"):
                st.session_state["exp_pick_request"] = run_ids
                st.rerun()
        except Exception as exc:  # noqa: BLE001
            show_error(exc)

# ---------------------------------------------------------------------------------------------- import
with tab_import:
    st.markdown("Import a run zip exported from this app (by you or someone else). The zip is treated as "
                "untrusted: only the run's plain files are accepted, nothing may land outside its run folder, "
                "weights load with `weights_only=True`, and the feature scaler is read from JSON, never "
                "unpickled.")
    zf = st.file_uploader("Run zip", type=["zip"], key="exp_upload")
    if st.button("Import", key="exp_import_btn", disabled=zf is None, icon=":material/upload:"):
        try:
            st.session_state["exp_imported"] = import_run_zip(zf.getvalue())
            st.rerun()  # the Runs tab above was drawn before the import
        except Exception as exc:  # noqa: BLE001
            show_error(exc)
    if st.session_state.get("exp_imported"):
        st.success(f"Imported as run {st.session_state['exp_imported']}: it is in the Runs tab.")

_keep()
