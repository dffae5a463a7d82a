"""`make_pipeline(info=...)` decodes the profile's EEG channels, never EOG ones (fresh-user trial):
the synthetic 2a files type their EOG channels ``eog``, and the picks follow the profile even when a
file types them ``eeg`` (the real 2a GDF files do)."""

from __future__ import annotations

import mne
import numpy as np
import pytest

import bcistream as bs
from bcistream.data.profiles import load_profile
from bcistream.data.synth import CHANNELS, channel_types, synthesize_session, write_dataset


def test_synthetic_files_type_eog_channels_eog(tmp_path):
    prof = load_profile(None)
    types = dict(zip(CHANNELS, channel_types(), strict=True))
    assert [c for c, t in types.items() if t == "eog"] == ["EOG-left", "EOG-central", "EOG-right"]
    assert sum(t == "eeg" for t in types.values()) == prof.n_channels
    write_dataset(tmp_path, subjects=1, seed=0, n_trials_per_class=2)
    raw = mne.io.read_raw_fif(tmp_path / "A01T_raw.fif", verbose="error")
    assert raw.get_channel_types() == channel_types()
    pipe = bs.make_pipeline(info=raw.info)
    got = pipe.named_steps["filter"].get_profile()
    assert got.channels == prof.channels and not any("EOG" in c for c in got.channels)


@pytest.mark.parametrize("eog_typed", ["eog", "eeg"])
def test_picks_follow_the_profile_whatever_the_file_types_say(eog_typed):
    raw = synthesize_session(1, "T", 0, n_trials_per_class=2)
    raw.set_channel_types({c: eog_typed for c in raw.ch_names if c.startswith("EOG")})
    for base in (None, "bci-iv-2a"):
        got = bs.make_pipeline(base, info=raw.info).named_steps["filter"].get_profile()
        assert got.channels == load_profile(None).channels  # 22, in the profile's order
        assert got.rename["EEG-Fz"] == "Fz" and "EOG-left" not in got.rename
    # the same channels the loader gives a recording of that file
    rec = bs.recording_from_raw(raw, load_profile(None))
    assert rec.data.shape[0] == got.n_channels


def test_other_montages_keep_their_eeg_channels():
    # A cap holding the 2a names among others is not a 2a file: every EEG channel is kept.
    names = [*load_profile(None).channels, "O1", "O2"]
    info = mne.create_info([*names, "HEOG"], 250.0, [*["eeg"] * len(names), "eog"])
    got = bs.make_pipeline(info=info).named_steps["filter"].get_profile()
    assert got.channels == tuple(names)
    info = mne.create_info(["C3", "Cz", "C4", "EOG1"], 250.0, ["eeg", "eeg", "eeg", "eog"])
    assert bs.make_pipeline(info=info).named_steps["filter"].get_profile().channels == ("C3", "Cz", "C4")
    # ... unless that profile is asked for by name: then it decides.
    got = bs.make_pipeline("bci-iv-2a", info=mne.create_info(names, 250.0, "eeg")).named_steps["filter"]
    assert got.get_profile().channels == load_profile(None).channels
    assert np.isfinite(got.fit().sos_).all()
