"""`BlockFilter` is the pipeline's IIR filter: equal to `scipy.signal.sosfilt` for every length."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from bcistream.decoders.blockfilter import BLOCK_MAX, BlockFilter


@pytest.mark.parametrize("n", [1, 7, BLOCK_MAX - 1, BLOCK_MAX, BLOCK_MAX + 1, 2 * BLOCK_MAX, 250, 1000])
def test_block_filter_equals_sosfilt_and_carries_state(n):
    sos = butter(4, [8, 30], btype="bandpass", fs=250.0, output="sos")
    bf = BlockFilter(sos)
    rng = np.random.default_rng(n)
    x = rng.standard_normal((12, n)) * 1e-5
    z = rng.standard_normal((12, bf.n_state)) * 1e-6
    y, zf = bf.apply(x, z)
    y_ref, zf_ref = sosfilt(sos, x, axis=-1, zi=bf.to_sosfilt(z))
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-18)
    np.testing.assert_allclose(zf, bf.from_sosfilt(zf_ref), rtol=0, atol=1e-18)
    if n == 1:
        return
    # Two calls with the state passed on equal one call over the whole signal.
    k = n // 2
    y1, z1 = bf.apply(x[:, :k], z)
    y2, z2 = bf.apply(x[:, k:], z1)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y_ref, rtol=0, atol=1e-18)
    np.testing.assert_allclose(z2, zf, rtol=0, atol=1e-18)
