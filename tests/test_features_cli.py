"""`python -m core features` writes the features of a stored dataset inside the workspace, and only there."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.features import compute_features
from tests.features_helpers import csv_candles


@pytest.fixture
def btc_id(shared_data):
    from core.data.store import save_candles

    df = csv_candles(shared_data / "binance_spot_BTCUSDT_1h.csv", 1500)
    return save_candles(df, "file", "BTC/USDT", "1h").id, df


def test_cli_writes_parquet_with_json(btc_id, workspace, capsys):
    ds, df = btc_id
    rc = main(["features", "--dataset", ds, "--preset", "dilated5", "--out", "feats/btc.parquet", "--json",
               "--label", "direction3", "--horizon", "6"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["rows"] == 1500 - 99 and out["features"][0] == "return"
    path = workspace / "feats" / "btc.parquet"
    assert out["path"] == str(path)
    table = pd.read_parquet(path)
    expect = compute_features(df, "dilated5")
    np.testing.assert_allclose(table[expect.columns].to_numpy(), expect.to_numpy(), rtol=1e-12)
    assert table["label"].iloc[-6:].eq(-1).all() and table["label"].iloc[:-6].isin([0, 1, 2]).all()
    # vol_scaled takes its own k and window (the threshold was the only knob, and it does not apply)
    def vol_labels(*extra):
        assert main(["features", "--dataset", ds, "--preset", "dilated5", "--out", "feats/v.parquet", "--label",
                     "vol_scaled", "--horizon", "6", *extra]) == 0
        return pd.read_parquet(workspace / "feats" / "v.parquet")["label"]

    wide, narrow = vol_labels("--k", "3"), vol_labels("--k", "0.2", "--vol-window", "50")
    assert (wide == 1).sum() > (narrow == 1).sum()  # a wider band calls more bars flat
    assert main(["features", "--dataset", ds, "--features", "", "--out", "feats/e.parquet"]) == 2
    assert "--features is empty" in capsys.readouterr().err


def test_cli_refuses_paths_outside_the_workspace(btc_id, capsys):
    ds, _ = btc_id
    for bad in ("../escape.parquet", "/tmp/escape.parquet"):
        assert main(["features", "--dataset", ds, "--out", bad]) == 2
        assert "outside the workspace" in capsys.readouterr().err
    assert main(["features", "--dataset", ds, "--out", "x.csv"]) == 2
    assert main(["features", "--dataset", "nope-BTC-1h", "--out", "x.parquet"]) == 2
    assert "no dataset" in capsys.readouterr().err
    assert main(["features", "--dataset", ds, "--preset", "bogus", "--out", "x.parquet"]) == 2


def test_cli_lists_presets(capsys):
    assert main(["features", "--list", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "convnext" in info["presets"] and "adx" in info["features"]
