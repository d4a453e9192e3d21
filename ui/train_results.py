"""The Train page's results: a saved run against its baselines (verdict, headline metrics, comparison table,
bars, interval, confusion matrix, per-class table, multi-task heads, curves, rename/delete) and a saved
walk-forward evaluation fold by fold. Streamlit drawing only: the figures and tables come from core.viz.train."""
from __future__ import annotations

import streamlit as st

from core.train import evaluate as wfe
from core.train import runs as registry
from core.train.trainer import verdict_is_good, verdict_text
from core.viz import train as vt
from ui.common import column_config, pick_saved, show_error


def headline(m: dict, baselines: dict, vs: dict, key: str, walk_forward: bool = False) -> None:
    """The verdict against the best baseline, the headline metrics and the comparison table."""
    if vs:
        (st.success if verdict_is_good(vs) else st.warning)(verdict_text(vs))
        st.caption(vt.interval_note(vs, walk_forward))
    figures = st.container(horizontal=True, horizontal_alignment="distribute", gap="medium")  # wraps, not "balanced acc..."
    for label, value in vt.headline_values(m):
        figures.metric(label, value)
    st.dataframe(vt.comparison_table(m, baselines), hide_index=True, key=key,
                 column_config=column_config(_three_decimals(vt.METRIC_LABELS.values()), pin="model"))


def _three_decimals(columns) -> dict:
    """Metric columns at 3 decimals: full floats pushed a narrow window's last columns out of view."""
    return {c: (None, "%.3f") for c in columns}


def run_results() -> None:
    """The chosen run against its baselines, its confusion matrix, per-class table and curves."""
    table = registry.runs_table()
    if table.empty:
        st.info("No runs yet: start one above (the quick preset takes well under a minute on 2 idle CPU cores, longer when other jobs share them).")
        return
    rid = pick_saved("Run", dict(zip(table["run_id"], table["name"] + " · " + table["status"].map(registry.status_words))),
                     "train_run_pick", "train_view_run", run_prefix="")
    try:
        run = registry.load_run(rid)
    except Exception as exc:  # noqa: BLE001
        show_error(exc)
        return
    m, cfg = run.metrics.get("metrics", {}), run.config
    vs = run.metrics.get("vs_best_baseline") or {}
    st.caption(vt.run_caption(cfg, run.metrics))
    for warning in run.metrics.get("warnings", []):
        st.warning(warning)
    headline(m, run.metrics.get("baselines", {}), vs, "train_cmp_table")
    if m.get("heads"):
        st.caption("Multi-task heads on the test split (magnitude = size of the horizon return, volatility = "
                   "realised volatility of the bars ahead); a head that learned something has an MAE below the "
                   "training mean's and a positive correlation.")
        st.dataframe(vt.heads_table(m), hide_index=True, key="train_heads")
    l, r = st.columns(2)
    l.plotly_chart(vt.baseline_bars(m, run.metrics.get("baselines", {})), width="stretch", key="train_bars")
    if vs:
        r.plotly_chart(vt.comparison_figure(vs), width="stretch", key="train_ci")
    l, r = st.columns(2)
    if m.get("confusion"):
        l.plotly_chart(vt.confusion_figure(m["confusion"], run.class_names), width="stretch", key="train_cm")
    r.dataframe(vt.per_class_table(m), hide_index=True, key="train_per_class",
                column_config=column_config(_three_decimals(("precision", "recall", "f1")), pin="class"))
    st.plotly_chart(vt.history_figure(run.history, loss=vt.loss_name(cfg.get("train_config") or {},
                                                                     cfg.get("targets_scaling") is not None)),
                    width="stretch", key="train_curves")
    with st.expander("Manage this run"):
        new = st.text_input("Rename", str(cfg.get("name", ""))[:registry.MAX_NAME], key=f"train_rename_{rid}",
                            max_chars=registry.MAX_NAME)
        a, b = st.columns(2)
        if a.button("Save name", key="train_rename_btn"):
            try:
                registry.rename_run(rid, new)
                st.rerun()
            except Exception as exc:  # noqa: BLE001
                show_error(exc)
        if b.button("Delete run", key="train_delete_btn", type="secondary"):
            registry.delete_run(rid)
            st.rerun()
        st.json(cfg, expanded=False)


def walk_forward_results() -> None:
    """A saved walk-forward evaluation: all folds together against the baselines, and fold by fold."""
    docs = wfe.list_walk_forwards()
    if not docs:
        st.caption("None yet: run one from the expander above (or `python -m core train --folds K`).")
        return
    if len(docs) > 1:
        st.dataframe(vt.walk_forwards_table(docs), hide_index=True, key="train_wf_all")
    wid = pick_saved("Evaluation", {doc["wf_id"]: vt.walk_forward_label(doc) for doc in docs}, "train_wf_pick",
                     "train_view_wf")
    try:
        res = wfe.load_walk_forward(wid)
    except Exception as exc:  # noqa: BLE001
        show_error(exc)
        return
    vs = res.vs_best_baseline
    st.caption(vt.walk_forward_caption(res.config, res.predictions, len(res.folds)))
    for warning in vt.fold_warnings(res.folds):
        st.warning(warning)
    headline(res.metrics, res.baselines, vs, "train_wf_cmp", walk_forward=True)
    l, r = st.columns(2)
    l.plotly_chart(vt.folds_figure(res.folds, mode=res.config.get("mode", "expanding")), width="stretch",
                   key="train_wf_folds")
    if vs:
        r.plotly_chart(vt.comparison_figure(vs), width="stretch", key="train_wf_ci")
    st.dataframe(vt.folds_table(res.folds), hide_index=True, key="train_wf_table")
    if st.button("Delete this evaluation", key="train_wf_delete", icon=":material/delete:"):
        try:
            wfe.delete_walk_forward(wid)
            st.rerun()
        except Exception as exc:  # noqa: BLE001
            show_error(exc)
