"""MOABB datasets (optional extra ``bcistream[moabb]``): ``--data moabb:BNCI2014_001``.

Only MOABB's own cache is read: the download functions MOABB and pooch use are replaced, for the
duration of a read, by one that raises a `DataError` naming the dataset and subject, so nothing is
fetched at run time. ``moabb:FakeDataset`` is MOABB's generated test dataset (no files at all).
Sessions become training/test data (default: the first session trains, the last tests); runs of a
session are joined as segments. Without ``--profile`` a profile is made from the dataset: its EEG
channels and rate, ``event_id`` as classes, the window of its ``interval``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

from bcistream.data.profiles import Profile
from bcistream.data.recording import Recording
from bcistream.errors import DataError

__all__ = ["dataset_profile", "load_moabb_run", "plan_moabb"]


def _import_moabb():
    try:
        import moabb.datasets
    except ImportError:
        raise DataError("--data moabb:… needs MOABB: pip install 'bcistream[moabb]'") from None
    return moabb.datasets


@functools.lru_cache(maxsize=8)
def _dataset(name: str):
    datasets = _import_moabb()
    cls = getattr(datasets, name, None)
    if cls is None:
        from moabb.datasets import fake

        cls = getattr(fake, name, None)
    if not isinstance(cls, type):
        raise DataError(f"moabb:{name}: MOABB has no dataset of that name (e.g. BNCI2014_001, "
                        "PhysionetMI, FakeDataset)")
    return cls()


@contextlib.contextmanager
def _no_download(name: str, subject: int):
    import pooch
    from moabb.datasets import download

    where = os.environ.get("MNE_DATA") or str(Path.home() / "mne_data")

    def refuse(*_args, **_kwargs):
        raise DataError(f"moabb:{name}: subject {subject} is not in MOABB's cache ({where}); bcistream "
                        "never downloads: fetch it once with MOABB (dataset.download()) or set MNE_DATA")

    saved = (download.retrieve, pooch.retrieve)
    download.retrieve = pooch.retrieve = refuse
    try:
        yield
    finally:
        download.retrieve, pooch.retrieve = saved


@functools.lru_cache(maxsize=4)
def _subject_data(name: str, subject: int) -> dict:
    ds = _dataset(name)
    with _no_download(name, subject):
        try:
            return ds.get_data(subjects=[subject])[subject]
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001  (MOABB/pooch raise many types)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = os.environ.get("MNE_DATA") or str(Path.home() / "mne_data")
            raise DataError(f"moabb:{name}: subject {subject} cannot be read from MOABB's cache ({where}): "
                            f"{first}; bcistream never downloads: fetch it once with MOABB") from None


def _eeg_raw(raw):
    return raw.copy().pick("eeg", exclude=[]) if "stim" in raw.get_channel_types() else raw.copy()


def dataset_profile(name: str) -> Profile:
    """A profile from the dataset's first subject: EEG channels, rate, classes, window."""
    ds = _dataset(name)
    first = _subject_data(name, int(ds.subject_list[0]))
    raw = _eeg_raw(next(iter(next(iter(first.values())).values())))
    start, stop = (float(v) for v in ds.interval)
    return Profile.from_dict({
        "name": f"moabb-{name}", "channels": list(raw.ch_names), "sfreq": float(raw.info["sfreq"]),
        "window_s": stop - start, "offset_s": start,
        "classes": {str(k): str(k) for k in ds.event_id},
    }, source=f"moabb:{name}")


def plan_moabb(name: str, subject: str = "all", train: list[str] | None = None,
               test: list[str] | None = None) -> list:
    """One `Plan` per subject; ``train``/``test`` name sessions (default first / last)."""
    from bcistream.data.sources import Plan, Source

    ds = _dataset(name)
    available = [int(s) for s in ds.subject_list]
    if subject == "all":
        subjects = available
    else:
        try:
            subjects = [int(s) for s in str(subject).split(",")]
        except ValueError:
            raise DataError(f"--subject: must be a number, a comma list or 'all', got '{subject}'") from None
        bad = [s for s in subjects if s not in available]
        if bad:
            raise DataError(f"moabb:{name}: no subject {bad[0]} (subjects {available[0]}..{available[-1]})")
    plans = []
    for s in subjects:
        sessions = _subject_data(name, s)
        names = list(sessions)
        tr = list(train) if train else names[:1]
        te = list(test) if test is not None and test else ([] if train else names[1:][-1:])
        for want in tr + te:
            if want not in sessions:
                raise DataError(f"moabb:{name}: subject {s} has no session '{want}' (sessions: "
                                f"{', '.join(names)})")

        def runs(sess: list[str], s=s, sessions=sessions) -> tuple:
            return tuple(Source("moabb", f"moabb:{name}/{s}/{ses}/{run}", ref=(name, s, ses, run))
                         for ses in sess for run in sessions[ses])

        plans.append(Plan(label=f"{name}-{s:02d}", subject=str(s), train=runs(tr), test=runs(te)))
    return plans


def load_moabb_run(name: str, subject: int, session: str, run: str, *, profile: Profile) -> Recording:
    """One run of a MOABB subject in the profile's layout."""
    from bcistream.data.loader import recording_from_raw

    raw = _eeg_raw(_subject_data(name, subject)[session][run])
    return recording_from_raw(raw, profile, source=f"moabb:{name}/{subject}/{session}/{run}",
                              declared_units={ch: "V" for ch in raw.ch_names})
