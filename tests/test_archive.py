"""Run zips: export, import into another workspace (the run works there: same predictions from the
reloaded weights), and refusal of hostile zips (zip-slip, absolute paths, symlinks, pickles, bombs, weights
that are code) with nothing left behind."""
from __future__ import annotations

import io
import json
import os
import stat
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from core.errors import UserError
from core.train import archive
from core.train import runs as registry

SMALL_DATA = dict(preset="chapter6", window=16, horizon=4, threshold=0.002, max_rows=1200)
SMALL_TRAIN = dict(epochs=1, batch_size=64, lr=3e-3, patience=0, n_boot=100, baselines=["majority"])


@pytest.fixture(scope="module")
def market():
    from core.data.synthetic import generate_market

    return next(iter(generate_market("BTC/USDT", "1h", periods=1200, seed=3).values()))


@pytest.fixture(scope="module")
def exported(market, tmp_path_factory):
    """One real tiny run, trained in a workspace of its own, as (run_id, zip bytes, its stored predictions)."""
    from core.train.trainer import train_run

    ws = tmp_path_factory.mktemp("source_ws")
    old = os.environ.get("CNN_LAB_WORKSPACE")
    os.environ["CNN_LAB_WORKSPACE"] = str(ws)
    try:
        res = train_run("synthetic-BTCUSDT-1h", "cnn1d", {}, SMALL_DATA, SMALL_TRAIN, candles=market, name="shared")
        data = archive.export_run_zip(res.run_id)
        preds = pd.read_parquet(ws / "runs" / res.run_id / "predictions.parquet")
        scaler = registry.load_run(res.run_id).scaler()
    finally:
        if old is None:
            os.environ.pop("CNN_LAB_WORKSPACE", None)
        else:
            os.environ["CNN_LAB_WORKSPACE"] = old
    return res.run_id, data, preds, scaler


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _rezip(files: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            mode = (stat.S_IFLNK | 0o777) if name in symlinks else (stat.S_IFREG | 0o644)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _nothing_left(workspace) -> None:
    runs = workspace / "runs"
    assert not runs.exists() or not any(runs.iterdir())
    tmp = workspace / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())


def test_export_holds_only_plain_files_and_import_gives_a_working_run(exported, market, workspace):
    rid, data, preds, scaler = exported
    names = sorted(_members(data))
    assert names == sorted(f"{rid}/{f}" for f in archive.RUN_FILES)  # no scaler.joblib: no pickle travels
    sj = json.loads(_members(data)[f"{rid}/scaler.json"])
    assert np.allclose(sj["mean"], scaler.mean) and np.allclose(sj["scale"], scaler.scale)

    new = archive.import_run_zip(data)
    assert new == rid
    run = registry.load_run(new)
    assert run.config["name"] == "shared" and run.config["imported_from"] == rid
    pd.testing.assert_frame_equal(run.predictions, preds)
    # the imported weights and the scaler rebuilt from JSON reproduce the stored predictions exactly
    pd.testing.assert_frame_equal(run.predict(candles=market), run.predictions, check_exact=True)
    s = run.scaler()
    assert np.array_equal(s.mean, scaler.mean) and np.array_equal(s.scale, scaler.scale)
    assert s.feature_names == scaler.feature_names
    # importing again keeps both, under a new id; export of the imported run round-trips
    again = archive.import_run_zip(io.BytesIO(data))
    assert again == f"{rid}-imported" and {r.run_id for r in registry.list_runs()} == {rid, again}
    assert sorted(_members(archive.export_run_zip(again))) == sorted(f"{again}/{f}" for f in archive.RUN_FILES)
    # a run trained by an older app (20 bootstrap resamples were allowed then) still imports
    cfg = json.loads(_members(data)[f"{rid}/config.json"])
    cfg["train_config"]["n_boot"] = 20
    old = _variant(exported, replace={"config.json": json.dumps(cfg).encode()})
    assert archive.import_run_zip(old).startswith(rid)


def _variant(exported, drop: str = "", add: dict[str, bytes] | None = None, replace: dict[str, bytes] | None = None,
             symlinks: tuple[str, ...] = ()) -> bytes:
    rid, data, _, _ = exported
    files = {k: v for k, v in _members(data).items() if not (drop and k.endswith("/" + drop))}
    for name, blob in (replace or {}).items():
        files[f"{rid}/{name}"] = blob
    files.update(add or {})
    return _rezip(files, tuple(f"{rid}/{s}" if "/" not in s else s for s in symlinks))


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _evil_pickle_weights(marker) -> bytes:
    buf = io.BytesIO()
    torch.save({"conv.weight": _Evil(str(marker))}, buf)
    return buf.getvalue()


def test_hostile_zips_are_refused_and_leave_nothing(exported, workspace, tmp_path):
    rid = exported[0]
    marker = tmp_path / "pwned"
    import joblib

    pickled = io.BytesIO()
    joblib.dump(_Evil(str(marker)), pickled)
    n_feat = len(exported[3].mean)
    bad_scaler = json.dumps({"mean": [0.0] * n_feat, "scale": [0.0] + [1.0] * (n_feat - 1)}).encode()
    short_scaler = json.dumps({"mean": [0.0], "scale": [1.0]}).encode()
    cases = {
        "zip-slip": (_variant(exported, add={f"{rid}/../../evil.txt": b"x"}), "outside its run folder"),
        "absolute": (_variant(exported, add={"/tmp/evil.txt": b"x"}), "absolute or unsafe path"),
        "backslash": (_variant(exported, add={f"{rid}\\..\\evil.txt": b"x"}), "absolute or unsafe path"),
        "symlink": (_variant(exported, symlinks=("history.csv",)), "symbolic link"),
        "pickle scaler": (_variant(exported, add={f"{rid}/scaler.joblib": pickled.getvalue()}),
                          "unexpected file 'scaler.joblib'"),
        "two folders": (_variant(exported, add={"other/config.json": b"{}"}), "more than one folder"),
        "nested": (_variant(exported, add={f"{rid}/sub/config.json": b"{}"}), "not a file of the run folder"),
        "missing": (_variant(exported, drop="model.pt"), "model.pt missing"),
        "code weights": (_variant(exported, replace={"model.pt": _evil_pickle_weights(marker)}),
                         "not a plain weights file"),
        "wrong weights": (_variant(exported, replace={"model.pt": _wrong_weights()}), "do not fit model cnn1d"),
        "huge model": (_variant(exported, replace={"config.json": _huge_config(exported)}), "out of range"),
        "zero scale": (_variant(exported, replace={"scaler.json": bad_scaler}), "must be finite"),
        "short scaler": (_variant(exported, replace={"scaler.json": short_scaler}), "has 1 channels but"),
        "nan json": (_variant(exported, replace={"scaler.json": b'{"mean": [NaN]}'}), "NaN is not allowed"),
        "bad json": (_variant(exported, replace={"config.json": b"{not json"}), "config.json in the zip is not valid"),
        "bad predictions": (_variant(exported, replace={"predictions.parquet": _bad_predictions()}),
                            "must have the columns"),
        "not a zip": (b"PK\x03\x04 nonsense", "not a zip archive"),
        "metrics shape": (_variant(exported, replace={"metrics.json": b'{"metrics": "x"}'}),
                          "'metrics' must be an object of metrics"),
        "history shape": (_variant(exported, replace={"history.csv": b"a,b\n1,2\n"}), "no 'epoch' column"),
    }
    for name, (blob, words) in cases.items():
        with pytest.raises(UserError, match=words.replace("(", r"\(")) as err:
            archive.import_run_zip(blob)
        assert err.value is not None, name
        _nothing_left(workspace)
    assert not marker.exists()  # neither the pickled scaler nor the pickled "weights" ran


def _wrong_weights() -> bytes:
    buf = io.BytesIO()
    torch.save({"conv.weight": torch.zeros(3, 3)}, buf)
    return buf.getvalue()


def _bad_predictions() -> bytes:
    buf = io.BytesIO()
    pd.DataFrame({"timestamp": pd.date_range("2024", periods=2, tz="UTC"), "y": [0, 1]}).to_parquet(buf)
    return buf.getvalue()


def test_size_limits_stop_zip_bombs(exported, workspace, monkeypatch):
    rid = exported[0]
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in _members(exported[1]).items():
            zf.writestr(name, data if not name.endswith("history.csv") else b"0" * 5_000_000)
    assert len(bomb.getvalue()) < 200_000  # small on the wire, 5 MB unpacked
    monkeypatch.setitem(archive.MAX_FILE_BYTES, "history.csv", 1_000_000)
    with pytest.raises(UserError, match="larger than the limit"):
        archive.import_run_zip(bomb.getvalue())
    # a header that lies about the size: reading still stops at the limit
    with zipfile.ZipFile(bomb) as zf:
        info = zf.getinfo(f"{rid}/history.csv")
        with pytest.raises(UserError, match="unpacks to more than"):
            archive._read_member(zf, info, 1_000_000)
    _nothing_left(workspace)


def test_cli_export_and_import(exported, workspace, tmp_path, capsys):
    from core.cli import main

    rid, data, _, _ = exported
    src = tmp_path / "in.zip"
    src.write_bytes(data)
    assert main(["archive", "import", str(src), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"run_id": rid}
    assert main(["archive", "export", rid, "exports/out.zip"]) == 0  # inside the workspace, like every output
    assert sorted(_members((workspace / "exports" / "out.zip").read_bytes())) == sorted(_members(data))
    capsys.readouterr()
    assert main(["archive", "export", rid, str(tmp_path / "out.zip")]) == 2
    assert "is outside the workspace" in capsys.readouterr().err and not (tmp_path / "out.zip").exists()
    assert main(["archive", "import", str(tmp_path / "nope.zip")]) == 2
    assert "there is no file" in capsys.readouterr().err


def _huge_config(exported) -> bytes:
    rid, data, _, _ = exported
    cfg = json.loads(_members(data)[f"{rid}/config.json"])
    cfg["model_config"] = {"width": 10**9}
    return json.dumps(cfg).encode()
