"""Files that are not what they claim: truncated, flat, non-finite, mixed rates; bad --set early."""

from __future__ import annotations

import numpy as np
import pytest

from bcistream.cli import main
from bcistream.data.loader import load_recording
from bcistream.data.profiles import load_profile
from bcistream.errors import DataError
from tests.own_data import RIG_PROFILE, rig_session, write_edf


def _cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def rig(tmp_path):
    path = tmp_path / "my-rig.toml"
    path.write_text(RIG_PROFILE)
    return load_profile(path), path


def test_mixed_rate_edf_is_read_at_the_eeg_rate(tmp_path, rig):
    import edfio

    prof, _ = rig
    raw = rig_session("T", n_trials_per_class=4)
    n = raw.n_times - raw.n_times % 250
    signals = [edfio.EdfSignal(raw.get_data(picks=[ch])[0, :n] * 1e6, sampling_frequency=250, label=ch,
                               physical_dimension="uV") for ch in raw.ch_names]
    signals.append(edfio.EdfSignal(np.sin(np.arange(2 * n) / 10.0), sampling_frequency=500, label="ACC",
                                   physical_dimension="g"))
    path = tmp_path / "mixed.edf"
    edfio.Edf(signals, data_record_duration=1).write(path)
    rec = load_recording(path, prof)  # without `include`, MNE would resample all to 500 Hz
    assert rec.sfreq == 250 and rec.n_samples == n
    np.testing.assert_allclose(rec.data, raw.get_data()[:, :n], atol=1e-8)


def test_eeg_channels_at_mixed_rates_refused_in_one_line(tmp_path, rig):
    import edfio

    prof, _ = rig
    sig = [edfio.EdfSignal(np.random.default_rng(0).normal(0, 10, 250 * 20 * (2 if ch == "C4" else 1)),
                           sampling_frequency=500 if ch == "C4" else 250, label=ch, physical_dimension="uV")
           for ch in ("C3", "Cz", "C4")]
    path = tmp_path / "eegmixed.edf"
    edfio.Edf(sig, data_record_duration=1).write(path)
    with pytest.raises(DataError, match="mixes sampling rates.*C4 500 Hz"):
        load_recording(path, prof)


@pytest.mark.parametrize("keep", [0.5, "minus1"])
def test_truncated_edf_refused_and_info_shows_the_warning(tmp_path, rig, capsys, keep):
    prof, profile_path = rig
    full = write_edf(rig_session("T", n_trials_per_class=4), tmp_path / "full.edf")
    data = full.read_bytes()
    cut = tmp_path / "cut.edf"
    cut.write_bytes(data[: int(len(data) * keep)] if keep != "minus1" else data[:-1])
    with pytest.raises(DataError, match="cut.edf: MNE warns: Number of records"):
        load_recording(cut, prof)
    code, out, err = _cli(["info", str(cut), "--profile", str(profile_path)], capsys)
    assert code == 2 and "reader warning" in out
    assert err.startswith("error: ") and err.count("\n") == 1 and "does not match" in err
    code, _, err = _cli(["evaluate", "--train", str(cut), "--profile", str(profile_path)], capsys)
    assert code == 2 and "--allow-warnings" in err and err.count("\n") == 1
    rec = load_recording(cut, prof, allow_warnings=True)
    assert rec.notes and "Number of records" in rec.notes[0]


@pytest.mark.parametrize(("fill", "message"), [
    ("zero", "flat signal (constant, e.g. all zero) in all channels: C3, Cz, C4"),
    ("one-flat", "flat signal (constant, e.g. all zero) in 1 of 3 channels: Cz"),
    ("inf", "infinite values in channel(s) C4"),
])
def test_flat_or_non_finite_recording_refused_in_one_line(tmp_path, rig, capsys, fill, message):
    import mne

    _, profile_path = rig
    raw = rig_session("T", n_trials_per_class=4)
    data = raw.get_data()
    if fill == "zero":
        data[:] = 0.0
    elif fill == "one-flat":
        data[1] = 0.0
    else:
        data[2, 100] = np.inf
    bad = mne.io.RawArray(data, raw.info, verbose="error")
    bad.set_annotations(raw.annotations)
    path = tmp_path / "bad.fif"
    bad.save(path, verbose="error")
    for cmd in ("evaluate", "train"):
        code, _, err = _cli([cmd, "--train", str(path), "--profile", str(profile_path)], capsys)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert "bad.fif" in err and message in err


@pytest.mark.parametrize(("setting", "message"), [
    ("n_components=99", "must be <= the 3 channels of profile 'my-rig'"),
    ("n_components=0", "n_components must be >= 1"),
    ("kernel=poly", "kernel must be one of linear, rbf"),
    ("C=-1", "C must be > 0"),
    ("h_freq=200", "below half the rate"),
    ("l_freq=30", "l_freq=30 must be below h_freq=30"),
    ("gamma=0.1", "gamma=0.1 applies to kernel=rbf only"),
    ("bogus=1", "unknown parameter 'bogus'"),
])
def test_bad_set_fails_in_one_line_before_anything_is_written(tmp_path, rig, capsys, monkeypatch, setting,
                                                               message):
    _, profile_path = rig
    home = tmp_path / "home"
    monkeypatch.setenv("BCISTREAM_HOME", str(home))
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("BCISTREAM_WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    path = write_edf(rig_session("T", n_trials_per_class=4), tmp_path / "S1.edf")
    for cmd in ("evaluate", "train", "tune"):
        code, _, err = _cli([cmd, "--train", str(path), "--profile", str(profile_path), "--set", setting],
                            capsys)
        assert code == 2, (cmd, err)
        assert message in err and err.startswith("error: ") and err.count("\n") == 1
    # Nothing was created: no registry, no run folder, no W&B run, no study.
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "wandb").exists()
    assert not home.exists() or not any(home.rglob("*"))


def test_default_n_components_fits_small_montages():
    from bcistream.pipeline.factory import default_n_components, make_pipeline

    assert [default_n_components(n) for n in (1, 2, 3, 4, 5, 6, 22)] == [1, 2, 2, 4, 4, 6, 6]
    prof = load_profile(None).model_copy(update={"channels": ("C3", "Cz", "C4"), "rename": {}})
    assert make_pipeline(prof).named_steps["csp"].n_components == 2


@pytest.mark.parametrize("case", ["truncated-edf", "undeclared-uv-xdf", "two-bad-files"])
def test_info_on_files_the_profile_refuses_is_one_error_line_exit_2(tmp_path, rig, capsys, case):
    from tests.xdf_writer import xdf_from_raw

    _, profile_path = rig
    raw = rig_session("T", n_trials_per_class=4)
    cut = tmp_path / "cut.edf"
    cut.write_bytes(write_edf(raw, tmp_path / "full.edf").read_bytes()[:-1])
    xdf = xdf_from_raw(tmp_path / "undeclared.xdf", raw, unit="")  # µV values, no unit declared
    files = {"truncated-edf": [cut], "undeclared-uv-xdf": [xdf], "two-bad-files": [cut, xdf]}[case]
    code, _, err = _cli(["info", *map(str, files), "--profile", str(profile_path)], capsys)
    assert code == 2, err
    assert err.startswith("error: profile 'my-rig' does not match") and err.count("\n") == 1, err


def test_info_lists_cues_per_class_in_profile_order(tmp_path, capsys):
    # A profile whose class order is not alphabetical: right before left.
    path = tmp_path / "rl.toml"
    path.write_text(RIG_PROFILE.replace('left = "left"\nright = "right"', 'right = "right"\nleft = "left"'))
    assert list(load_profile(path).class_names) == ["right", "left"]
    edf = write_edf(rig_session("T", n_trials_per_class=4), tmp_path / "run.edf")
    code, out, err = _cli(["info", str(edf), "--profile", str(path)], capsys)
    assert code == 0, err
    assert "cues per class: {'right': 4, 'left': 4}" in out
    row = next(ln for ln in out.splitlines() if "run.edf" in ln and "right" in ln)
    assert row.index("right: 4") < row.index("left: 4")
