"""What every page shares: page config, the sidebar with the active dataset, cached loaders.

Pages run in Streamlit's directory mode (`app.py` + `pages/`): each page calls `page_setup()` first.
Cross-page choices live in session-state keys of their own (`active_dataset`), never in widget keys.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Optional

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # pages run with the app folder as cwd, but be explicit
    sys.path.insert(0, str(ROOT))

ACTIVE_DATASET = "active_dataset"


SESSION_PARAM = "session"
_REMEMBERED: dict[str, dict[str, Any]] = {}  # per session id: what a reload of that tab gets back


def session_id() -> str:
    """A stable id for this browser tab: background jobs are found again by it. It rides in the page's address
    (`?session=...`): every in-app link and page switch carries it (`tab_params`), and `pin_tab` writes it
    when the tab gets something to find again, so a reload (F5) is the same tab: its running jobs and its
    active dataset come back. (Anyone opening that exact address shares the tab's jobs: a local tool.)"""
    import re

    ss = st.session_state
    if "_session_id" not in ss:
        import uuid

        given = str(st.query_params.get(SESSION_PARAM, ""))
        ss["_session_id"] = given if re.fullmatch(r"[0-9a-f]{32}", given) else uuid.uuid4().hex
    return ss["_session_id"]


def tab_params() -> dict[str, str]:
    """The query of every in-app link and page switch: the tab's id. Streamlit clears the query on a page
    change, and writing it back afterwards would push a second history entry (Back would seem stuck)."""
    return {SESSION_PARAM: session_id()}


def pin_tab() -> None:
    """Write the tab's id into the current address now (one history entry, at a user action: a job started,
    the active dataset changed), so that a reload before the next page change finds it."""
    sid = session_id()
    if st.query_params.get(SESSION_PARAM) != sid:
        st.query_params[SESSION_PARAM] = sid


def _remember(**values: Any) -> None:
    _REMEMBERED.setdefault(session_id(), {}).update(values)
    pin_tab()


@st.cache_data(show_spinner=False, ttl=10)
def _dataset_ids() -> list[str]:
    from core.data.store import list_datasets

    return [d.id for d in list_datasets()]


def refresh_datasets() -> None:
    """After datasets were added or deleted (loaded candles need no clearing: their cache is keyed on the
    file's version, so a rewritten dataset is read again by every session)."""
    _dataset_ids.clear()


@st.cache_data(show_spinner="Loading candles...", max_entries=8)
def _load_candles(dataset_id: str, version: int):
    from core.data.store import load_candles as _load

    return _load(dataset_id)


def load_candles(dataset_id: str):
    """The candles of a dataset, cached until the dataset is rewritten."""
    from core.data.store import dataset_version

    return _load_candles(dataset_id, dataset_version(dataset_id))


@st.cache_data(show_spinner="Loading the order book...", max_entries=4)
def _load_order_book(book_id: str, digest: str):
    from core.data.orderbook import load_order_book as _load

    return _load(book_id)


def load_order_book(book_id: str):
    """The snapshots of a stored order book, cached until the book is replaced (its fingerprint, read from the
    file's footer, is part of the key: a book recorded again over the same span is read again)."""
    from core.data.orderbook import stored_digest

    return _load_order_book(book_id, stored_digest(book_id))


def active_dataset() -> str:
    """The dataset every page works on; defaults to the offline synthetic market (made on first use)."""
    from core.data.store import ensure_default_dataset

    ids = _dataset_ids()
    if ACTIVE_DATASET not in st.session_state:  # a new session, or this tab reloaded: its last choice
        st.session_state[ACTIVE_DATASET] = _REMEMBERED.get(session_id(), {}).get(ACTIVE_DATASET)
    current = st.session_state.get(ACTIVE_DATASET)
    if current not in ids:
        default = ensure_default_dataset()
        if default not in ids:
            refresh_datasets()
        current = default
        st.session_state[ACTIVE_DATASET] = current
    return current


def set_active_dataset(dataset_id: str) -> None:
    """Make `dataset_id` the dataset every page works on (e.g. right after a fetch or import)."""
    refresh_datasets()
    st.session_state[ACTIVE_DATASET] = dataset_id
    _remember(**{ACTIVE_DATASET: dataset_id})


def _on_sidebar_change(key: str) -> None:
    st.session_state[ACTIVE_DATASET] = st.session_state[key]
    _remember(**{ACTIVE_DATASET: st.session_state[key]})


PAGE_ICONS = {"data": ":material/database:", "indicators": ":material/show_chart:",
              "architectures": ":material/account_tree:", "train": ":material/model_training:",
              "encodings": ":material/image:", "inspect": ":material/search:",
              "backtest": ":material/candlestick_chart:", "experiments": ":material/science:",
              "live": ":material/sensors:"}


def page_files() -> dict[str, Path]:
    """The page files by their name (file name without the number prefix), lower-cased, in sidebar order."""
    import re

    out: dict[str, Path] = {}
    for path in sorted((ROOT / "pages").glob("*.py")):
        m = re.match(r"[0-9]*[_ -]*(.*)\.py$", path.name)
        if m and m.group(1):
            out[m.group(1).lower()] = path
    return out


def page_link(path: Path, label: str, icon: Optional[str] = None) -> bool:
    """A link to the page file `path`; False when the running app does not know that page (a file added
    after the server started, or a page run on its own, as in a test)."""
    from streamlit.errors import StreamlitPageNotFoundError

    try:
        st.page_link(str(path.relative_to(ROOT)), label=label, icon=icon or ":material/arrow_forward:",
                     query_params=tab_params())
        return True
    except StreamlitPageNotFoundError:
        return False


def _navigation() -> None:
    """The sidebar's page list. Streamlit's own (off in .streamlit/config.toml) would name the home page
    after its file, "app"."""
    with st.sidebar.container(key="lab_nav"):
        if page_link(ROOT / "app.py", "Home", ":material/home:"):
            for key, path in page_files().items():
                page_link(path, path.stem.split("_", 1)[-1].replace("_", " "), PAGE_ICONS.get(key))
        st.divider()


def page_setup(title: str, icon: str = ":material/candlestick_chart:", layout: str = "wide") -> str:
    """Set the page config, draw the shared sidebar, and return the active dataset id."""
    st.set_page_config(page_title=f"{title} · CNN Trading Lab", page_icon=icon, layout=layout)
    _navigation()
    current = active_dataset()
    ids = _dataset_ids()
    if current not in ids:  # made or imported a moment ago: the cached list is stale
        refresh_datasets()
        ids = _dataset_ids()
    key = f"sidebar_dataset_{title}"
    # A keyed widget keeps its own value across reruns even when `index` changes, so when another
    # page (or a fetch/import) changed the active dataset, push it into the widget before drawing it;
    # otherwise the stale widget value would silently switch the active dataset back.
    if st.session_state.get(key) != current and current in ids:
        st.session_state[key] = current
    with st.sidebar:
        st.markdown("**Active dataset**")
        st.selectbox(
            "Active dataset", ids, key=key, label_visibility="collapsed",
            on_change=_on_sidebar_change, args=(key,),
            help="Shared by every page. Fetch, import or generate more on the Data page.",
        )
        if current.startswith("synthetic"):
            st.caption(":orange[synthetic] offline market: simulated prices, not real trades.")
    return current


def sentence(text: str) -> str:
    """core words its messages as clauses ("no connection to Bybit: ..."): on a page they start a sentence."""
    return text[:1].upper() + text[1:]


def show_error(exc: BaseException) -> None:
    """A user-facing error as a sentence; bugs get an expander with the trace."""
    from core.errors import UserError

    if isinstance(exc, UserError):
        st.error(sentence(str(exc)))
    else:
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}")
        import traceback

        with st.expander("Details"):
            st.code("".join(traceback.format_exception(exc)))


def _job_panel(name: str, what: str, describe: Optional[Callable[[Any], str]],
               on_result: Optional[Callable[[Any], None]], cancelled_note: str) -> None:
    from ui.jobs import forget_job, get_job

    sid = session_id()
    job = get_job(sid, name)
    if job is None:
        return
    events, _ = job.snapshot()
    last = events[-1] if events else None
    if not job.done:
        frac = (last.fraction if last else None) or 0.0
        st.progress(frac, text=(last.message if last and last.message else f"{what} running..."))
        if st.button("Cancel", key=f"{name}_cancel", icon=":material/stop:"):
            job.stop()
        return
    if job.error:
        st.error(sentence(job.error))
        if job.trace:  # a bug, not a UserError: the trace stays folded away
            with st.expander("Details"):
                st.code(job.trace)
    elif job.cancelled:
        st.warning(f"{what} cancelled: {cancelled_note}")
    else:
        st.success(f"{what} done" + (f": {describe(job.result)}" if describe else "."))
    seen = f"_job_seen_{name}_{job.started_at}"
    if not st.session_state.get(seen):
        # Once per finished job: act on its result, then rerun the whole page (which also stops this
        # fragment's polling, since the new run sees a finished job).
        st.session_state[seen] = True
        if job.result is not None and on_result is not None:
            on_result(job.result)
        refresh_datasets()
        st.rerun(scope="app")
    if st.button("Dismiss", key=f"{name}_dismiss"):
        forget_job(sid, name)
        st.rerun(scope="app")


def job_status(name: str, what: str, describe: Optional[Callable[[Any], str]] = None,
               on_result: Optional[Callable[[Any], None]] = None,
               cancelled_note: str = "what was saved before the cancel is kept.") -> None:
    """Show this tab's background job `name` (started with ui.jobs.start_job): a progress bar and a Cancel
    button while it runs, polled every second by a fragment; then its outcome (the error as a sentence,
    a cancel note, or `describe(result)`), calling `on_result(result)` once."""
    from ui.jobs import get_job

    job = get_job(session_id(), name)
    # run_every only while the job runs: an idle page must not rerun every second
    running = job is not None and not job.done
    st.fragment(run_every="1s" if running else None, key=f"{name}_job_fragment")(_job_panel)(
        name, what, describe, on_result, cancelled_note)


def _widget_keys_this_run() -> Optional[frozenset]:
    """The keys of the widgets drawn so far in this run (None if this Streamlit does not tell)."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        return get_script_run_ctx().shared.widget_user_keys_this_run.snapshot()
    except Exception:  # noqa: BLE001 - an internal of Streamlit 1.67: without it, only the basic behaviour
        return None


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - e.g. arrays: not the same setting then
        return False


def keep_settings(store_key: str, keys: tuple[str, ...] = (), prefixes: tuple[str, ...] = ()) -> Callable[[], None]:
    """Streamlit drops a page's widget values when the user visits another page (they belong to the page).
    Call this at the top of a page: it puts back the values kept from the page's last run (widgets that
    already have a value, e.g. handed over by another page, keep theirs) and returns the function that
    keeps the current values; call that once the page has drawn its settings (again further down is fine).

    A setting whose widget a run does not draw (the replay settings while the Bybit source is chosen, say)
    keeps its last value, and is put back through the Session State API in the run that draws it again:
    a value that merely lingered in the session state would be used by the script while the browser showed
    the widget's default."""
    drawn_before = st.session_state.get(store_key + "__drawn")
    for key, value in st.session_state.get(store_key, {}).items():
        if key not in st.session_state:
            st.session_state[key] = value
        elif drawn_before is not None and key not in drawn_before and _equal(st.session_state[key], value):
            # lingering, not drawn last run (or drawn after `keep`): set again, so that the widget shows
            # it; a value the user just changed differs from the kept one and is left alone
            st.session_state[key] = value

    def keep() -> None:
        kept = dict(st.session_state.get(store_key, {}))  # merged: settings not drawn this run stay
        kept.update({k: st.session_state[k] for k in list(st.session_state.keys())
                     if isinstance(k, str) and (k in keys or k.startswith(prefixes))})
        st.session_state[store_key] = kept
        drawn = _widget_keys_this_run()
        if drawn is not None:
            st.session_state[store_key + "__drawn"] = frozenset(k for k in drawn if k in kept)

    return keep


def distinct_labels(labels: dict[str, str]) -> dict[str, str]:
    """Option labels for a selectbox / multiselect, made unique: Streamlit 1.67 tells a widget's options apart
    by their formatted label, so two runs with the same name, model and dataset (an imported copy, say) would
    collapse into one. Labels that clash get their key appended."""
    from collections import Counter

    seen = Counter(labels.values())
    return {k: lab if seen[lab] == 1 else f"{lab} · {k}" for k, lab in labels.items()}


def column_config(spec: dict[str, tuple[Optional[str], str]], pin: str = "") -> dict:
    """st.dataframe's column_config from a core spec {column: (label or None, number format | "check")}; `pin`
    names a column kept in view while the table scrolls sideways."""
    out = {col: st.column_config.CheckboxColumn(label) if fmt == "check"
           else st.column_config.NumberColumn(label, format=fmt or None) for col, (label, fmt) in spec.items()}
    if pin:
        out[pin] = st.column_config.Column(pinned=True)
    return out


def take_request(request_key: str, pick_key: str, options) -> None:
    """Another page or a finished job asked this page to show one item (`st.session_state[request_key]`,
    e.g. the demo's run): consume the request and select the item in the widget keyed `pick_key`, once."""
    want = st.session_state.pop(request_key, None)
    if want is not None and want in options:
        st.session_state[pick_key] = want


RUN_IN_VIEW = "_run_in_view"  # the run this tab last showed (any page): the default of the other run pickers


def note_run_in_view(run_id: Optional[str]) -> None:
    """Remember the run the user is looking at, so that the next page opens on it, not on whatever run is
    newest (a sweep's cells, trained meanwhile, would otherwise take over every picker)."""
    if run_id:
        st.session_state[RUN_IN_VIEW] = run_id


def default_to_run_in_view(pick_key: str, options, as_option: Callable[[str], str] = lambda r: r) -> None:
    """Before drawing a run picker keyed `pick_key` that has no value yet: start it on the run in view when
    `options` hold it (`as_option` maps a run id to the picker's option, e.g. "run:<id>")."""
    run_id = st.session_state.get(RUN_IN_VIEW)
    if pick_key not in st.session_state and run_id and as_option(run_id) in options:
        st.session_state[pick_key] = as_option(run_id)


def pick_saved(label: str, labels: dict[str, str], pick_key: str, request_key: Optional[str] = None,
               run_prefix: Optional[str] = None, help: Optional[str] = None) -> str:
    """A selectbox over saved items (runs, evaluations: id -> label, newest first) whose labels are made
    distinct; an item another page or a finished job asked for (`request_key`) is selected once. A run picker
    (`run_prefix`: "" when the options are run ids, e.g. "run:" when they are "run:<id>") opens on the run in
    view and, when a run is chosen, makes it the run in view."""
    ids = list(labels)
    if request_key:
        take_request(request_key, pick_key, ids)
    if st.session_state.get(pick_key, ids[0] if ids else None) not in ids:  # e.g. a kept item deleted since
        st.session_state.pop(pick_key, None)
    if run_prefix is not None:
        default_to_run_in_view(pick_key, ids, lambda r: run_prefix + r)
    shown = distinct_labels(labels)
    choice = st.selectbox(label, ids, key=pick_key, format_func=lambda i: shown.get(i, i), help=help)
    if run_prefix is not None and choice is not None and str(choice).startswith(run_prefix):
        note_run_in_view(str(choice)[len(run_prefix):])
    return choice


def model_settings(defaults: dict, current: dict, key_prefix: str, n_cols: int = 3) -> tuple[dict, list[str]]:
    """One widget per setting of a model (its ModelSpec.defaults) starting from `current`: a checkbox, a
    number box, a text box, or JSON text for lists and None. Returns (config, the settings that do not parse,
    as sentences) - the caller shows those when the user acts on them."""
    import json

    from core.train.config import parse_model_value

    config: dict = {}
    errors: list[str] = []
    cols = st.columns(n_cols)
    for i, (k, v) in enumerate(defaults.items()):
        col, key, cur = cols[i % n_cols], f"{key_prefix}{k}", current.get(k, v)
        if isinstance(v, bool):
            config[k] = col.checkbox(k, bool(cur), key=key)
        elif isinstance(v, int):
            config[k] = int(col.number_input(k, value=int(cur), step=1, key=key))
        elif isinstance(v, float):
            config[k] = float(col.number_input(k, value=float(cur), format="%g", key=key))
        elif isinstance(v, str):
            config[k] = col.text_input(k, str(cur), key=key)
        else:  # lists and None: JSON text
            raw = col.text_input(k, "" if cur is None else json.dumps(cur), key=key, help="JSON, e.g. [2, 2, 6, 2]")
            try:
                config[k] = parse_model_value(k, v, raw)
            except Exception as exc:  # noqa: BLE001 - a sentence for the caller to show
                errors.append(str(exc))
    if not defaults:
        st.caption("This model has no settings.")
    return config, errors
