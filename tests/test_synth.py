"""The synthetic 2a generator: file layout, loader round trip, determinism, signal properties."""

from __future__ import annotations

from collections import Counter

import mne
import numpy as np
import pytest
from scipy.io import loadmat
from scipy.signal import welch

from bcistream.data.loader import find_subject_files, list_subjects, load_recording, read_raw
from bcistream.data.synth import CHANNELS, make_small_dataset, synthesize_session, write_dataset
from bcistream.errors import DataError
from bcistream.training.evaluation import evaluate_subject

REAL_2A_CHANNELS = (
    ["EEG-Fz"] + [f"EEG-{i}" for i in range(6)] + ["EEG-C3", "EEG-6", "EEG-Cz", "EEG-7", "EEG-C4"]
    + [f"EEG-{i}" for i in range(8, 15)] + ["EEG-Pz", "EEG-15", "EEG-16", "EOG-left", "EOG-central",
                                            "EOG-right"]
)
SF = 250


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One subject, 12 trials per class, FIF."""
    out = tmp_path_factory.mktemp("synth-small")
    paths = make_small_dataset(out, subjects=1, seed=0)
    return out, paths


@pytest.fixture(scope="module")
def session_t():
    """A 24-trials-per-class training session of a good subject (in memory)."""
    return synthesize_session(8, "T", 0, n_trials_per_class=24)


def _samples(raw, code):
    ann = raw.annotations
    return np.array([int(round(o * SF)) for o, d in zip(ann.onset, ann.description, strict=True)
                     if d == code])


def test_full_session_has_the_2a_layout():
    raw = synthesize_session(3, "T", 5)
    assert raw.ch_names == REAL_2A_CHANNELS == list(CHANNELS)
    assert raw.info["sfreq"] == SF
    # EOG channels typed eog (read_raw_gdf types all 25 eeg; the picks follow the profile either way)
    assert raw.get_channel_types() == ["eeg"] * 22 + ["eog"] * 3
    counts = Counter(raw.annotations.description)
    assert [counts[c] for c in ("769", "770", "771", "772")] == [72, 72, 72, 72]
    assert counts["768"] == 288 and counts["32766"] == 7  # session start + 6 runs
    assert counts["276"] == counts["277"] == counts["1072"] == 1
    assert 1 <= counts["1023"] <= 15
    # The EOG block comes before the first trial.
    assert max(_samples(raw, c)[0] for c in ("276", "277", "1072")) < _samples(raw, "768")[0]
    # Every cue 2 s after its trial start; rejections sit on a 768 sample, not on the cue.
    starts, cues = _samples(raw, "768"), np.sort(np.concatenate(
        [_samples(raw, c) for c in ("769", "770", "771", "772")]))
    np.testing.assert_array_equal(cues - starts, 2 * SF)
    assert set(_samples(raw, "1023")) <= set(starts)
    gaps = np.diff(starts)
    assert gaps.min() >= 7.5 * SF and len(set(gaps)) > 10  # jittered breaks
    data = raw.get_data()
    assert np.abs(data).max() < 100e-6 and 5e-6 < np.median(data.std(axis=1)) < 30e-6


def test_evaluation_session_uses_783_and_mat_labels_match(small):
    out, paths = small
    assert [p.name for p in paths] == ["A01T_raw.fif", "A01E_raw.fif", "A01E.mat"]
    labels = loadmat(out / "A01E.mat")["classlabel"]
    assert labels.shape == (48, 1) and sorted(Counter(labels.ravel()).values()) == [12] * 4
    raw_e = read_raw(out / "A01E_raw.fif")
    counts = Counter(raw_e.annotations.description)
    assert counts["783"] == 48 and not {"769", "770", "771", "772"} & set(counts)
    # The labels are the classes the generator used, in cue order (seen in the in-memory session).
    mem = synthesize_session(1, "E", 0, n_trials_per_class=12)
    assert mem.info["description"] == "labels:" + "".join(str(v) for v in labels.ravel())
    assert "labels" not in (raw_e.info["description"] or "")  # the file itself does not leak them


def test_loader_reads_synthetic_files_like_real_ones(small):
    out, _ = small
    assert list_subjects(out) == [1]
    files = find_subject_files(out, 1)
    train, ev = load_recording(files["T"]), load_recording(files["E"])
    assert train.data.shape[0] == 22 and train.profile.channels[7] == "C3"
    assert train.class_counts() == {"left": 12, "right": 12, "feet": 12, "tongue": 12}
    assert ev.class_counts() == {"left": 12, "right": 12, "feet": 12, "tongue": 12}
    assert any(c.rejected for c in train.cues) and any(c.rejected for c in ev.cues)
    assert train.n_missing == 0
    # The int16 file holds the in-memory session to within one quantisation step.
    mem = synthesize_session(1, "T", 0, n_trials_per_class=12)
    np.testing.assert_allclose(train.data[7], mem.get_data(picks=["EEG-C3"])[0], atol=4e-9)


def test_same_seed_same_data_other_seed_differs(tmp_path):
    a = make_small_dataset(tmp_path / "a", seed=3, n_trials_per_class=3)
    b = make_small_dataset(tmp_path / "b", seed=3, n_trials_per_class=3)
    c = make_small_dataset(tmp_path / "c", seed=4, n_trials_per_class=3)
    for pa, pb in zip(a[:2], b[:2], strict=True):
        ra, rb = read_raw(pa), read_raw(pb)
        np.testing.assert_array_equal(ra.get_data(), rb.get_data())
        np.testing.assert_array_equal(ra.annotations.onset, rb.annotations.onset)
        assert list(ra.annotations.description) == list(rb.annotations.description)
    np.testing.assert_array_equal(loadmat(a[2])["classlabel"], loadmat(b[2])["classlabel"])
    ra, rc = read_raw(a[0]), read_raw(c[0])
    assert ra.n_times != rc.n_times or not np.allclose(ra.get_data(), rc.get_data())


def test_edf_dataset_is_readable(tmp_path):
    paths = make_small_dataset(tmp_path, fmt="edf", n_trials_per_class=3)
    assert [p.name for p in paths] == ["A01T.edf", "A01E.edf", "A01E.mat"]
    files = find_subject_files(tmp_path, 1)
    ev = load_recording(files["E"])
    assert ev.class_counts() == {"left": 3, "right": 3, "feet": 3, "tongue": 3}
    raw = read_raw(files["T"])
    assert raw.ch_names == REAL_2A_CHANNELS and raw.info["sfreq"] == SF


def test_bad_arguments_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="fif.*edf"):
        write_dataset(tmp_path, subjects=1, fmt="gdf")
    with pytest.raises(DataError, match="session"):
        synthesize_session(1, "X", 0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        write_dataset(tmp_path / "file", subjects=1)


def _band_power(x, lo, hi):
    f, p = welch(x, SF, nperseg=250, axis=-1)
    return p[..., (f >= lo) & (f <= hi)].sum(-1)


def _trial_power(raw, channel, code, lo=8, hi=13):
    """Mu power of ``channel`` during imagery (cue +1..+4 s) over rest (cue -1.8..-0.2 s)."""
    x = raw.get_data(picks=[channel])[0]
    cues = _samples(raw, code)
    task = np.array([_band_power(x[c + SF : c + 4 * SF], lo, hi) for c in cues])
    rest = np.array([_band_power(x[c - 450 : c - 50], lo, hi) for c in cues])
    return float(np.median(task / rest))


def test_class_specific_erd_over_the_motor_cortex(session_t):
    # Right hand: mu drops over the left hemisphere (C3), much less over C4; left hand: the mirror.
    right_c3, right_c4 = _trial_power(session_t, "EEG-C3", "770"), _trial_power(session_t, "EEG-C4", "770")
    left_c3, left_c4 = _trial_power(session_t, "EEG-C3", "769"), _trial_power(session_t, "EEG-C4", "769")
    feet_cz = _trial_power(session_t, "EEG-Cz", "771")
    assert right_c3 < 0.7 and left_c4 < 0.7 and feet_cz < 0.8
    assert right_c3 < 0.75 * right_c4 and left_c4 < 0.75 * left_c3


def test_blinks_leak_frontally_and_line_noise_is_present(session_t):
    eog, fz, pz = session_t.get_data(picks=["EOG-central", "EEG-Fz", "EEG-Pz"])
    # Blinks are large positive EOG bumps; the share of them each EEG channel carries is the
    # regression slope on the EOG around blink peaks. It falls off from front to back.
    peaks = np.flatnonzero((eog[1:-1] > 40e-6) & (eog[1:-1] >= eog[:-2]) & (eog[1:-1] > eog[2:])) + 1
    assert len(peaks) > 20
    idx = (peaks[:, None] + np.arange(-50, 51)[None, :]).ravel()
    idx = idx[(idx >= 0) & (idx < eog.size)]
    e = eog[idx] - eog[idx].mean()

    def slope(x):
        return float(e @ (x[idx] - x[idx].mean()) / (e @ e))

    assert slope(fz) > 0.1 and slope(fz) > 4 * abs(slope(pz))
    # 50 Hz line noise: a narrow peak above the neighbouring spectrum in every channel.
    f, p = welch(session_t.get_data(), SF, nperseg=1000, axis=-1)
    peak = p[:, np.argmin(abs(f - 50))]
    neighbours = np.median(p[:, ((f > 40) & (f < 47)) | ((f > 53) & (f < 60))], axis=1)
    assert (peak > 5 * neighbours).all()


def test_default_pipeline_decodes_a_small_subject_above_chance_not_perfectly(tmp_path):
    make_small_dataset(tmp_path, subjects=1, seed=0, n_trials_per_class=24)
    # Subject 1 of seed 0 is a middling one (T->E ~0.75 with 72 trials per class).
    files = find_subject_files(tmp_path, 1)
    result = evaluate_subject(load_recording(files["T"]), load_recording(files["E"]), folds=4)
    assert 0.45 < result.accuracy < 0.98, result.accuracy
    assert result.kappa > 0.25
    assert result.confusion.shape == (4, 4) and (np.diag(result.confusion) > 0).all()


def test_write_dataset_reports_progress_per_session(tmp_path):
    seen = []
    paths = write_dataset(tmp_path, subjects=2, seed=1, progress=seen.append, n_trials_per_class=1)
    assert seen == ["wrote A01T", "wrote A01E", "wrote A02T", "wrote A02E"]
    assert len(paths) == 6 and all(p.exists() for p in paths)
    assert isinstance(read_raw(paths[0]), mne.io.BaseRaw)


def test_cli_synth_rejects_an_unknown_format_in_one_line(tmp_path, capsys):
    from bcistream.cli import main

    assert main(["synth", "--out", str(tmp_path), "--subjects", "1", "--format", "gdf"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "fif" in err and "\n" not in err
    assert not list(tmp_path.iterdir())


def test_synthetic_recording_in_memory_equals_the_written_files(tmp_path):
    from bcistream.data.loader import load_recording
    from bcistream.data.synth import synthetic_recording, write_dataset

    write_dataset(tmp_path, subjects=1, seed=5, n_trials_per_class=4)
    for session in ("T", "E"):
        mem = synthetic_recording(1, session, seed=5, n_trials_per_class=4)
        disk = load_recording(tmp_path / f"A01{session}_raw.fif")
        assert [(c.sample, c.label, c.rejected) for c in mem.cues] == [
            (c.sample, c.label, c.rejected) for c in disk.cues]
        assert all(c.label in ("left", "right", "feet", "tongue") for c in mem.cues)
        np.testing.assert_allclose(mem.data, disk.data, atol=5e-9)
