"""make_pipeline's own profile (sfreq/ch_names/classes) is refused in one line naming the field."""

from __future__ import annotations

import pytest

from bcistream.errors import ProfileError
from bcistream.pipeline.factory import make_pipeline


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"sfreq": -1, "ch_names": ["C3", "C4"], "classes": ["a", "b"]}, "sfreq"),
    ({"sfreq": 250, "ch_names": ["C3", "C4"], "classes": ["left"]}, "classes"),
])
def test_bad_profile_fields_are_one_line(kwargs, field):
    with pytest.raises(ProfileError) as err:
        make_pipeline(**kwargs)
    text = str(err.value)
    assert text.startswith(f"make_pipeline (sfreq/ch_names): invalid profile field '{field}'")
    assert "\n" not in text and "pydantic" not in text
