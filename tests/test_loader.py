"""BCI IV 2a loader on the GDF fixtures: channels, class mapping by description, E labels, rejects."""

from __future__ import annotations

import shutil

import mne
import numpy as np
import pytest

from bcistream.data.loader import find_subject_files, list_subjects, load_recording, read_labels_mat
from bcistream.data.profiles import load_profile
from bcistream.errors import DataError

EXPECTED_T = [("left", False), ("right", False), ("feet", True), ("tongue", False), ("right", False),
              ("left", False)]


def test_training_file_channels_rate_and_units(fixtures_dir):
    rec = load_recording(fixtures_dir / "A99T-synthetic.gdf")
    assert rec.data.shape == (22, 15000)
    assert rec.sfreq == 250
    assert rec.profile.channels[7] == "C3"
    # Volts, within +-100 uV; EOG channels are not among the decoded ones.
    finite = rec.data[np.isfinite(rec.data)]
    assert np.abs(finite).max() < 100e-6
    raw = mne.io.read_raw_gdf(fixtures_dir / "A99T-synthetic.gdf", preload=True, verbose="error")
    np.testing.assert_array_equal(rec.data[7, :2000], raw.get_data(picks=["EEG-C3"])[0, :2000])


def test_cues_mapped_by_description_and_rejected_trial(fixtures_dir):
    rec = load_recording(fixtures_dir / "A99T-synthetic.gdf")
    assert [(c.label, c.rejected) for c in rec.cues] == EXPECTED_T
    # Cues 2 s after each trial start (7.5 s apart, first trial at 12 s).
    assert [c.sample for c in rec.cues] == [3500, 5375, 7250, 9125, 11000, 12875]


def test_a04t_style_file_gets_the_same_labels(fixtures_dir):
    """No 276/277 events: events_from_annotations gives the cues ids 5-8, not 7-10."""
    raw = mne.io.read_raw_gdf(fixtures_dir / "A98T-synthetic-noEOG.gdf", verbose="error")
    _, ids = mne.events_from_annotations(raw, verbose="error")
    assert ids["769"] == 5  # the trap: hard-coded ids would mislabel this file
    rec = load_recording(fixtures_dir / "A98T-synthetic-noEOG.gdf")
    assert [(c.label, c.rejected) for c in rec.cues] == EXPECTED_T


def test_evaluation_labels_from_mat_in_cue_order(fixtures_dir):
    rec = load_recording(fixtures_dir / "A99E-synthetic.gdf")
    assert [c.label for c in rec.cues] == ["left", "right", "feet", "tongue", "right", "left"]
    assert read_labels_mat(fixtures_dir / "A99E.mat", load_profile()) == [
        "left", "right", "feet", "tongue", "right", "left"]


def test_evaluation_without_label_file_is_unlabelled(tmp_path, fixtures_dir):
    shutil.copy(fixtures_dir / "A99E-synthetic.gdf", tmp_path)
    rec = load_recording(tmp_path / "A99E-synthetic.gdf")
    assert len(rec.cues) == 6 and all(c.label is None for c in rec.cues)
    assert rec.class_counts() == {"unknown": 6}


def test_label_count_mismatch_is_an_error(tmp_path, fixtures_dir):
    from scipy.io import savemat

    savemat(tmp_path / "bad.mat", {"classlabel": np.array([[1], [2]])})
    with pytest.raises(DataError, match="2 labels but .* has 6 cues of unknown class"):
        load_recording(fixtures_dir / "A99E-synthetic.gdf", labels=tmp_path / "bad.mat")


def test_missing_stretch_becomes_nan(fixtures_dir):
    rec = load_recording(fixtures_dir / "A99T-synthetic.gdf")
    gone = np.isnan(rec.data).any(axis=0)
    assert gone.sum() == 100 and gone[2750:2850].all()
    assert np.isnan(rec.data[:, 2750:2850]).all()
    assert rec.n_missing == 100


def test_find_subject_files(tmp_path, fixtures_dir):
    shutil.copy(fixtures_dir / "A99T-synthetic.gdf", tmp_path / "A07T.gdf")
    shutil.copy(fixtures_dir / "A99E-synthetic.gdf", tmp_path / "A07E.gdf")
    found = find_subject_files(tmp_path, 7)
    assert found == {"T": tmp_path / "A07T.gdf", "E": tmp_path / "A07E.gdf"}
    assert list_subjects(tmp_path) == [7]
    with pytest.raises(DataError, match="no training recording A03T"):
        find_subject_files(tmp_path, 3)
    with pytest.raises(DataError, match="no such folder"):
        find_subject_files(tmp_path / "nope", 1)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ecg-1ch.gdf", "lacks 22 of the 22 channels"),
        ("missing.gdf", "no such file"),
    ],
)
def test_bad_files_get_clear_errors(fixtures_dir, name, message):
    with pytest.raises(DataError, match=message):
        load_recording(fixtures_dir / name)


def test_truncated_and_garbage_files(tmp_path, fixtures_dir):
    data = (fixtures_dir / "A99T-synthetic.gdf").read_bytes()
    (tmp_path / "trunc.gdf").write_bytes(data[:100_000])
    with pytest.raises(DataError, match="trunc.gdf: MNE cannot read this file"):
        load_recording(tmp_path / "trunc.gdf")
    (tmp_path / "junk.edf").write_bytes(b"not an edf file at all" * 10)
    with pytest.raises(DataError, match="junk.edf: MNE cannot read"):
        load_recording(tmp_path / "junk.edf")


def test_wrong_rate_is_refused(tmp_path, fixtures_dir):
    raw = mne.io.read_raw_gdf(fixtures_dir / "A99T-synthetic.gdf", preload=True, verbose="error")
    raw.resample(125, verbose="error")
    raw.save(tmp_path / "A01T_raw.fif", verbose="error")
    with pytest.raises(DataError, match="sampling rate 125 Hz, profile 'bci-iv-2a' expects 250 Hz"):
        load_recording(tmp_path / "A01T_raw.fif")
