"""The Architectures page under AppTest on the default offline market (1h): the receptive field in bars and
time, the layer table, the warnings, the effective field on real windows, bad settings, the comparison."""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from streamlit.testing.v1 import AppTest

from tests.page_helpers import charts, column_row_of, metric_rows

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "3_Architectures.py")


def _charts(at: AppTest) -> dict[str, dict]:
    return charts(at)


def _arr(v):
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata"(base64)[, "shape"]} (plotly >= 6)."""
    if isinstance(v, dict) and "bdata" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return a.reshape([int(n) for n in str(v["shape"]).split(",")]) if "shape" in v else a
    return np.asarray(v)


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_architectures_page_end_to_end():
    at = AppTest.from_file(PAGE, default_timeout=240)
    at.run()
    assert not at.exception, at.exception
    # WaveNet by default: 8 layers of kernel 3, dilations 1..128 -> 511 bars = 21.3 days of hourly candles
    m = _metrics(at)
    assert m["Receptive field (bars)"] == "511" and m["Receptive field (time)"] == "21.3 days"
    assert int(m["Parameters"].replace(",", "")) > 0
    assert any("much longer than the window" in w.value for w in at.warning)
    growth = _charts(at)["Receptive field growth with depth (511 bars = 21.3 days)"]
    assert _arr(growth["data"][0]["y"])[-1] == 511
    assert growth["layout"]["yaxis"]["type"] == "log" and not growth["layout"].get("shapes")
    assert list(_arr(growth["data"][1]["y"])) == [64, 64]  # the window, drawn as a trace on the log axis
    layers = at.dataframe[0].value
    dilated = layers[layers["kernel"] > 1]
    assert list(dilated["dilation"]) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert list(dilated["RF (bars)"]) == [3, 7, 15, 31, 63, 127, 255, 511]
    assert "5.3 days" in list(layers["RF (time)"])  # 127 bars at 1h

    # the document's six levels (1..32 = 127 bars) on a 127-bar window: field and window match exactly
    at.number_input(key="arch_cfg_wavenet_layers").set_value(6).run()
    at.number_input(key="arch_window").set_value(127).run()
    assert not at.exception
    m = _metrics(at)
    assert m["Receptive field (bars)"] == "127" and m["Receptive field (time)"] == "5.3 days"
    assert not at.warning
    at.number_input(key="arch_window").set_value(200).run()
    assert any("never sees the oldest 73 bars" in w.value for w in at.warning)

    # the effective field on real windows of the active dataset, beside the analytic bound
    at.button(key="arch_erf_btn").click().run()
    assert not at.exception, at.exception
    charts = _charts(at)
    heat = next(v for k, v in charts.items() if k.startswith("Effective receptive field"))
    assert _arr(heat["data"][0]["z"]).shape == (15, 200)  # resnet15 features x window
    assert len(heat["data"][0]["y"]) == 15
    profile = _arr(heat["data"][1]["y"])
    assert sum(profile[:200 - 127]) == 0  # nothing older than the analytic field reaches the output
    m = _metrics(at)
    assert 1 <= int(m["95 % of the gradient (bars)"]) <= 127
    dil = charts["Contribution of each dilation level (skip ablation)"]
    assert [x.split(" ")[0] for x in dil["data"][0]["x"]] == ["d=1", "d=2", "d=4", "d=8", "d=16", "d=32"]
    assert abs(_arr(dil["data"][0]["y"]).sum() - 1) < 1e-6
    # the result stays on the next rerun (cached), and goes when the model changes
    at.multiselect(key="arch_compare").set_value(["tcn", "logistic", "chart_resnet18"]).run()
    assert any(k.startswith("Effective receptive field") for k in _charts(at))
    table = at.dataframe[-1].value
    assert list(table["model"]) == ["tcn", "logistic", "chart_resnet18"]
    assert table.loc[table["model"] == "tcn", "RF"].item() == "61 bars"
    assert table.loc[table["model"] == "chart_resnet18", "RF"].item().endswith("px")
    assert (table["parameters"] > 0).all() and (table["MACs / sample"] > 0).all()

    # a malformed list setting is a sentence; nothing crashes, the comparison stays
    at.selectbox(key="arch_model").select("convnext1d").run()
    assert not any(k.startswith("Effective receptive field") for k in _charts(at))
    at.text_input(key="arch_cfg_convnext1d_dims").input("[32, 64").run()
    assert not at.exception
    assert any("not valid JSON" in e.value for e in at.error)
    assert at.dataframe[-1].value.shape[0] == 3
    at.text_input(key="arch_cfg_convnext1d_dims").input("[16, 32, 64, 128]").run()
    assert not at.exception and not at.error
    assert _metrics(at)["Receptive field (bars)"] == "584"  # the field does not depend on the widths


def test_model_and_settings_survive_a_visit_to_another_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/3_Architectures.py").run()
    at.selectbox(key="arch_model").select("tcn").run()
    at.number_input(key="arch_window").set_value(96).run()
    assert not at.exception
    at.switch_page("pages/1_Data.py").run()
    at.switch_page("pages/3_Architectures.py").run()
    assert not at.exception
    assert at.selectbox(key="arch_model").value == "tcn" and at.number_input(key="arch_window").value == 96


def test_the_five_figures_wrap_on_a_narrow_window():
    """In fifths of a 1,000 px window (sidebar open) the figures read "4,946,..." and "Receptive fi...": they are
    a wrapping row now; the compute button sits beside the slider, not under it in a quarter of the width."""
    at = AppTest.from_file(PAGE, default_timeout=240)
    at.run()
    assert not at.exception, at.exception
    rows = metric_rows(at)
    assert ["Receptive field (bars)", "Receptive field (time)", "Parameters", "MACs per sample", "CPU latency"] in rows
    assert at.button(key="arch_erf_btn").label == "Compute on real windows"
    assert column_row_of(at, "arch_erf_btn") == 2 and column_row_of(at, "arch_erf_windows") == 2  # side by side
