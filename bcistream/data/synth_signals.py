"""Signal building blocks of the synthetic motor-imagery generator (pure numpy, no I/O).

Everything here is vectorised over sources/channels and works in the frequency domain where it
can (one inverse FFT per batch of sources), so a 40-minute, 25-channel session takes well under a
second. Amplitudes are in volts.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy.signal import fftconvolve

__all__ = [
    "EEG_POSITIONS",
    "blink_train",
    "erd_kernel",
    "mixing_matrix",
    "pink_noise",
    "rhythm",
    "slow_envelope",
]

#: Scalp positions (cm, azimuthal equidistant projection from the vertex; x right, y front) of the
#: 22 EEG channels of BCI IV 2a, computed from MNE's ``standard_1020`` montage. Hard-coded so the
#: generator needs no montage look-up (and no deprecation warnings) at run time.
EEG_POSITIONS: dict[str, tuple[float, float]] = {
    "Fz": (0.0, 7.1), "FC3": (-7.9, 3.0), "FC1": (-3.9, 3.0), "FCz": (0.0, 3.0),
    "FC2": (4.0, 3.0), "FC4": (8.1, 3.1), "C5": (-12.0, -2.0), "C3": (-7.8, -1.4),
    "C1": (-3.8, -1.0), "Cz": (0.0, -0.9), "C2": (4.0, -1.0), "C4": (8.0, -1.3),
    "C6": (12.1, -1.9), "CP3": (-7.0, -5.2), "CP1": (-3.4, -4.5), "CPz": (0.0, -4.4),
    "CP2": (3.7, -4.5), "CP4": (7.2, -5.1), "P1": (-2.8, -7.9), "Pz": (0.0, -7.7),
    "P2": (3.1, -7.8), "POz": (0.0, -11.0),
}
#: Where blinks and eye movements come from (Fpz in the same projection).
FPZ = (0.0, 15.7)


def _spectrum(
    rng: np.random.Generator, n_signals: int, n_times: int, fmax: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Complex white spectra (n_signals, n_freqs), their frequencies (cycles/sample) and FFT size.

    Only bins up to ``fmax`` (cycles/sample) are drawn, the rest stay zero: band-limited signals
    need far fewer random numbers. Single precision halves the time of the dominant costs (random
    numbers and inverse FFTs) and is far below the int16 resolution of the files.
    """
    nfft = sfft.next_fast_len(n_times, real=True)
    nf = nfft // 2 + 1
    k = min(nf, int(np.ceil(fmax * nfft)) + 1)
    spec = np.zeros((n_signals, nf), dtype=np.complex64)
    spec.real[:, :k] = rng.standard_normal((n_signals, k), dtype=np.float32)
    spec.imag[:, :k] = rng.standard_normal((n_signals, k), dtype=np.float32)
    return spec, np.fft.rfftfreq(nfft).astype(np.float32), nfft


def _shape(spec: np.ndarray, gain: np.ndarray, nfft: int, n_times: int) -> np.ndarray:
    """Apply per-signal amplitude responses, go back to time, normalise each signal to unit RMS."""
    spec *= gain.astype(np.float32)
    out = sfft.irfft(spec, n=nfft, axis=-1, workers=1)[:, :n_times]
    out /= out.std(axis=1, keepdims=True) + 1e-30
    return out


def pink_noise(
    rng: np.random.Generator, n_signals: int, n_times: int, sfreq: float,
    exponent: float | np.ndarray = 1.0, band: tuple[float, float] = (0.5, 100.0), floor: float = 0.0,
) -> np.ndarray:
    """Unit-RMS noise with a ``1/f**exponent`` power spectrum inside ``band`` (Hz).

    ``floor`` adds a white part (amplitude relative to the 1/f part at 1 Hz): sensor noise.
    """
    spec, f, nfft = _spectrum(rng, n_signals, n_times, fmax=band[1] / sfreq)
    hz = f * sfreq
    expo = np.broadcast_to(np.asarray(exponent, dtype=np.float32), (n_signals,))[:, None]
    inside = (hz >= band[0]) & (hz <= band[1])
    gain = np.where(inside, np.maximum(hz, band[0]) ** (-expo / 2) + floor, 0.0)
    return _shape(spec, gain, nfft, n_times)


def rhythm(
    rng: np.random.Generator, n_times: int, sfreq: float, peaks: np.ndarray, widths: np.ndarray,
) -> np.ndarray:
    """Unit-RMS narrow-band oscillations (Gaussian spectral peaks), one per row of ``peaks`` (Hz)."""
    peaks = np.asarray(peaks, dtype=float)[:, None]
    widths = np.asarray(widths, dtype=float)[:, None]
    top = float((peaks + 5 * widths).max())
    spec, f, nfft = _spectrum(rng, peaks.shape[0], n_times, fmax=min(0.5, top / sfreq))
    gain = np.exp(-0.5 * ((f * sfreq - peaks) / widths) ** 2)
    return _shape(spec, gain, nfft, n_times)


def slow_envelope(
    rng: np.random.Generator, n_signals: int, n_times: int, sfreq: float, depth: float | np.ndarray,
    cutoff: float = 0.4,
) -> np.ndarray:
    """Positive amplitude modulation ``exp(depth * g)``, g a unit-RMS noise below ``cutoff`` Hz.

    The waxing and waning of spontaneous rhythms: it makes trial power vary for reasons that have
    nothing to do with the class, which is what limits decoding accuracy in real data. Drawn at
    10 Hz and interpolated (it has no fast content).
    """
    step = max(1, int(sfreq // 10))
    n_low = n_times // step + 2
    spec, f, nfft = _spectrum(rng, n_signals, n_low)
    gain = np.exp(-0.5 * (f * (sfreq / step) / cutoff) ** 2)
    gain[0] = 0.0
    g_low = _shape(spec, gain[None, :], nfft, n_low)
    t = np.arange(n_times) / step
    g = np.stack([np.interp(t, np.arange(n_low), row) for row in g_low])
    depth = np.broadcast_to(np.asarray(depth, dtype=float), (n_signals,))[:, None]
    return np.exp(depth * g - 0.5 * depth**2)


def erd_kernel(sfreq: float, rebound: float = 0.0) -> np.ndarray:
    """Time course of an ERD after a cue (0 → 1 → 0), starting at the cue sample.

    Desynchronisation sets in 0.3–1.3 s after the cue (raised cosine), holds until the end of
    imagery (4 s after the cue) and recovers within 1 s. ``rebound`` > 0 adds a post-imagery
    synchronisation (negative values, i.e. power above baseline), as beta shows.
    """
    t = np.arange(int(round(6.0 * sfreq))) / sfreq

    def ramp(a: float, b: float) -> np.ndarray:
        x = np.clip((t - a) / (b - a), 0.0, 1.0)
        return 0.5 - 0.5 * np.cos(np.pi * x)

    k = ramp(0.3, 1.3) - ramp(4.0, 5.0)
    if rebound:
        k -= rebound * np.exp(-0.5 * ((t - 4.9) / 0.35) ** 2)
    return k


def event_course(n_times: int, samples: np.ndarray, weights: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Sum of ``kernel`` placed at ``samples`` with per-event ``weights`` (n_signals, n_events)."""
    weights = np.atleast_2d(weights)
    impulses = np.zeros((weights.shape[0], n_times))
    impulses[:, samples] = weights
    return fftconvolve(impulses, kernel[None, :], axes=1)[:, :n_times]


def mixing_matrix(
    positions: np.ndarray, sources: np.ndarray, spread: np.ndarray,
) -> np.ndarray:
    """Gaussian fall-off of each source over the scalp: (n_channels, n_sources), peak 1.

    Parameters
    ----------
    positions : ndarray, shape (n_channels, 2)
        Channel positions (cm).
    sources : ndarray, shape (n_sources, 2)
        Source positions projected on the scalp (cm).
    spread : ndarray, shape (n_sources,)
        Gaussian width (cm) of each source's scalp projection.
    """
    d2 = ((positions[:, None, :] - sources[None, :, :]) ** 2).sum(-1)
    return np.exp(-0.5 * d2 / np.asarray(spread, dtype=float)[None, :] ** 2)


def blink_train(
    rng: np.random.Generator, n_times: int, sfreq: float, rate: np.ndarray, amplitude: float,
) -> np.ndarray:
    """Eye blinks: positive bumps (~0.3 s) at Poisson times with a time-varying ``rate`` (per s).

    Returns the vertical EOG trace (volts) of one session.
    """
    times = np.flatnonzero(rng.random(n_times) < rate / sfreq)
    amps = amplitude * rng.lognormal(0.0, 0.25, times.size)
    width = rng.uniform(0.05, 0.08, times.size)
    t = np.arange(-int(0.4 * sfreq), int(0.4 * sfreq) + 1) / sfreq
    out = np.zeros(n_times + 2 * (t.size // 2) + 1)
    for start, a, w in zip(times, amps, width, strict=True):  # a few hundred per session
        out[start : start + t.size] += a * np.exp(-0.5 * (t / w) ** 2)
    return out[t.size // 2 : t.size // 2 + n_times]
