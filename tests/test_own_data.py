"""Your own recordings: XDF, BIDS, numbered runs, MOABB and the 2a folder through the same commands."""

from __future__ import annotations

import numpy as np
import pytest

from bcistream.cli import main
from bcistream.data.loader import load_recording, recording_from_raw
from bcistream.data.profiles import load_profile
from bcistream.errors import DataError
from tests.own_data import RIG_PROFILE, rig_session, write_bids, write_runs, write_xdf_sessions
from tests.xdf_writer import xdf_from_raw


@pytest.fixture
def rig(tmp_path):
    path = tmp_path / "my-rig.toml"
    path.write_text(RIG_PROFILE)
    return load_profile(path), path


def _cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------------------------------------- XDF
def test_xdf_samples_rate_cues_and_units(tmp_path, rig):
    prof, _ = rig
    raw = rig_session("T")
    ref = recording_from_raw(raw.copy(), prof)
    # EEG written in microvolts on a clock 0.75 s behind the markers' (pyxdf applies the offset).
    path = xdf_from_raw(tmp_path / "s.xdf", raw, unit="microvolts", scale=1e6, clock_offset=0.75)
    rec = load_recording(path, prof)
    assert rec.sfreq == 250 and rec.data.shape == ref.data.shape
    np.testing.assert_allclose(rec.data, ref.data, atol=1e-11)  # volts again (float32 on disk)
    assert [(c.sample, c.label) for c in rec.cues] == [(c.sample, c.label) for c in ref.cues]
    assert rec.class_counts() == {"left": 12, "right": 12}


def test_xdf_units_declared_in_millivolts_are_scaled(tmp_path, rig):
    prof, _ = rig
    raw = rig_session("T")
    rec = load_recording(xdf_from_raw(tmp_path / "mv.xdf", raw, unit="mV", scale=1e3), prof)
    np.testing.assert_allclose(rec.data, raw.get_data(), atol=1e-10)


def test_xdf_undeclared_microvolts_refused_by_the_contract(tmp_path, rig):
    prof, _ = rig
    path = xdf_from_raw(tmp_path / "nounit.xdf", rig_session("T"), unit="", scale=1e6)
    with pytest.raises(DataError, match="declare the unit"):
        load_recording(path, prof)
    # Declared in the profile instead: accepted and scaled.
    declared = prof.model_copy(update={"units": "microvolts"})
    assert abs(load_recording(path, declared).data).max() < 1e-3


def test_xdf_without_footer_is_a_reader_warning(tmp_path, rig):
    prof, _ = rig
    path = xdf_from_raw(tmp_path / "cut.xdf", rig_session("T"), footer=False)
    with pytest.raises(DataError, match="no footer.*--allow-warnings"):
        load_recording(path, prof)
    rec = load_recording(path, prof, allow_warnings=True)
    assert any("footer" in n for n in rec.notes)


def test_xdf_truncated_mid_chunk_refused(tmp_path, rig):
    prof, _ = rig
    path = xdf_from_raw(tmp_path / "full.xdf", rig_session("T"))
    data = path.read_bytes()
    cut = tmp_path / "half.xdf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="half.xdf: pyxdf warns"):
        load_recording(cut, prof)


# ------------------------------------------------------------------------------------ same commands
def _layouts(tmp_path):
    runs = write_runs(tmp_path / "runs")
    xdf = write_xdf_sessions(tmp_path / "xdf")
    bids = write_bids(tmp_path / "bids")
    return {
        "runs": ["--train", str(tmp_path / "runs" / "S001R0[12].edf"),
                 "--test", str(tmp_path / "runs" / "S001R0[34].edf")],
        "xdf": ["--train", str(xdf["T"]), "--test", str(xdf["E"])],
        "bids": ["--data", str(bids), "--train", "ses-T", "--test", "ses-E"],
    }, runs


def test_every_layout_evaluates_and_trains_through_the_same_commands(tmp_path, rig, capsys, monkeypatch):
    _, profile_path = rig
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("BCISTREAM_WANDB_MODE", "disabled")
    layouts, runs = _layouts(tmp_path)
    labels = {"runs": "S001", "xdf": "rig_T", "bids": "sub-01"}
    for layout, args in layouts.items():
        code, out, err = _cli(["evaluate", *args, "--profile", str(profile_path), "--folds", "3"], capsys)
        assert code == 0, (layout, err)
        row = next(line for line in out.splitlines() if line.startswith("│") and labels[layout] in line)
        acc = float(row.split("│")[2])
        assert acc > 0.7, (layout, row)  # the synthetic rhythm is learnable from 3 channels
        code, out, err = _cli(["train", *args, "--profile", str(profile_path), "--folds", "3",
                               "--min-trials", "10"], capsys)
        assert code == 0, (layout, err)
        assert f"bcistream-{labels[layout]} v1: promoted" in out, out
    # Two runs joined: the training data has both runs' cues, separated by one missing sample.
    code, out, _ = _cli(["info", *layouts["runs"], "--profile", str(profile_path)], capsys)
    assert code == 0
    assert "S001R01.edf" in out and "S001R04.edf" in out and "S001 test" in out
    assert "missing samples: 1" in out


def test_2a_fixtures_through_the_new_options(fixtures_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    code, out, err = _cli(["info", "--train", str(fixtures_dir / "A99T-synthetic.gdf"),
                           "--test", str(fixtures_dir / "A99E-synthetic.gdf")], capsys)
    assert code == 0, err
    assert "A99T-synthetic.gdf" in out and "A99E-synthetic.gdf" in out and "matches" not in err


def test_moabb_fake_dataset(tmp_path, capsys, monkeypatch):
    pytest.importorskip("moabb")  # the optional extra; installed in the test environment
    # Nothing may download: MNE/MOABB look in an empty temp cache, config in a fake home.
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "mne_data"))
    monkeypatch.setenv("_MNE_FAKE_HOME_DIR", str(tmp_path / "mnehome"))
    monkeypatch.setenv("MOABB_DOWNLOAD_PROVIDER", "upstream")
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("BCISTREAM_WANDB_MODE", "disabled")
    # FakeDataset's cues come every ~2 s but its interval is 3 s: the derived profile is refused
    # in one line, and a profile with a shorter window fits.
    code, _, err = _cli(["evaluate", "--data", "moabb:FakeDataset", "--subject", "1"], capsys)
    assert code == 2 and "longer than the trial" in err and err.count("\n") == 1
    fake = tmp_path / "fake.toml"
    fake.write_text('name = "fake"\nchannels = ["C3", "Cz", "C4"]\nsfreq = 128.0\nwindow_s = 1.5\n'
                    'offset_s = 0.25\n[classes]\nfake1 = "fake1"\nfake2 = "fake2"\nfake3 = "fake3"\n')
    code, out, err = _cli(["evaluate", "--data", "moabb:FakeDataset", "--subject", "1", "--folds", "3",
                           "--profile", str(fake)], capsys)
    assert code == 0, err
    assert "FakeDataset-01" in out
    code, out, err = _cli(["train", "--data", "moabb:FakeDataset", "--subject", "1", "--folds", "3",
                           "--no-promote", "--profile", str(fake)], capsys)
    assert code == 0, err
    assert "bcistream-FakeDataset-01 v1" in out


def test_moabb_uncached_dataset_refused_without_download(tmp_path, capsys, monkeypatch):
    pytest.importorskip("moabb")
    monkeypatch.setenv("MNE_DATA", str(tmp_path / "mne_data"))
    monkeypatch.setenv("MNE_DATASETS_BNCI_PATH", str(tmp_path / "mne_data"))
    monkeypatch.setenv("_MNE_FAKE_HOME_DIR", str(tmp_path / "mnehome"))
    monkeypatch.setenv("MOABB_DOWNLOAD_PROVIDER", "upstream")
    argv = ["evaluate", "--data", "moabb:BNCI2014_001", "--subject", "1", "--profile", "bci-iv-2a"]
    code, _, err = _cli(argv, capsys)  # no cache folder at all
    assert code == 2
    assert "MOABB's cache" in err and "never downloads" in err and err.count("\n") == 1
    (tmp_path / "mne_data").mkdir()  # an empty cache: the download is refused, not attempted
    code, _, err = _cli(argv, capsys)
    assert code == 2
    assert "not in MOABB's cache" in err and "never downloads" in err and err.count("\n") == 1
    assert not any((tmp_path / "mne_data").rglob("*.mat"))
