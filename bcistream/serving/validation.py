"""Validation of what a caller sends the service: raw trials, feature vectors, rates, .npy uploads.

Kept apart from `bcistream.serving.compute` (decoding with one fitted model) so the rules for
user input live in one place, without HTTP and without a model: every check raises
`RequestError` with a one-line message that names the problem and the status it maps to (400 for
bad content, 409 for a model version the service does not hold), samples are brought to volts
through the input contract (`bcistream.data.contract`), and .npy uploads are parsed without
unpickling or trusting the header's size.
"""

from __future__ import annotations

import io
import math
import numbers
from typing import Any, BinaryIO

import numpy as np

from bcistream.data.contract import UnitError, check_plausible_volts, to_volts
from bcistream.data.profiles import Profile
from bcistream.errors import BcistreamError

__all__ = [
    "MAX_ABS_FEATURE",
    "MAX_ABS_VOLTS",
    "MAX_NPY_HEADER",
    "SFREQ_RANGE",
    "UNITS_FIX_BINARY",
    "UNITS_FIX_JSON",
    "RequestError",
    "check_features",
    "check_sfreq",
    "check_trials",
    "describe_shape",
    "read_npy",
    "read_npy_buffer",
]


class RequestError(BcistreamError):
    """A request the service refuses; ``status`` is the HTTP status it answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


#: Largest absolute sample value accepted, in volts: no scalp or intracranial signal comes near
#: 1 V, and values beyond it overflow the filter's float arithmetic long before they mean anything.
MAX_ABS_VOLTS = 1.0
#: Largest absolute feature value accepted: log-power and tangent-space features of EEG are
#: tens at most; 1e6 leaves room for any decoder while keeping the classifier's arithmetic finite.
MAX_ABS_FEATURE = 1e6
#: Sampling rates a caller may state (Hz).
SFREQ_RANGE = (1.0, 100_000.0)
#: How the caller declares units on the JSON routes and on the binary routes (for messages).
UNITS_FIX_JSON = 'send "units": "uV" (or "V", "mV", "nV") in the JSON body'
UNITS_FIX_BINARY = "add ?units=uV to the URL (or an X-Units: uV header)"


def describe_shape(obj: Any, max_depth: int = 4) -> str:
    """A short text of the shape of a nested list, e.g. ``(2, 22, 800)`` or ``(2, 22, 799|800)``.

    Only list lengths are visited (never the numbers), at most ``max_depth`` levels and the
    first 64 items per level, so describing a wrong body costs little.
    """
    if isinstance(obj, np.ndarray):
        return str(tuple(obj.shape))
    dims: list[set[int]] = []
    level = [obj]
    for _ in range(max_depth):
        lists = [x for x in level if isinstance(x, list)]
        if not lists or len(lists) != len(level):
            break
        dims.append({len(x) for x in lists})
        level = [y for x in lists[:64] for y in x[:64]]
    if not dims:
        return "a scalar" if not isinstance(obj, dict) else "an object"
    parts = ["|".join(str(n) for n in sorted(d)[:3]) + ("|..." if len(d) > 3 else "") for d in dims]
    return "(" + ", ".join(parts) + ")"


def _as_numeric(obj: Any, what: str, expected: str) -> np.ndarray:
    """``obj`` as a float64 array, refusing text, booleans, null and ragged nesting in one line."""
    if isinstance(obj, np.ndarray):
        arr = obj
    else:
        try:
            arr = np.asarray(obj)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
            got = describe_shape(obj)
            kind = "ragged or non-numeric" if arr is None or arr.dtype.kind == "O" else \
                f"{'boolean' if arr.dtype == np.bool_ else 'text'} values"
            raise RequestError(f"{what} must be numbers of shape {expected}; got {kind}, shape {got}")
    if arr.dtype.kind not in "fiu":
        raise RequestError(f"{what} must be numbers of shape {expected}; got dtype {arr.dtype}")
    return np.asarray(arr, dtype=np.float64)


def check_sfreq(sfreq: Any, profile: Profile) -> None:
    """Refuse a stated sampling rate that is not a finite number equal to the model's."""
    if sfreq is None:
        return
    if isinstance(sfreq, bool) or not isinstance(sfreq, numbers.Real):
        raise RequestError(f"sfreq must be a number in Hz, got {type(sfreq).__name__}")
    f = float(sfreq)
    if not math.isfinite(f) or not SFREQ_RANGE[0] <= f <= SFREQ_RANGE[1]:
        raise RequestError(f"sfreq must be a finite rate between {SFREQ_RANGE[0]:g} and "
                           f"{SFREQ_RANGE[1]:g} Hz, got {f!r}")
    if abs(f - profile.sfreq) > 1e-6:
        raise RequestError(f"sfreq is {f:g} Hz but the model expects {profile.sfreq:g} Hz")


def _first_bad_trial(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_trials(trials: Any, profile: Profile, sfreq: Any = None, units: str | None = None,
                 fix: str = UNITS_FIX_JSON) -> np.ndarray:
    """Validate raw trials against the model's profile and return them in volts.

    Parameters
    ----------
    trials : array-like, shape (n_trials, n_channels, n_times) or (n_channels, n_times)
        Channels in profile order; ``n_times >= profile.window_samples``. One 2-D trial is a
        batch of one.
    profile : Profile
        The profile the model was trained with.
    sfreq : float, optional
        The sampling rate the caller recorded at; refused when it differs from the profile's.
    units : str, optional
        The declared unit (``"uV"``, ``"V"`` ...; `bcistream.data.contract.to_volts`). Undeclared
        samples must be plausible as volts (`bcistream.data.contract.check_plausible_volts`).
    fix : str
        How the caller declares units at this route (named in the refusal).

    Returns
    -------
    ndarray of float64, shape (n_trials, n_channels, n_times)
        Volts.

    Raises
    ------
    RequestError
        Empty batch; wrong dimensions, channels or samples; a unit that is unknown or, when
        undeclared, implausible; a trial with NaN/Inf, beyond `MAX_ABS_VOLTS`, or flat (all
        channels constant); a wrong or non-finite rate. Messages are one line with the
        expected and received shapes or the index of the first bad trial.
    """
    check_sfreq(sfreq, profile)
    expected = f"(n_trials, {profile.n_channels}, >={profile.window_samples})"
    X = _as_numeric(trials, "trials", expected)
    if X.ndim == 2 and X.size:
        X = X[np.newaxis]
    if X.size == 0:
        raise RequestError(f"trials is an empty batch {tuple(X.shape)}: send at least one trial "
                           f"of shape ({profile.n_channels}, >={profile.window_samples})")
    if X.ndim != 3:
        raise RequestError(f"trials must have shape {expected}, got shape {tuple(X.shape)}")
    n, c, t = X.shape
    if c != profile.n_channels:
        raise RequestError(f"trials have {c} channels, the model expects {profile.n_channels} "
                           f"({', '.join(profile.channels[:3])}, ... in profile '{profile.name}' "
                           f"order): expected {expected}, got {tuple(X.shape)}")
    if t < profile.window_samples:
        raise RequestError(f"trials have {t} samples, the model needs at least {profile.window_samples} "
                           f"(one {profile.window_s:g} s window at {profile.sfreq:g} Hz; more leading "
                           f"samples serve as filter pre-roll): expected {expected}, got {tuple(X.shape)}")
    finite = np.isfinite(X).all(axis=(1, 2))
    if not finite.all():
        raise RequestError(f"trial {_first_bad_trial(~finite)} contains NaN or Inf")
    if units is not None:
        try:
            X = to_volts(X, units)
        except UnitError as exc:
            raise RequestError(f"units: {exc}") from None
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # 1e300 V: refused by range below
            verdict = check_plausible_volts(X, "trials", fix)
        if not verdict.ok:
            raise RequestError(verdict.message)
    peak = np.abs(X).max(axis=(1, 2))
    if (peak > MAX_ABS_VOLTS).any():
        i = _first_bad_trial(peak > MAX_ABS_VOLTS)
        raise RequestError(f"trial {i} has a sample of {peak[i]:.3g} V, beyond the {MAX_ABS_VOLTS:g} V "
                           "that any EEG can have")
    flat = (X.max(axis=2) == X.min(axis=2)).all(axis=1)
    if flat.any():
        raise RequestError(f"trial {_first_bad_trial(flat)} is flat (every channel constant): "
                           "nothing to decode")
    return X


#: dtypes a .npy upload may have: numbers only (ints for amplifier counts with declared units).
_NPY_KINDS = "fiu"


def read_npy(fileobj: BinaryIO, size: int | None = None, header_only: bool = False) -> Any:
    """Read one numeric array in .npy format; never unpickles, never trusts the header's size.

    Parameters
    ----------
    fileobj : binary file
        Positioned at the start of the .npy data.
    size : int, optional
        Bytes available from the start (default: measured by seeking). The header's shape and
        dtype must account for exactly the bytes that follow it; a header claiming more is
        refused before anything is allocated.
    header_only : bool
        Return ``(shape, fortran_order, dtype, data_offset)`` after the checks, reading no data.

    Raises
    ------
    RequestError
        Not a .npy file, object/text/structured dtype, more than 3 dimensions, or a header
        whose size disagrees with the data.
    """
    if size is None:
        here = fileobj.tell()
        size = fileobj.seek(0, 2) - here
        fileobj.seek(here)
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fileobj)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fileobj)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(fileobj)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise RequestError(f"trials is not a readable .npy array without pickled objects "
                           f"({reason})") from None
    if dtype.hasobject or dtype.kind not in _NPY_KINDS or dtype.fields is not None:
        raise RequestError(f"trials must be a numeric array, got dtype {dtype}")
    if len(shape) > 3 or any(int(d) < 0 for d in shape):
        raise RequestError(f"trials must have shape (n_trials, n_channels, n_times), got {tuple(shape)}")
    count = math.prod(int(d) for d in shape)
    need = count * dtype.itemsize
    have = size - fileobj.tell()
    if need != have:
        raise RequestError(f"trials .npy header claims shape {tuple(shape)} of {dtype} ({need} bytes) "
                           f"but {have} bytes of data follow")
    if header_only:
        return tuple(int(d) for d in shape), bool(fortran), dtype, size - have
    data = fileobj.read(need)
    arr = np.frombuffer(data, dtype=dtype, count=count)
    return arr.reshape(shape, order="F" if fortran else "C")


#: Longest .npy header read (numpy writes 64-byte-aligned headers; a few KB at most in practice).
MAX_NPY_HEADER = 1 << 16


def read_npy_buffer(buf: bytes | memoryview) -> np.ndarray:
    """`read_npy` over bytes in memory, without copying the data (a read-only view of ``buf``)."""
    view = memoryview(buf)
    head = io.BytesIO(view[:MAX_NPY_HEADER + 12].tobytes())
    arr_header = read_npy(head, len(view), header_only=True)
    shape, fortran, dtype, offset = arr_header
    count = math.prod(int(d) for d in shape)
    arr = np.frombuffer(view, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C")


def check_features(features: Any, n_features: int) -> np.ndarray:
    """Validate a batch of feature vectors, shape (n, n_features), finite and within `MAX_ABS_FEATURE`."""
    expected = f"(n, {n_features})"
    F = _as_numeric(features, "features", expected)
    if F.size == 0:
        raise RequestError(f"features is an empty batch {tuple(F.shape)}: send at least one feature vector")
    if F.ndim == 1:
        F = F[np.newaxis]
    if F.ndim != 2:
        raise RequestError(f"features must have shape {expected}, got shape {tuple(F.shape)}")
    if F.shape[1] != n_features:
        raise RequestError(f"feature vectors have {F.shape[1]} values, the model expects {n_features}: "
                           f"expected {expected}, got {tuple(F.shape)}")
    finite = np.isfinite(F).all(axis=1)
    if not finite.all():
        raise RequestError(f"feature vector {_first_bad_trial(~finite)} contains NaN or Inf")
    big = np.abs(F).max(axis=1) > MAX_ABS_FEATURE
    if big.any():
        raise RequestError(f"feature vector {_first_bad_trial(big)} has a value beyond "
                           f"{MAX_ABS_FEATURE:g} in magnitude: not features of this model")
    return F
