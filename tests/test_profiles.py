"""Dataset profiles: the built-in 2a profile, user TOML profiles and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from bcistream.data.profiles import Profile, load_profile
from bcistream.errors import ProfileError


def test_builtin_2a_profile_matches_the_dataset():
    prof = load_profile()
    assert prof.name == "bci-iv-2a"
    assert prof.n_channels == 22
    assert prof.channels[:3] == ("Fz", "FC3", "FC1")
    assert prof.channels[-1] == "POz"
    # EEG-Pz is Pz, not POz (a known mistake in public code).
    assert prof.rename["EEG-Pz"] == "Pz" and prof.rename["EEG-16"] == "POz"
    assert prof.sfreq == 250 and prof.window_samples == 750 and prof.offset_samples == 125
    assert prof.class_names == ("left", "right", "feet", "tongue")
    assert prof.classes["769"] == "left" and prof.classes["772"] == "tongue"
    assert prof.reject_marker == "1023" and prof.unknown_cue == "783"


def test_profile_round_trips_through_dict():
    prof = load_profile()
    assert Profile.from_dict(prof.to_dict()) == prof


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


VALID = """
name = "physionet-mi"
channels = ["C3", "Cz", "C4"]
sfreq = 160.0
band = [8.0, 30.0]
window_s = 2.0
offset_s = 0.0
[classes]
T1 = "left"
T2 = "right"
"""


def test_user_profile_from_toml(tmp_path):
    prof = load_profile(_write(tmp_path, VALID))
    assert prof.n_channels == 3 and prof.window_samples == 320
    assert prof.class_names == ("left", "right")


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (("sfreq = 160.0", "sfreq = -1"), "sfreq"),
        (("band = [8.0, 30.0]", "band = [8.0, 90.0]"), "band"),
        (('T2 = "right"', 'T2 = "left"'), "class names must be unique"),
        (('channels = ["C3", "Cz", "C4"]', 'channels = ["C3", "C3"]'), "channels must be unique"),
        (("window_s = 2.0", "window_s = 0"), "window_s"),
        (("offset_s = 0.0", "offset_s = 0.0\nbogus = 1"), "bogus"),
    ],
)
def test_invalid_profiles_get_one_line_errors(tmp_path, replace, message):
    path = _write(tmp_path, VALID.replace(*replace))
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    text = str(exc.value)
    assert message in text and str(path) in text and "\n" not in text


def test_unknown_profile_name_and_bad_toml(tmp_path):
    with pytest.raises(ProfileError, match="neither a built-in profile"):
        load_profile("no-such-profile")
    with pytest.raises(ProfileError, match="cannot read profile TOML"):
        load_profile(_write(tmp_path, "name = [unclosed"))


def test_check_compatible_names_every_difference(tmp_path):
    prof = load_profile()
    other = load_profile(_write(tmp_path, VALID))
    with pytest.raises(ProfileError) as exc:
        prof.check_compatible(other)
    assert "channels" in str(exc.value) and "sfreq" in str(exc.value) and "window" in str(exc.value)
    prof.check_compatible(load_profile())
