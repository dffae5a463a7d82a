"""The input contract: units -> volts, plausibility of undeclared units, marker values -> classes."""

from __future__ import annotations

import numpy as np
import pytest

from bcistream.data.contract import (
    MAX_MARKER_CHARS,
    MarkerMap,
    UnitError,
    check_plausible_volts,
    normalize_marker,
    require_plausible_volts,
    to_volts,
    volts_per_unit,
)
from bcistream.data.profiles import Profile, load_profile
from bcistream.errors import ProfileError


@pytest.mark.parametrize(("unit", "scale"), [
    ("V", 1.0), ("volts", 1.0), (" mV ", 1e-3), ("uV", 1e-6), ("µV", 1e-6), ("μV", 1e-6),
    ("microvolts", 1e-6), ("MICROVOLT", 1e-6), ("nV", 1e-9)])
def test_declared_units_scale_to_volts(unit, scale):
    assert volts_per_unit(unit) == scale
    x = np.array([[1.0, -2.0]], dtype=np.float32)
    out = to_volts(x, unit)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, x * scale, rtol=1e-7)


def test_unknown_unit_is_one_line_error():
    with pytest.raises(UnitError, match="unknown unit 'furlongs'"):
        volts_per_unit("furlongs")


def _eeg(scale, seed=0, shape=(22, 250)):
    return np.random.default_rng(seed).standard_normal(shape) * 20e-6 * scale


@pytest.mark.parametrize(("scale", "likely"), [(1e6, "microvolts"), (1e3, "millivolts"), (1e9, "nanovolts")])
def test_wrong_unit_is_refused_naming_the_likely_unit(scale, likely):
    verdict = check_plausible_volts(_eeg(scale), "LSL stream 'amp'", "set unit")
    assert not verdict.ok
    assert likely in verdict.message and "LSL stream 'amp'" in verdict.message
    assert "set unit" in verdict.message
    with pytest.raises(UnitError, match=likely):
        require_plausible_volts(_eeg(scale), "x", "fix")


def test_volts_eeg_with_dc_offset_is_plausible():
    x = _eeg(1.0) + 2e-3  # 2 mV DC offset of a referenced amplifier
    assert check_plausible_volts(x, "x", "fix").ok
    assert check_plausible_volts(_eeg(1.0)[None], "batch", "fix").ok  # (n, C, T) too


def test_too_small_is_refused_and_flat_is_left_to_flatness_checks():
    assert not check_plausible_volts(_eeg(1e-6), "x", "fix").ok
    assert check_plausible_volts(np.zeros((22, 100)), "x", "fix").ok


@pytest.mark.parametrize(("value", "text"), [
    ("left", "left"), ("  left ", "left"), (770, "770"), (np.int32(770), "770"), (770.0, "770"),
    (b"769", "769"), ("T1", "T1"), (np.array([771]), "771"), (1.5, "1.5")])
def test_normalize_marker(value, text):
    assert normalize_marker(value) == text


@pytest.mark.parametrize("value", [
    "", "   ", "a\x00b", "left\nright", "x" * (MAX_MARKER_CHARS + 1), float("nan"), True, None,
    b"\xff\xfe", object()])
def test_malformed_markers(value):
    assert normalize_marker(value) is None


def test_marker_map_codes_names_aliases_case():
    prof = load_profile()
    m = MarkerMap(prof.classes, {"T1": "left", "T2": "right"}, prof.unknown_cue, prof.reject_marker)
    for value in (769, "769", np.int32(769), "left", "LEFT", " left ", "t1", 769.0):
        r = m.map(value)
        assert (r.kind, r.label) == ("class", "left"), value
    assert m.map("772").label == "tongue"
    assert m.map("783").kind == "unknown-cue" and m.map("783").is_cue
    assert m.map("1023").kind == "reject" and not m.map("1023").is_cue
    for bad in ("elbow", "768", "lefty"):
        r = m.map(bad)
        assert r.kind == "unmapped" and r.label is None and not r.is_cue
    for bad in ("left\x00", "x" * 5000):
        r = m.map(bad)
        assert r.kind == "malformed" and r.label is None and len(r.text) <= 40


def test_marker_map_refuses_bad_aliases():
    with pytest.raises(ValueError, match="not a class"):
        MarkerMap({"1": "a", "2": "b"}, {"T1": "c"})
    with pytest.raises(ValueError, match="means both"):
        MarkerMap({"1": "a", "2": "b"}, {"A": "b"})


def test_profile_units_and_markers_fields():
    base = load_profile().to_dict()
    prof = Profile.from_dict({**base, "units": "microvolts", "markers": {"T1": "left"}})
    assert prof.volts_per_unit == 1e-6
    assert prof.marker_map.map("T1").label == "left"
    assert load_profile().volts_per_unit is None
    with pytest.raises(ProfileError, match="unknown unit"):
        Profile.from_dict({**base, "units": "furlongs"})
    with pytest.raises(ProfileError, match="not a class"):
        Profile.from_dict({**base, "markers": {"T1": "elbow"}})
